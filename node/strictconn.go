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
	done bool    // the first header block ended (or was refused)
	last [3]byte // the 3 bytes read before, for an end split between reads
}

// Read reads and inspects until the first header block has ended: the
// first "\n" that ends either "\r\n\r\n" (the end) or "\n\n" (a bare LF)
// decides, since neither can end where the other does.
func (c *strictConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if c.done || n == 0 {
		return n, err
	}
	b := p[:n]
	for len(b) > 0 && !c.done {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			c.push(b)
			break
		}
		c.push(b[:i])
		switch {
		case c.last[2] == '\n':
			c.done = true
			return 0, errBareLF
		case c.last == [3]byte{'\r', '\n', '\r'}:
			c.done = true
		}
		c.push(b[i : i+1])
		b = b[i+1:]
	}
	return n, err
}

// push records b as the latest bytes read.
func (c *strictConn) push(b []byte) {
	if len(b) >= 3 {
		copy(c.last[:], b[len(b)-3:])
		return
	}
	k := copy(c.last[:], c.last[len(b):])
	copy(c.last[k:], b)
}

// UnsafeConn returns the wrapped connection (held connections write to
// the socket underneath).
func (c *strictConn) UnsafeConn() net.Conn { return c.Conn }
