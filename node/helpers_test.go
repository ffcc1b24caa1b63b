package node

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// fasthttp's own background goroutines, which end by themselves
		// (worker pool and client idle cleaners) or live for the process
		// (date updater, dialer cache).
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*HostClient).connsCleaner"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*TCPDialer).tcpAddrsClean"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
		// net/http test clients' idle keep-alive connections (their
		// reader parks in the poller, so match anywhere on the stack).
		// Nothing else parked in the poller is ignored: a leaked listener
		// or connection reader of the node fails the suite.
		goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"))
}

// testNode is a node in front of a real origin, both on loopback.
type testNode struct {
	*Server
	origin *httptest.Server
	url    string // client base URL
	ctl    string // control base URL
}

// startNode starts an origin with handler and a node in front of it;
// configure adjusts the node's config.
func startNode(tb testing.TB, handler http.Handler, configure ...func(*Config)) *testNode {
	tb.Helper()
	return startNodeLog(tb, handler, testLog(), configure...)
}

// testLog is the logger of test nodes: nil (none), or stderr at debug
// with EDGEPUSH_TEST_LOG set.
func testLog() *slog.Logger {
	if os.Getenv("EDGEPUSH_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// startNodeLog is startNode with the node's logger (nil: none).
func startNodeLog(tb testing.TB, handler http.Handler, log *slog.Logger, configure ...func(*Config)) *testNode {
	tb.Helper()
	return startNodeTuned(tb, handler, log, nil, configure...)
}

// startNodeTuned is startNodeLog with tune (when not nil) called on the
// Server between New and Start, for what no Config sets.
func startNodeTuned(tb testing.TB, handler http.Handler, log *slog.Logger, tune func(*Server), configure ...func(*Config)) *testNode {
	tb.Helper()
	origin := httptest.NewServer(handler)
	tb.Cleanup(origin.Close)
	cfg := DefaultConfig()
	cfg.Listen, cfg.Control, cfg.Origin = "127.0.0.1:0", "127.0.0.1:0", origin.URL
	cfg.DrainPeriod = time.Millisecond // end held connections at once
	for _, f := range configure {
		f(&cfg)
	}
	s, err := New(cfg, log)
	if err != nil {
		tb.Fatal(err)
	}
	if tune != nil {
		tune(s)
	}
	if err := s.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			tb.Errorf("shutdown: %v", err)
		}
	})
	return &testNode{Server: s, origin: origin, url: "http://" + s.Addr().String(), ctl: "http://" + s.ControlAddr().String()}
}

// logRecorder is a slog.Handler that keeps the messages logged, every
// level included, so that a test can wait for what a node reports.
type logRecorder struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *logRecorder) WithGroup(string) slog.Handler            { return r }
func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	r.recs = append(r.recs, rec.Clone())
	r.mu.Unlock()
	return nil
}

// count returns how many times msg was logged.
func (r *logRecorder) count(msg string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := 0
	for _, rec := range r.recs {
		if rec.Message == msg {
			k++
		}
	}
	return k
}

// attr returns attribute key of the first record logged with msg.
func (r *logRecorder) attr(msg, key string) (v slog.Value, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range r.recs {
		if rec.Message != msg {
			continue
		}
		rec.Attrs(func(a slog.Attr) bool {
			if a.Key == key {
				v, ok = a.Value, true
				return false
			}
			return true
		})
		return v, ok
	}
	return v, false
}

// stopOrigin stops the node's origin: connections to it are refused from
// now on, and its port stays taken until the test ends.
func (n *testNode) stopOrigin(tb testing.TB) {
	tb.Helper()
	addr := n.origin.Listener.Addr()
	n.origin.Close()
	holdRefusing(tb, addr)
}

// gripOrigin answers every request with the given headers and body.
func gripOrigin(body string, headers ...string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(headers); i += 2 {
			w.Header().Add(headers[i], headers[i+1])
		}
		io.WriteString(w, body)
	})
}

// gripProxy is a GRIP proxy in front of a test origin, as the scenarios
// that run on both an edgepush node and Pushpin (pushpin_compare_test.go)
// see it: where clients connect, how to publish, and how many
// subscriptions a channel has.
type gripProxy interface {
	Addr() net.Addr
	publish(tb testing.TB, items ...map[string]any)
	subscribers(channel string) int
}

// waitSubscribed waits until channel has want subscribers on p.
func waitSubscribed(tb testing.TB, p gripProxy, channel string, want int) {
	tb.Helper()
	waitFor(tb, fmt.Sprintf("%d subscribers on %q", want, channel), func() bool { return p.subscribers(channel) == want })
}

// publish posts a Pushpin publish body to the node and checks for 200.
func (n *testNode) publish(tb testing.TB, items ...map[string]any) {
	tb.Helper()
	postPublish(tb, n.ctl+"/publish/", items...)
}

// postPublish posts a Pushpin publish body to url (a node's or Pushpin's
// /publish/) and checks for Pushpin's 200 answer.
func postPublish(tb testing.TB, url string, items ...map[string]any) {
	tb.Helper()
	b, _ := json.Marshal(map[string]any{"items": items})
	resp, err := http.Post(url, "application/json", strings.NewReader(string(b)))
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(body) != "Published\n" {
		tb.Fatalf("publish: %d %q", resp.StatusCode, body)
	}
}

func streamItem(channel, content string) map[string]any {
	return map[string]any{"channel": channel, "formats": map[string]any{"http-stream": map[string]any{"content": content}}}
}

// waitTimeout bounds every wait for an event: generous, so that it only
// catches a hang, never a slow (loaded, -race) machine.
const waitTimeout = 15 * time.Second

// waitFor polls cond until it holds or waitTimeout passes.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	waitForUpTo(tb, waitTimeout, what, cond)
}

// waitForUpTo polls cond until it holds or d passes.
func waitForUpTo(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// subscribers returns how many connections channel has on the node.
func (n *testNode) subscribers(channel string) int { return n.hub.Subscribers(channel) }

// waitSubscribers waits until channel has n subscribers.
func (n *testNode) waitSubscribers(tb testing.TB, channel string, want int) {
	tb.Helper()
	waitSubscribed(tb, n, channel, want)
}

// rawConn is a client on a plain TCP connection, to see exact bytes.
type rawConn struct {
	net.Conn
	r *bufio.Reader
}

func dialRaw(tb testing.TB, addr net.Addr) *rawConn {
	tb.Helper()
	c, err := net.Dial("tcp", addr.String())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return &rawConn{Conn: c, r: bufio.NewReader(c)}
}

// get sends a GET with extra header lines and reads the response head.
func (c *rawConn) get(tb testing.TB, path string, headerLines ...string) *http.Response {
	tb.Helper()
	req := "GET " + path + " HTTP/1.1\r\nHost: test\r\n" + strings.Join(headerLines, "") + "\r\n"
	if _, err := io.WriteString(c, req); err != nil {
		tb.Fatal(err)
	}
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return resp
}

// answer is a response read in a goroutine: its head and whole body, or
// what went wrong.
type answer struct {
	resp *http.Response
	body string
	err  error
}

// getAsync sends a GET like get, from a goroutine, and delivers the
// response with its whole body on the returned channel: for requests
// answered only later (long-polls). Failures come back on the channel,
// never through tb (FailNow must run on the test's goroutine).
func (c *rawConn) getAsync(path string, headerLines ...string) <-chan answer {
	ch := make(chan answer, 1)
	go func() {
		var a answer
		req := "GET " + path + " HTTP/1.1\r\nHost: test\r\n" + strings.Join(headerLines, "") + "\r\n"
		if _, a.err = io.WriteString(c, req); a.err == nil {
			if a.resp, a.err = http.ReadResponse(c.r, nil); a.err == nil {
				var b []byte
				b, a.err = io.ReadAll(a.resp.Body)
				a.body = string(b)
			}
		}
		ch <- a
	}()
	return ch
}

// await waits for an answer from getAsync and fails the test if the
// request failed or nothing came within waitTimeout.
func await(tb testing.TB, ch <-chan answer) answer {
	tb.Helper()
	select {
	case a := <-ch:
		if a.err != nil {
			tb.Fatalf("request: %v (body so far %q)", a.err, a.body)
		}
		return a
	case <-time.After(waitTimeout):
		tb.Fatal("no answer")
	}
	return answer{}
}

// readLine reads one line of a streamed body.
func readLine(tb testing.TB, r *bufio.Reader) string {
	tb.Helper()
	line, err := r.ReadString('\n')
	if err != nil {
		tb.Fatalf("read line: %v (got %q)", err, line)
	}
	return line
}
