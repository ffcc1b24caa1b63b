package node

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgepush/edgepush/cluster"
	"github.com/edgepush/edgepush/grip"
	"github.com/fasthttp/websocket"
)

// The hardening tests: nothing one client sends may reach another client
// (through the cache, meta or headers), the origin's circuit breaker, or
// the tier. Each reproduces an attack that worked before its fix.

// recordingOrigin answers with handler and records every request it got.
type recordingOrigin struct {
	mu      sync.Mutex
	reqs    []*http.Request
	bodies  []string
	handler func(w http.ResponseWriter, r *http.Request, n int)
}

func (o *recordingOrigin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	o.mu.Lock()
	o.reqs = append(o.reqs, r)
	o.bodies = append(o.bodies, string(body))
	n := len(o.reqs)
	o.mu.Unlock()
	o.handler(w, r, n)
}

func (o *recordingOrigin) count() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.reqs)
}

func (o *recordingOrigin) last() (*http.Request, string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.reqs[len(o.reqs)-1], o.bodies[len(o.bodies)-1]
}

// get sends a GET (or method) through the node with header lines.
func rawGet(t *testing.T, n *testNode, path string, headerLines ...string) (*http.Response, string) {
	t.Helper()
	resp := dialRaw(t, n.Addr()).get(t, path, headerLines...)
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// TestSetCookieResponsesAreNotShared: a response that sets a cookie is
// never stored, even with max-age: the next client gets its own.
func TestSetCookieResponsesAreNotShared(t *testing.T) {
	o := &recordingOrigin{handler: func(w http.ResponseWriter, r *http.Request, n int) {
		w.Header().Set("Cache-Control", "max-age=60, s-maxage=60")
		w.Header().Set("Set-Cookie", fmt.Sprintf("session=user%d", n))
		io.WriteString(w, "hello\n")
	}}
	n := startNode(t, o)
	first, _ := rawGet(t, n, "/page")
	second, _ := rawGet(t, n, "/page")
	if got := second.Header.Get("Set-Cookie"); got != "session=user2" || second.Header.Get("X-Cache") == "HIT" {
		t.Fatalf("second client got cookie %q (first %q), X-Cache %s", got, first.Header.Get("Set-Cookie"), second.Header.Get("X-Cache"))
	}
	if o.count() != 2 {
		t.Fatalf("origin asked %d times, want 2", o.count())
	}
}

// TestCookieRequestsAreNotShared: a request with a Cookie is one user's;
// its answer is shared only when the answer says public/s-maxage or
// varies on Cookie (then each cookie has its own entry).
func TestCookieRequestsAreNotShared(t *testing.T) {
	o := &recordingOrigin{handler: func(w http.ResponseWriter, r *http.Request, n int) {
		user := "anonymous"
		if c, err := r.Cookie("sid"); err == nil {
			user = c.Value
		}
		if r.URL.Path == "/vary" {
			w.Header().Set("Vary", "Cookie")
		}
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Grip-Hold", "stream")
		w.Header().Set("Grip-Channel", "user-"+user)
		io.WriteString(w, "stream of "+user+"\n")
	}}
	n := startNode(t, o)
	read := func(path string, headerLines ...string) string {
		r := bufio.NewReader(dialRaw(t, n.Addr()).get(t, path, headerLines...).Body)
		return readLine(t, r)
	}
	if got := read("/private", "Cookie: sid=alice\r\n"); got != "stream of alice\n" {
		t.Fatalf("alice: %q", got)
	}
	if got := read("/private"); got != "stream of anonymous\n" {
		t.Fatalf("an anonymous client got %q: alice's stream was shared", got)
	}
	// Varying on Cookie: stored per cookie.
	read("/vary", "Cookie: sid=bob\r\n")
	before := o.count()
	if got := read("/vary", "Cookie: sid=bob\r\n"); got != "stream of bob\n" || o.count() != before {
		t.Fatalf("bob again: %q, origin asked %d more times", got, o.count()-before)
	}
	if got := read("/vary", "Cookie: sid=carol\r\n"); got != "stream of carol\n" {
		t.Fatalf("carol got %q", got)
	}
}

// TestCacheKeysOnWhatTheOriginReceived: the Vary'd headers of the key are
// those the origin saw, not the client's: a header the client lists in
// Connection is dropped before the origin, a repeated header reaches it
// joined, and a GET's body never reaches it.
func TestCacheKeysOnWhatTheOriginReceived(t *testing.T) {
	o := &recordingOrigin{handler: func(w http.ResponseWriter, r *http.Request, n int) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Vary", "Accept-Language")
		io.WriteString(w, "lang="+strings.Join(r.Header.Values("Accept-Language"), ", ")+"\n")
	}}
	n := startNode(t, o)
	// Poisoning attempt 1: fr listed as hop-by-hop, so the origin answers
	// for no language.
	if _, body := rawGet(t, n, "/a", "Connection: Accept-Language\r\n", "Accept-Language: fr\r\n"); body != "lang=\n" {
		t.Fatalf("origin saw %q", body)
	}
	if _, body := rawGet(t, n, "/a", "Accept-Language: fr\r\n"); body != "lang=fr\n" {
		t.Fatalf("a French client got %q", body)
	}
	// Attempt 2: de sent twice.
	if _, body := rawGet(t, n, "/b", "Accept-Language: de\r\n", "Accept-Language: EVIL\r\n"); body != "lang=de, EVIL\n" {
		t.Fatalf("origin saw %q", body)
	}
	if _, body := rawGet(t, n, "/b", "Accept-Language: de\r\n"); body != "lang=de\n" {
		t.Fatalf("a German client got %q", body)
	}
	// A GET's body is not forwarded on a cacheable request.
	c := dialRaw(t, n.Addr())
	io.WriteString(c, "GET /c HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n\r\nEVIL!")
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if _, body := o.last(); body != "" {
		t.Fatalf("the origin got a GET body %q", body)
	}
}

// TestConditionalAndRangeRequestsDoNotPoisonTheCache: a miss with the
// client's validators or range is fetched without them; the stored copy
// is the complete response, and the client's conditional is answered
// from it.
func TestConditionalAndRangeRequestsDoNotPoisonTheCache(t *testing.T) {
	o := &recordingOrigin{handler: func(w http.ResponseWriter, r *http.Request, n int) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("ETag", `"v1"`)
		w.Header().Set("Last-Modified", "Mon, 30 Nov 2026 10:00:00 GMT")
		if r.URL.Path == "/ignores" {
			// An origin that answers 304 and 206 whatever it was asked.
			w.WriteHeader(http.StatusNotModified)
			return
		}
		http.ServeContent(w, r, "", time.Time{}, strings.NewReader("0123456789"))
	}}
	n := startNode(t, o)
	resp, body := rawGet(t, n, "/doc", `If-None-Match: "v1"`+"\r\n")
	if resp.StatusCode != 304 || body != "" {
		t.Fatalf("conditional miss: %d %q", resp.StatusCode, body)
	}
	if r, _ := o.last(); r.Header.Get("If-None-Match") != "" {
		t.Fatal("the client's If-None-Match reached the origin")
	}
	resp, body = rawGet(t, n, "/doc")
	if resp.StatusCode != 200 || body != "0123456789" || resp.Header.Get("X-Cache") != "HIT" {
		t.Fatalf("plain GET after a conditional miss: %d %q %s", resp.StatusCode, body, resp.Header.Get("X-Cache"))
	}
	// The client's conditional answered from the stored copy.
	resp, _ = rawGet(t, n, "/doc", `If-None-Match: W/"v0", "v1"`+"\r\n")
	if resp.StatusCode != 304 || resp.Header.Get("ETag") != `"v1"` {
		t.Fatalf("conditional hit: %d %v", resp.StatusCode, resp.Header)
	}
	resp, _ = rawGet(t, n, "/doc", "If-Modified-Since: Tue, 01 Dec 2026 10:00:00 GMT\r\n")
	if resp.StatusCode != 304 {
		t.Fatalf("If-Modified-Since after Last-Modified: %d", resp.StatusCode)
	}
	resp, body = rawGet(t, n, "/doc", `If-None-Match: "v2"`+"\r\n")
	if resp.StatusCode != 200 || body != "0123456789" {
		t.Fatalf("non-matching conditional: %d %q", resp.StatusCode, body)
	}
	// Ranges: fetched whole, and cut by the node (ranges_test.go).
	resp, body = rawGet(t, n, "/range", "Range: bytes=0-4\r\n")
	if resp.StatusCode != 206 || body != "01234" {
		t.Fatalf("range miss: %d %q", resp.StatusCode, body)
	}
	if r, _ := o.last(); r.Header.Get("Range") != "" {
		t.Fatal("the client's Range reached the origin")
	}
	if resp, body = rawGet(t, n, "/range"); resp.StatusCode != 200 || body != "0123456789" {
		t.Fatalf("plain GET after a range miss: %d %q", resp.StatusCode, body)
	}
	// An origin's 304 is never stored.
	rawGet(t, n, "/ignores")
	before := o.count()
	rawGet(t, n, "/ignores")
	if o.count() != before+1 {
		t.Fatal("a 304 from the origin was stored")
	}
}

// TestClientMethodOPENCannotReachWebSocketOpens: the WebSocket-over-HTTP
// OPEN answers are cached apart from anything a client method can name.
func TestClientMethodOPENCannotReachWebSocketOpens(t *testing.T) {
	ws := &wsOrigin{}
	var evil atomic.Int64
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "OPEN" { // an origin that answers any method
			evil.Add(1)
			w.Header().Set("Content-Type", grip.WebSocketEventsType)
			w.Header().Set("Cache-Control", "max-age=60")
			w.Write(grip.AppendWSEvents(nil, grip.WSEvent{Type: grip.WSEventOpen}, grip.WSEvent{Type: grip.WSEventText, Content: []byte("pwned")}))
			return
		}
		ws.ServeHTTP(w, r)
	})
	n := startNode(t, h)
	c := dialRaw(t, n.Addr())
	io.WriteString(c, "OPEN /cachedws HTTP/1.1\r\nHost: "+n.Addr().String()+"\r\n\r\n")
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if evil.Load() != 1 || resp.StatusCode != 200 {
		t.Fatalf("OPEN request: %d, origin saw %d", resp.StatusCode, evil.Load())
	}
	conn := dialWS(t, n, "/cachedws", false)
	if got := readText(t, conn); got != "welcome" {
		t.Fatalf("a WebSocket client got %q", got)
	}
}

// TestWebSocketOpenWithMetaIsNotShared: a cacheable OPEN answer that sets
// connection meta is one connection's and is not stored: the next client
// is not made to speak to the origin as the first.
func TestWebSocketOpenWithMetaIsNotShared(t *testing.T) {
	var mu sync.Mutex
	var metas []string
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		evs, _ := grip.ParseWSEvents(body)
		w.Header().Set("Content-Type", grip.WebSocketEventsType)
		var out []grip.WSEvent
		for _, ev := range evs {
			switch ev.Type {
			case grip.WSEventOpen:
				w.Header().Set("Cache-Control", "max-age=60")
				w.Header().Set("Set-Meta-User", r.Header.Get("X-User"))
				out = append(out, ev)
			case grip.WSEventText:
				mu.Lock()
				metas = append(metas, r.Header.Get("Meta-User"))
				mu.Unlock()
				out = append(out, grip.WSEvent{Type: grip.WSEventText, Content: []byte("ok")})
			}
		}
		w.Write(grip.AppendWSEvents(nil, out...))
	})
	n := startNode(t, h)
	for _, user := range []string{"alice", "bob"} {
		d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
		c, _, err := d.Dial("ws://"+n.Addr().String()+"/ws", http.Header{"X-User": {user}})
		if err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		c.WriteMessage(websocket.TextMessage, []byte("hi"))
		if _, p, err := c.ReadMessage(); err != nil || string(p) != "ok" {
			t.Fatalf("%s: %q %v", user, p, err)
		}
		c.Close()
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(metas, ",") != "alice,bob" {
		t.Fatalf("the origin saw the sessions as %v", metas)
	}
}

// TestForwardingHeadersFromUntrustedClients: headers by which a proxy
// describes the client or overrides the request reach the origin only
// from trusted proxies; Host with userinfo is refused.
func TestForwardingHeadersFromUntrustedClients(t *testing.T) {
	forged := []string{"Forwarded: for=1.2.3.4;host=evil", "X-Forwarded-Host: evil", "X-Original-URL: /admin",
		"X-Rewrite-URL: /admin", "X-HTTP-Method-Override: DELETE", "X-Forwarded-Port: 1", "X-Forwarded-Scheme: https",
		"X-Real-IP: 1.2.3.4"}
	lines := make([]string, len(forged))
	for i, f := range forged {
		lines[i] = f + "\r\n"
	}
	o := &recordingOrigin{handler: func(w http.ResponseWriter, r *http.Request, n int) { io.WriteString(w, "ok") }}
	for _, trusted := range []bool{false, true} {
		n := startNode(t, o, func(c *Config) {
			if trusted {
				c.TrustXFF = "127.0.0.1/32"
			}
		})
		rawGet(t, n, "/x", lines...)
		r, _ := o.last()
		for _, f := range forged {
			name, value, _ := strings.Cut(f, ": ")
			if got := r.Header.Get(name); (got == value) != trusted {
				t.Errorf("trusted=%v: the origin got %s: %q", trusted, name, got)
			}
		}
	}
	n := startNode(t, o)
	c := dialRaw(t, n.Addr())
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: user:pass@test\r\n\r\n")
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 400 {
		t.Fatalf("Host with userinfo: %d", resp.StatusCode)
	}
}

// TestEscapedDotSegmentsAndURLPurges: dot-segments are refused however
// they are spelled; a purge by URL finds the entry of any spelling.
func TestEscapedDotSegmentsAndURLPurges(t *testing.T) {
	o := &recordingOrigin{handler: func(w http.ResponseWriter, r *http.Request, n int) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprintf(w, "v%d", n)
	}}
	n := startNode(t, o, func(c *Config) { c.PurgeInterval = 0 })
	for _, p := range []string{"/a/..%2fadmin", "/a/%2e%2e%2fadmin", "/a/..%5cadmin", `/a/..\admin`, "/a/..;/admin", "/a/%2E%2e/admin", "/a/.;x/b"} {
		if resp, _ := rawGet(t, n, p); resp.StatusCode != 400 {
			t.Errorf("%s: %d, want 400", p, resp.StatusCode)
		}
	}
	for _, p := range []string{"/a/..b/c", "/a/b..", "/a/%2e%2e%2e/b", "/a;x/b"} {
		if resp, _ := rawGet(t, n, p); resp.StatusCode != 200 {
			t.Errorf("%s: %d, want 200", p, resp.StatusCode)
		}
	}
	if _, body := rawGet(t, n, "/x%7ey%2fz"); body != "v5" {
		t.Fatalf("first fetch: %q", body)
	}
	if _, body := rawGet(t, n, "/x~y%2Fz"); body != "v5" {
		t.Fatalf("another spelling of the same URL was not a hit: %q", body)
	}
	resp, err := http.Post(n.ctl+"/purge/", "application/json", strings.NewReader(`{"urls":["http://TEST/x%7Ey%2fz"],"soft":false}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if _, body := rawGet(t, n, "/x~y%2fz"); body != "v6" {
		t.Fatalf("after the purge: %q", body)
	}
}

// TestOneRequestsFailuresDoNotOpenTheBreaker: answers that fail for one
// request alone (a header block over the limit, a connection cut
// mid-answer) do not open the origin's circuit breaker; a large but valid
// header block is accepted; CONNECT and TRACE are refused at the edge.
func TestOneRequestsFailuresDoNotOpenTheBreaker(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/big":
			w.Header().Set("X-Big", strings.Repeat("b", 20<<10))
		case "/huge":
			w.Header().Set("X-Big", strings.Repeat("h", 200<<10))
		case "/cut":
			c, buf, _ := w.(http.Hijacker).Hijack()
			buf.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
			buf.Flush()
			c.Close()
			return
		}
		io.WriteString(w, "ok")
	})
	n := startNode(t, h, func(c *Config) { c.OriginFailures = 2 })
	if resp, body := rawGet(t, n, "/big"); resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("20 KB of headers: %d %q", resp.StatusCode, body)
	}
	for range 5 {
		if resp, _ := rawGet(t, n, "/huge"); resp.StatusCode != 502 {
			t.Fatalf("200 KB of headers: %d", resp.StatusCode)
		}
		if resp, _ := rawGet(t, n, "/cut"); resp.StatusCode != 502 {
			t.Fatalf("cut answer: %d", resp.StatusCode)
		}
	}
	if resp, body := rawGet(t, n, "/ok"); resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("a normal request after the failing ones: %d %q", resp.StatusCode, body)
	}
	for _, m := range []string{"CONNECT", "TRACE"} {
		c := dialRaw(t, n.Addr())
		target := "/"
		if m == "CONNECT" {
			target = "example.com:443"
		}
		io.WriteString(c, m+" "+target+" HTTP/1.1\r\nHost: test\r\n\r\n")
		resp, err := http.ReadResponse(c.r, nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 405 {
			t.Errorf("%s: %d", m, resp.StatusCode)
		}
	}
}

// TestPlainRequestsCannotSpeakForAWebSocket: Meta-* and Connection-Id
// from a plain client never reach the origin, and a body typed as
// WebSocket-over-HTTP events is refused.
func TestPlainRequestsCannotSpeakForAWebSocket(t *testing.T) {
	o := &recordingOrigin{handler: func(w http.ResponseWriter, r *http.Request, n int) { io.WriteString(w, "ok") }}
	n := startNode(t, o)
	rawGet(t, n, "/x", "Meta-User: admin\r\n", "Connection-Id: 1234\r\n")
	if r, _ := o.last(); r.Header.Get("Meta-User") != "" || r.Header.Get("Connection-Id") != "" {
		t.Fatalf("the origin got Meta-User %q, Connection-Id %q", r.Header.Get("Meta-User"), r.Header.Get("Connection-Id"))
	}
	before := o.count()
	resp, err := http.Post(n.url+"/ws", grip.WebSocketEventsType, strings.NewReader("TEXT 5\r\nhello\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 || o.count() != before {
		t.Fatalf("websocket-events from a plain client: %d, origin asked %d times", resp.StatusCode, o.count()-before)
	}
}

// TestWebSocketReadLimitHoldsInflated: a small permessage-deflate frame
// that inflates past -ws-read-limit closes the connection with 1009.
func TestWebSocketReadLimitHoldsInflated(t *testing.T) {
	n := startNode(t, &wsOrigin{}, func(c *Config) { c.WSCompression, c.WSReadLimit = true, 64<<10 })
	c := dialWS(t, n, "/ws", true)
	readText(t, c)
	c.EnableWriteCompression(true)
	// 256 KiB of one byte: a few hundred bytes compressed, sent whole
	// before the node reads it.
	if err := c.WriteMessage(websocket.TextMessage, bytes.Repeat([]byte("a"), 256<<10)); err != nil {
		t.Fatal(err)
	}
	expectClose(t, c, 1009, "")
}

// TestPublishedResponseCannotInjectHeaders: an http-response publish with
// CR/LF in a header is refused with 400, and a held long-poll never sees
// it.
func TestPublishedResponseCannotInjectHeaders(t *testing.T) {
	n := startNode(t, gripOrigin("timeout\n", "Grip-Hold", "response", "Grip-Channel", "lp", "Grip-Timeout", "60"))
	body := `{"items":[{"channel":"lp","formats":{"http-response":{"body":"x","headers":{"X-A":"1\r\nSet-Cookie: evil=1"}}}}]}`
	resp, err := http.Post(n.ctl+"/publish/", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("publish with CR/LF in a header: %d", resp.StatusCode)
	}
}

// TestOtherUpgradesAreServedAsHTTP11: Upgrade: h2c (curl --http2) and
// TLS/1.2 are ignored, not refused as bad WebSocket handshakes.
func TestOtherUpgradesAreServedAsHTTP11(t *testing.T) {
	n := startNode(t, gripOrigin("plain\n"))
	for _, up := range []string{"h2c", "TLS/1.2"} {
		resp, body := rawGet(t, n, "/", "Connection: Upgrade, HTTP2-Settings\r\n", "Upgrade: "+up+"\r\n", "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n")
		if resp.StatusCode != 200 || body != "plain\n" {
			t.Fatalf("Upgrade: %s: %d %q", up, resp.StatusCode, body)
		}
	}
}

// TestControlAPIRefusesRebindableHosts: without a publish key, the
// control API answers only to Hosts that DNS rebinding cannot forge.
func TestControlAPIRefusesRebindableHosts(t *testing.T) {
	n := startNode(t, gripOrigin("x"), func(c *Config) { c.ControlHosts = "pushpin.internal" })
	post := func(host string) int {
		req, _ := http.NewRequest("POST", n.ctl+"/publish/", strings.NewReader(`{"items":[]}`))
		req.Host = host
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	_, port, _ := net.SplitHostPort(n.ControlAddr().String())
	for host, want := range map[string]int{
		"attacker.example:" + port: 421, "127.0.0.1:" + port: 200, "localhost:" + port: 200,
		"[::1]:" + port: 200, "pushpin.internal:" + port: 200,
	} {
		if got := post(host); got != want {
			t.Errorf("Host %s: %d, want %d", host, got, want)
		}
	}
	keyed := startNode(t, gripOrigin("x"), func(c *Config) { c.PublishKey = "secret" })
	req, _ := http.NewRequest("POST", keyed.ctl+"/publish/", strings.NewReader(`{"items":[]}`))
	req.Host = "publisher.example"
	req.Header.Set("Authorization", "Bearer secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("with a publish key, any Host: %d", resp.StatusCode)
	}
}

// TestMalformedRequestsAnsweredAtOnce: bare-LF request lines are answered
// 400 instead of waiting for the read timeout; header names that are not
// tokens are refused before the origin.
func TestMalformedRequestsAnsweredAtOnce(t *testing.T) {
	o := &recordingOrigin{handler: func(w http.ResponseWriter, r *http.Request, n int) { io.WriteString(w, "ok") }}
	n := startNode(t, o, func(c *Config) { c.ReadTimeout = 10 * time.Minute })
	c := dialRaw(t, n.Addr()) // its deadline (20 s) catches a hang
	io.WriteString(c, "GET / HTTP/1.1\nHost: test\n\n")
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		t.Fatalf("bare LF: %v", err)
	}
	if resp.StatusCode != 400 {
		t.Fatalf("bare LF: %d", resp.StatusCode)
	}
	resp, _ = rawGet(t, n, "/", "Bad Name: 1\r\n")
	if resp.StatusCode != 400 || o.count() != 0 {
		t.Fatalf("header name with a space: %d, origin asked %d times", resp.StatusCode, o.count())
	}
	// CRLF requests still work, including a body with blank lines.
	resp, err = http.Post(n.url+"/", "text/plain", strings.NewReader("a\n\nb\r\n\r\nc"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("normal POST: %d", resp.StatusCode)
	}
}

// TestTierNeverSendsThePublishKey: members of a tier without a cluster
// key (allowed on loopback only) authenticate forwarded operations with a
// credential derived from the publish key, never the key itself: a member
// that joins (here a bare cluster member recording what it is sent)
// learns nothing it could publish with.
func TestTierNeverSendsThePublishKey(t *testing.T) {
	nodes := startTier(t, 2, streamOrigin(), func(i int, c *Config) { c.PublishKey = "the-publish-key" })
	got := make(chan string, 16)
	recorder := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		select {
		case got <- r.Header.Get("Authorization") + " " + string(body):
		default:
		}
	}))
	defer recorder.Close()
	rogue, err := cluster.New(cluster.Config{
		Name: "rogue", Bind: "127.0.0.1:0", Local: true, Join: []string{nodes[0].tier.LocalAddr()},
		ControlAddr: strings.TrimPrefix(recorder.URL, "http://"), Handler: cluster.HandlerFunc(func(cluster.Op) {}),
	})
	if err != nil {
		t.Fatal(err)
	}
	rogue.Start()
	defer rogue.Shutdown()
	waitForTier(t, nodes[0], 3)
	req, _ := http.NewRequest("POST", nodes[0].ctl+"/publish/", strings.NewReader(`{"items":[{"channel":"tier","formats":{"http-stream":{"content":"x\n"}}}]}`))
	req.Header.Set("Authorization", "Bearer the-publish-key")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	select {
	case sent := <-got:
		if strings.Contains(sent, "the-publish-key") || !strings.HasPrefix(sent, "Bearer "+cluster.TokenFor([]byte("the-publish-key"))+" ") {
			t.Fatalf("the tier sent a member %q", sent)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the publish never reached the joined member")
	}
}

// TestTierOnANetworkNeedsAKey: a node refuses a non-loopback tier address
// without -cluster-key (any host could join and receive every publish),
// and a keyed tier refuses a member without the key.
func TestTierOnANetworkNeedsAKey(t *testing.T) {
	cfg := lifecycleConfig()
	cfg.ClusterBind = "10.1.2.3:7946"
	if _, err := New(cfg, nil); err == nil || !strings.Contains(err.Error(), "needs -cluster-key") {
		t.Fatalf("non-loopback tier without a key: %v", err)
	}
	cfg.ClusterKey = "0123456789abcdef"
	if _, err := New(cfg, nil); err != nil {
		t.Fatalf("with a key: %v", err)
	}
	nodes := startTier(t, 2, streamOrigin(), func(i int, c *Config) { c.ClusterKey = "0123456789abcdef" })
	joined := make(chan struct{}, 1)
	keyless, err := cluster.New(cluster.Config{
		Name: "keyless", Bind: "127.0.0.1:0", Local: true, Join: []string{nodes[0].tier.LocalAddr()},
		ControlAddr: "127.0.0.1:1", Handler: cluster.HandlerFunc(func(cluster.Op) { joined <- struct{}{} }),
	})
	if err != nil {
		t.Fatal(err)
	}
	keyless.Start()
	defer keyless.Shutdown()
	// Joining is retried every second: after several attempts the tier
	// still has its two members.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if n := nodes[0].tier.NumMembers(); n != 2 || keyless.NumMembers() != 1 {
			t.Fatalf("a keyless member joined: tier %d members, keyless sees %d", n, keyless.NumMembers())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestUnsafeRequestsInvalidate: a successful POST, PUT or DELETE to a URL
// drops its stored responses (RFC 9111 §4.4); a failed one does not.
func TestUnsafeRequestsInvalidate(t *testing.T) {
	o := &recordingOrigin{handler: func(w http.ResponseWriter, r *http.Request, n int) {
		if r.Method != "GET" && r.URL.Query().Get("fail") != "" {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprintf(w, "v%d", n)
	}}
	n := startNode(t, o)
	if _, body := rawGet(t, n, "/doc"); body != "v1" {
		t.Fatalf("first GET: %q", body)
	}
	do := func(method, path string) {
		req, _ := http.NewRequest(method, n.url+path, strings.NewReader("x"))
		req.Host = "test" // as rawGet sends
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	do("POST", "/doc?fail=1") // another URL, and a failure
	if resp, body := rawGet(t, n, "/doc"); body != "v1" || resp.Header.Get("X-Cache") != "HIT" {
		t.Fatalf("after an unrelated failed POST: %q %s", body, resp.Header.Get("X-Cache"))
	}
	for _, m := range []string{"POST", "PUT", "DELETE"} {
		before := o.count()
		do(m, "/doc")
		if _, body := rawGet(t, n, "/doc"); body != fmt.Sprintf("v%d", before+2) {
			t.Fatalf("GET after %s: %q (the stored copy was served)", m, body)
		}
	}
}

// TestSurrogateHeadersStayAtTheEdge: Surrogate-Key and Surrogate-Control
// are for the node (purges, caching) and never reach clients; purging by
// the key still works.
func TestSurrogateHeadersStayAtTheEdge(t *testing.T) {
	o := &recordingOrigin{handler: func(w http.ResponseWriter, r *http.Request, n int) {
		w.Header().Set("Surrogate-Key", "page-1 all-pages")
		w.Header().Set("Surrogate-Control", "max-age=60")
		fmt.Fprintf(w, "v%d", n)
	}}
	n := startNode(t, o, func(c *Config) { c.PurgeInterval = 0 })
	for i := range 2 {
		resp, body := rawGet(t, n, "/page")
		if body != "v1" || resp.Header.Get("Surrogate-Key") != "" || resp.Header.Get("Surrogate-Control") != "" {
			t.Fatalf("get %d: %q, headers %v", i, body, resp.Header)
		}
	}
	resp, err := http.Post(n.ctl+"/purge/", "application/json", strings.NewReader(`{"keys":["all-pages"],"soft":false}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if _, body := rawGet(t, n, "/page"); body != "v2" {
		t.Fatalf("after purging the key: %q", body)
	}
}
