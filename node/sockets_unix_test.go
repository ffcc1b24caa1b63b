//go:build unix

package node

import (
	"net"
	"syscall"
	"testing"
)

// setRcvBuf sets a socket's receive buffer (SO_RCVBUF) from a Dialer's
// or ListenConfig's Control, before connecting, so that the window
// advertised from the start is that small. Setting it also stops the
// kernel from growing it.
func setRcvBuf(bytes int) func(network, address string, c syscall.RawConn) error {
	return func(_, _ string, c syscall.RawConn) error {
		var err error
		if cerr := c.Control(func(fd uintptr) {
			err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, bytes)
		}); cerr != nil {
			return cerr
		}
		return err
	}
}

// holdRefusing binds a TCP socket to addr (just freed) without listening
// on it, until the test ends: connections to addr are refused, and no
// other socket can take the port meanwhile.
func holdRefusing(tb testing.TB, addr net.Addr) {
	tb.Helper()
	ta, ok := addr.(*net.TCPAddr)
	ip4 := ta.IP.To4()
	if !ok || ip4 == nil {
		tb.Fatalf("holdRefusing: %v is not a TCP/IPv4 address", addr)
	}
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { syscall.Close(fd) })
	syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1) // as Go's listeners do
	sa := &syscall.SockaddrInet4{Port: ta.Port}
	copy(sa.Addr[:], ip4)
	if err := syscall.Bind(fd, sa); err != nil {
		tb.Fatalf("holding %v: %v", addr, err)
	}
}
