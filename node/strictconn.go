package node

import (
	"bytes"
	"crypto/tls"
	"errors"
	"net"
)

// errBareLF fails the read of a request whose header lines end with a
// bare LF: fasthttp would wait for a CRLF CRLF that never comes until the
// read timeout, holding the connection; it is answered 400 at once.
var errBareLF = errors.New("request header lines end with a bare LF")

// strictListener wraps the client listeners' connections in strictConn.
type strictListener struct{ net.Listener }

// Accept returns the next connection, wrapped (a TLS connection keeps
// showing its TLS state).
func (l strictListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*tls.Conn); ok {
		return strictTLSConn{strictConn: &strictConn{Conn: c}, tls: tc}, nil
	}
	return &strictConn{Conn: c}, nil
}

// strictTLSConn is a strictConn over TLS.
type strictTLSConn struct {
	*strictConn
	tls *tls.Conn
}

// Handshake runs the TLS handshake.
func (c strictTLSConn) Handshake() error { return c.tls.Handshake() }

// ConnectionState is the TLS state.
func (c strictTLSConn) ConnectionState() tls.ConnectionState { return c.tls.ConnectionState() }

// strictConn checks the header block of a connection's first request for
// bare-LF line ends ("\n\n" before any "\r\n\r\n"). Later requests on a
// kept-alive connection and bodies are not inspected: the connection's
// bytes are only framed by fasthttp.
type strictConn struct {
	net.Conn
	done bool   // the first header block ended (or was refused)
	tail []byte // the last bytes of the previous read, for a split "\n\n"
}

// Read reads and inspects until the first header block has ended.
func (c *strictConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if c.done || n == 0 {
		return n, err
	}
	b := p[:n]
	if len(c.tail) > 0 { // only when a header block spans reads
		b = append(c.tail, b...)
	}
	end := bytes.Index(b, []byte("\r\n\r\n"))
	lf := bytes.Index(b, []byte("\n\n"))
	switch {
	case lf >= 0 && (end < 0 || lf < end):
		c.done = true
		return 0, errBareLF
	case end >= 0:
		c.done = true
	default:
		c.tail = append(c.tail[:0], b[max(len(b)-3, 0):]...)
	}
	return n, err
}

// UnsafeConn returns the wrapped connection (held connections write to
// the socket underneath).
func (c *strictConn) UnsafeConn() net.Conn { return c.Conn }
