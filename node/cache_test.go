package node

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
)

// restartableOrigin is a real origin on a loopback port that a test can
// take down and bring back. Its listener stays open for the whole test
// (a port closed and listened on again later could be taken by anyone
// meanwhile): while down, every connection is read up to the request
// head, the request's path is recorded, and the connection is reset, as
// a dead origin's would be, without ever reaching the handler.
type restartableOrigin struct {
	addr    string
	handler http.Handler
	hits    atomic.Int64 // requests served
	srv     *http.Server

	mu       sync.Mutex
	down     bool
	conns    map[net.Conn]struct{} // served now
	refusing map[net.Conn]struct{} // being refused now
	refused  []string              // paths of the requests refused while down
	wg       sync.WaitGroup        // refusals
}

func newRestartableOrigin(t *testing.T, h http.Handler) *restartableOrigin {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o := &restartableOrigin{addr: ln.Addr().String(), handler: h,
		conns: map[net.Conn]struct{}{}, refusing: map[net.Conn]struct{}{}}
	o.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			o.hits.Add(1)
			o.handler.ServeHTTP(w, r)
		}),
		ConnState: func(c net.Conn, st http.ConnState) {
			o.mu.Lock()
			defer o.mu.Unlock()
			switch st {
			case http.StateNew:
				o.conns[c] = struct{}{}
			case http.StateClosed, http.StateHijacked:
				delete(o.conns, c)
			}
		},
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		o.srv.Serve(&gateListener{Listener: ln, o: o})
	}()
	t.Cleanup(func() {
		o.srv.Close()
		<-done
		o.mu.Lock()
		for c := range o.refusing {
			c.Close()
		}
		o.mu.Unlock()
		o.wg.Wait()
	})
	return o
}

// gateListener hands the server only the connections that arrive while
// the origin is up.
type gateListener struct {
	net.Listener
	o *restartableOrigin
}

func (l *gateListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		l.o.mu.Lock()
		down := l.o.down
		if down {
			l.o.refusing[c] = struct{}{}
			l.o.wg.Add(1)
		}
		l.o.mu.Unlock()
		if !down {
			return c, nil
		}
		go l.o.refuse(c)
	}
}

// refuse records the path of the request on c and resets c.
func (o *restartableOrigin) refuse(c net.Conn) {
	defer o.wg.Done()
	c.SetReadDeadline(time.Now().Add(waitTimeout))
	req, err := http.ReadRequest(bufio.NewReader(c))
	o.mu.Lock()
	if err == nil {
		o.refused = append(o.refused, req.URL.Path)
	}
	delete(o.refusing, c)
	o.mu.Unlock()
	resetConn(c)
}

// resetConn closes c with a reset (RST), not a clean end.
func resetConn(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

// stop takes the origin down: the connections it serves are reset, new
// ones are refused.
func (o *restartableOrigin) stop() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.down = true
	for c := range o.conns {
		resetConn(c)
	}
}

// start brings the origin back.
func (o *restartableOrigin) start() {
	o.mu.Lock()
	o.down = false
	o.mu.Unlock()
}

// refusedPaths returns the paths requested while the origin was down.
func (o *restartableOrigin) refusedPaths() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.refused...)
}

func (o *restartableOrigin) url() string { return "http://" + o.addr }

// gripRoutes answers /stream, /sse and /poll with cacheable holds on
// channel "live", and /ws and /cachedws as a WebSocket-over-HTTP origin.
func gripRoutes() http.Handler {
	ws := &wsOrigin{channel: "live"}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Cache-Control", "max-age=1")
		h.Set("Grip-Channel", "live")
		switch r.URL.Path {
		case "/stream":
			h.Set("Grip-Hold", "stream")
			io.WriteString(w, "initial\n")
		case "/sse":
			h.Set("Grip-Hold", "stream")
			h.Set("Content-Type", "text/event-stream")
			io.WriteString(w, "event: init\ndata: 0\n\n")
		case "/poll":
			h.Set("Grip-Hold", "response")
			io.WriteString(w, "nothing yet\n")
		default:
			h.Del("Cache-Control")
			h.Del("Grip-Channel")
			ws.ServeHTTP(w, r)
		}
	})
}

func TestConnectionsOpenFromCacheWhileOriginIsDown(t *testing.T) {
	o := newRestartableOrigin(t, gripRoutes())
	n := startNode(t, http.NotFoundHandler(), func(c *Config) { c.Origin = o.url() })
	warm := func(path string) {
		c := dialRaw(t, n.Addr())
		resp := c.get(t, path)
		if resp.Header.Get("X-Cache") != "" && resp.Header.Get("Grip-Hold") != "" {
			t.Fatalf("GRIP headers leaked: %v", resp.Header)
		}
		c.Close()
	}
	for _, p := range []string{"/stream", "/sse"} {
		warm(p)
	}
	// A long-poll is answered only later; the origin's answer is cached
	// as soon as it arrives.
	before := o.hits.Load()
	pc := dialRaw(t, n.Addr())
	io.WriteString(pc, "GET /poll HTTP/1.1\r\nHost: test\r\n\r\n")
	waitFor(t, "the long-poll to reach the origin", func() bool { return o.hits.Load() > before })
	n.waitSubscribers(t, "live", 1)
	pc.Close()
	n.waitSubscribers(t, "live", 0)
	wsWarm := dialWS(t, n, "/cachedws", false)
	readText(t, wsWarm)
	wsWarm.Close()
	o.stop()
	time.Sleep(1100 * time.Millisecond) // past max-age=1: entries are stale, within stale-if-error

	stream := bufio.NewReader(dialRaw(t, n.Addr()).get(t, "/stream").Body)
	if got := readLine(t, stream); got != "initial\n" {
		t.Fatalf("stream from cache: %q", got)
	}
	sseResp := dialRaw(t, n.Addr()).get(t, "/sse")
	events := sseEvents(sseResp.Body)
	if ev := <-events; ev != "init:0" {
		t.Fatalf("sse from cache: %q", ev)
	}
	ws := dialWS(t, n, "/cachedws", false)
	if got := readText(t, ws); got != "welcome" {
		t.Fatalf("websocket from cache: %q", got)
	}
	pollDone := dialRaw(t, n.Addr()).getAsync("/poll")
	n.waitSubscribers(t, "live", 4)
	n.publish(t, map[string]any{"channel": "live", "formats": map[string]any{
		"http-stream":   map[string]any{"content": "event: update\ndata: 1\n\n"},
		"http-response": map[string]any{"body": "update 1\n"},
		"ws-message":    map[string]any{"content": "update 1"},
	}})
	if got := readLine(t, stream); got != "event: update\n" {
		t.Fatalf("stream publish: %q", got)
	}
	if ev := <-events; ev != "update:1" {
		t.Fatalf("sse publish: %q", ev)
	}
	if got := readText(t, ws); got != "update 1" {
		t.Fatalf("websocket publish: %q", got)
	}
	if got := await(t, pollDone).body; got != "update 1\n" {
		t.Fatalf("long-poll publish: %q", got)
	}
	st := n.Status()
	if st.Cache.StaleOnError < 3 {
		t.Fatalf("cache stats %+v: want stale entries served on error", st.Cache)
	}
}

func TestNoEntryAndOriginDownIsAClearError(t *testing.T) {
	o := newRestartableOrigin(t, gripRoutes())
	n := startNode(t, http.NotFoundHandler(), func(c *Config) { c.Origin = o.url() })
	o.stop()
	resp, err := http.Get(n.url + "/stream?never-cached")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 502 || !strings.Contains(string(b), "no cached copy") {
		t.Fatalf("got %d %q", resp.StatusCode, b)
	}
}

func TestVaryAndAuthorizationIsolation(t *testing.T) {
	var fetches atomic.Int64
	n := startNode(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		w.Header().Set("Cache-Control", "max-age=60")
		if r.URL.Path == "/vary" {
			w.Header().Set("Vary", "X-User")
		}
		fmt.Fprintf(w, "user=%s auth=%s", r.Header.Get("X-User"), r.Header.Get("Authorization"))
	}))
	get := func(path string, headers ...string) (string, string) {
		resp, body := n.getWith(t, path, headers...)
		return body, resp.Header.Get("X-Cache")
	}
	if b, x := get("/vary", "X-User", "alice"); b != "user=alice auth=" || x != "MISS" {
		t.Fatalf("alice: %q %s", b, x)
	}
	if b, x := get("/vary", "X-User", "alice"); b != "user=alice auth=" || x != "HIT" {
		t.Fatalf("alice again: %q %s", b, x)
	}
	if b, _ := get("/vary", "X-User", "bob"); b != "user=bob auth=" {
		t.Fatalf("bob got %q", b)
	}
	if b, _ := get("/vary"); b != "user= auth=" {
		t.Fatalf("anonymous got %q", b)
	}
	// A response to an authorized request without public/s-maxage is not
	// stored: no one else gets alice's answer.
	if b, _ := get("/private", "Authorization", "Bearer alice"); b != "user= auth=Bearer alice" {
		t.Fatalf("alice authorized: %q", b)
	}
	if b, x := get("/private", "Authorization", "Bearer bob"); b != "user= auth=Bearer bob" || x == "HIT" {
		t.Fatalf("bob authorized: %q %s", b, x)
	}
	if b, _ := get("/private"); b != "user= auth=" {
		t.Fatalf("anonymous after authorized: %q", b)
	}
}

func TestPrivateAndNoStoreAreNeverStored(t *testing.T) {
	var fetches atomic.Int64
	n := startNode(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		w.Header().Set("Cache-Control", map[string]string{"/private": "private, max-age=60", "/nostore": "no-store, max-age=60"}[r.URL.Path])
		io.WriteString(w, "x")
	}))
	for range 3 {
		for _, p := range []string{"/private", "/nostore"} {
			resp, err := http.Get(n.url + p)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		}
	}
	if f := fetches.Load(); f != 6 {
		t.Fatalf("origin fetches = %d, want 6", f)
	}
}

// TestThousandConcurrentMissesOneFetch: a thousand clients that miss
// together make one origin fetch. The origin answers only once every
// client's request has reached the cache (by the cache's own count), so
// all of them miss while the fetch is in flight, however slowly they
// arrive.
func TestThousandConcurrentMissesOneFetch(t *testing.T) {
	const clients = 1000
	n, fetches := missTogether(t, clients, func(w http.ResponseWriter) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Grip-Hold", "stream")
		w.Header().Set("Grip-Channel", "crowd")
		io.WriteString(w, "hello crowd\n")
	}, func(n *testNode) error {
		c, err := net.Dial("tcp", n.Addr().String())
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * waitTimeout))
		io.WriteString(c, "GET /crowd HTTP/1.1\r\nHost: test\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return err
		}
		line, err := bufio.NewReader(resp.Body).ReadString('\n')
		if err != nil || line != "hello crowd\n" {
			return fmt.Errorf("read %q: %v", line, err)
		}
		return nil
	})
	if fetches != 1 {
		t.Fatalf("%d concurrent new connections made %d origin fetches, want 1", clients, fetches)
	}
	if st := n.cache.Stats(); st.Coalesced+st.Hits != clients-1 {
		t.Fatalf("cache stats %+v: want every request but one to wait for the flight or find its entry", st)
	}
}

// TestCoalescedPlainMisses: concurrent misses for a plain (not held)
// response share the one stored answer, and each writes its own response
// headers (X-Cache, Age) without touching the shared ones (the race
// detector watches them: X-Cache was appended to the stored slice).
func TestCoalescedPlainMisses(t *testing.T) {
	_, fetches := missTogether(t, 8, func(w http.ResponseWriter) {
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "plain")
	}, func(n *testNode) error {
		resp, err := http.Get(n.url + "/plain")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if string(b) != "plain" || len(resp.Header.Values("X-Cache")) != 1 {
			return fmt.Errorf("%q, X-Cache %q", b, resp.Header.Values("X-Cache"))
		}
		return nil
	})
	if fetches != 1 {
		t.Fatalf("%d origin fetches, want 1", fetches)
	}
}

// missTogether starts a node whose origin answers (with answer) only once
// clients requests have reached the cache, runs request that many times
// at once, fails the test on their errors, and returns the node and how
// many requests reached the origin.
func missTogether(t *testing.T, clients int, answer func(http.ResponseWriter), request func(*testNode) error) (*testNode, int64) {
	t.Helper()
	var fetches atomic.Int64
	arrived := make(chan struct{})
	n := startNode(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		select {
		case <-arrived:
		case <-time.After(waitTimeout): // the test fails on its own
		}
		answer(w)
	}))
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := request(n); err != nil {
				errs <- err
			}
		}()
	}
	waitFor(t, "every request to reach the cache", func() bool { return n.cache.Stats().Gets >= uint64(clients) || len(errs) > 0 })
	close(arrived)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return n, fetches.Load()
}

// TestCircuitBreakerPausesAndProbes: after -origin-failures failures in a
// row (requests for as many URLs: the dead origin resets connections)
// over a second the breaker opens: requests fail at once without
// reaching the origin, while probes (GET -origin-probe-path, a path of
// their own here, so the dead origin can tell them from requests) ask
// whether it is back; one that finds it back closes the breaker.
func TestCircuitBreakerPausesAndProbes(t *testing.T) {
	o := newRestartableOrigin(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "up")
	}))
	n := startNode(t, http.NotFoundHandler(), func(c *Config) {
		c.Origin, c.OriginFailures, c.OriginProbeMaxPause, c.OriginProbePath = o.url(), 3, time.Second, "/probe"
	})
	o.stop()
	i := 0
	waitFor(t, "breaker to open", func() bool {
		resp, err := http.Get(fmt.Sprintf("%s/x%d", n.url, i%3))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		i++
		return n.breaker.isOpen()
	})
	// requests counts what reached the dead origin, probes aside.
	requests := func() (k int) {
		for _, p := range o.refusedPaths() {
			if p != "/probe" {
				k++
			}
		}
		return k
	}
	if requests() == 0 {
		t.Fatal("the failing requests never reached the origin")
	}
	requestsBefore := requests()
	resp, err := http.Get(n.url + "/x")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 502 || !strings.Contains(string(b), "being probed") {
		t.Fatalf("while open: %d %q", resp.StatusCode, b)
	}
	if requests() != requestsBefore {
		t.Fatalf("a request reached the dead origin while the breaker was open: %q", o.refusedPaths())
	}
	waitFor(t, "a probe to reach the dead origin", func() bool { return slices.Contains(o.refusedPaths(), "/probe") })
	o.start()
	waitFor(t, "a probe to close the breaker", func() bool { return !n.breaker.isOpen() })
	resp, err = http.Get(n.url + "/x")
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "up" {
		t.Fatalf("after recovery: %q", b)
	}
}

func TestEvictionNeverBreaksHeldConnections(t *testing.T) {
	n := startNode(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		if r.URL.Path == "/held" {
			w.Header().Set("Grip-Hold", "stream")
			w.Header().Set("Grip-Channel", "kept")
			io.WriteString(w, "held\n")
			return
		}
		io.WriteString(w, strings.Repeat("f", 4000))
	}), func(c *Config) { c.CacheMaxBytes = 32 << 10 })
	var bodies []*bufio.Reader
	for range 5 {
		r := bufio.NewReader(dialRaw(t, n.Addr()).get(t, "/held").Body)
		readLine(t, r)
		bodies = append(bodies, r)
	}
	client := &http.Client{}
	defer client.CloseIdleConnections()
	for i := range 300 { // ~1.2 MB through a 32 KiB cache
		resp, err := client.Get(fmt.Sprintf("%s/filler/%d", n.url, i))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if st := n.Status().Cache; st.Evictions+st.Rejected == 0 {
		t.Fatalf("no evictions: %+v", st)
	}
	n.publish(t, streamItem("kept", "still here\n"))
	for _, r := range bodies {
		if got := readLine(t, r); got != "still here\n" {
			t.Fatalf("held connection got %q", got)
		}
	}
}

func TestCachedPlainResponseAgeAndCompression(t *testing.T) {
	body := strings.Repeat(`{"counter":"a","value":42}`, 80)
	n := startNode(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, body)
	}))
	client := &http.Client{} // sends Accept-Encoding: gzip and decodes it
	defer client.CloseIdleConnections()
	for i, want := range []string{"MISS", "HIT"} {
		resp, err := client.Get(n.url + "/data")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != body || !resp.Uncompressed || resp.Header.Get("X-Cache") != want {
			t.Fatalf("request %d: %d bytes, uncompressed=%v, X-Cache=%s", i, len(b), resp.Uncompressed, resp.Header.Get("X-Cache"))
		}
		if want == "HIT" && resp.Header.Get("Age") == "" {
			t.Fatal("cached response without Age")
		}
		if !strings.Contains(resp.Header.Get("Vary"), "Accept-Encoding") {
			t.Fatalf("Vary = %q", resp.Header.Get("Vary"))
		}
	}
	req, _ := http.NewRequest("GET", n.url+"/data", nil)
	req.Header.Set("Accept-Encoding", "zstd")
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.Header.Get("Content-Encoding") != "zstd" || len(raw) >= len(body)/4 {
		t.Fatalf("zstd: %q, %d bytes", resp.Header.Get("Content-Encoding"), len(raw))
	}
}

var _ = websocket.TextMessage
