//go:build linux

package connwatch

import (
	"errors"
	"fmt"
	"io"
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
	funcs map[uint64]callback
	done  chan struct{}
	once  sync.Once
}

// callback is one registration's function: run once on hang-up (Add), or
// on every readiness until removed (AddReadable: then it reports whether
// it stopped with bytes maybe left to read).
type callback struct {
	f    func()
	more func() bool
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
	w := &Watcher{epfd: epfd, wakeR: efd, next: wakeToken, funcs: map[uint64]callback{}, done: make(chan struct{})}
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
	return w.add(c, callback{f: onGone}, unix.EPOLLRDHUP|unix.EPOLLET)
}

// AddReadable calls onReadable on the watcher's goroutine whenever c has
// bytes to read or its peer hangs up or the socket fails, until Remove.
// It is edge-triggered: onReadable reads c until it would block (see
// ReadNonblock) and returns false, or stops earlier, after a bounded
// amount of work, and returns true: it is then called again once every
// other socket ready meanwhile has had its turn. So one client sending
// without pause cannot hold the watcher (and every other socket's
// callbacks) for itself. A socket that is readable when added is
// reported at once. onReadable must not block.
func (w *Watcher) AddReadable(c net.Conn, onReadable func() (more bool)) (Token, error) {
	return w.add(c, callback{more: onReadable}, unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLET)
}

func (w *Watcher) add(c net.Conn, cb callback, events uint32) (Token, error) {
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
	w.funcs[t] = cb
	w.mu.Unlock()

	ev := unix.EpollEvent{Events: events}
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

// ReadNonblock reads from c what it has without waiting: ErrWouldBlock
// when it has nothing yet, io.EOF once the peer has closed its side.
func ReadNonblock(c net.Conn, p []byte) (int, error) {
	raw, err := rawConn(c)
	if err != nil {
		return 0, err
	}
	var n int
	var rerr error
	err = raw.Read(func(fd uintptr) bool {
		for {
			n, rerr = unix.Read(int(fd), p)
			if rerr != unix.EINTR {
				return true // never wait in the runtime's poller
			}
		}
	})
	switch {
	case err != nil:
		return 0, err
	case rerr == unix.EAGAIN:
		return 0, ErrWouldBlock
	case rerr != nil:
		return 0, rerr
	case n == 0 && len(p) > 0:
		return 0, io.EOF
	}
	return n, nil
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

func (w *Watcher) forget(t uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.funcs, t)
}

// due returns the callback of registration t; a one-time callback is
// forgotten.
func (w *Watcher) due(t uint64) callback {
	w.mu.Lock()
	defer w.mu.Unlock()
	cb, ok := w.funcs[t]
	if ok && cb.more == nil {
		delete(w.funcs, t)
	}
	return cb
}

// call runs registration t's callback; it reports whether t asked to be
// called again (AddReadable's more).
func (w *Watcher) call(t uint64) bool {
	cb := w.due(t)
	switch {
	case cb.more != nil:
		return cb.more()
	case cb.f != nil:
		cb.f()
	}
	return false
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

// run calls the callbacks of ready sockets. Readable sockets whose
// callback stopped with more to read wait in a round-robin list, served
// after each epoll_wait (which then only polls), one turn each.
func (w *Watcher) run() {
	defer close(w.done)
	events := make([]unix.EpollEvent, 256)
	var again, next []uint64
	queued := map[uint64]bool{}
	for {
		timeout := -1
		if len(again) > 0 {
			timeout = 0
		}
		n, err := unix.EpollWait(w.epfd, events, timeout)
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
			if !queued[t] && w.call(t) {
				queued[t] = true
				next = append(next, t)
			}
		}
		for _, t := range again {
			if w.call(t) {
				next = append(next, t)
			} else {
				delete(queued, t)
			}
		}
		again, next = next, again[:0]
	}
}

func rawConn(c net.Conn) (syscall.RawConn, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil, errors.New("connwatch: connection has no file descriptor")
	}
	return sc.SyscallConn()
}
