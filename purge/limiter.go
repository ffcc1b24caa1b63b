package purge

import (
	"sync"
	"sync/atomic"
	"time"
)

// Purger applies purges: the edge cache.
type Purger interface {
	// Purge purges the entries tagged with surrogate key.
	Purge(key string, soft bool)
	// PurgeURL purges every variant of url.
	PurgeURL(url string, soft bool)
}

// Target is what one purge is about: a surrogate key or a URL.
type Target struct {
	Key string `json:"key,omitempty"`
	URL string `json:"url,omitempty"`
}

func (t Target) name() string {
	if t.URL != "" {
		return "u:" + t.URL
	}
	return "k:" + t.Key
}

// Outcome says what happened to one purge request.
type Outcome struct {
	Target
	Soft bool `json:"soft"`
	// Ran: the purge ran now. Otherwise it is deferred to At, when one
	// trailing purge runs for every request folded into it.
	Ran bool `json:"-"`
	// Folded: another request of this interval already scheduled the
	// trailing purge; this one joined it.
	Folded bool      `json:"folded,omitempty"`
	At     time.Time `json:"at"`
}

// Limiter runs at most one purge per target per interval: the first
// purge of a target runs at once; later ones within the interval fold into
// one trailing purge at the interval's end, which always runs, so the last
// update is never lost. A trailing purge is hard if any folded request was
// hard.
type Limiter struct {
	interval time.Duration
	purger   Purger

	mu      sync.Mutex
	targets map[string]*targetState
	sweepAt int
	closed  bool
	timers  sync.WaitGroup

	requested, run, folded, deferred atomic.Uint64
}

type targetState struct {
	t       Target
	lastRun time.Time
	pending bool
	soft    bool
	due     time.Time
	timer   *time.Timer
}

// NewLimiter returns a Limiter for interval (zero: no limit, every purge
// runs at once).
func NewLimiter(interval time.Duration, p Purger) *Limiter {
	return &Limiter{interval: interval, purger: p, targets: map[string]*targetState{}, sweepAt: 1024}
}

// Request purges t now, or defers it to the end of t's interval.
func (l *Limiter) Request(t Target, soft bool) Outcome {
	l.requested.Add(1)
	now := time.Now()
	out := Outcome{Target: t, Soft: soft, At: now}
	l.mu.Lock()
	if l.interval <= 0 || l.closed {
		l.mu.Unlock()
		l.apply(t, soft)
		out.Ran = true
		return out
	}
	name := t.name()
	st := l.targets[name]
	switch {
	case st == nil || (!st.pending && now.Sub(st.lastRun) >= l.interval):
		if st == nil {
			// Swept before it is added: the new target has no lastRun
			// yet and would be forgotten at once.
			l.sweep(now)
			st = &targetState{t: t}
			l.targets[name] = st
		}
		st.lastRun = now
		l.mu.Unlock()
		l.apply(t, soft)
		out.Ran = true
	case st.pending:
		st.soft = st.soft && soft
		out.Soft, out.Folded, out.At = st.soft, true, st.due
		l.mu.Unlock()
		l.folded.Add(1)
	default:
		st.pending, st.soft, st.due = true, soft, st.lastRun.Add(l.interval)
		l.timers.Add(1)
		st.timer = time.AfterFunc(st.due.Sub(now), func() { l.fire(name) })
		out.At = st.due
		l.mu.Unlock()
		l.deferred.Add(1)
	}
	return out
}

// fire runs a trailing purge.
func (l *Limiter) fire(name string) {
	defer l.timers.Done()
	l.mu.Lock()
	st := l.targets[name]
	if st == nil || !st.pending {
		l.mu.Unlock()
		return
	}
	st.pending, st.lastRun = false, time.Now()
	t, soft := st.t, st.soft
	l.mu.Unlock()
	l.apply(t, soft)
}

func (l *Limiter) apply(t Target, soft bool) {
	l.run.Add(1)
	if t.URL != "" {
		l.purger.PurgeURL(t.URL, soft)
		return
	}
	l.purger.Purge(t.Key, soft)
}

// sweep forgets targets whose interval is over; called with l.mu held.
func (l *Limiter) sweep(now time.Time) {
	if len(l.targets) < l.sweepAt {
		return
	}
	for name, st := range l.targets {
		if !st.pending && now.Sub(st.lastRun) >= l.interval {
			delete(l.targets, name)
		}
	}
	l.sweepAt = max(1024, 2*len(l.targets))
}

// Close runs every pending trailing purge now (none is lost) and makes
// later requests run at once.
func (l *Limiter) Close() {
	l.mu.Lock()
	l.closed = true
	var pending []*targetState
	for _, st := range l.targets {
		if st.pending && st.timer.Stop() {
			st.pending = false
			l.timers.Done()
			pending = append(pending, st)
		}
	}
	l.mu.Unlock()
	for _, st := range pending {
		l.apply(st.t, st.soft)
	}
	l.timers.Wait()
}

// Stats counts purge requests by what became of them.
type Stats struct {
	// Requested counts purge requests (one per key or URL).
	Requested uint64 `json:"requested"`
	// Run counts purges applied to the cache, leading and trailing.
	Run uint64 `json:"run"`
	// Deferred counts requests that scheduled a trailing purge.
	Deferred uint64 `json:"deferred"`
	// Folded counts requests that joined an already scheduled one.
	Folded uint64 `json:"folded"`
}

// Stats returns a snapshot of the counters.
func (l *Limiter) Stats() Stats {
	return Stats{Requested: l.requested.Load(), Run: l.run.Load(), Deferred: l.deferred.Load(), Folded: l.folded.Load()}
}
