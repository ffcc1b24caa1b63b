// Package testnet holds the loopback address helpers several packages'
// tests share: an address that refuses connections, and holding a
// memberlist address (TCP and UDP) for a member that must come back on
// it. It is for tests only; nothing else imports it.
package testnet

import (
	"net"
	"sync"
	"testing"
	"time"
)

// ReserveAddr holds a memberlist address (its TCP and UDP port, as
// memberlist binds both) from the moment it is free, waiting up to wait
// for that, until the returned release is called (or the test ends): for
// a member that must come back on the address it had, the port is never
// left for another socket to take in between.
func ReserveAddr(tb testing.TB, addr string, wait time.Duration) (release func()) {
	tb.Helper()
	var ln net.Listener
	var pc net.PacketConn
	var once sync.Once
	release = func() {
		once.Do(func() {
			if ln != nil {
				ln.Close()
			}
			if pc != nil {
				pc.Close()
			}
		})
	}
	tb.Cleanup(release)
	// The port is free once the member's sockets are closed; retrying
	// covers a close in flight.
	deadline := time.Now().Add(wait)
	for {
		if ln == nil {
			ln, _ = net.Listen("tcp", addr)
		}
		if ln != nil && pc == nil {
			pc, _ = net.ListenPacket("udp", addr)
		}
		if ln != nil && pc != nil {
			return release
		}
		if time.Now().After(deadline) {
			tb.Fatalf("the address %s did not become free within %v", addr, wait)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
