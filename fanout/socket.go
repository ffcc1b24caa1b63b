package fanout

import (
	"errors"
	"net"
	"sync"
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
}

// socketOp is the state of one TryWrite, kept apart from SocketWriter so
// that an idle connection holds none of it: ops are pooled (socketOps),
// and each carries the callback passed to raw.Write, allocated once.
type socketOp struct {
	bufs []byte
	vecs [][]byte
	n    int
	err  error
	fn   func(fd uintptr) bool
}

// socketOps recycles socketOps between writes (on every connection).
var socketOps = sync.Pool{New: func() any {
	op := new(socketOp)
	op.fn = op.write
	return op
}}

// ErrNotSocket is returned for connections without a file descriptor.
var ErrNotSocket = errors.New("fanout: connection has no file descriptor")

// NewSocketWriter returns a writer for c, whose blocking writes give up
// after writeTimeout (zero: 10s).
func NewSocketWriter(c net.Conn, writeTimeout time.Duration) (*SocketWriter, error) {
	raw, err := rawConn(c)
	if err != nil {
		return nil, err
	}
	return &SocketWriter{conn: c, raw: raw, timeout: orDefaultTimeout(writeTimeout)}, nil
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
	op := socketOps.Get().(*socketOp)
	defer socketOps.Put(op)
	total := 0
	for len(bufs) > 0 {
		k := min(len(bufs), maxIovecs)
		if k == 1 {
			op.bufs, op.vecs = bufs[0], nil
		} else {
			op.bufs, op.vecs = nil, bufs[:k]
		}
		op.n, op.err = 0, nil
		err := w.raw.Write(op.fn)
		n, werr := op.n, op.err
		op.bufs, op.vecs, op.err = nil, nil, nil // keep no caller's buffers in the pool
		if err != nil {
			return total, err
		}
		total += n
		if werr != nil {
			return total, werr
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
func (op *socketOp) write(fd uintptr) bool {
	for {
		var n int
		var err error
		if op.vecs != nil {
			n, err = unix.Writev(int(fd), op.vecs)
		} else {
			n, err = unix.Write(int(fd), op.bufs)
		}
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			op.n, op.err = 0, nil
		case err != nil:
			op.n, op.err = 0, err
		default:
			op.n = n
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
