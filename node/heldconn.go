package node

import (
	"crypto/tls"
	"errors"
	"net"
	"sync"

	"github.com/edgepush/edgepush/fanout"
	"github.com/edgepush/edgepush/grip"
	"github.com/edgepush/edgepush/node/connwatch"
	"github.com/valyala/fasthttp"
)

// errClientGone ends a held connection whose client hung up.
var errClientGone = errors.New("client disconnected")

// heldConn is the part shared by the held transports: the socket, its
// subscriptions and its registration with the close watcher.
type heldConn struct {
	connWriter // nil if the connection could not be written
	s          *Server
	conn       net.Conn // the TCP connection (under TLS, if any)
	channels   []string
	acc        *heldAccess // access-log record; nil when the log is off

	wmu sync.Mutex // serializes writes: the pool's and a farewell
	mu  sync.Mutex
	fc  *fanout.Conn // under mu
	// token is the close watcher's registration, under mu.
	token connwatch.Token

	kind     heldKind // for logs and stats
	midFrame bool     // under wmu: the last write stopped inside a frame
	closed   bool     // under mu
}

// heldKind is a held connection's transport. Its value indexes
// heldTransports.
type heldKind uint8

// The held transports.
const (
	kindStream    heldKind = iota // Grip-Hold: stream
	kindResponse                  // Grip-Hold: response (long-poll)
	kindWebSocket                 // WebSocket-over-HTTP
)

// String names the kind in logs.
func (k heldKind) String() string {
	switch k {
	case kindStream:
		return "stream"
	case kindResponse:
		return "response"
	}
	return "websocket"
}

// connWriter writes a held connection's frames: fanout.SocketWriter for
// plain TCP, fanout.TLSWriter under TLS.
type connWriter interface {
	TryWrite(bufs [][]byte) (int, error)
	WriteBlocking(b []byte) error
}

// TryWrite is the pool's non-blocking write, noting whether it stopped
// inside a frame and counting bytes for the access log when it is on.
func (h *heldConn) TryWrite(bufs [][]byte) (int, error) {
	h.wmu.Lock()
	defer h.wmu.Unlock()
	// The access log counts the bytes before the write: the client may
	// read them and hang up, and the line be written, before the write
	// call even returns here. What the socket did not take is taken back.
	total := 0
	if h.acc != nil {
		for _, b := range bufs {
			total += len(b)
		}
		h.acc.wrote(bufs, total)
	}
	n, err := h.connWriter.TryWrite(bufs)
	if n > 0 {
		h.midFrame = !atBoundary(bufs, n)
	}
	if h.acc != nil && n < total {
		h.acc.bytes.Add(int64(n - total))
	}
	return n, err
}

// WriteBlocking is the pool's blocking write (of whole frames or the rest
// of one), counted like TryWrite.
func (h *heldConn) WriteBlocking(b []byte) error {
	h.wmu.Lock()
	defer h.wmu.Unlock()
	if h.acc != nil { // counted first, as in TryWrite
		h.acc.wrote([][]byte{b}, len(b))
	}
	err := h.connWriter.WriteBlocking(b)
	h.midFrame = err != nil // a failed write may have sent part of b
	if h.acc != nil && err != nil {
		h.acc.bytes.Add(-int64(len(b)))
	}
	return err
}

// farewell writes a last frame (final chunk, timeout answer, close frame)
// when the node ends the connection: best effort, and only between
// frames, so it never interleaves with a write in progress.
func (h *heldConn) farewell(b []byte) {
	if h.connWriter == nil || !h.wmu.TryLock() {
		return
	}
	defer h.wmu.Unlock()
	if !h.midFrame {
		h.connWriter.TryWrite([][]byte{b})
	}
}

// atBoundary reports whether the first n bytes of bufs end where one of
// them ends.
func atBoundary(bufs [][]byte, n int) bool {
	for _, b := range bufs {
		if n == 0 {
			return true
		}
		if n < len(b) {
			return false
		}
		n -= len(b)
	}
	return true
}

// tcpConn unwraps fasthttp's hijacked connection(s) down to the socket.
func tcpConn(c net.Conn) net.Conn {
	for {
		u, ok := c.(interface{ UnsafeConn() net.Conn })
		if !ok {
			return c
		}
		c = u.UnsafeConn()
	}
}

// hold registers a hijacked connection with the writer pool, subscribes
// it and watches it for hang-up. initial is written first.
// Messages published after position since are replayed first.
// It returns the connection's fanout.Conn, nil when it could not be held.
func (s *Server) hold(t fanout.Transport, h *heldConn, since uint64, opts fanout.ConnOptions, initial ...[]byte) *fanout.Conn {
	fc, err := s.pool.Add(t, opts, initial...)
	if err != nil {
		h.conn.Close()
		return nil
	}
	s.held.Add(1)
	s.metrics.connOpened(h.kind)
	for _, ch := range h.channels {
		s.hub.SubscribeFrom(ch, fc, since)
	}
	token, err := s.watch.Add(h.conn, func() { fc.Close(errClientGone) })
	h.mu.Lock()
	h.fc, h.token = fc, token
	closed := h.closed
	h.mu.Unlock()
	if err != nil {
		fc.Close(err)
		return nil
	}
	if closed { // closed while subscribing: undo what Closed could not see
		h.release()
		return nil
	}
	return fc
}

// channelList returns the channels the connection is subscribed to.
func (h *heldConn) channelList() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.channels
}

// setChannels records a change of the connection's channels (a next
// link's answer subscribed it to others).
func (h *heldConn) setChannels(names []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.channels = names
}

// release unsubscribes and stops watching; it is safe to call twice.
func (h *heldConn) release() {
	h.mu.Lock()
	fc, token, channels := h.fc, h.token, h.channels
	h.mu.Unlock()
	if fc == nil {
		return
	}
	for _, ch := range channels {
		h.s.hub.Unsubscribe(ch, fc)
	}
	if token != 0 {
		h.s.watch.Remove(h.conn, token)
	}
}

// markClosed records the end of the connection and releases it.
func (h *heldConn) markClosed(reason error) {
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	h.release()
	h.s.held.Add(-1)
	h.s.metrics.connClosed(h.kind)
	h.s.access.heldEnded(h, reason)
	h.s.log.Debug("held connection ended", "transport", h.kind.String(), "channels", h.channelList(), "reason", errString(reason))
}

func errString(err error) string {
	if err == nil {
		return "done"
	}
	return err.Error()
}

func (s *Server) newHeldConn(c net.Conn, channels []string, kind heldKind) heldConn {
	conn := tcpConn(c)
	var w connWriter
	var err error
	if tc, ok := conn.(*tls.Conn); ok {
		conn = tc.NetConn()
		var tw *fanout.TLSWriter
		if tw, err = fanout.NewTLSWriter(tc, s.cfg.WriteTimeout); err == nil {
			w = tw
		}
	} else {
		var sw *fanout.SocketWriter
		if sw, err = fanout.NewSocketWriter(conn, s.cfg.WriteTimeout); err == nil {
			w = sw
		}
	}
	if err != nil {
		s.log.Error("hold: connection is not a socket", "err", err)
	}
	return heldConn{connWriter: w, s: s, conn: conn, channels: channels, kind: kind}
}

// hijack takes the connection over from fasthttp once the handler returns;
// fasthttp writes no response of its own.
func (s *Server) hijack(ctx *fasthttp.RequestCtx, f func(net.Conn)) {
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(c net.Conn) {
		defer recoverLog(s.log, "hijack")
		f(c)
	})
}

func channelNames(in *grip.Instruct) []string {
	names := make([]string, 0, len(in.Channels))
	for _, c := range in.Channels {
		names = append(names, c.Name)
	}
	return names
}

// serveAgain hands a connection whose long-poll was answered back to the
// HTTP server for its next request.
func (s *Server) serveAgain(c net.Conn) {
	if tc, ok := tcpConn(c).(*tls.Conn); ok {
		c = tlsHijacked{Conn: c, tls: tc} // so that ctx.IsTLS() still holds
	}
	s.againMu.Lock()
	if s.again == nil {
		s.again = map[net.Conn]struct{}{}
	}
	s.again[c] = struct{}{}
	s.againMu.Unlock()
	started := s.bg.Go(func() {
		defer func() {
			s.againMu.Lock()
			delete(s.again, c)
			s.againMu.Unlock()
		}()
		if err := s.client.ServeConn(c); err != nil {
			s.log.Debug("serve again", "err", err)
		}
	})
	if !started {
		c.Close()
	}
}

// closeServedAgain closes the connections serveAgain handed back, so that
// a shutdown does not wait for their clients' next requests.
func (s *Server) closeServedAgain() {
	s.againMu.Lock()
	defer s.againMu.Unlock()
	for c := range s.again {
		c.Close()
	}
}

// tlsHijacked is a hijacked TLS connection handed back to fasthttp: it
// shows the TLS state, which fasthttp's hijack wrapper hides.
type tlsHijacked struct {
	net.Conn
	tls *tls.Conn
}

func (c tlsHijacked) Handshake() error                     { return c.tls.Handshake() }
func (c tlsHijacked) ConnectionState() tls.ConnectionState { return c.tls.ConnectionState() }
func (c tlsHijacked) UnsafeConn() net.Conn                 { return c.Conn }
