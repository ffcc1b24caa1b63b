package node

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/edgepush/edgepush/cache"
	"github.com/edgepush/edgepush/fanout"
	"github.com/edgepush/edgepush/grip"
	"github.com/fasthttp/websocket"
	"github.com/valyala/fasthttp"
)

// Frame kinds for ws-message publishes.
const (
	frameWS        = iota + 2 // after the stream kinds
	frameWSDeflate            // compressed with permessage-deflate
	frameWSClose              // a close action
)

var (
	errOriginDisconnect = errors.New("origin sent DISCONNECT")
	errOriginClose      = errors.New("origin closed the WebSocket")
)

// serveWebSocket opens a WebSocket through WebSocket-over-HTTP: the origin
// is asked with an OPEN event first, and only when it answers OPEN is the
// client upgraded; until then the client gets the origin's refusal. A
// route with ws=off refuses upgrades with 403.
func (s *Server) serveWebSocket(ctx *fasthttp.RequestCtx, rt *route) {
	if !rt.ws {
		clientError(ctx, fasthttp.StatusForbidden, "WebSocket is not enabled on this route ("+rt.id+")")
		return
	}
	if !ctx.IsGet() || len(ctx.Request.Header.Peek("Sec-WebSocket-Key")) == 0 ||
		string(ctx.Request.Header.Peek("Sec-WebSocket-Version")) != "13" {
		ctx.Response.Header.Set("Sec-WebSocket-Version", "13")
		clientError(ctx, fasthttp.StatusBadRequest, "bad WebSocket handshake")
		return
	}
	if !s.originAllowed(ctx) {
		clientError(ctx, fasthttp.StatusForbidden, "WebSocket origin not allowed")
		return
	}
	ws := newWSSession(s, ctx, rt)
	open := []grip.WSEvent{{Type: grip.WSEventOpen}}
	fetch := func() (*cache.Response, error) {
		since := s.hub.Position()
		r, err := ws.postEvents(open)
		if r != nil {
			r.Value = since // for replays to subscriptions the answer makes
		}
		return r, err
	}
	creq := s.cacheRequest(ctx, rt, "OPEN", func() cache.Fetcher { return fetch })
	e, result, err := s.cacheGet(rt, creq, fetch)
	s.access.noteCache(ctx, result)
	if err != nil {
		s.originFailure(ctx, err)
		return
	}
	events, err := ws.opened(&e.Response)
	if err != nil {
		var refusal *wsRefusal
		if errors.As(err, &refusal) {
			relay(ctx, responseFor(e.Status, e.Reason, toHeaders(e.Header), e.Response.Body, &grip.Instruct{}))
			return
		}
		s.log.Warn("WebSocket open failed", "path", string(ctx.Path()), "err", err)
		clientError(ctx, fasthttp.StatusBadGateway, err.Error())
		return
	}
	for _, h := range upgradeHeaders(e.Header) {
		ctx.Response.Header.Add(h.Name, h.Value)
	}
	ws.deflate = s.wsCompress(ctx)
	ws.acc = s.access.heldWS(ctx, ws)
	err = s.upgrader.Upgrade(ctx, func(c *websocket.Conn) {
		defer recoverLog(s.log, "websocket")
		since, _ := e.Value.(uint64)
		ws.run(c, events, since)
	})
	if err != nil {
		s.log.Debug("WebSocket upgrade failed", "err", err)
	}
}

func (s *Server) originAllowed(ctx *fasthttp.RequestCtx) bool {
	if len(s.wsOrigins) == 0 {
		return true
	}
	origin := string(ctx.Request.Header.Peek("Origin"))
	for _, o := range s.wsOrigins {
		if strings.EqualFold(o, origin) {
			return true
		}
	}
	return false
}

// wsCompress reports whether permessage-deflate will be negotiated: the
// upgrader agrees when it is enabled and the client offers it.
func (s *Server) wsCompress(ctx *fasthttp.RequestCtx) bool {
	return s.cfg.WSCompression && bytes.Contains(ctx.Request.Header.Peek("Sec-WebSocket-Extensions"), []byte("permessage-deflate"))
}

// wsTransport writes to a WebSocket client: published ws-message frames,
// the origin's messages and control frames, all through one fanout.Conn.
type wsTransport struct {
	heldConn
	ws *wsSession
}

var _ fanout.Transport = (*wsTransport)(nil)

func (t *wsTransport) Frame(m *fanout.Message) ([]byte, bool) {
	f := m.Item.(*grip.Item).WSMessage
	switch {
	case f == nil || f.Action == grip.ActionHint:
		return nil, false
	case f.Action == grip.ActionRefresh:
		t.ws.refresh()
		return nil, false
	case f.Action == grip.ActionClose:
		return m.Frame(frameWSClose, func(*fanout.Message) ([]byte, bool) {
			return closeFrame(closeCode(f.Code), f.Reason), true
		})
	}
	if t.ws.deflate && (f.Type == grip.WSText || f.Type == grip.WSBinary) {
		return m.Frame(frameWSDeflate, func(*fanout.Message) ([]byte, bool) {
			return appendWSFrame(nil, wsOpcode(f.Type), deflateMessage(f.Content), true), false
		})
	}
	return m.Frame(frameWS, func(*fanout.Message) ([]byte, bool) {
		if (f.Type == grip.WSPing || f.Type == grip.WSPong) && len(f.Content) > 125 {
			return nil, false // too long for a control frame
		}
		return appendWSFrame(nil, wsOpcode(f.Type), f.Content, false), false
	})
}

func closeCode(c int) int {
	if c == 0 {
		return closeNormal
	}
	return c
}

func wsOpcode(t grip.WSType) byte {
	switch t {
	case grip.WSBinary:
		return opBinary
	case grip.WSPing:
		return opPing
	case grip.WSPong:
		return opPong
	}
	return opText
}

func (t *wsTransport) Closed(reason error) {
	t.markClosed(reason)
	if errors.Is(reason, fanout.ErrShutdown) {
		t.farewell(closeFrame(closeGoingAway, "server shutting down"))
	}
	t.conn.Close()
	t.ws.ended(reason)
}

// wsRefusal is the origin refusing a WebSocket: its response goes to the
// client as is.
type wsRefusal struct{ code int }

func (e *wsRefusal) Error() string {
	return fmt.Sprintf("origin refused the WebSocket with %d", e.code)
}

var errBadOpen = errors.New("origin did not accept the WebSocket (no OPEN event first)")

// sendText queues a message from the origin for the client.
func (ws *wsSession) sendMessage(opcode byte, p []byte) {
	if ws.deflate && (opcode == opText || opcode == opBinary) {
		ws.fc.Send(appendWSFrame(nil, opcode, deflateMessage(p), true), false)
		return
	}
	ws.fc.Send(appendWSFrame(nil, opcode, p, false), false)
}

// readLoop reads client frames until the connection ends and hands them
// to the session. It runs on fasthttp's hijack goroutine.
func (ws *wsSession) readLoop(c *websocket.Conn) {
	s := ws.s
	wait := 2 * s.cfg.WSPingInterval
	c.SetReadLimit(int64(s.cfg.WSReadLimit))
	c.SetPingHandler(func(data string) error {
		ws.fc.Send(appendWSFrame(nil, opPong, []byte(data), false), false)
		ws.fromClient(grip.WSEvent{Type: grip.WSEventPing, Content: []byte(data)})
		return nil
	})
	c.SetPongHandler(func(string) error { return c.SetReadDeadline(time.Now().Add(wait)) })
	c.SetCloseHandler(func(code int, text string) error {
		ws.clientClose(code, text)
		return nil
	})
	for {
		c.SetReadDeadline(time.Now().Add(wait))
		mt, r, err := c.NextReader()
		if err != nil {
			ws.readEnded(err)
			return
		}
		p, err := io.ReadAll(r)
		if err != nil {
			ws.readEnded(err)
			return
		}
		typ := grip.WSEventText
		if mt == websocket.BinaryMessage {
			typ = grip.WSEventBinary
		}
		ws.fromClient(grip.WSEvent{Type: typ, Content: p})
	}
}

// readEnded handles the end of the client's side: after a close frame
// clientClose runs the close handshake, after the node ended the
// connection there is nothing to do, anything else is a lost client
// (DISCONNECT to the origin).
func (ws *wsSession) readEnded(err error) {
	ws.mu.Lock()
	closing := ws.closeEcho != 0
	ws.mu.Unlock()
	switch {
	case closing || ws.fc.Closed():
		return
	case errors.Is(err, websocket.ErrReadLimit):
		ws.fc.Send(closeFrame(1009, "message too big"), true)
		ws.fromClient(grip.WSEvent{Type: grip.WSEventDisconnect})
	default:
		ws.fromClient(grip.WSEvent{Type: grip.WSEventDisconnect})
		ws.fc.Close(errClientGone)
	}
}

// clientClose runs when the client sends a close frame: the origin gets
// CLOSE with the code; the client's close is answered with the origin's
// CLOSE, or the client's own code if the origin sends none.
func (ws *wsSession) clientClose(code int, text string) {
	ws.mu.Lock()
	ws.closeEcho = code
	if code == websocket.CloseNoStatusReceived {
		ws.closeEcho = closeNormal
	}
	ws.mu.Unlock()
	ev := grip.WSEvent{Type: grip.WSEventClose}
	if code != websocket.CloseNoStatusReceived {
		ev.Content = grip.CloseEventContent(code, text)
	}
	ws.enqueue(ev, true)
}

// upgradeHeaders returns the origin's OPEN response headers the client's
// 101 response carries, and applies the WebSocket-over-HTTP ones.
func upgradeHeaders(fs []cache.Field) []grip.Header {
	var out []grip.Header
	for _, h := range toHeaders(fs) {
		name := h.Name
		switch {
		case isHopHeader(name, nil) || grip.IsGripHeader(name),
			strings.EqualFold(name, "Content-Type"), strings.EqualFold(name, "Content-Length"),
			strings.EqualFold(name, "Keep-Alive-Interval"), strings.EqualFold(name, "Sec-WebSocket-Extensions"),
			strings.EqualFold(name, "Sec-WebSocket-Accept"),
			len(name) > 9 && strings.EqualFold(name[:9], "Set-Meta-"):
			continue
		}
		out = append(out, h)
	}
	return out
}

func parseKeepAliveInterval(v []byte) time.Duration {
	n, err := strconv.Atoi(strings.TrimSpace(string(v)))
	if err != nil || n <= 0 {
		return 0
	}
	return time.Duration(n) * time.Second
}

// newWSHeld registers the upgraded connection with the writer pool.
func (ws *wsSession) start(c *websocket.Conn) error {
	s := ws.s
	tc := tcpConn(c.NetConn())
	t := &wsTransport{heldConn: s.newHeldConn(tc, nil, "websocket"), ws: ws}
	t.acc = ws.acc
	if t.connWriter == nil {
		tc.Close()
		return fanout.ErrNotSocket
	}
	ws.t = t
	fc, err := s.pool.Add(t, fanout.ConnOptions{
		Ping:      appendWSFrame(nil, opPing, nil, false),
		PingEvery: s.cfg.WSPingInterval,
	})
	if err != nil {
		tc.Close()
		return err
	}
	s.held.Add(1)
	s.metrics.connOpened(t.kind)
	t.mu.Lock()
	t.fc = fc
	t.mu.Unlock()
	ws.fc = fc
	return nil
}
