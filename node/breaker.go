package node

import (
	"errors"
	"slices"
	"sync"
	"time"
)

// errCircuitOpen fails origin requests fast while the origin is down.
var errCircuitOpen = errors.New("origin is failing; requests paused while it is probed")

// breaker stops sending every request to a dead origin: after Failures
// failures in a row with no answer in between (the origin unreachable,
// or not answering requests for several URLs: see originHealth), it
// opens, requests fail at once (and the cache serves stale entries), and
// a background prober asks the origin with growing pauses until it
// answers again. A run with requests that got no answer among its
// failures must also have lasted minFailingFor.
type breaker struct {
	failures int           // threshold; 0 disables the breaker
	minPause time.Duration // first pause before a probe
	maxPause time.Duration

	mu     sync.Mutex
	count  int       // failures in the current run
	silent int       // of them, requests that got no answer (keyed)
	since  time.Time // the run's first failure
	keys   []string  // the requests that failed in the run, for failures counted once per request
	open   bool      // requests fail fast
	opened chan struct{}
}

// minFailingFor is how long a run of failures with requests that got no
// answer must last before it opens the breaker: a burst of them at one
// moment (requests for several URLs cut at once) is not an origin gone,
// an origin that has answered nothing for a second while they failed is.
// Refused connections need no time: nothing listens.
const minFailingFor = time.Second

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

// record counts one origin outcome: ok (an answer) ends the run of
// failures, a failure counts toward the threshold, and one that finds it
// reached opens the breaker and wakes the prober. A failure with a key
// (a request that got no answer) counts once per key in a run, and a run
// with such failures must be minFailingFor old: one URL failing again
// and again, or several at one moment, do not open the breaker by
// themselves; failures across URLs for a second with no answer do.
func (b *breaker) record(ok bool, key string) {
	if b.failures <= 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if ok {
		b.count, b.silent, b.keys = 0, 0, b.keys[:0]
		return
	}
	now := time.Now()
	if b.count == 0 {
		b.since = now
	}
	if key == "" || !slices.Contains(b.keys, key) {
		b.count++
		if key != "" {
			b.silent++
			if len(b.keys) < b.failures {
				b.keys = append(b.keys, key)
			}
		}
	}
	if !b.open && b.count >= b.failures && (b.silent == 0 || now.Sub(b.since) >= minFailingFor) {
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
	b.open, b.count, b.silent, b.keys = false, 0, 0, b.keys[:0]
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
