package node

import (
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"sync/atomic"

	"github.com/edgepush/edgepush/cache"
	"github.com/edgepush/edgepush/fanout"
	"github.com/edgepush/edgepush/grip"
	"github.com/edgepush/edgepush/node/connwatch"
	"github.com/valyala/fasthttp"
)

// Frame kinds cached on each fanout.Message, one per wire encoding.
const (
	frameChunked = iota // http-stream content as an HTTP/1.1 chunk
	frameRaw            // http-stream content as is (HTTP/1.0 client)
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
	kind       string      // "stream" or "response", for logs and stats
	acc        *heldAccess // access-log record; nil when the log is off

	wmu      sync.Mutex // serializes writes: the pool's and a farewell
	midFrame bool       // the last write stopped inside a frame

	mu     sync.Mutex
	fc     *fanout.Conn
	token  connwatch.Token
	closed bool
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
func (s *Server) hold(t fanout.Transport, h *heldConn, since uint64, opts fanout.ConnOptions, initial ...[]byte) {
	fc, err := s.pool.Add(t, opts, initial...)
	if err != nil {
		h.conn.Close()
		return
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
		return
	}
	if closed { // closed while subscribing: undo what Closed could not see
		h.release()
	}
}

// release unsubscribes and stops watching; it is safe to call twice.
func (h *heldConn) release() {
	h.mu.Lock()
	fc, token := h.fc, h.token
	h.mu.Unlock()
	if fc == nil {
		return
	}
	for _, ch := range h.channels {
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
	h.s.log.Debug("held connection ended", "transport", h.kind, "channels", h.channels, "reason", errString(reason))
}

func errString(err error) string {
	if err == nil {
		return "done"
	}
	return err.Error()
}

// streamTransport is a Grip-Hold: stream connection (HTTP streaming and
// SSE): http-stream content is written as chunks (raw for HTTP/1.0).
type streamTransport struct {
	heldConn
	chunked bool
}

var _ fanout.Transport = (*streamTransport)(nil)

func (t *streamTransport) Frame(m *fanout.Message) ([]byte, bool) {
	if t.chunked {
		return m.Frame(frameChunked, encodeChunked)
	}
	return m.Frame(frameRaw, encodeRaw)
}

func encodeChunked(m *fanout.Message) ([]byte, bool) {
	f := m.Item.(*grip.Item).HTTPStream
	switch {
	case f == nil:
		return nil, false
	case f.Action == grip.ActionClose:
		return lastChunk, true
	case f.Action != grip.ActionSend || len(f.Content) == 0:
		return nil, false
	}
	return appendChunk(make([]byte, 0, len(f.Content)+12), f.Content), false
}

func encodeRaw(m *fanout.Message) ([]byte, bool) {
	f := m.Item.(*grip.Item).HTTPStream
	switch {
	case f == nil:
		return nil, false
	case f.Action == grip.ActionClose:
		return nil, true
	case f.Action != grip.ActionSend:
		return nil, false
	}
	return f.Content, false
}

func (t *streamTransport) Closed(reason error) {
	t.markClosed(reason)
	if t.chunked && (reason == nil || errors.Is(reason, fanout.ErrShutdown)) {
		if reason != nil { // shutdown: end the body cleanly, best effort
			t.farewell(lastChunk)
		}
	}
	t.conn.Close()
}

// holdStream answers with the response head and initial body, then holds
// the connection for http-stream publishes.
func (s *Server) holdStream(ctx *fasthttp.RequestCtx, hr heldResponse, in *grip.Instruct, since uint64) {
	chunked := ctx.Request.Header.IsHTTP11()
	head := appendHead(nil, hr.code, hr.reason, hr.headers)
	if chunked {
		head = append(head, "Transfer-Encoding: chunked\r\n\r\n"...)
		if len(hr.body) > 0 {
			head = appendChunk(head, hr.body)
		}
	} else {
		head = append(head, "Connection: close\r\n\r\n"...)
		head = append(head, hr.body...)
	}
	opts := fanout.ConnOptions{}
	if ka := in.KeepAlive; ka != nil {
		opts.KeepAlive = ka.Data
		if chunked {
			opts.KeepAlive = appendChunk(nil, ka.Data)
		}
		opts.KeepAliveEvery = ka.Timeout
		opts.KeepAliveInterval = ka.Mode == grip.KeepAliveInterval
	}
	channels := channelNames(in)
	acc := s.access.held(ctx, transportStream, hr.code)
	s.hijack(ctx, func(c net.Conn) {
		t := &streamTransport{heldConn: s.newHeldConn(c, channels, "stream"), chunked: chunked}
		t.acc = acc
		if t.connWriter == nil {
			c.Close()
			return
		}
		s.hold(t, &t.heldConn, since, opts, head)
	})
}

// responseTransport is a Grip-Hold: response connection (long-poll): the
// first http-response publish, or the held response at the timeout, is
// the answer; then the connection goes back to serving requests.
type responseTransport struct {
	heldConn
	hj        net.Conn // fasthttp's hijacked connection, to serve it again
	held      heldResponse
	keepAlive bool
	refetch   func() (*cache.Entry, error) // for hints
	hinting   atomic.Bool
}

var _ fanout.Transport = (*responseTransport)(nil)

func (t *responseTransport) Frame(m *fanout.Message) ([]byte, bool) {
	f := m.Item.(*grip.Item).HTTPResponse
	if f != nil && f.Action == grip.ActionHint {
		t.hint()
		return nil, false
	}
	if f == nil || f.Action != grip.ActionSend {
		return nil, false
	}
	hr := heldResponse{code: f.Code, reason: f.Reason, headers: mergeHeaders(t.held.headers, f.Headers), body: f.Body}
	return appendResponse(nil, hr, t.keepAlive), true
}

// hint asks again for the held request ("the data changed, go fetch
// it"): through the cache, so held long-polls of one URL make one origin
// request. An answer that is not a hold goes to the client; a hold keeps
// waiting. It runs under the Hub's lock, so the work is in a goroutine.
func (t *responseTransport) hint() {
	if t.refetch == nil || !t.hinting.CompareAndSwap(false, true) {
		return
	}
	t.s.bg.Go(func() {
		defer t.hinting.Store(false)
		e, err := t.refetch()
		if err != nil {
			t.s.log.Debug("hint: refetch failed", "err", err)
			return
		}
		p := e.Value.(*parsed)
		if p.err != nil || p.in.Hold != grip.HoldNone {
			return
		}
		t.mu.Lock()
		fc := t.fc
		t.mu.Unlock()
		if fc != nil {
			fc.Send(appendResponse(nil, p.hr, t.keepAlive), true)
		}
	})
}

// ChooseReplay answers a long-poll opened from older data with the newest
// http-response published since.
func (t *responseTransport) ChooseReplay(msgs []*fanout.Message) []*fanout.Message {
	for i := len(msgs) - 1; i >= 0; i-- {
		if f := msgs[i].Item.(*grip.Item).HTTPResponse; f != nil && f.Action == grip.ActionSend {
			return msgs[i : i+1]
		}
	}
	return nil
}

func (t *responseTransport) Closed(reason error) {
	t.markClosed(reason)
	if reason == nil && t.keepAlive && !t.s.draining.Load() {
		t.s.serveAgain(t.hj)
		return
	}
	if errors.Is(reason, fanout.ErrShutdown) {
		t.farewell(appendResponse(nil, t.held, false))
	}
	t.conn.Close()
}

// holdResponse subscribes the connection and answers it later.
// hr is the held response that publishes merge with, onTimeout what the
// client gets at the timeout (hr, possibly compressed).
func (s *Server) holdResponse(ctx *fasthttp.RequestCtx, hr, onTimeout heldResponse, in *grip.Instruct, since uint64,
	refetch func() (*cache.Entry, error)) {
	keepAlive := !ctx.Request.Header.ConnectionClose() && ctx.Request.Header.IsHTTP11()
	opts := fanout.ConnOptions{Timeout: in.Timeout, TimeoutFrame: appendResponse(nil, onTimeout, keepAlive)}
	channels := channelNames(in)
	acc := s.access.held(ctx, transportLongPoll, onTimeout.code)
	s.hijack(ctx, func(c net.Conn) {
		t := &responseTransport{heldConn: s.newHeldConn(c, channels, "response"), hj: c, held: hr, keepAlive: keepAlive, refetch: refetch}
		t.acc = acc
		if t.connWriter == nil {
			c.Close()
			return
		}
		s.hold(t, &t.heldConn, since, opts)
	})
}

func (s *Server) newHeldConn(c net.Conn, channels []string, kind string) heldConn {
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
