package loadtest

import (
	"context"
	"net"
	"time"
)

// dialers connects subscribers, rotating their source address over
// 127.0.0.1 … 127.0.0.K.
type dialers struct {
	d []*net.Dialer
}

// newDialers prepares one dialer per source address; k <= 1 means a
// single dialer that lets the kernel pick the source address.
func newDialers(k int, timeout time.Duration) *dialers {
	if k <= 1 {
		return &dialers{d: []*net.Dialer{{Timeout: timeout}}}
	}
	ds := &dialers{d: make([]*net.Dialer, k)}
	for i := range ds.d {
		ds.d[i] = &net.Dialer{
			Timeout:   timeout,
			LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(i+1))},
			// Bind the address without reserving a port at bind(2); the
			// port is chosen at connect(2), per destination.
			Control: bindNoPort,
		}
	}
	return ds
}

// dial connects connection number i to addr (host:port).
func (ds *dialers) dial(ctx context.Context, i int, addr string) (net.Conn, error) {
	return ds.d[i%len(ds.d)].DialContext(ctx, "tcp", addr)
}
