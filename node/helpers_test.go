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
	origin := httptest.NewServer(handler)
	tb.Cleanup(origin.Close)
	cfg := DefaultConfig()
	cfg.Listen, cfg.Control, cfg.Origin = "127.0.0.1:0", "127.0.0.1:0", origin.URL
	cfg.DrainPeriod = time.Millisecond // end held connections at once
	for _, f := range configure {
		f(&cfg)
	}
	var log *slog.Logger
	if os.Getenv("EDGEPUSH_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	s, err := New(cfg, log)
	if err != nil {
		tb.Fatal(err)
	}
	if err := s.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			tb.Errorf("shutdown: %v", err)
		}
	})
	return &testNode{Server: s, origin: origin, url: "http://" + s.Addr().String(), ctl: "http://" + s.ControlAddr().String()}
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

// publish posts a Pushpin publish body to the node and checks for 200.
func (n *testNode) publish(tb testing.TB, items ...map[string]any) {
	tb.Helper()
	b, _ := json.Marshal(map[string]any{"items": items})
	resp, err := http.Post(n.ctl+"/publish/", "application/json", strings.NewReader(string(b)))
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

// waitFor polls cond until it holds or 5s pass.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	waitForUpTo(tb, 5*time.Second, what, cond)
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

// waitSubscribers waits until channel has n subscribers.
func (n *testNode) waitSubscribers(tb testing.TB, channel string, want int) {
	tb.Helper()
	waitFor(tb, fmt.Sprintf("%d subscribers on %q", want, channel), func() bool { return n.hub.Subscribers(channel) == want })
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

// readLine reads one line of a streamed body.
func readLine(tb testing.TB, r *bufio.Reader) string {
	tb.Helper()
	line, err := r.ReadString('\n')
	if err != nil {
		tb.Fatalf("read line: %v (got %q)", err, line)
	}
	return line
}
