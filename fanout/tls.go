package fanout

import (
	"crypto/tls"
	"syscall"
	"time"
)

// TLSWriter is the TryWrite half of a Transport for TLS connections.
//
// A tls.Conn cannot write part of a record and hand back the rest, and a
// write that times out breaks it for good, so TryWrite cannot simply try.
// Instead it asks the kernel how much of the socket's send buffer is in
// use (SIOCOUTQ against SO_SNDBUF) and writes only when everything fits
// with room to spare, so the write completes at once; otherwise it writes
// nothing, and the pool hands the connection to a blocking writer of its
// own (Conn.block), exactly as for a socket that stopped keeping up.
type TLSWriter struct {
	conn    *tls.Conn
	raw     syscall.RawConn
	timeout time.Duration

	buf  []byte // bufs joined, so that a write makes few records
	room int    // set by the probe callback
	op   func(fd uintptr)
}

// tlsOverhead bounds what TLS adds to each record (header, MAC/tag,
// padding) with a margin; tlsRecord is the largest record payload.
const (
	tlsOverhead = 64
	tlsRecord   = 16 << 10
)

// NewTLSWriter returns a writer for c, whose blocking writes give up after
// writeTimeout (zero: 10s). The handshake must be complete.
func NewTLSWriter(c *tls.Conn, writeTimeout time.Duration) (*TLSWriter, error) {
	raw, err := rawConn(c.NetConn())
	if err != nil {
		return nil, err
	}
	w := &TLSWriter{conn: c, raw: raw, timeout: orDefaultTimeout(writeTimeout)}
	w.op = w.probe
	return w, nil
}

// probe sets w.room to the send-buffer bytes free for new data.
func (w *TLSWriter) probe(fd uintptr) { w.room = sendRoom(fd) }

// TryWrite writes all of bufs if the socket can take them without
// blocking, else nothing.
func (w *TLSWriter) TryWrite(bufs [][]byte) (int, error) {
	total := 0
	for _, b := range bufs {
		total += len(b)
	}
	if total == 0 {
		return 0, nil
	}
	if err := w.raw.Control(w.op); err != nil {
		return 0, err
	}
	if total+(total/tlsRecord+1)*tlsOverhead > w.room {
		return 0, nil
	}
	w.buf = w.buf[:0]
	for _, b := range bufs {
		w.buf = append(w.buf, b...)
	}
	err := w.write(w.buf)
	if cap(w.buf) > 64<<10 { // do not keep a burst's buffer for good
		w.buf = nil
	}
	if err != nil {
		return 0, err
	}
	return total, nil
}

// WriteBlocking writes all of b, waiting at most the write timeout.
func (w *TLSWriter) WriteBlocking(b []byte) error { return w.write(b) }

func (w *TLSWriter) write(b []byte) error {
	if err := w.conn.SetWriteDeadline(time.Now().Add(w.timeout)); err != nil {
		return err
	}
	_, err := w.conn.Write(b)
	return err
}
