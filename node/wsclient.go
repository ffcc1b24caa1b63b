package node

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"

	"github.com/edgepush/edgepush/cache"
	"github.com/edgepush/edgepush/fanout"
	"github.com/edgepush/edgepush/grip"
	"github.com/valyala/fasthttp"
)

// The client side of a WebSocket: the handshake, the upgrade, frames to
// the client (one fanout.Conn carries published ws-message frames, the
// origin's messages and control frames) and frames from the client,
// handed to the session with the origin (wsorigin.go).

// Frame kinds for ws-message publishes.
const (
	frameWS        = iota + 2 // after the stream kinds
	frameWSDeflate            // compressed with permessage-deflate
	frameWSClose              // a close action
)

var errOriginDisconnect = errors.New("origin sent DISCONNECT")

// serveWebSocket opens a WebSocket through WebSocket-over-HTTP: the origin
// is asked with an OPEN event first (through the cache: an OPEN answer may
// be cached like a GET), and only when it answers OPEN is the client
// upgraded; until then the client gets the origin's refusal. A route with
// ws=off refuses upgrades with 403.
func (s *Server) serveWebSocket(ctx *fasthttp.RequestCtx, rt *route) {
	if !rt.ws {
		clientError(ctx, fasthttp.StatusForbidden, "WebSocket is not enabled on this route ("+rt.id+")")
		return
	}
	if !ctx.IsGet() || len(ctx.Request.Header.Peek("Sec-WebSocket-Key")) == 0 {
		clientError(ctx, fasthttp.StatusBadRequest, "bad WebSocket handshake")
		return
	}
	if string(ctx.Request.Header.Peek("Sec-WebSocket-Version")) != "13" {
		// RFC 6455 §4.4: 426 and the version the server speaks.
		clientError(ctx, fasthttp.StatusUpgradeRequired, "WebSocket version 13 only")
		ctx.Response.Header.Set("Sec-WebSocket-Version", "13")
		return
	}
	if !s.originAllowed(ctx) {
		clientError(ctx, fasthttp.StatusForbidden, "WebSocket origin not allowed")
		return
	}
	ws := s.newWSSession(ctx, rt)
	fetch := ws.openFetcher()
	creq := s.cacheRequest(ctx, rt, "ws", ws.lookupHeader, func() (func(string) string, cache.Fetcher, cache.Revalidator) { return ws.lookupHeader, fetch, nil })
	creq.Outdated = s.outdated
	e, result, err := s.cacheGet(rt, creq, fetch)
	s.access.noteCache(ctx, result)
	if err != nil {
		s.originFailure(ctx, err)
		return
	}
	if fromCache(result) && s.outdated(e) { // served only because the origin is down
		s.metrics.cacheGaps.Inc()
	}
	events, err := ws.opened(&e.Response)
	if err != nil {
		var refusal *wsRefusal
		if errors.As(err, &refusal) {
			relay(ctx, responseFor(e.Status, e.Reason, e.Header, e.Response.Body, &grip.Instruct{}))
			return
		}
		s.log.Warn("WebSocket open failed", "path", string(ctx.Path()), "err", err)
		clientError(ctx, fasthttp.StatusBadGateway, err.Error())
		return
	}
	for _, h := range upgradeHeaders(e.Header) {
		ctx.Response.Header.Add(h.Name, h.Value)
	}
	client := &wsClient{s: s, session: ws, deflate: s.wsCompress(ctx)}
	client.acc = s.access.heldWS(ctx, ws)
	ws.client = client
	since := parsedOf(e).since
	acceptWebSocket(ctx, client.deflate, func(c net.Conn) {
		defer recoverLog(s.log, "websocket")
		client.r = client.newReader(tcpConn(c))
		if err := client.start(c); err != nil {
			client.r.stop()
			s.log.Warn("WebSocket start", "err", err)
			return
		}
		ws.playOriginEvents(events, since)
		ws.fetched.Store(nil) // played: the parsed answer is not kept
		ws.armKeepAlive()
		client.r.run(c)
	})
}

// originAllowed applies -ws-allowed-origins to a WebSocket handshake (see
// Config.WSAllowedOrigins): with a list, the Origin must be on it, or
// absent (not a browser).
func (s *Server) originAllowed(ctx *fasthttp.RequestCtx) bool {
	origin := string(ctx.Request.Header.Peek("Origin"))
	if len(s.wsOrigins) == 0 || origin == "" {
		return true
	}
	for _, o := range s.wsOrigins {
		if strings.EqualFold(o, origin) {
			return true
		}
	}
	return false
}

// wsCompress reports whether permessage-deflate will be negotiated: when
// it is enabled and the client offers it (with whatever parameters: the
// node answers with no context takeover either way).
func (s *Server) wsCompress(ctx *fasthttp.RequestCtx) bool {
	if !s.cfg.WSCompression {
		return false
	}
	for _, ext := range bytes.Split(ctx.Request.Header.Peek("Sec-WebSocket-Extensions"), []byte(",")) {
		name, _, _ := bytes.Cut(ext, []byte(";"))
		if bytes.EqualFold(bytes.TrimSpace(name), []byte("permessage-deflate")) {
			return true
		}
	}
	return false
}

// wsClient is the client's end of one WebSocket. Lock order: the
// session's mu, then wsClient.mu (never the reverse).
type wsClient struct {
	s       *Server
	session *wsSession
	deflate bool        // permessage-deflate negotiated
	acc     *heldAccess // access-log record; nil when the log is off
	t       *wsTransport
	fc      *fanout.Conn // set by start, before any other use
	r       *wsReader    // set before start

	mu        sync.Mutex
	closeEcho int  // the client's close code, answered if the origin sends no CLOSE
	sentClose bool // a close frame from the origin was sent
}

// start registers the upgraded connection with the writer pool.
func (c *wsClient) start(conn net.Conn) error {
	s := c.s
	tc := tcpConn(conn)
	t := &wsTransport{heldConn: s.newHeldConn(tc, nil, kindWebSocket), client: c}
	t.acc = c.acc
	if t.connWriter == nil {
		tc.Close()
		return fanout.ErrNotSocket
	}
	c.t = t
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
	c.fc = fc
	return nil
}

// sendMessage queues a text or binary message for the client.
func (c *wsClient) sendMessage(opcode byte, p []byte) {
	if c.deflate && (opcode == opText || opcode == opBinary) {
		c.fc.Send(appendWSFrame(nil, opcode, deflateMessage(p), true), false)
		return
	}
	c.fc.Send(appendWSFrame(nil, opcode, p, false), false)
}

// sendControl queues a ping or pong frame.
func (c *wsClient) sendControl(opcode byte, p []byte) {
	c.fc.Send(appendWSFrame(nil, opcode, p, false), false)
}

// sendClose queues a close frame, the connection's last.
func (c *wsClient) sendClose(code int, reason string) {
	c.fc.Send(closeFrame(code, reason), true)
}

// originClosed sends the origin's CLOSE to the client.
func (c *wsClient) originClosed(code int, reason string) {
	c.mu.Lock()
	c.sentClose = true
	c.mu.Unlock()
	c.sendClose(closeCode(code), reason)
}

// closing returns the client's close code (0: the client has not sent
// a close frame) and whether the origin's close was sent.
func (c *wsClient) closing() (echo int, sent bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeEcho, c.sentClose
}

// clientClose runs when the client sends a close frame: the origin gets
// CLOSE with the code; the client's close is answered with the origin's
// CLOSE, or the client's own code if the origin sends none. After a
// detach the node answers at once; after a close publish (this is the
// client's answer) the origin has had its CLOSE.
func (c *wsClient) clientClose(code int, text string) {
	echo := code
	if code == closeNoStatus {
		echo = closeNormal
	}
	c.mu.Lock()
	c.closeEcho = echo
	c.mu.Unlock()
	ws := c.session
	switch {
	case ws.isDetached():
		c.sendClose(echo, "") // the origin is done with: the node answers
		return
	case ws.closePublished.Load():
		return // the answer to a close publish, which told the origin
	}
	ev := grip.WSEvent{Type: grip.WSEventClose}
	if code != closeNoStatus {
		ev.Content = grip.CloseEventContent(code, text)
	}
	ws.enqueue(ev, true)
}

// wsTransport writes to a WebSocket client through the writer pool.
type wsTransport struct {
	heldConn
	client *wsClient
}

var _ fanout.Transport = (*wsTransport)(nil)

// Frame obeys a ws-message publish. A connection without filters or meta
// (no connSubs) takes the fast path: the message's encoding shared by all
// such clients, no lock; a format listing content-filters is not for it.
// A connection with a connSubs runs the channel's filters (under its
// lock, a leaf: Frame runs under the Hub's channel lock), which may drop
// the message (a close or refresh too, as in Pushpin) or change its
// content, which is then encoded for this client alone.
func (t *wsTransport) Frame(m *fanout.Message) ([]byte, bool) {
	item := m.Item.(*grip.Item)
	f := item.WSMessage
	if f == nil || f.Action == grip.ActionHint {
		return nil, false
	}
	cs := t.client.session.subs.Load()
	if cs == nil {
		if !plainDelivers(f.ContentFilters) {
			return nil, false
		}
		return t.shared(m, f)
	}
	var content []byte
	if f.Action == grip.ActionSend {
		content = f.Content
	}
	cs.mu.Lock()
	out, ok := cs.filter(t.client.s, m.Channel, item, f.ContentFilters, content)
	cs.mu.Unlock()
	switch {
	case !ok:
		return nil, false
	case f.Action == grip.ActionSend && !sameBytes(out, content):
		return t.encode(f.Type, out), false
	}
	return t.shared(m, f)
}

// shared obeys a publish with the message's encoding shared by every
// client that takes it unchanged, made once per encoding.
func (t *wsTransport) shared(m *fanout.Message, f *grip.WSMessageFormat) ([]byte, bool) {
	switch f.Action {
	case grip.ActionRefresh:
		t.client.session.refresh()
		return nil, false
	case grip.ActionClose:
		t.client.session.closedByPublish()
		return m.Frame(frameWSClose, func(*fanout.Message) ([]byte, bool) {
			return closeFrame(closeCode(f.Code), f.Reason), true
		})
	}
	kind := frameWS
	if t.client.deflate && (f.Type == grip.WSText || f.Type == grip.WSBinary) {
		kind = frameWSDeflate
	}
	return m.Frame(kind, func(*fanout.Message) ([]byte, bool) {
		return t.encode(f.Type, f.Content), false
	})
}

// encode frames a message of type typ for this client: compressed when
// permessage-deflate was negotiated (text and binary), nil for a ping or
// pong too long for a control frame.
func (t *wsTransport) encode(typ grip.WSType, content []byte) []byte {
	switch {
	case (typ == grip.WSPing || typ == grip.WSPong) && len(content) > 125:
		return nil
	case t.client.deflate && (typ == grip.WSText || typ == grip.WSBinary):
		return appendWSFrame(nil, wsOpcode(typ), deflateMessage(content), true)
	}
	return appendWSFrame(nil, wsOpcode(typ), content, false)
}

// sameBytes reports whether a and b are the same bytes in memory (filters
// that change nothing return their input).
func sameBytes(a, b []byte) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// Closed ends the connection and the session.
func (t *wsTransport) Closed(reason error) {
	t.client.r.stop()
	t.markClosed(reason)
	if errors.Is(reason, fanout.ErrShutdown) {
		t.farewell(closeFrame(closeGoingAway, "server shutting down"))
	}
	t.conn.Close()
	t.client.session.ended(reason)
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

// wsRefusal is the origin refusing a WebSocket: its response goes to the
// client as is.
type wsRefusal struct{ code int }

func (e *wsRefusal) Error() string {
	return fmt.Sprintf("origin refused the WebSocket with %d", e.code)
}
