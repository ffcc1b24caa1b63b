//go:build !linux

package connwatch

import (
	"errors"
	"net"
	"sync"
)

// Watcher is a stand-in on systems without epoll: it reports nothing, so
// departed clients are noticed only when a write to them fails.
type Watcher struct {
	mu   sync.Mutex
	next uint64
	n    int
}

// Token identifies one registration.
type Token uint64

// ErrClosed is returned by Add after Close.
var ErrClosed = errors.New("connwatch: closed")

// New returns a Watcher.
func New() (*Watcher, error) { return &Watcher{}, nil }

// Add registers c; onGone is never called on this system.
func (w *Watcher) Add(c net.Conn, onGone func()) (Token, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.next++
	w.n++
	return Token(w.next), nil
}

// AddReadable is not supported on this system: callers read with a
// goroutine of their own.
func (w *Watcher) AddReadable(c net.Conn, onReadable func() (more bool)) (Token, error) {
	return 0, ErrUnsupported
}

// ReadNonblock is not supported on this system.
func ReadNonblock(c net.Conn, p []byte) (int, error) { return 0, ErrUnsupported }

// Remove forgets c.
func (w *Watcher) Remove(c net.Conn, t Token) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.n--
}

// Len returns how many sockets are registered.
func (w *Watcher) Len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n
}

// Close stops the watcher.
func (w *Watcher) Close() error { return nil }
