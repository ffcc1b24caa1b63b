package fanout

import (
	"errors"
	"net"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// maxIovecs bounds the buffers passed to one writev(2) call.
const maxIovecs = 64

// SocketWriter writes to a connected socket without blocking the caller:
// the TryWrite half of a Transport for TCP and Unix connections. It is used
// by one writer at a time.
type SocketWriter struct {
	conn    net.Conn
	raw     syscall.RawConn
	timeout time.Duration

	// State of the write in progress, kept here so that the callback
	// passed to raw.Write is allocated once, not per write.
	bufs []byte
	vecs [][]byte
	n    int
	err  error
	op   func(fd uintptr) bool
}

// ErrNotSocket is returned for connections without a file descriptor.
var ErrNotSocket = errors.New("fanout: connection has no file descriptor")

// NewSocketWriter returns a writer for c, whose blocking writes give up
// after writeTimeout (zero: 10s).
func NewSocketWriter(c net.Conn, writeTimeout time.Duration) (*SocketWriter, error) {
	raw, err := rawConn(c)
	if err != nil {
		return nil, err
	}
	w := &SocketWriter{conn: c, raw: raw, timeout: orDefaultTimeout(writeTimeout)}
	w.op = w.write
	return w, nil
}

// rawConn is c's descriptor access, for connections that have one.
func rawConn(c net.Conn) (syscall.RawConn, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil, ErrNotSocket
	}
	return sc.SyscallConn()
}

// orDefaultTimeout is d, or 10s when d is not positive.
func orDefaultTimeout(d time.Duration) time.Duration {
	if d <= 0 {
		return 10 * time.Second
	}
	return d
}

// TryWrite writes a prefix of bufs with one write(2) or writev(2) and
// returns the bytes written; a full socket buffer is not an error.
func (w *SocketWriter) TryWrite(bufs [][]byte) (int, error) {
	total := 0
	for len(bufs) > 0 {
		k := min(len(bufs), maxIovecs)
		if k == 1 {
			w.bufs, w.vecs = bufs[0], nil
		} else {
			w.bufs, w.vecs = nil, bufs[:k]
		}
		w.n, w.err = 0, nil
		if err := w.raw.Write(w.op); err != nil {
			return total, err
		}
		n, err := w.n, w.err
		w.bufs, w.vecs = nil, nil
		total += n
		if err != nil {
			return total, err
		}
		want := 0
		for _, b := range bufs[:k] {
			want += len(b)
		}
		if n < want {
			return total, nil
		}
		bufs = bufs[k:]
	}
	return total, nil
}

// write runs inside raw.Write with the socket's descriptor. It makes one
// attempt and reports done, so raw.Write never waits for writability.
func (w *SocketWriter) write(fd uintptr) bool {
	for {
		var n int
		var err error
		if w.vecs != nil {
			n, err = unix.Writev(int(fd), w.vecs)
		} else {
			n, err = unix.Write(int(fd), w.bufs)
		}
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			w.n, w.err = 0, nil
		case err != nil:
			w.n, w.err = 0, err
		default:
			w.n = n
		}
		return true
	}
}

// WriteBlocking writes all of b, waiting at most the write timeout.
func (w *SocketWriter) WriteBlocking(b []byte) error {
	if err := w.conn.SetWriteDeadline(time.Now().Add(w.timeout)); err != nil {
		return err
	}
	_, err := w.conn.Write(b)
	return err
}
