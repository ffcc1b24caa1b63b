package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// Buffer sizes per connection: the connection's reader holds response
// heads, the line reader holds message lines of a chunked body.
const (
	connBufSize = 1024
	lineBufSize = 256
)

// buildRequest returns the subscribe request for u, with host as its
// Host header (empty: u's).
func buildRequest(u *url.URL, tr Transport, host string) []byte {
	if host == "" {
		host = u.Host
	}
	accept := "*/*"
	if tr == TransportSSE {
		accept = "text/event-stream"
	}
	return fmt.Appendf(nil, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: edgepush-loadtest\r\nAccept: %s\r\n\r\n",
		u.RequestURI(), host, accept)
}

// httpSubscriber is an HTTP streaming, SSE or long-poll connection.
type httpSubscriber struct {
	t        *target
	cs       *connState
	longPoll bool

	mu     sync.Mutex // guards nc and closed against close
	nc     net.Conn
	closed bool

	br    *bufio.Reader // on nc
	lr    *bufio.Reader // lines of the current body when it is framed
	body  *bufio.Reader // where serve reads lines: br or lr
	chunk chunkedReader
	limit io.LimitedReader
}

func newHTTPSubscriber(longPoll bool) func(*target, *connState) subscriber {
	return func(t *target, cs *connState) subscriber {
		return &httpSubscriber{t: t, cs: cs, longPoll: longPoll}
	}
}

// connect dials, sends the request and leaves a deadline of the connect
// timeout on the connection.
func (s *httpSubscriber) connect(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.t.connectTimeout)
	defer cancel()
	nc, err := s.t.dial(ctx, s.cs.idx)
	if err != nil {
		return err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		nc.Close()
		return net.ErrClosed
	}
	s.nc = nc
	s.mu.Unlock()
	nc.SetDeadline(time.Now().Add(s.t.connectTimeout))
	if s.br == nil {
		s.br = bufio.NewReaderSize(nc, connBufSize)
	} else {
		s.br.Reset(nc)
	}
	if _, err := nc.Write(s.t.req); err != nil {
		return err
	}
	return nil
}

func (s *httpSubscriber) open(ctx context.Context) error {
	err := s.connect(ctx)
	if err == nil && s.longPoll {
		err = s.nc.SetDeadline(time.Time{})
	} else if err == nil {
		err = s.openStream()
	}
	if err != nil {
		s.close()
	}
	return err
}

// openStream reads the response head and waits for the first body byte.
func (s *httpSubscriber) openStream() error {
	h, err := readHead(s.br)
	if err != nil {
		return err
	}
	if h.status != 200 {
		return s.statusError(h)
	}
	s.body = s.framedBody(h)
	if _, err := s.body.Peek(1); err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("response ended before any body byte")
		}
		return fmt.Errorf("waiting for the first body byte: %w", err)
	}
	return s.nc.SetDeadline(time.Time{})
}

// framedBody returns the line reader for the body that follows head h.
func (s *httpSubscriber) framedBody(h respHead) *bufio.Reader {
	var r io.Reader
	switch {
	case h.chunked:
		s.chunk.reset(s.br)
		r = &s.chunk
	case h.length >= 0:
		s.limit = io.LimitedReader{R: s.br, N: h.length}
		r = &s.limit
	default:
		return s.br // read to EOF: lines straight from the connection's buffer
	}
	if s.lr == nil {
		s.lr = bufio.NewReaderSize(r, lineBufSize)
	} else {
		s.lr.Reset(r)
	}
	return s.lr
}

// statusError describes a non-200 answer, with the first line of a short
// body (Pushpin and edgepush put the reason there).
func (s *httpSubscriber) statusError(h respHead) error {
	msg := fmt.Sprintf("HTTP %d %s", h.status, h.reason)
	if h.length > 0 && h.length <= 512 && !h.chunked {
		b := make([]byte, h.length)
		if _, err := io.ReadFull(s.br, b); err == nil {
			if i := bytes.IndexAny(b, "\r\n"); i >= 0 {
				b = b[:i]
			}
			if len(b) > 0 {
				msg += ": " + string(b)
			}
		}
	}
	return errors.New(msg)
}

func (s *httpSubscriber) serve() error {
	if s.longPoll {
		return s.servePolls()
	}
	return s.readLines(s.body)
}

// readLines hands every line of r to the connection state until r ends.
func (s *httpSubscriber) readLines(r *bufio.Reader) error {
	skip := false // inside a line longer than the buffer: not ours
	for {
		line, err := r.ReadSlice('\n')
		if len(line) > 0 && !skip && err != bufio.ErrBufferFull {
			s.cs.deliver(line)
		}
		switch err {
		case nil:
			skip = false
		case bufio.ErrBufferFull:
			skip = true
		default:
			return err
		}
	}
}

// servePolls runs the long-poll loop: read an answer, poll again.
func (s *httpSubscriber) servePolls() error {
	for {
		h, err := readHead(s.br)
		if err != nil {
			return err
		}
		if h.status != 200 {
			return s.statusError(h)
		}
		body := s.framedBody(h)
		if err := s.readLines(body); err != io.EOF {
			return err // readLines ends only with an error
		}
		s.cs.run.repolls.Add(1)
		if h.close || (!h.chunked && h.length < 0) {
			s.nc.Close()
			if err := s.connect(s.t.ctx); err != nil {
				return err
			}
		} else if _, err := s.nc.Write(s.t.req); err != nil {
			return err
		}
		if err := s.nc.SetDeadline(time.Time{}); err != nil {
			return err
		}
	}
}

func (s *httpSubscriber) stall(stop <-chan struct{}) bool {
	return stallConn(s.nc, stop)
}

func (s *httpSubscriber) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.nc != nil {
		s.nc.Close()
	}
}

// respHead is what the client needs from a response head.
type respHead struct {
	status  int
	reason  string // only set for non-200 answers
	chunked bool
	close   bool  // the server will close the connection after the body
	length  int64 // Content-Length, -1 if absent
}

var (
	errMalformedHead = errors.New("malformed response head")
	errHeadTooLong   = errors.New("response header line too long")
)

// readHead reads a response head (skipping 1xx interim responses).
func readHead(br *bufio.Reader) (respHead, error) {
	for {
		h, err := readOneHead(br)
		if err != nil || h.status >= 200 || h.status < 100 {
			return h, err
		}
	}
}

func readOneHead(br *bufio.Reader) (respHead, error) {
	h := respHead{length: -1}
	line, err := readHeadLine(br)
	if err != nil {
		return h, err
	}
	// HTTP/1.x SSS reason
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return h, errMalformedHead
	}
	code, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return h, errMalformedHead
	}
	h.status = code
	h.close = line[7] == '0'
	if code != 200 {
		h.reason = string(bytes.TrimSpace(line[12:]))
	}
	for {
		line, err := readHeadLine(br)
		if err != nil {
			return h, err
		}
		if len(line) == 0 {
			return h, nil
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return h, errMalformedHead
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			h.chunked = containsFold(value, "chunked")
		case bytes.EqualFold(name, []byte("Content-Length")):
			n, err := strconv.ParseInt(string(value), 10, 64)
			if err != nil || n < 0 {
				return h, errMalformedHead
			}
			h.length = n
		case bytes.EqualFold(name, []byte("Connection")):
			if containsFold(value, "close") {
				h.close = true
			} else if containsFold(value, "keep-alive") {
				h.close = false
			}
		}
	}
}

// readHeadLine reads one line of a response head without its CRLF.
func readHeadLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		return nil, errHeadTooLong
	}
	if err != nil {
		if err == io.EOF && len(line) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return trimEOL(line), nil
}

func trimEOL(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.TrimSuffix(b, []byte("\r"))
}

// containsFold reports whether b contains the ASCII lowercase word s,
// ignoring case.
func containsFold(b []byte, s string) bool {
	for i := 0; i+len(s) <= len(b); i++ {
		if bytes.EqualFold(b[i:i+len(s)], []byte(s)) {
			return true
		}
	}
	return false
}

// chunkedReader decodes an HTTP/1.1 chunked body from r. It never reads
// past the body's end, so the connection can carry another response.
type chunkedReader struct {
	r    *bufio.Reader
	n    int64 // data bytes left in the current chunk
	crlf bool  // the CRLF after the current chunk's data is still unread
	eof  bool
}

func (c *chunkedReader) reset(r *bufio.Reader) { *c = chunkedReader{r: r} }

// Read returns data of the current chunk, reading chunk heads as needed.
func (c *chunkedReader) Read(p []byte) (int, error) {
	if c.eof {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	for c.n == 0 {
		if c.crlf {
			line, err := readHeadLine(c.r)
			if err != nil {
				return 0, unexpected(err)
			}
			if len(line) != 0 {
				return 0, errors.New("chunked body: missing CRLF after chunk data")
			}
			c.crlf = false
		}
		line, err := readHeadLine(c.r)
		if err != nil {
			return 0, unexpected(err)
		}
		if i := bytes.IndexByte(line, ';'); i >= 0 {
			line = line[:i]
		}
		size, err := strconv.ParseInt(string(bytes.TrimSpace(line)), 16, 64)
		if err != nil || size < 0 {
			return 0, errors.New("chunked body: bad chunk size")
		}
		if size == 0 {
			for { // trailer fields, up to an empty line
				line, err := readHeadLine(c.r)
				if err != nil {
					return 0, unexpected(err)
				}
				if len(line) == 0 {
					break
				}
			}
			c.eof = true
			return 0, io.EOF
		}
		c.n, c.crlf = size, true
	}
	if int64(len(p)) > c.n {
		p = p[:c.n]
	}
	n, err := c.r.Read(p)
	c.n -= int64(n)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
