//go:build !linux

package fanout

import "golang.org/x/sys/unix"

// writeOnce makes one write(2) or writev(2) call on the non-blocking
// socket fd.
func (w *SocketWriter) writeOnce(fd uintptr) (int, error) {
	if w.vecs != nil {
		return unix.Writev(int(fd), w.vecs)
	}
	return unix.Write(int(fd), w.bufs)
}
