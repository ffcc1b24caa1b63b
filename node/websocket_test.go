package node

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgepush/edgepush/grip"
	"github.com/fasthttp/websocket"
)

// wsOrigin is a WebSocket-over-HTTP origin: it subscribes every
// connection to "room" and answers client messages by their text.
type wsOrigin struct {
	channel  string // subscribed on OPEN; default "room"
	mu       sync.Mutex
	received []grip.WSEvent
	connIDs  map[string]bool
	sigs     int
	metas    []string
	empty    int    // POSTs without events (keep-alive)
	lastMode string // Meta-Mode of the last empty POST
	// stall, when set, holds the answer to a "stall" message until it is
	// closed (or the node gives up on the request).
	stall chan struct{}
}

func (o *wsOrigin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/refuse" {
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, "nope\n")
		return
	}
	body, _ := io.ReadAll(r.Body)
	evs, err := grip.ParseWSEvents(body)
	if err != nil || r.Header.Get("Content-Type") != grip.WebSocketEventsType || r.Header.Get("Connection-Id") == "" {
		http.Error(w, "bad request", 400)
		return
	}
	o.mu.Lock()
	o.received = append(o.received, evs...)
	if o.connIDs == nil {
		o.connIDs = map[string]bool{}
	}
	o.connIDs[r.Header.Get("Connection-Id")] = true
	if r.Header.Get("Grip-Sig") != "" {
		o.sigs++
	}
	o.metas = append(o.metas, r.Header.Get("Meta-User"))
	if len(evs) == 0 {
		o.empty++
		o.lastMode = r.Header.Get("Meta-Mode")
	}
	o.mu.Unlock()
	var out []grip.WSEvent
	text := func(s string) { out = append(out, grip.WSEvent{Type: grip.WSEventText, Content: []byte(s)}) }
	for _, ev := range evs {
		switch ev.Type {
		case grip.WSEventOpen:
			if r.URL.Path == "/noopen" {
				text("m:hi")
				continue
			}
			out = append(out, ev)
			ch := o.channel
			if ch == "" {
				ch = "room"
			}
			text(`c:{"type":"subscribe","channel":"` + ch + `"}`)
			if r.URL.Path != "/cachedws" { // a cacheable OPEN answer sets no per-user meta
				w.Header().Set("Set-Meta-User", "alice")
			}
			text("m:welcome")
			text("unprefixed messages are dropped")
			w.Header().Set("Sec-WebSocket-Extensions", "grip")
			w.Header().Set("X-Origin", "yes")
			if r.URL.Path == "/cachedws" {
				w.Header().Set("Cache-Control", "max-age=1")
			}
		case grip.WSEventText:
			switch s := string(ev.Content); s {
			case "detach":
				// The marker reaches the client after the node has obeyed
				// the detach: control messages are applied in order.
				text(`c:{"type":"detach"}`)
				text("m:detached")
			case "close-me":
				out = append(out, grip.WSEvent{Type: grip.WSEventClose, Content: grip.CloseEventContent(4001, "bye")})
			case "disconnect":
				out = append(out, grip.WSEvent{Type: grip.WSEventDisconnect})
			case "keepalive":
				text(`c:{"type":"keep-alive","content":"ka","timeout":1}`)
			case "stall":
				if o.stall != nil {
					select {
					case <-o.stall:
					case <-r.Context().Done():
					}
				}
			case "post-interval":
				w.Header().Set("Keep-Alive-Interval", "1")
				w.Header().Set("Set-Meta-Mode", "polled")
			default:
				text("m:echo: " + s)
			}
		case grip.WSEventBinary:
			out = append(out, grip.WSEvent{Type: grip.WSEventBinary, Content: append([]byte("m:"), ev.Content...)})
		case grip.WSEventClose:
			out = append(out, ev)
		}
	}
	w.Header().Set("Content-Type", grip.WebSocketEventsType)
	w.Write(grip.AppendWSEvents(nil, out...))
}

func (o *wsOrigin) events() []grip.WSEvent {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]grip.WSEvent(nil), o.received...)
}

func (o *wsOrigin) hasEvent(typ grip.WSEventType, content string) bool {
	for _, ev := range o.events() {
		if ev.Type == typ && string(ev.Content) == content {
			return true
		}
	}
	return false
}

func dialWS(tb testing.TB, n *testNode, path string, compress bool) *websocket.Conn {
	tb.Helper()
	d := websocket.Dialer{HandshakeTimeout: waitTimeout, EnableCompression: compress}
	c, resp, err := d.Dial("ws://"+n.Addr().String()+path, nil)
	if err != nil {
		tb.Fatalf("dial %s: %v", path, err)
	}
	if resp.Header.Get("X-Origin") != "yes" {
		tb.Fatalf("101 lacks the origin's headers: %v", resp.Header)
	}
	tb.Cleanup(func() { c.Close() })
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	return c
}

func readText(tb testing.TB, c *websocket.Conn) string {
	tb.Helper()
	mt, p, err := c.ReadMessage()
	if err != nil {
		tb.Fatalf("read: %v", err)
	}
	if mt != websocket.TextMessage {
		tb.Fatalf("message type %d, want text", mt)
	}
	return string(p)
}

func expectClose(tb testing.TB, c *websocket.Conn, code int, text string) {
	tb.Helper()
	for {
		_, _, err := c.ReadMessage()
		if err == nil {
			continue
		}
		ce, ok := err.(*websocket.CloseError)
		if !ok || ce.Code != code || (text != "" && ce.Text != text) {
			tb.Fatalf("got %v, want close %d %q", err, code, text)
		}
		return
	}
}

func wsPublish(ws map[string]any) map[string]any {
	return map[string]any{"channel": "room", "formats": map[string]any{"ws-message": ws}}
}

func TestWebSocketEchoSubscribePublish(t *testing.T) {
	o := &wsOrigin{}
	n := startNode(t, o)
	c := dialWS(t, n, "/ws", false)
	if got := readText(t, c); got != "welcome" {
		t.Fatalf("first message %q", got)
	}
	c.WriteMessage(websocket.TextMessage, []byte("hello"))
	if got := readText(t, c); got != "echo: hello" {
		t.Fatalf("echo %q", got)
	}
	n.waitSubscribers(t, "room", 1)
	n.publish(t, wsPublish(map[string]any{"content": "pushed"}))
	if got := readText(t, c); got != "pushed" {
		t.Fatalf("publish %q", got)
	}
	n.publish(t, wsPublish(map[string]any{"content-bin": base64.StdEncoding.EncodeToString([]byte{0, 1, 2})}))
	if mt, p, err := c.ReadMessage(); err != nil || mt != websocket.BinaryMessage || string(p) != "\x00\x01\x02" {
		t.Fatalf("binary publish: %d %q %v", mt, p, err)
	}
	c.WriteMessage(websocket.BinaryMessage, []byte{9, 8})
	if mt, p, err := c.ReadMessage(); err != nil || mt != websocket.BinaryMessage || string(p) != "\x09\x08" {
		t.Fatalf("binary echo: %d %q %v", mt, p, err)
	}
	o.mu.Lock()
	ids, sigs, metas := len(o.connIDs), o.sigs, o.metas
	o.mu.Unlock()
	if ids != 1 || sigs != 3 || metas[len(metas)-1] != "alice" {
		t.Fatalf("origin saw %d connection ids, %d signed requests, metas %q", ids, sigs, metas)
	}
	n.publish(t, wsPublish(map[string]any{"action": "close", "code": 4002, "reason": "done"}))
	expectClose(t, c, 4002, "done")
	n.waitSubscribers(t, "room", 0)
}

func TestWebSocketCloseCodesBothWays(t *testing.T) {
	o := &wsOrigin{}
	n := startNode(t, o)

	c := dialWS(t, n, "/ws", false)
	readText(t, c)
	c.WriteMessage(websocket.TextMessage, []byte("close-me"))
	expectClose(t, c, 4001, "bye")

	c2 := dialWS(t, n, "/ws", false)
	readText(t, c2)
	c2.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(4000, "client done"))
	expectClose(t, c2, 4000, "client done")
	waitFor(t, "origin to get CLOSE 4000", func() bool {
		return o.hasEvent(grip.WSEventClose, string(grip.CloseEventContent(4000, "client done")))
	})

	c3 := dialWS(t, n, "/ws", false)
	readText(t, c3)
	c3.Close() // TCP drop, no close frame
	waitFor(t, "origin to get DISCONNECT", func() bool { return o.hasEvent(grip.WSEventDisconnect, "") })
	waitFor(t, "held connections to reach 0", func() bool { return n.held.Load() == 0 })
}

func TestWebSocketDetachAndKeepAlive(t *testing.T) {
	o := &wsOrigin{}
	n := startNode(t, o)
	c := dialWS(t, n, "/ws", false)
	readText(t, c)
	// Keep-alives: the connection is idle, so nothing but the keep-alive
	// the origin asked for can arrive.
	c.WriteMessage(websocket.TextMessage, []byte("keepalive"))
	for range 2 {
		if got := readText(t, c); got != "ka" {
			t.Fatalf("got %q, want keep-alive", got)
		}
	}
	// readUntil reads past keep-alives to want.
	readUntil := func(want string) {
		t.Helper()
		for {
			if got := readText(t, c); got == want {
				return
			} else if got != "ka" {
				t.Fatalf("got %q, want %q", got, want)
			}
		}
	}
	// Detach, as in Pushpin: the origin gets a CLOSE without a code at
	// once, and nothing after it (its answer, a CLOSE, is not played);
	// the client keeps its subscriptions.
	c.WriteMessage(websocket.TextMessage, []byte("detach"))
	readUntil("detached") // sent after c:detach: the node has obeyed it
	waitFor(t, "the detach's CLOSE to reach the origin", func() bool { return o.hasEvent(grip.WSEventClose, "") })
	c.WriteMessage(websocket.TextMessage, []byte("after detach"))
	n.waitSubscribers(t, "room", 1)
	n.publish(t, wsPublish(map[string]any{"content": "still subscribed"}))
	readUntil("still subscribed")
	// The client's close is answered by the node; the origin, done with,
	// is not told.
	c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(4000, "done"))
	expectClose(t, c, 4000, "")
	n.waitSubscribers(t, "room", 0)
	waitFor(t, "held connections to reach 0", func() bool { return n.held.Load() == 0 })
	closes := 0
	for _, ev := range o.events() {
		switch {
		case ev.Type == grip.WSEventClose:
			closes++
		case ev.Type == grip.WSEventText && string(ev.Content) == "after detach":
			t.Fatal("a message sent after detach reached the origin")
		}
	}
	if closes != 1 {
		t.Fatalf("the origin got %d CLOSE events, want the detach's only", closes)
	}
}

// TestWebSocketPublishCloseTellsOrigin: a ws-message close publish closes
// the client with its code and, as in Pushpin, tells the origin the
// connection ended with a CLOSE (without a code), once.
func TestWebSocketPublishCloseTellsOrigin(t *testing.T) {
	o := &wsOrigin{}
	n := startNode(t, o)
	c := dialWS(t, n, "/ws", false)
	readText(t, c)
	n.waitSubscribers(t, "room", 1)
	n.publish(t, wsPublish(map[string]any{"action": "close", "code": 4001, "reason": "kicked"}))
	expectClose(t, c, 4001, "kicked")
	waitFor(t, "the origin to get CLOSE", func() bool { return o.hasEvent(grip.WSEventClose, "") })
	waitFor(t, "held connections to reach 0", func() bool { return n.held.Load() == 0 })
	closes := 0
	for _, ev := range o.events() {
		if ev.Type == grip.WSEventClose {
			closes++
		}
	}
	if closes != 1 {
		t.Fatalf("the origin got %d CLOSE events, want 1", closes)
	}
}

func TestWebSocketRefusals(t *testing.T) {
	n := startNode(t, &wsOrigin{})
	d := websocket.Dialer{HandshakeTimeout: waitTimeout}
	_, resp, err := d.Dial("ws://"+n.Addr().String()+"/refuse", nil)
	if err == nil || resp == nil || resp.StatusCode != 403 {
		t.Fatalf("refused: err %v resp %v", err, resp)
	}
	body, _ := io.ReadAll(resp.Body)
	if string(body) != "nope\n" {
		t.Fatalf("refusal body %q", body)
	}
	_, resp, err = d.Dial("ws://"+n.Addr().String()+"/noopen", nil)
	if err == nil || resp == nil || resp.StatusCode != 502 {
		t.Fatalf("no OPEN: err %v resp %v", err, resp)
	}
}

func TestWebSocketOriginDownMidConnection(t *testing.T) {
	n := startNode(t, &wsOrigin{}, func(c *Config) { c.WSOriginRetries = 1 })
	c := dialWS(t, n, "/ws", false)
	readText(t, c)
	n.stopOrigin(t)
	c.WriteMessage(websocket.TextMessage, []byte("anyone there?"))
	expectClose(t, c, closeInternalError, "origin unavailable")
}

func TestWebSocketShutdownSends1001(t *testing.T) {
	n := startNode(t, &wsOrigin{})
	c := dialWS(t, n, "/ws", false)
	readText(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := n.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	expectClose(t, c, closeGoingAway, "")
}

func TestWebSocketCompressionAndFanOut(t *testing.T) {
	n := startNode(t, &wsOrigin{}, func(c *Config) { c.WSCompression = true })
	const subs = 50
	conns := make([]*websocket.Conn, subs)
	for i := range conns {
		conns[i] = dialWS(t, n, "/ws", i%2 == 0) // half negotiate permessage-deflate
		readText(t, conns[i])
	}
	n.waitSubscribers(t, "room", subs)
	big := strings.Repeat("compressible ", 200)
	for i := range 5 {
		n.publish(t, wsPublish(map[string]any{"content": fmt.Sprintf("%d %s", i, big)}))
	}
	for i, c := range conns {
		for j := range 5 {
			if got, want := readText(t, c), fmt.Sprintf("%d %s", j, big); got != want {
				t.Fatalf("conn %d message %d: %d bytes, want %d", i, j, len(got), len(want))
			}
		}
	}
}

// TestWebSocketKeepAliveIntervalPostsToOrigin: Keep-Alive-Interval makes
// the node POST without events after that long without a request, with
// the meta set so far (the floor is lowered for the test:
// TestWSKeepAliveIntervalFloor).
func TestWebSocketKeepAliveIntervalPostsToOrigin(t *testing.T) {
	o := &wsOrigin{}
	n := startNodeTuned(t, o, nil, func(s *Server) { s.wsKeepAliveFloor = 0 })
	c := dialWS(t, n, "/ws", false)
	readText(t, c)
	c.WriteMessage(websocket.TextMessage, []byte("post-interval"))
	waitFor(t, "two empty keep-alive POSTs", func() bool {
		o.mu.Lock()
		defer o.mu.Unlock()
		return o.empty >= 2 && o.lastMode == "polled"
	})
}

func TestWebSocketLimits(t *testing.T) {
	o := &wsOrigin{stall: make(chan struct{})}
	n := startNode(t, o, func(c *Config) { c.WSReadLimit = 1000; c.WSMaxPending = 2000 })
	t.Cleanup(func() { close(o.stall) }) // before the node shuts down
	c := dialWS(t, n, "/ws", false)
	readText(t, c)
	c.WriteMessage(websocket.TextMessage, []byte(strings.Repeat("x", 1001)))
	expectClose(t, c, 1009, "message too big")

	c2 := dialWS(t, n, "/ws", false)
	readText(t, c2)
	c2.WriteMessage(websocket.TextMessage, []byte("stall")) // the origin answers only at the end of the test
	for range 5 {
		c2.WriteMessage(websocket.TextMessage, []byte(strings.Repeat("y", 900)))
	}
	expectClose(t, c2, closeTryAgainLater, "")

	// Empty pings count too: a client cannot queue them without bound
	// while the origin is busy.
	c3 := dialWS(t, n, "/ws", false)
	readText(t, c3)
	c3.WriteMessage(websocket.TextMessage, []byte("stall"))
	for range 2000 / wsEventCost * 2 {
		if c3.WriteControl(websocket.PingMessage, nil, time.Now().Add(waitTimeout)) != nil {
			break
		}
	}
	expectClose(t, c3, closeTryAgainLater, "")
}

// TestWebSocketVersionMismatch: a handshake for another WebSocket version
// gets 426 and the version the node speaks (RFC 6455 §4.4).
func TestWebSocketVersionMismatch(t *testing.T) {
	n := startNode(t, &wsOrigin{})
	c := dialRaw(t, n.Addr())
	resp := c.get(t, "/ws", "Connection: Upgrade\r\n", "Upgrade: websocket\r\n",
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", "Sec-WebSocket-Version: 8\r\n")
	if resp.StatusCode != http.StatusUpgradeRequired || resp.Header.Get("Sec-WebSocket-Version") != "13" {
		t.Fatalf("got %d, Sec-WebSocket-Version %q; want 426 and 13", resp.StatusCode, resp.Header.Get("Sec-WebSocket-Version"))
	}
}
