//go:build !linux

package fanout

// sendRoom is 0 where the kernel cannot be asked: every TLS write goes
// through the connection's blocking writer.
func sendRoom(fd uintptr) int { return 0 }
