//go:build unix

package demo

import (
	"io"
	"net/netip"
	"syscall"
)

// holdPort binds a socket to addr (an IPv4 address and port) without
// listening on it, so that connections to addr are refused and no other
// socket takes the port while the origin is down. Nil if that fails: the
// origin is down all the same, only the port is not kept.
func holdPort(addr string) io.Closer {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || !ap.Addr().Is4() {
		return nil
	}
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		return nil
	}
	syscall.CloseOnExec(fd)
	// SO_REUSEADDR, as Go's listeners set it: the closed origin's
	// connections in TIME_WAIT do not stop the bind.
	if syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1) != nil ||
		syscall.Bind(fd, &syscall.SockaddrInet4{Addr: ap.Addr().As4(), Port: int(ap.Port())}) != nil {
		syscall.Close(fd)
		return nil
	}
	return heldPort(fd)
}

// heldPort is the socket holdPort bound.
type heldPort int

// Close releases the port.
func (h heldPort) Close() error { return syscall.Close(int(h)) }
