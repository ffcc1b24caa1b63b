package fanout

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// writeOnce makes one write(2) or writev(2) call on the non-blocking
// socket fd without handing the goroutine's P to another thread for
// it: the call never waits (a full socket buffer is EAGAIN), and a
// writer shard makes tens of thousands of them per fan-out, so the
// scheduler's syscall bookkeeping and the P hand-offs it causes when a
// call takes more than a few µs would cost more than they save.
func (w *SocketWriter) writeOnce(fd uintptr) (int, error) {
	var r uintptr
	var errno unix.Errno
	if w.vecs != nil {
		w.iov = w.iov[:0]
		for _, b := range w.vecs {
			if len(b) > 0 {
				v := unix.Iovec{Base: &b[0]}
				v.SetLen(len(b))
				w.iov = append(w.iov, v)
			}
		}
		if len(w.iov) == 0 {
			return 0, nil
		}
		r, _, errno = unix.RawSyscall(unix.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&w.iov[0])), uintptr(len(w.iov)))
		clear(w.iov) // no references to frames past the call
	} else {
		if len(w.bufs) == 0 {
			return 0, nil
		}
		r, _, errno = unix.RawSyscall(unix.SYS_WRITE, fd, uintptr(unsafe.Pointer(&w.bufs[0])), uintptr(len(w.bufs)))
	}
	if errno != 0 {
		return 0, errno
	}
	return int(r), nil
}
