package loadtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/fasthttp/websocket"
)

// WebSocket buffer sizes per connection: the read buffer holds frames as
// they arrive (and the handshake answer); write buffers, only needed for
// the rare frame the client sends, come from a pool shared by the run.
const (
	wsReadBufSize  = 1024
	wsWriteBufSize = 256
)

// wsDialers are the WebSocket dialers of a run, one per source address
// (they wrap the run's net.Dialers, so -local-addrs applies).
type wsDialers struct {
	d      []*websocket.Dialer
	header http.Header
}

// newWSDialers makes the dialers; host, when set, is sent as the Host
// header.
func newWSDialers(ds *dialers, host string) *wsDialers {
	pool := &sync.Pool{}
	w := &wsDialers{
		d:      make([]*websocket.Dialer, len(ds.d)),
		header: http.Header{"User-Agent": {"edgepush-loadtest"}},
	}
	if host != "" {
		w.header.Set("Host", host)
	}
	for i, nd := range ds.d {
		w.d[i] = &websocket.Dialer{
			NetDialContext:  nd.DialContext,
			ReadBufferSize:  wsReadBufSize,
			WriteBufferSize: wsWriteBufSize,
			WriteBufferPool: pool,
		}
	}
	return w
}

// wsSubscriber is a WebSocket connection. Its setup ends when the first
// message (the origin's welcome) has arrived; every later text or binary
// message is one delivery.
type wsSubscriber struct {
	t  *target
	cs *connState

	mu     sync.Mutex // guards c and closed against close
	c      *websocket.Conn
	closed bool

	buf [lineBufSize + 1]byte // one message; a full buffer means too long
}

func newWSSubscriber(t *target, cs *connState) subscriber {
	return &wsSubscriber{t: t, cs: cs}
}

func (s *wsSubscriber) open(ctx context.Context) error {
	err := s.dial(ctx)
	if err != nil {
		s.close()
	}
	return err
}

// dial connects, and waits for the first message and hands it to the
// connection state, all within the connect timeout.
func (s *wsSubscriber) dial(ctx context.Context) error {
	deadline := time.Now().Add(s.t.connectTimeout)
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	d := s.t.ws.d[s.cs.idx%len(s.t.ws.d)]
	c, resp, err := d.DialContext(ctx, s.t.url, s.t.ws.header)
	if err != nil {
		if errors.Is(err, websocket.ErrBadHandshake) && resp != nil {
			return handshakeError(resp)
		}
		return err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		c.Close()
		return net.ErrClosed
	}
	s.c = c
	s.mu.Unlock()
	if err := c.SetReadDeadline(deadline); err != nil {
		return err
	}
	if err := s.readMessage(); err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("connection ended before the first message")
		}
		return fmt.Errorf("waiting for the first message: %w", err)
	}
	return c.SetReadDeadline(time.Time{})
}

// handshakeError describes a refused WebSocket handshake, with the first
// line of a short body (Pushpin and edgepush put the reason there).
func handshakeError(resp *http.Response) error {
	msg := "HTTP " + resp.Status
	if resp.Body != nil {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		if i := bytes.IndexAny(b, "\r\n"); i >= 0 {
			b = b[:i]
		}
		if len(b) > 0 {
			msg += ": " + string(b)
		}
	}
	return errors.New(msg)
}

// readMessage reads one message and hands it to the connection state,
// unless it is too long to be one of ours.
func (s *wsSubscriber) readMessage() error {
	_, r, err := s.c.NextReader()
	if err != nil {
		return err
	}
	n, err := io.ReadFull(r, s.buf[:])
	switch err {
	case io.EOF, io.ErrUnexpectedEOF: // the whole message fits
		s.cs.deliver(s.buf[:n])
		return nil
	case nil: // longer than the buffer: not ours, NextReader skips the rest
		return nil
	}
	return err
}

func (s *wsSubscriber) serve() error {
	for {
		if err := s.readMessage(); err != nil {
			return err
		}
	}
}

func (s *wsSubscriber) stall(stop <-chan struct{}) bool {
	return stallConn(s.c.NetConn(), stop)
}

func (s *wsSubscriber) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.c != nil {
		s.c.Close()
	}
}
