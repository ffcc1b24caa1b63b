package fanout

import (
	"sync"
	"time"
)

// Positions in time: PositionAt maps a moment to the hub position of
// that moment, for data fetched elsewhere (another tier member asked the
// origin N ms ago) whose messages since must be replayed on this node.
// Every position is assigned under positionLog.mu, with the time its
// message was published (no later than any later message's); two rings
// keep samples of them, a fine one (one sample per millisecond at most:
// the last seconds of a busy hub, much longer for a quiet one) and a
// coarse one (one per second: about an hour). A moment
// older than both maps to 0, the start: the whole history is replayed.
// Errors are always towards an earlier position (a message replayed that
// the data already had, never one lost).

const (
	fineEvery   = int64(time.Millisecond)
	coarseEvery = int64(time.Second)
	ringSize    = 4096
)

// positionLog assigns the hub's positions and remembers when.
type positionLog struct {
	mu     sync.Mutex
	base   time.Time // times are nanoseconds since base (monotonic)
	last   posSample // the newest position and when it was assigned
	fine   posRing
	coarse posRing
}

// posSample says: at time at, the hub's position was pos (every message
// up to pos was assigned its position by then, none after).
type posSample struct {
	at  int64
	pos uint64
}

// posRing keeps samples at least every apart, the newest ringSize.
type posRing struct {
	every   int64
	samples []posSample // a ring once full
	next    int         // where the next sample goes once full
	full    bool
}

// advance assigns the next position (h.pos) to a message published at
// now. Samples are kept in order: a message whose publish started
// earlier than the previous one's but took its position later counts as
// published with the previous one (its replay errs earlier).
func (h *Hub) advance(now time.Time) uint64 {
	l := &h.positions
	l.mu.Lock()
	defer l.mu.Unlock()
	p := h.pos.Add(1)
	at := max(int64(now.Sub(l.base)), l.last.at)
	l.last = posSample{at: at, pos: p}
	l.fine.note(l.last)
	l.coarse.note(l.last)
	return p
}

// note keeps s if the newest kept sample is at least every older.
func (r *posRing) note(s posSample) {
	n := len(r.samples)
	if n > 0 {
		newest := r.samples[n-1]
		if r.full {
			newest = r.samples[(r.next+ringSize-1)%ringSize]
		}
		if s.at-newest.at < r.every {
			return
		}
	}
	if !r.full {
		r.samples = append(r.samples, s)
		r.full = len(r.samples) == ringSize
		return
	}
	r.samples[r.next] = s
	r.next = (r.next + 1) % ringSize
}

// find returns the position of the newest sample taken at or before at,
// or false when every sample is later.
func (r *posRing) find(at int64) (uint64, bool) {
	n := len(r.samples)
	// Samples in time order: oldest at r.next once full, else at 0.
	get := func(i int) posSample {
		if r.full {
			return r.samples[(r.next+i)%ringSize]
		}
		return r.samples[i]
	}
	lo, hi := 0, n // the first sample later than at is in [lo, hi]
	for lo < hi {
		mid := (lo + hi) / 2
		if get(mid).at <= at {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo == 0 {
		return 0, false
	}
	return get(lo - 1).pos, true
}

// PositionAt is the hub's position at time t: every message published
// after t has a higher position. It may be lower than the exact one (by
// the messages of the millisecond before t; of the second before t for a
// moment more than a few seconds back on a busy hub; 0 for one older
// than this node's memory of positions), never higher, so that
// replaying from it loses nothing. t must come from this process's clock
// (time.Now, minus a duration).
func (h *Hub) PositionAt(t time.Time) uint64 {
	l := &h.positions
	l.mu.Lock()
	defer l.mu.Unlock()
	at := int64(t.Sub(l.base))
	if at >= l.last.at {
		return l.last.pos // nothing published since t (or since the start)
	}
	if p, ok := l.fine.find(at); ok {
		return p
	}
	if p, ok := l.coarse.find(at); ok {
		return p
	}
	return 0
}
