package node

import (
	"bytes"
	"crypto/sha1"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgepush/edgepush/grip"
	"github.com/edgepush/edgepush/node/connwatch"
	"github.com/valyala/fasthttp"
)

// Reading a client's frames. On Linux, for plain TCP, a session has no
// goroutine and no buffer while its client is quiet: the close watcher's
// epoll set reports the socket readable (connwatch.AddReadable), the
// watcher's goroutine reads what has arrived into a pooled buffer and
// parses it (wsParser), and only an incomplete frame or fragmented
// message keeps bytes of its own (and a parser only while it reads).
// Under TLS, or without epoll, the session reads on the hijack goroutine,
// as it always did. Either way one goroutine per node checks the idle
// limit (wsIdleList): a client that sends no message and no pong for
// 2 × -ws-ping-interval is gone.

// wsReadBufSize is the pooled buffer one readable socket is read into.
const wsReadBufSize = 16 << 10

// wsReadsPerTurn bounds the reads of one session per watcher turn
// (wsReadsPerTurn × wsReadBufSize bytes).
const wsReadsPerTurn = 4

var wsReadBufs = sync.Pool{New: func() any { b := make([]byte, wsReadBufSize); return &b }}

var errWSIdle = errors.New("websocket: no message or pong from the client within twice the ping interval")

// wsReader reads one client's frames and hands them to its session.
type wsReader struct {
	c    *wsClient
	conn net.Conn // the socket (watched mode)
	// last is when the client last sent a message or a pong (unix nanos).
	last    atomic.Int64
	stopped atomic.Bool
	token   atomic.Uint64 // the watcher's registration, 0: none

	mu     sync.Mutex // the parser's: one reader at a time
	parser *wsParser  // nil between frames and messages

	prev, next *wsReader // in the node's wsIdleList, under its lock
	listed     bool
}

// newReader makes the client's reader and puts it on the idle list.
func (c *wsClient) newReader(conn net.Conn) *wsReader {
	r := &wsReader{c: c, conn: conn}
	r.last.Store(time.Now().UnixNano())
	c.s.wsIdle.add(r)
	return r
}

// run reads the client's frames: hijacked is fasthttp's connection (with
// any bytes it read past the handshake). It returns at once when the
// watcher reads the socket, else when the client's side ends.
func (r *wsReader) run(hijacked net.Conn) {
	if _, isTLS := tcpConn(hijacked).(*tls.Conn); !isTLS && r.watch(hijacked) {
		return
	}
	r.readLoop(hijacked)
}

// watch takes what the connection already has without waiting, then has
// the watcher report the socket readable; false: no epoll here.
func (r *wsReader) watch(hijacked net.Conn) bool {
	// Bytes fasthttp buffered past the handshake are only in hijacked;
	// with a deadline in the past, its reads return what is there.
	hijacked.SetReadDeadline(time.Unix(1, 0))
	bp := wsReadBufs.Get().(*[]byte)
	var err error
	for !r.stopped.Load() {
		var n int
		n, err = hijacked.Read(*bp)
		if n > 0 && r.consume((*bp)[:n]) {
			break
		}
		if err != nil {
			break
		}
	}
	wsReadBufs.Put(bp)
	hijacked.SetReadDeadline(time.Time{})
	switch {
	case r.stopped.Load():
		return true
	case err != nil && !errors.Is(err, os.ErrDeadlineExceeded):
		r.end(err)
		return true
	}
	t, err := r.c.s.watch.AddReadable(r.conn, r.onReadable)
	if err != nil {
		if !errors.Is(err, connwatch.ErrUnsupported) {
			r.c.s.log.Debug("WebSocket: reading with a goroutine", "err", err)
		}
		return false
	}
	r.token.Store(uint64(t))
	if r.stopped.Load() { // stopped while registering: stop could not see it
		r.c.s.watch.Remove(r.conn, t)
	}
	return true
}

// onReadable runs on the watcher's goroutine: it reads the socket until
// it would block (the watcher is edge-triggered), or for wsReadsPerTurn
// reads at most: a client sending without pause then waits for its next
// turn (more), after every other ready socket, instead of holding the
// watcher that reads all sessions and notices every hang-up.
func (r *wsReader) onReadable() (more bool) {
	bp := wsReadBufs.Get().(*[]byte)
	defer wsReadBufs.Put(bp)
	for range wsReadsPerTurn {
		if r.stopped.Load() {
			return false
		}
		n, err := connwatch.ReadNonblock(r.conn, *bp)
		if n > 0 && r.consume((*bp)[:n]) {
			return false
		}
		switch {
		case errors.Is(err, connwatch.ErrWouldBlock):
			return false
		case err != nil:
			r.end(err)
			return false
		}
	}
	return true // its turn is over: the watcher comes back after the others
}

// readLoop reads the client's frames with blocking reads until its side
// ends (TLS, or no epoll).
func (r *wsReader) readLoop(conn net.Conn) {
	buf := make([]byte, 4096)
	for !r.stopped.Load() {
		n, err := conn.Read(buf)
		if n > 0 && r.consume(buf[:n]) {
			return
		}
		if err != nil {
			r.end(err)
			return
		}
	}
}

// consume parses bytes from the client; it reports whether its side is
// over.
func (r *wsReader) consume(p []byte) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped.Load() {
		r.parser = nil
		return true
	}
	if r.parser == nil {
		r.parser = &wsParser{limit: r.c.s.cfg.WSReadLimit, deflate: r.c.deflate}
	}
	done, err := r.parser.feed(p, r.frame)
	if err != nil {
		r.fail(err)
	}
	if done {
		r.stop()
	}
	if done || r.parser.idle() {
		r.parser = nil
	}
	return done
}

// frame hands a complete message or control frame to the session.
func (r *wsReader) frame(op byte, p []byte, owned bool) bool {
	c := r.c
	switch op {
	case opPing:
		c.sendControl(opPong, p)
		c.session.fromClient(grip.WSEvent{Type: grip.WSEventPing, Content: bytes.Clone(p)})
	case opPong:
		r.last.Store(time.Now().UnixNano())
	case opClose:
		code, text := closeNoStatus, ""
		if len(p) >= 2 {
			code, text = int(binary.BigEndian.Uint16(p)), string(p[2:])
		}
		c.clientClose(code, text)
		return false
	default:
		r.last.Store(time.Now().UnixNano())
		if !owned {
			p = bytes.Clone(p)
		}
		typ := grip.WSEventText
		if op == opBinary {
			typ = grip.WSEventBinary
		}
		c.session.fromClient(grip.WSEvent{Type: typ, Content: p})
	}
	return true
}

// idle ends a client found silent for the whole wait.
func (r *wsReader) idle() {
	r.mu.Lock() // not in the middle of a frame being handed on
	defer r.mu.Unlock()
	r.end(errWSIdle)
}

// end handles the end of the client's side without a close frame (hang-up,
// read error, idle): the origin gets DISCONNECT. After a close frame, or
// once the node ended the connection, there is nothing to do.
func (r *wsReader) end(err error) {
	if r.stopped.Swap(true) {
		return
	}
	r.release()
	c := r.c
	if echo, _ := c.closing(); echo != 0 || c.fc.Closed() {
		return
	}
	c.s.log.Debug("WebSocket client's side ended", "connection", c.session.id, "err", err)
	c.session.fromClient(grip.WSEvent{Type: grip.WSEventDisconnect})
	c.fc.Close(errClientGone)
}

// fail closes the connection for the client's mistake (protocol error,
// message too big): a close frame with the code, DISCONNECT to the origin.
func (r *wsReader) fail(err error) {
	c := r.c
	if echo, _ := c.closing(); echo != 0 || c.fc.Closed() {
		return
	}
	var ce *wsCloseError
	if errors.As(err, &ce) {
		c.sendClose(ce.code, ce.reason)
	}
	c.session.fromClient(grip.WSEvent{Type: grip.WSEventDisconnect})
}

// stop ends reading: the watcher forgets the socket, the idle list the
// reader. It takes not the reader's lock (it runs from wsTransport.Closed
// too) and is idempotent.
func (r *wsReader) stop() {
	if !r.stopped.Swap(true) {
		r.release()
	}
}

func (r *wsReader) release() {
	r.c.s.wsIdle.remove(r)
	if t := r.token.Swap(0); t != 0 {
		r.c.s.watch.Remove(r.conn, connwatch.Token(t))
	}
}

// wsIdleList is the node's WebSocket readers, for the idle check: one
// goroutine (sweepWSIdle) instead of a timer per session.
type wsIdleList struct {
	mu   sync.Mutex
	head *wsReader
}

func (l *wsIdleList) add(r *wsReader) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r.next, r.listed = l.head, true
	if l.head != nil {
		l.head.prev = r
	}
	l.head = r
}

// remove takes r off the list; it is safe to call twice.
func (l *wsIdleList) remove(r *wsReader) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !r.listed {
		return
	}
	if r.prev != nil {
		r.prev.next = r.next
	} else {
		l.head = r.next
	}
	if r.next != nil {
		r.next.prev = r.prev
	}
	r.prev, r.next, r.listed = nil, nil, false
}

// idle returns the readers whose client has sent no message and no pong
// since before.
func (l *wsIdleList) idle(before int64) []*wsReader {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []*wsReader
	for r := l.head; r != nil; r = r.next {
		if r.last.Load() <= before {
			out = append(out, r)
		}
	}
	return out
}

// sweepWSIdle ends WebSocket clients silent for 2 × -ws-ping-interval,
// checking a few times per interval (at most every second).
func (s *Server) sweepWSIdle() {
	wait := 2 * s.cfg.WSPingInterval
	t := time.NewTicker(min(max(wait/8, 10*time.Millisecond), time.Second))
	defer t.Stop()
	for {
		select {
		case <-s.bgCtx.Done():
			return
		case now := <-t.C:
			for _, r := range s.wsIdle.idle(now.Add(-wait).UnixNano()) {
				r.idle()
			}
		}
	}
}

// closeNoStatus is the code of a close frame without one (RFC 6455
// §7.1.5); it is never sent.
const closeNoStatus = 1005

// wsAcceptKey is the handshake's Sec-WebSocket-Accept (RFC 6455 §4.2.2).
func wsAcceptKey(key []byte) string {
	const guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
	b := make([]byte, 0, 64) // a key is 24 bytes: on the stack
	sum := sha1.Sum(append(append(b, key...), guid...))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// acceptWebSocket answers the handshake with 101 and, once fasthttp has
// written it, calls f with the connection. Permessage-deflate is
// accepted with no context takeover either way (nothing kept between
// messages) when deflate.
func acceptWebSocket(ctx *fasthttp.RequestCtx, deflate bool, f func(net.Conn)) {
	ctx.SetStatusCode(fasthttp.StatusSwitchingProtocols)
	ctx.Response.Header.Set("Upgrade", "websocket")
	ctx.Response.Header.Set("Connection", "Upgrade")
	ctx.Response.Header.Set("Sec-WebSocket-Accept", wsAcceptKey(ctx.Request.Header.Peek("Sec-WebSocket-Key")))
	if deflate {
		ctx.Response.Header.Set("Sec-WebSocket-Extensions", "permessage-deflate; server_no_context_takeover; client_no_context_takeover")
	}
	ctx.Hijack(f)
}
