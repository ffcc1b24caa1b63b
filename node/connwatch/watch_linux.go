//go:build linux

package connwatch

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// Watcher watches sockets for the peer closing or resetting them.
type Watcher struct {
	epfd  int
	wakeR int // eventfd that interrupts epoll_wait on Close
	mu    sync.Mutex
	next  uint64
	funcs map[uint64]func()
	done  chan struct{}
	once  sync.Once
}

// Token identifies one registration; it is never reused, so an event for
// a socket that has since been closed (and its descriptor reused) is
// ignored.
type Token uint64

// ErrClosed is returned by Add after Close.
var ErrClosed = errors.New("connwatch: closed")

const wakeToken = 0

// New creates a Watcher and starts its goroutine; Close stops it.
func New() (*Watcher, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("connwatch: epoll_create: %w", err)
	}
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("connwatch: eventfd: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN}
	setToken(&ev, wakeToken)
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, efd, &ev); err != nil {
		unix.Close(efd)
		unix.Close(epfd)
		return nil, fmt.Errorf("connwatch: epoll_ctl: %w", err)
	}
	w := &Watcher{epfd: epfd, wakeR: efd, next: wakeToken, funcs: map[uint64]func(){}, done: make(chan struct{})}
	go w.run()
	return w, nil
}

func setToken(ev *unix.EpollEvent, t uint64) {
	ev.Fd = int32(uint32(t))
	ev.Pad = int32(uint32(t >> 32))
}

func getToken(ev *unix.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}

// Add calls onGone (once, on the watcher's goroutine) when c's peer hangs
// up or the socket fails. onGone must not block.
func (w *Watcher) Add(c net.Conn, onGone func()) (Token, error) {
	raw, err := rawConn(c)
	if err != nil {
		return 0, err
	}
	w.mu.Lock()
	if w.funcs == nil {
		w.mu.Unlock()
		return 0, ErrClosed
	}
	w.next++
	t := w.next
	w.funcs[t] = onGone
	w.mu.Unlock()

	ev := unix.EpollEvent{Events: unix.EPOLLRDHUP | unix.EPOLLET}
	setToken(&ev, t)
	var ctlErr error
	err = raw.Control(func(fd uintptr) {
		ctlErr = unix.EpollCtl(w.epfd, unix.EPOLL_CTL_ADD, int(fd), &ev)
	})
	if err == nil {
		err = ctlErr
	}
	if err != nil {
		w.forget(t)
		return 0, fmt.Errorf("connwatch: add: %w", err)
	}
	return Token(t), nil
}

// Remove stops watching c. Call it before closing c or handing it on.
func (w *Watcher) Remove(c net.Conn, t Token) {
	w.forget(uint64(t))
	if raw, err := rawConn(c); err == nil {
		raw.Control(func(fd uintptr) {
			unix.EpollCtl(w.epfd, unix.EPOLL_CTL_DEL, int(fd), nil)
		})
	}
}

func (w *Watcher) forget(t uint64) func() {
	w.mu.Lock()
	defer w.mu.Unlock()
	f := w.funcs[t]
	delete(w.funcs, t)
	return f
}

// Len returns how many sockets are watched.
func (w *Watcher) Len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.funcs)
}

// Close stops the watcher; callbacks not yet run are dropped.
func (w *Watcher) Close() error {
	w.once.Do(func() {
		w.mu.Lock()
		w.funcs = nil
		w.mu.Unlock()
		one := []byte{1, 0, 0, 0, 0, 0, 0, 0}
		unix.Write(w.wakeR, one)
		<-w.done
		unix.Close(w.wakeR)
		unix.Close(w.epfd)
	})
	return nil
}

func (w *Watcher) run() {
	defer close(w.done)
	events := make([]unix.EpollEvent, 256)
	for {
		n, err := unix.EpollWait(w.epfd, events, -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return
		}
		for i := range n {
			t := getToken(&events[i])
			if t == wakeToken {
				return
			}
			if f := w.forget(t); f != nil {
				f()
			}
		}
	}
}

func rawConn(c net.Conn) (syscall.RawConn, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil, errors.New("connwatch: connection has no file descriptor")
	}
	return sc.SyscallConn()
}
