//go:build !unix

package node

import (
	"net"
	"syscall"
	"testing"
)

// setRcvBuf leaves the receive buffer as it is where SO_RCVBUF is not set
// this way; tests that use it do not depend on its size.
func setRcvBuf(int) func(network, address string, c syscall.RawConn) error {
	return nil
}

// holdRefusing does nothing here: addr, just freed, stays free.
func holdRefusing(testing.TB, net.Addr) {}
