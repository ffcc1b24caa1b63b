package node

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgepush/edgepush/cache"
	"github.com/edgepush/edgepush/grip"
	"github.com/fasthttp/websocket"
	"github.com/klauspost/compress/flate"
)

// Client frames read without a goroutine per session: hostile and odd
// input through a hand-driven client (rawWS), and the absence of a
// goroutine per idle session.

// clientWSFrame builds a client frame: masked unless told otherwise,
// rsv the RSV bits (0x40: RSV1).
func clientWSFrame(fin bool, rsv, op byte, payload []byte, masked bool) []byte {
	first := rsv | op
	if fin {
		first |= 0x80
	}
	b := []byte{first}
	mask := byte(0)
	if masked {
		mask = 0x80
	}
	switch n := len(payload); {
	case n <= 125:
		b = append(b, mask|byte(n))
	case n <= 0xffff:
		b = append(b, mask|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, mask|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	if !masked {
		return append(b, payload...)
	}
	key := []byte{0x37, 0xfa, 0x21, 0x3d}
	b = append(b, key...)
	for i, c := range payload {
		b = append(b, c^key[i%4])
	}
	return b
}

// wsHandshake is a client's upgrade request for path.
func wsHandshake(path string, extra ...string) string {
	return "GET " + path + " HTTP/1.1\r\nHost: test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" + strings.Join(extra, "") + "\r\n"
}

// rawWS is a hand-driven WebSocket client.
type rawWS struct {
	net.Conn
	r *bufio.Reader
}

// dialRawWS upgrades a raw connection; after is written in the same write
// as the handshake (bytes the node gets before it has upgraded).
func dialRawWS(tb testing.TB, n *testNode, path string, after []byte, extra ...string) *rawWS {
	tb.Helper()
	c, err := net.Dial("tcp", n.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := c.Write(append([]byte(wsHandshake(path, extra...)), after...)); err != nil {
		tb.Fatal(err)
	}
	ws := &rawWS{Conn: c, r: bufio.NewReader(c)}
	resp, err := http.ReadResponse(ws.r, nil)
	if err != nil {
		tb.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Accept") != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		tb.Fatalf("handshake: %d %v", resp.StatusCode, resp.Header)
	}
	return ws
}

// readFrame reads one server frame.
func (c *rawWS) readFrame() (op byte, payload []byte, err error) {
	var h [2]byte
	if _, err := io.ReadFull(c.r, h[:]); err != nil {
		return 0, nil, err
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var l [2]byte
		_, err = io.ReadFull(c.r, l[:])
		n = uint64(binary.BigEndian.Uint16(l[:]))
	case 127:
		var l [8]byte
		_, err = io.ReadFull(c.r, l[:])
		n = binary.BigEndian.Uint64(l[:])
	}
	if err != nil {
		return 0, nil, err
	}
	payload = make([]byte, n)
	_, err = io.ReadFull(c.r, payload)
	return h[0] & 0x0f, payload, err
}

// readText reads frames until a text frame and returns it.
func (c *rawWS) readText(tb testing.TB) string {
	tb.Helper()
	for {
		op, p, err := c.readFrame()
		if err != nil {
			tb.Fatalf("read: %v", err)
		}
		switch op {
		case opText:
			return string(p)
		case opClose:
			tb.Fatalf("closed: %v", p)
		}
	}
}

// expectClose reads frames until a close frame and checks its code.
func (c *rawWS) expectClose(tb testing.TB, code int) {
	tb.Helper()
	for {
		op, p, err := c.readFrame()
		if err != nil {
			tb.Fatalf("want close %d, got %v", code, err)
		}
		if op != opClose {
			continue
		}
		if len(p) < 2 || int(binary.BigEndian.Uint16(p)) != code {
			tb.Fatalf("close frame %q, want code %d", p, code)
		}
		return
	}
}

// waitEvent waits for the origin to get an event.
func waitEvent(tb testing.TB, o *wsOrigin, typ grip.WSEventType, content string) {
	tb.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !o.hasEvent(typ, content) {
		if time.Now().After(deadline) {
			tb.Fatalf("origin never got %s %q: %v", typ, content, o.events())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestWSBadFramesCloseWithProtocolError: frames RFC 6455 forbids from a
// client close the connection with 1002 and tell the origin DISCONNECT.
func TestWSBadFramesCloseWithProtocolError(t *testing.T) {
	o := &wsOrigin{}
	n := startNode(t, o)
	for name, frame := range map[string][]byte{
		"unmasked":             clientWSFrame(true, 0, opText, []byte("hi"), false),
		"control over 125":     clientWSFrame(true, 0, opPing, bytes.Repeat([]byte("p"), 126), true),
		"fragmented control":   clientWSFrame(false, 0, opPing, []byte("p"), true),
		"opcode 3":             clientWSFrame(true, 0, 3, []byte("x"), true),
		"opcode 11":            clientWSFrame(true, 0, 11, nil, true),
		"RSV1 without deflate": clientWSFrame(true, 0x40, opText, []byte("x"), true),
		"RSV2":                 clientWSFrame(true, 0x20, opText, []byte("x"), true),
		"continuation first":   clientWSFrame(true, 0, opContinuation, []byte("x"), true),
		"bad close code":       clientWSFrame(true, 0, opClose, []byte{0x03, 0xed}, true), // 1005
		"1-byte close":         clientWSFrame(true, 0, opClose, []byte{3}, true),
		"new message mid-message": append(clientWSFrame(false, 0, opText, []byte("a"), true),
			clientWSFrame(true, 0, opText, []byte("b"), true)...),
	} {
		t.Run(name, func(t *testing.T) {
			c := dialRawWS(t, n, "/ws", nil)
			if got := c.readText(t); got != "welcome" {
				t.Fatalf("first message %q", got)
			}
			c.Write(frame)
			c.expectClose(t, closeProtocolError)
		})
	}
	waitEvent(t, o, grip.WSEventDisconnect, "")
}

// TestWSFramesAcrossReads: a message in fragments, written a byte at a
// time with a ping between fragments, is one message to the origin; a
// message written in the handshake's own packet is not lost.
func TestWSFramesAcrossReads(t *testing.T) {
	o := &wsOrigin{}
	n := startNode(t, o)
	early := clientWSFrame(true, 0, opText, []byte("early bird"), true)
	c := dialRawWS(t, n, "/ws", early)
	if got := c.readText(t); got != "welcome" {
		t.Fatalf("first message %q", got)
	}
	if got := c.readText(t); got != "echo: early bird" {
		t.Fatalf("echo of the early frame: %q", got)
	}
	var msg []byte
	msg = append(msg, clientWSFrame(false, 0, opText, []byte("frag"), true)...)
	msg = append(msg, clientWSFrame(true, 0, opPing, []byte("in between"), true)...)
	msg = append(msg, clientWSFrame(false, 0, opContinuation, []byte("mented "), true)...)
	msg = append(msg, clientWSFrame(true, 0, opContinuation, bytes.Repeat([]byte("m"), 300), true)...)
	if tc, ok := c.Conn.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	for i := range msg {
		if _, err := c.Write(msg[i : i+1]); err != nil {
			t.Fatal(err)
		}
		if i%16 == 0 {
			time.Sleep(time.Millisecond) // separate reads on the node's side
		}
	}
	if got, want := c.readText(t), "echo: fragmented "+strings.Repeat("m", 300); got != want {
		t.Fatalf("echo %q, want %q", got, want)
	}
	waitEvent(t, o, grip.WSEventPing, "in between")
}

// TestWSSlowLorisIsIdle: a client that sends part of a frame header and
// then nothing (and answers no ping) is dropped after twice the ping
// interval, and the origin gets DISCONNECT.
func TestWSSlowLorisIsIdle(t *testing.T) {
	o := &wsOrigin{}
	n := startNode(t, o, func(c *Config) { c.WSPingInterval = 50 * time.Millisecond })
	c := dialRawWS(t, n, "/ws", nil)
	c.Write([]byte{0x81}) // a text frame's first byte, and silence
	for {
		if _, _, err := c.readFrame(); err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
				t.Fatalf("want the node to close, got %v", err)
			}
			break
		}
	}
	waitEvent(t, o, grip.WSEventDisconnect, "")
}

// TestWSPongsKeepSessionAlive: a client that answers pings (and sends no
// message) stays connected well past twice the ping interval.
func TestWSPongsKeepSessionAlive(t *testing.T) {
	o := &wsOrigin{}
	// Pings go out at the pool's ticks (250ms), within the idle limit.
	n := startNode(t, o, func(c *Config) { c.WSPingInterval = 200 * time.Millisecond })
	c := dialRawWS(t, n, "/ws", nil)
	pings := 0
	for pings < 8 { // 4 times the idle limit
		op, p, err := c.readFrame()
		if err != nil {
			t.Fatalf("after %d pings: %v", pings, err)
		}
		switch op {
		case opPing:
			pings++
			c.Write(clientWSFrame(true, 0, opPong, p, true))
		case opClose:
			t.Fatalf("closed after %d pings: %q", pings, p)
		}
	}
	c.Write(clientWSFrame(true, 0, opText, []byte("still here"), true))
	if got := c.readText(t); got != "echo: still here" {
		t.Fatalf("echo %q", got)
	}
}

// TestWSDeflateBombIs1009: a compressed message that inflates beyond the
// read limit closes with 1009; one within it arrives inflated.
func TestWSDeflateBombIs1009(t *testing.T) {
	o := &wsOrigin{}
	n := startNode(t, o, func(c *Config) { c.WSCompression, c.WSReadLimit = true, 4096 })
	deflated := func(p []byte) []byte {
		var b bytes.Buffer
		w, _ := flate.NewWriter(&b, flate.BestCompression)
		w.Write(p)
		w.Flush()
		return bytes.TrimSuffix(b.Bytes(), []byte{0, 0, 0xff, 0xff})
	}
	c := dialRawWS(t, n, "/ws", nil, "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n")
	c.readFrame() // the welcome message
	c.Write(clientWSFrame(true, 0x40, opText, deflated([]byte("small")), true))
	op, p, err := c.readFrame()
	if err != nil || op != opText {
		t.Fatalf("echo: op %d, %v", op, err)
	}
	if got, _ := inflateMessage(p, 100); string(got) != "echo: small" {
		t.Fatalf("echo %q", got)
	}
	bomb := deflated(bytes.Repeat([]byte("a"), 1<<20))
	// In two fragments, the first compressed (RSV1 on the first only).
	half := len(bomb) / 2
	c.Write(append(clientWSFrame(false, 0x40, opText, bomb[:half], true), clientWSFrame(true, 0, opContinuation, bomb[half:], true)...))
	c.expectClose(t, closeTooBig)
	waitEvent(t, o, grip.WSEventDisconnect, "")
}

// TestWSIdleSessionsHaveNoGoroutine: an idle plain-TCP WebSocket session
// has no goroutine of its own (the epoll watcher reads its frames).
func TestWSIdleSessionsHaveNoGoroutine(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("sessions read with a goroutine without epoll")
	}
	o := &wsOrigin{}
	n := startNode(t, o)
	warm := dialRawWS(t, n, "/ws", nil)
	warm.readText(t)
	settle := func(limit int) int {
		deadline := time.Now().Add(waitTimeout)
		for {
			g := runtime.NumGoroutine()
			if g <= limit || time.Now().After(deadline) {
				return g
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	base := runtime.NumGoroutine()
	const sessions = 200
	conns := make([]*rawWS, sessions)
	for i := range conns {
		conns[i] = dialRawWS(t, n, "/ws", nil)
		conns[i].readText(t)
	}
	if g := settle(base + 10); g > base+10 {
		t.Fatalf("%d goroutines for %d idle sessions (%d before)", g, sessions, base)
	}
	// They still read: every one gets its echo.
	for i, c := range conns {
		c.Write(clientWSFrame(true, 0, opText, []byte("ping "+string(rune('a'+i%26))), true))
	}
	for i, c := range conns {
		if got := c.readText(t); got != "echo: ping "+string(rune('a'+i%26)) {
			t.Fatalf("session %d: %q", i, got)
		}
	}
}

// wsParsed is what a wsParser made of some bytes: its messages and
// control frames in order, and how it ended.
type wsParsed struct {
	out  []string
	done bool
	err  string
}

// parseWSChunks feeds data to a parser in chunks of size step (0: at once).
func parseWSChunks(data []byte, step int, deflate bool, limit int) wsParsed {
	p := wsParser{limit: limit, deflate: deflate}
	var res wsParsed
	emit := func(op byte, b []byte, owned bool) bool {
		res.out = append(res.out, string(rune('0'+op))+":"+string(b))
		return op != opClose
	}
	data = bytes.Clone(data) // feed unmasks in place
	if step <= 0 {
		step = len(data) + 1
	}
	for len(data) > 0 && !res.done {
		chunk := data[:min(step, len(data))]
		data = data[len(chunk):]
		done, err := p.feed(chunk, emit)
		res.done = done
		if err != nil {
			res.err = err.Error()
		}
	}
	return res
}

// FuzzWSFrames: any bytes from a client, cut anywhere, parse the same as
// in one piece, within the limits, and never panic or hold bytes after
// the end.
func FuzzWSFrames(f *testing.F) {
	frames := [][]byte{
		clientWSFrame(true, 0, opText, []byte("hello"), true),
		append(clientWSFrame(false, 0, opBinary, []byte("ab"), true), clientWSFrame(true, 0, opContinuation, []byte("cd"), true)...),
		clientWSFrame(true, 0, opPing, []byte("p"), true),
		clientWSFrame(true, 0, opClose, []byte{3, 232, 'o', 'k'}, true),
		clientWSFrame(true, 0x40, opText, []byte{0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}, true),
		clientWSFrame(true, 0, opText, bytes.Repeat([]byte("x"), 300), true),
		clientWSFrame(true, 0, opText, []byte("unmasked"), false),
	}
	for i, fr := range frames {
		f.Add(fr, uint8(i+1), i%2 == 0)
	}
	f.Fuzz(func(t *testing.T, data []byte, step uint8, deflate bool) {
		const limit = 1000
		whole := parseWSChunks(data, 0, deflate, limit)
		cut := parseWSChunks(data, int(step), deflate, limit)
		if strings.Join(whole.out, "\n") != strings.Join(cut.out, "\n") || whole.err != cut.err || whole.done != cut.done {
			t.Fatalf("whole %+v\ncut in %d %+v", whole, step, cut)
		}
		for _, m := range whole.out {
			if len(m) > limit+2 {
				t.Fatalf("message of %d bytes over the limit", len(m)-2)
			}
		}
	})
}

// TestWSParserKeepsNothingBetweenFrames: between frames a parser holds
// no buffer; mid-frame it holds only that frame's bytes.
func TestWSParserKeepsNothingBetweenFrames(t *testing.T) {
	p := wsParser{limit: 1 << 20}
	frame := clientWSFrame(true, 0, opBinary, bytes.Repeat([]byte("z"), 100000), true)
	var got int
	emit := func(op byte, b []byte, owned bool) bool { got += len(b); return true }
	for i := 0; i < len(frame); i += 16384 {
		if _, err := p.feed(bytes.Clone(frame[i:min(i+16384, len(frame))]), emit); err != nil {
			t.Fatal(err)
		}
		if i+16384 < len(frame) && len(p.partial) != i+16384 {
			t.Fatalf("mid-frame: %d bytes kept, want %d", len(p.partial), i+16384)
		}
	}
	if got != 100000 || p.partial != nil || p.msg != nil {
		t.Fatalf("got %d bytes; kept partial %d, msg %d", got, cap(p.partial), cap(p.msg))
	}
}

// TestOpenAnswerParsedOnce: a session's own answer to OPEN is parsed
// once, for the cache and for playing it (events and control messages);
// another answer (from the cache) is parsed anew.
func TestOpenAnswerParsedOnce(t *testing.T) {
	body := grip.AppendWSEvents(nil,
		grip.WSEvent{Type: grip.WSEventOpen},
		grip.WSEvent{Type: grip.WSEventText, Content: []byte(`c:{"type":"subscribe","channel":"room"}`)},
		grip.WSEvent{Type: grip.WSEventText, Content: []byte("m:hi")})
	answer := func(b []byte) *cache.Response {
		return &cache.Response{Status: 200, Header: []grip.Header{{Name: "Content-Type", Value: grip.WebSocketEventsType}}, Body: b}
	}
	r := answer(body)
	a := openControl(r)
	if len(a.channels) != 1 || a.channels[0] != "room" || a.setsMeta {
		t.Fatalf("openControl: %+v", a)
	}
	ws := &wsSession{}
	ws.fetched.Store(a)
	evs, err := ws.opened(r)
	if err != nil || len(evs) != 2 || &evs[0] != &a.events[1] {
		t.Fatalf("own answer parsed again: %v, %d events", err, len(evs))
	}
	if cm := ws.fetched.Load().control(evs[0].Content[2:]); cm == nil || cm.Channel != "room" {
		t.Fatalf("control message of the own answer: %+v", cm)
	}
	other := answer(bytes.Clone(body))
	evs, err = ws.opened(other)
	if err != nil || len(evs) != 2 || &evs[0] == &a.events[1] || ws.fetched.Load() != nil {
		t.Fatalf("another answer: %v, %d events, reused %v", err, len(evs), ws.fetched.Load() != nil)
	}
}

// TestTLSWebSocketClientFrames: under TLS the session reads with a
// goroutine of its own (the watcher cannot read TLS): client messages
// reach the origin, and a client that hangs up is a DISCONNECT.
func TestTLSWebSocketClientFrames(t *testing.T) {
	o := &wsOrigin{}
	n, _, _ := startTLSNode(t, o, nil, "a.test")
	d := websocket.Dialer{HandshakeTimeout: waitTimeout, TLSClientConfig: &tls.Config{ServerName: "a.test", InsecureSkipVerify: true}}
	c, _, err := d.Dial("wss://"+n.TLSAddr().String()+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(waitTimeout))
	if got := readText(t, c); got != "welcome" {
		t.Fatalf("got %q", got)
	}
	c.WriteMessage(websocket.TextMessage, []byte("over tls"))
	if got := readText(t, c); got != "echo: over tls" {
		t.Fatalf("got %q", got)
	}
	c.Close()
	waitEvent(t, o, grip.WSEventDisconnect, "")
}

// TestWSFloodDoesNotStarveOtherSessions: one client sending unsolicited
// pongs without pause (no answer, nothing to the origin: free for it)
// does not hold the watcher that reads every session: another session's
// message still reaches the origin while the flood goes on.
func TestWSFloodDoesNotStarveOtherSessions(t *testing.T) {
	o := &wsOrigin{}
	n := startNode(t, o)
	b := dialRawWS(t, n, "/ws", nil)
	if got := b.readText(t); got != "welcome" {
		t.Fatalf("b: %q", got)
	}
	a := dialRawWS(t, n, "/ws", nil)
	a.readText(t)
	pong := clientWSFrame(true, 0, opPong, nil, true)
	chunk := bytes.Repeat(pong, 256<<10/len(pong))
	var flooding sync.WaitGroup
	stop := make(chan struct{})
	defer func() {
		close(stop)
		a.Conn.Close()
		flooding.Wait()
	}()
	var sent atomic.Int64
	for range 2 {
		flooding.Add(1)
		go func() {
			defer flooding.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				a.Conn.SetWriteDeadline(time.Now().Add(waitTimeout))
				if _, err := a.Conn.Write(chunk); err != nil {
					return
				}
				sent.Add(1)
			}
		}()
	}
	for deadline := time.Now().Add(waitTimeout); sent.Load() < 8; {
		if time.Now().After(deadline) {
			t.Fatal("the flood did not get going")
		}
		time.Sleep(time.Millisecond)
	}
	b.Write(clientWSFrame(true, 0, opText, []byte("hello"), true))
	for deadline := time.Now().Add(waitTimeout); !o.hasEvent(grip.WSEventText, "hello"); {
		if time.Now().After(deadline) {
			t.Fatalf("another session's message never reached the origin while one client floods (%d × 256 KiB sent)", sent.Load())
		}
		time.Sleep(time.Millisecond)
	}
}
