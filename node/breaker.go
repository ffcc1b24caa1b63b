package node

import (
	"errors"
	"sync"
	"time"
)

// errCircuitOpen fails origin requests fast while the origin is down.
var errCircuitOpen = errors.New("origin is failing; requests paused while it is probed")

// breaker stops sending every request to a dead origin: after Failures
// consecutive failures (transport errors or 5xx) it opens, requests fail
// at once (and the cache serves stale entries), and a background prober
// asks the origin with growing pauses until it answers again.
type breaker struct {
	failures int           // threshold; 0 disables the breaker
	minPause time.Duration // first pause before a probe
	maxPause time.Duration

	mu     sync.Mutex
	count  int  // consecutive failures
	open   bool // requests fail fast
	opened chan struct{}
}

func newBreaker(failures int, minPause, maxPause time.Duration) *breaker {
	return &breaker{failures: failures, minPause: minPause, maxPause: maxPause, opened: make(chan struct{}, 1)}
}

// allow reports whether a request may go to the origin.
func (b *breaker) allow() bool {
	if b.failures <= 0 {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return !b.open
}

// record counts one origin outcome; the failure that crosses the
// threshold opens the breaker and wakes the prober.
func (b *breaker) record(ok bool) {
	if b.failures <= 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if ok {
		b.count = 0
		return
	}
	b.count++
	if !b.open && b.count >= b.failures {
		b.open = true
		select {
		case b.opened <- struct{}{}:
		default:
		}
	}
}

// close ends an open period: the origin answered a probe.
func (b *breaker) close() {
	b.mu.Lock()
	b.open, b.count = false, 0
	b.mu.Unlock()
}

// isOpen reports the breaker's state.
func (b *breaker) isOpen() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.open
}

// probeLoop waits for the breaker to open, then calls probe with doubling
// pauses until it succeeds, until stop is closed.
func (b *breaker) probeLoop(stop <-chan struct{}, probe func() bool) {
	for {
		select {
		case <-stop:
			return
		case <-b.opened:
		}
		for pause := b.minPause; ; pause = min(2*pause, b.maxPause) {
			select {
			case <-stop:
				return
			case <-time.After(pause):
			}
			if probe() {
				b.close()
				break
			}
		}
	}
}
