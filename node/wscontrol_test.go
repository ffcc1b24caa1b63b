package node

import (
	"errors"
	"io"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/edgepush/edgepush/grip"
	"github.com/fasthttp/websocket"
)

// scriptedWSOrigin is a WebSocket-over-HTTP origin with the grip
// extension whose answers are scripted: OPEN gets OPEN, the open headers
// and the open messages; a client text message gets its reply (else an
// echo) and its reply headers; a request without events (refresh,
// keep-alive) gets the refresh messages; CLOSE gets CLOSE. It records
// every request.
type scriptedWSOrigin struct {
	openHeader  map[string]string
	open        []string
	replies     map[string][]string
	replyHeader map[string]map[string]string
	refresh     []string

	mu   sync.Mutex
	reqs []wsRequest
}

// wsRequest is one WebSocket-over-HTTP request as the origin saw it.
type wsRequest struct {
	events []grip.WSEvent
	header http.Header
}

func (o *scriptedWSOrigin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	evs, err := grip.ParseWSEvents(body)
	if err != nil || r.Header.Get("Content-Type") != grip.WebSocketEventsType {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	o.mu.Lock()
	o.reqs = append(o.reqs, wsRequest{evs, r.Header.Clone()})
	o.mu.Unlock()
	var out []grip.WSEvent
	send := func(msgs []string) {
		for _, m := range msgs {
			out = append(out, grip.WSEvent{Type: grip.WSEventText, Content: []byte(m)})
		}
	}
	if len(evs) == 0 {
		send(o.refresh)
	}
	for _, ev := range evs {
		switch ev.Type {
		case grip.WSEventOpen:
			out = append(out, ev)
			send(o.open)
			w.Header().Set("Sec-WebSocket-Extensions", "grip")
			for k, v := range o.openHeader {
				w.Header().Set(k, v)
			}
		case grip.WSEventText:
			if reply, ok := o.replies[string(ev.Content)]; ok {
				send(reply)
			} else {
				send([]string{"m:echo: " + string(ev.Content)})
			}
			for k, v := range o.replyHeader[string(ev.Content)] {
				w.Header().Set(k, v)
			}
		case grip.WSEventClose:
			out = append(out, ev)
		}
	}
	w.Header().Set("Content-Type", grip.WebSocketEventsType)
	w.Write(grip.AppendWSEvents(nil, out...))
}

// requestWith returns the request that carried the client's text message
// text, once the origin has it.
func (o *scriptedWSOrigin) requestWith(t *testing.T, text string) wsRequest {
	t.Helper()
	var found wsRequest
	waitFor(t, "the origin to get "+text, func() bool {
		o.mu.Lock()
		defer o.mu.Unlock()
		for _, r := range o.reqs {
			for _, ev := range r.events {
				if ev.Type == grip.WSEventText && string(ev.Content) == text {
					found = r
					return true
				}
			}
		}
		return false
	})
	return found
}

// emptyRequests counts the requests without events.
func (o *scriptedWSOrigin) emptyRequests() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for _, r := range o.reqs {
		if len(r.events) == 0 {
			n++
		}
	}
	return n
}

// dialScripted opens a WebSocket to the node and reads its first message.
func dialScripted(t *testing.T, n *testNode, first string) *websocket.Conn {
	t.Helper()
	return dialScriptedWith(t, n, websocket.Dialer{}, first)
}

// dialScriptedWith is dialScripted with the client's dialer d.
func dialScriptedWith(t *testing.T, n *testNode, d websocket.Dialer, first string) *websocket.Conn {
	t.Helper()
	d.HandshakeTimeout = 5 * time.Second
	c, _, err := d.Dial("ws://"+n.Addr().String()+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetReadDeadline(time.Now().Add(30 * time.Second)) // only catches hangs
	if got := readText(t, c); got != first {
		t.Fatalf("first message %q, want %q", got, first)
	}
	return c
}

func say(t *testing.T, c *websocket.Conn, text string) {
	t.Helper()
	if err := c.WriteMessage(websocket.TextMessage, []byte(text)); err != nil {
		t.Fatal(err)
	}
}

func wsItem(channel, content string) map[string]any {
	return map[string]any{"channel": channel, "formats": map[string]any{"ws-message": map[string]any{"content": content}}}
}

// TestWSControlUnsubscribe: after c:unsubscribe, a publish to the channel
// no longer reaches the client; its other channel still does.
func TestWSControlUnsubscribe(t *testing.T) {
	o := &scriptedWSOrigin{
		open: []string{`c:{"type":"subscribe","channel":"room"}`, `c:{"type":"subscribe","channel":"other"}`, "m:welcome"},
		replies: map[string][]string{
			"leave": {`c:{"type":"unsubscribe","channel":"room"}`, "m:left"},
		},
	}
	n := startNode(t, o)
	c := dialScripted(t, n, "welcome")
	n.waitSubscribers(t, "room", 1)
	n.publish(t, wsItem("room", "before"))
	if got := readText(t, c); got != "before" {
		t.Fatalf("publish before unsubscribing: %q", got)
	}
	say(t, c, "leave")
	if got := readText(t, c); got != "left" { // the control message came first
		t.Fatalf("got %q", got)
	}
	if s := n.hub.Subscribers("room"); s != 0 {
		t.Fatalf("room has %d subscribers after unsubscribe", s)
	}
	n.publish(t, wsItem("room", "after"))
	n.publish(t, wsItem("other", "other channel"))
	if got := readText(t, c); got != "other channel" {
		t.Fatalf("got %q: a publish to the unsubscribed channel reached the client", got)
	}
}

// TestWSControlSetMetaNotEchoed: as in Pushpin, only Set-Meta-* answer
// headers come back as Meta-* headers on later WebSocket-over-HTTP
// requests (an empty one unsets it; names are header names, case does not
// matter); c:set-meta meta is for message filters and never sent back,
// nor does it change what a Set-Meta-* header set.
func TestWSControlSetMetaNotEchoed(t *testing.T) {
	o := &scriptedWSOrigin{
		openHeader: map[string]string{"Set-Meta-User": "alice"},
		open:       []string{`c:{"type":"set-meta","name":"role","value":"admin"}`, "m:welcome"},
		replies: map[string][]string{
			"rename": {`c:{"type":"set-meta","name":"user","value":"bob"}`, "m:renamed"},
			"unset":  {"m:unset"},
		},
		replyHeader: map[string]map[string]string{"unset": {"Set-Meta-user": ""}},
	}
	n := startNode(t, o)
	c := dialScripted(t, n, "welcome")
	check := func(text string, want map[string][]string) {
		t.Helper()
		say(t, c, text)
		if got := readText(t, c); got != "echo: "+text {
			t.Fatalf("got %q", got)
		}
		h := o.requestWith(t, text).header
		for name, values := range want {
			if !slices.Equal(h.Values(name), values) {
				t.Fatalf("request with %q: %s %q, want %q", text, name, h.Values(name), values)
			}
		}
	}
	check("one", map[string][]string{"Meta-User": {"alice"}, "Meta-Role": nil})
	say(t, c, "rename")
	if got := readText(t, c); got != "renamed" {
		t.Fatalf("got %q", got)
	}
	check("two", map[string][]string{"Meta-User": {"alice"}, "Meta-Role": nil})
	say(t, c, "unset")
	if got := readText(t, c); got != "unset" {
		t.Fatalf("got %q", got)
	}
	check("three", map[string][]string{"Meta-User": nil, "Meta-Role": nil})
}

// TestWSControlKeepAliveOff: c:keep-alive without content turns the
// keep-alive off: no keep-alive message follows, however long the
// connection stays idle. A second connection is the clock: its keep-alive,
// every second like the first one's, is turned on after the first one's
// is off; once it has sent two, the first would have sent one too.
func TestWSControlKeepAliveOff(t *testing.T) {
	o := &scriptedWSOrigin{
		open: []string{"m:welcome"},
		replies: map[string][]string{
			"on":  {`c:{"type":"keep-alive","content":"ka","timeout":1,"mode":"interval"}`, "m:on"},
			"off": {`c:{"type":"keep-alive"}`, "m:off"},
		},
	}
	n := startNode(t, o)
	c := dialScripted(t, n, "welcome")
	say(t, c, "on")
	if got := readText(t, c); got != "on" {
		t.Fatalf("got %q", got)
	}
	if got := readText(t, c); got != "ka" { // the keep-alive is on
		t.Fatalf("got %q, want a keep-alive", got)
	}
	say(t, c, "off")
	for got := readText(t, c); got != "off"; got = readText(t, c) {
		if got != "ka" {
			t.Fatalf("got %q", got)
		}
	}

	clock := dialScripted(t, n, "welcome")
	say(t, clock, "on")
	for _, want := range []string{"on", "ka", "ka"} {
		if got := readText(t, clock); got != want {
			t.Fatalf("second connection: got %q, want %q", got, want)
		}
	}
	say(t, c, "probe") // its echo comes after anything queued before it
	if got := readText(t, c); got != "echo: probe" {
		t.Fatalf("got %q after the keep-alive was turned off", got)
	}
}

// TestWSControlTooManyChannels: a subscription past -max-channels closes
// the connection with 1008; subscribing again to a channel it has is not
// one more.
func TestWSControlTooManyChannels(t *testing.T) {
	o := &scriptedWSOrigin{
		open: []string{
			`c:{"type":"subscribe","channel":"a"}`, `c:{"type":"subscribe","channel":"b"}`,
			`c:{"type":"subscribe","channel":"c"}`, "m:welcome",
		},
		replies: map[string][]string{
			"again": {`c:{"type":"subscribe","channel":"a"}`, "m:still here"},
			"more":  {`c:{"type":"subscribe","channel":"d"}`, "m:not closed"},
		},
	}
	n := startNode(t, o, func(c *Config) { c.MaxChannels = 3 })
	c := dialScripted(t, n, "welcome")
	for _, ch := range []string{"a", "b", "c"} {
		n.waitSubscribers(t, ch, 1)
	}
	say(t, c, "again")
	if got := readText(t, c); got != "still here" {
		t.Fatalf("got %q", got)
	}
	say(t, c, "more")
	_, p, err := c.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != closePolicy {
		t.Fatalf("after a fourth channel: message %q, error %v; want close 1008", p, err)
	}
	if s := n.hub.Subscribers("d"); s != 0 {
		t.Fatalf("the channel past the limit has %d subscribers", s)
	}
	for _, ch := range []string{"a", "b", "c"} {
		n.waitSubscribers(t, ch, 0)
	}
}

// TestWSRefreshAction: a ws-message publish with action "refresh" makes
// the node send the origin a WebSocket-over-HTTP request without events,
// and plays the answer's messages to the client.
func TestWSRefreshAction(t *testing.T) {
	o := &scriptedWSOrigin{
		open:    []string{`c:{"type":"subscribe","channel":"room"}`, "m:welcome"},
		refresh: []string{"m:refreshed"},
	}
	n := startNode(t, o)
	c := dialScripted(t, n, "welcome")
	n.waitSubscribers(t, "room", 1)
	if e := o.emptyRequests(); e != 0 {
		t.Fatalf("%d requests without events before the refresh", e)
	}
	n.publish(t, map[string]any{"channel": "room", "formats": map[string]any{"ws-message": map[string]any{"action": "refresh"}}})
	if got := readText(t, c); got != "refreshed" {
		t.Fatalf("got %q, want the origin's answer to the refresh", got)
	}
	if e := o.emptyRequests(); e != 1 {
		t.Fatalf("%d requests without events, want 1", e)
	}
	o.mu.Lock()
	last := o.reqs[len(o.reqs)-1]
	o.mu.Unlock()
	if len(last.events) != 0 || last.header.Get("Connection-Id") == "" || last.header.Get("Grip-Sig") == "" {
		t.Fatalf("refresh request: %d events, headers %v", len(last.events), last.header)
	}
}

// TestWSKeepAliveIntervalFloor: an origin cannot make the node POST more
// often than minKeepAliveInterval: Keep-Alive-Interval 2 is raised to it.
// The client's keep-alive, every second, is the clock: once it has sent
// six, an interval of 2 s would have made the node POST at least once
// (twice, unless the machine is slow); the floor is 20 s.
func TestWSKeepAliveIntervalFloor(t *testing.T) {
	o := &scriptedWSOrigin{
		open: []string{"m:welcome"},
		replies: map[string][]string{
			"poll me": {`c:{"type":"keep-alive","content":"ka","timeout":1,"mode":"interval"}`, "m:polled"},
		},
		replyHeader: map[string]map[string]string{"poll me": {"Keep-Alive-Interval": "2"}},
	}
	n := startNode(t, o)
	c := dialScripted(t, n, "welcome")
	say(t, c, "poll me")
	if got := readText(t, c); got != "polled" {
		t.Fatalf("got %q", got)
	}
	for range 6 {
		if got := readText(t, c); got != "ka" {
			t.Fatalf("got %q, want a keep-alive", got)
		}
	}
	if e := o.emptyRequests(); e != 0 {
		t.Fatalf("the origin got %d keep-alive requests within 6 s: Keep-Alive-Interval 2 was not raised to %v", e, minKeepAliveInterval)
	}
}
