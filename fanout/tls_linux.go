package fanout

import "golang.org/x/sys/unix"

// sendRoom is the send-buffer space of socket fd free for new data,
// counted conservatively: the kernel charges buffer memory at up to about
// twice the payload, so only half of SO_SNDBUF is treated as usable, and
// SIOCOUTQ counts bytes sent but not yet acknowledged as well as unsent.
func sendRoom(fd uintptr) int {
	size, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF)
	if err != nil {
		return 0
	}
	queued, err := unix.IoctlGetInt(int(fd), unix.SIOCOUTQ)
	if err != nil {
		return 0
	}
	return size/2 - queued
}
