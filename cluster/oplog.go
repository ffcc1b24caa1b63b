package cluster

import (
	"cmp"
	"encoding/json"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// opLog is the tier's anti-entropy for operations every member must
// eventually apply (purges: a member that misses one serves pre-purge data
// until it expires).
//
// Direct delivery is not enough for them: a peer's queue is bounded and
// dropped when memberlist declares the member dead or gone, so a member
// that was partitioned, restarted its control listener, or lagged too far
// behind loses operations for good. Memberlist already has a channel that
// survives those: every member periodically exchanges state with a random
// other one (push/pull, over TCP, encrypted like the rest of memberlist).
// The log rides on it. Each member keeps what Config.Remember chooses of
// the recent operations it broadcast or received (the form to replay, keyed
// by operation ID) and sends it at every push/pull; the other side applies,
// through Config.Handler, every entry it has not seen and that is younger
// than Config.LogAge, and adds it to its own log, so an operation spreads
// by gossip to members that missed it even if its source is gone.
//
// Bounds: the log keeps at most Config.LogMax entries (the oldest are
// dropped first) younger than Config.LogAge, and the state sent at one
// push/pull is at most maxStateBytes (the newest entries that fit). IDs are remembered apart from the entries, so an entry
// dropped for room is not applied again when a member that still holds it
// sends it back: an ID stays seen for twice LogAge (members date an
// operation when they first got it, a little apart; the margin keeps one
// whose seen ID expired from accepting it back from one that dated it
// later), and at most seenPerEntry×LogMax IDs are kept, the oldest dropped
// first.
//
// Each operation ID is applied once: a replayed entry is seen, and if the
// operation itself arrives late by direct delivery, Receive counts it as a
// duplicate (the member has applied its remembered form).
//
// Operations stay opaque: the log stores and replays Ops, it never looks
// at Kind or Data.
//
// A nil remember turns it off: it keeps nothing, sends nothing and ignores
// what others send.
type opLog struct {
	remember func(Op) (Op, bool)
	max      int           // entries kept
	age      time.Duration // entries younger than this are kept and applied
	maxBytes int           // of the state sent at a push/pull
	seenMax  int           // IDs kept
	now      func() time.Time
	log      *slog.Logger

	mu      sync.Mutex
	entries []logEntry       // oldest first (by at)
	seen    map[string]int64 // op ID → at, for every entry kept or dropped
	seenQ   []seenID         // the keys of seen, oldest first (by at)

	replayed atomic.Uint64 // operations applied from another member's log
	merges   atomic.Uint64 // remote states merged, well-formed or not
}

const (
	// defaultLogMax and defaultLogAge are Config.LogMax's and
	// Config.LogAge's defaults.
	defaultLogMax = 4096
	defaultLogAge = 48 * time.Hour
	// maxStateBytes caps the log state sent at one push/pull. Memberlist
	// sends it in one message with the member list, to one member at a
	// time, every PushPull; a quarter of a megabyte keeps that cheap and
	// well under memberlist's limits. A log that does not fit is sent
	// truncated to its newest entries: older ones reached most members
	// already, and a member that missed them still gets them from a member
	// whose log is smaller.
	maxStateBytes = 256 << 10
	// seenPerEntry bounds the seen IDs to this many times LogMax.
	seenPerEntry = 4
)

// logEntry is an operation in the log, in the form to replay.
type logEntry struct {
	op  Op
	at  int64  // Unix milliseconds: when the tier first had it, as far as known
	raw []byte // wireEntry, encoded once
}

type seenID struct {
	id string
	at int64
}

// wireState is the log as members exchange it.
type wireState struct {
	Ops []wireEntry `json:"ops"` // oldest first
}

type wireEntry struct {
	Op
	At int64 `json:"at"` // Unix milliseconds
}

func newOpLog(cfg *Config) *opLog {
	return &opLog{
		remember: cfg.Remember,
		max:      cfg.LogMax,
		age:      cfg.LogAge,
		maxBytes: maxStateBytes,
		seenMax:  seenPerEntry * cfg.LogMax,
		now:      time.Now,
		log:      cfg.Log,
		seen:     map[string]int64{},
	}
}

// keep returns what the log keeps of op, if anything, with op's identity.
func (l *opLog) keep(op Op) (Op, bool) {
	if l.remember == nil {
		return Op{}, false
	}
	k, ok := l.remember(op)
	if !ok {
		return Op{}, false
	}
	k.Source, k.Incarnation, k.Seq = op.Source, op.Incarnation, op.Seq
	return k, true
}

// claim records op, broadcast by this member or received from a peer, and
// reports whether it is new to the log: false means it was applied here
// already (replayed from another member's log) and must not be again.
// Operations Remember does not keep are always new: they never come
// through the log.
func (l *opLog) claim(op Op) bool {
	k, ok := l.keep(op)
	if !ok {
		return true
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pruneLocked(now)
	if _, dup := l.seen[k.ID()]; dup {
		return false
	}
	l.addLocked([]logEntry{{op: k, at: now.UnixMilli()}}, now)
	return true
}

// addLocked adds new entries (their IDs unseen), then drops what is past
// the bounds.
func (l *opLog) addLocked(es []logEntry, now time.Time) {
	// seenQ's last is the newest entry ever added, kept or not.
	sorted := len(l.seenQ) == 0 || l.seenQ[len(l.seenQ)-1].at <= es[0].at
	for i, e := range es {
		sorted = sorted && (i == 0 || es[i-1].at <= e.at)
		id := e.op.ID()
		l.seen[id] = e.at
		l.seenQ = append(l.seenQ, seenID{id, e.at})
		raw, err := json.Marshal(wireEntry{e.op, e.at})
		if err != nil {
			// Remember returned Data that is not JSON: seen, not kept.
			l.log.Error("op log: operation not kept", "id", id, "kind", e.op.Kind, "err", err)
			continue
		}
		e.raw = raw
		l.entries = append(l.entries, e)
	}
	if !sorted {
		// Merged entries are dated by the member that first had them.
		slices.SortStableFunc(l.entries, func(a, b logEntry) int { return cmp.Compare(a.at, b.at) })
		slices.SortStableFunc(l.seenQ, func(a, b seenID) int { return cmp.Compare(a.at, b.at) })
	}
	l.pruneLocked(now)
}

// pruneLocked drops entries past LogMax or older than LogAge, and seen IDs
// past seenMax or older than twice LogAge.
func (l *opLog) pruneLocked(now time.Time) {
	old := now.Add(-l.age).UnixMilli()
	i := 0
	for i < len(l.entries) && (len(l.entries)-i > l.max || l.entries[i].at < old) {
		i++
	}
	if i > 0 {
		clear(l.entries[:i]) // let the dropped operations be collected
		l.entries = l.entries[i:]
	}
	forgotten := now.Add(-2 * l.age).UnixMilli()
	i = 0
	for i < len(l.seenQ) && (len(l.seenQ)-i > l.seenMax || l.seenQ[i].at < forgotten) {
		delete(l.seen, l.seenQ[i].id)
		i++
	}
	if i > 0 {
		clear(l.seenQ[:i])
		l.seenQ = l.seenQ[i:]
	}
}

// state is the log to send at a push/pull (nil when off or empty): the
// newest entries that fit in maxBytes, oldest first.
func (l *opLog) state() []byte {
	if l.remember == nil {
		return nil
	}
	const prefix, suffix = `{"ops":[`, `]}`
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pruneLocked(l.now())
	if len(l.entries) == 0 {
		return nil
	}
	size, first := len(prefix)+len(suffix), len(l.entries)
	for first > 0 && size+len(l.entries[first-1].raw)+1 <= l.maxBytes {
		first--
		size += len(l.entries[first].raw) + 1
	}
	if first > 0 {
		l.log.Debug("op log: state truncated to fit", "sent", len(l.entries)-first, "left_out", first)
	}
	b := make([]byte, 0, size)
	b = append(b, prefix...)
	for i, e := range l.entries[first:] {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, e.raw...)
	}
	return append(b, suffix...)
}

// merge applies, through apply, the entries of another member's state that
// this member has not seen, are younger than LogAge and come from another
// source, oldest first, and adds them to the log. A malformed state is
// logged and ignored.
func (l *opLog) merge(buf []byte, self string, apply func(Op)) {
	if l.remember == nil || len(buf) == 0 {
		return
	}
	defer l.merges.Add(1)
	var st wireState
	if err := json.Unmarshal(buf, &st); err != nil {
		l.log.Warn("op log: malformed state from a member, ignored", "bytes", len(buf), "err", err)
		return
	}
	now := l.now()
	nowMs, old := now.UnixMilli(), now.Add(-l.age).UnixMilli()
	var fresh []logEntry
	taken := map[string]bool{} // a state listing an operation twice
	l.mu.Lock()
	l.pruneLocked(now)
	for _, w := range st.Ops {
		if w.Source == "" || w.Source == self || w.At < old {
			continue
		}
		id := w.ID()
		if _, dup := l.seen[id]; dup || taken[id] {
			continue
		}
		taken[id] = true
		// A member whose clock is ahead must not make an entry outlive
		// LogAge here.
		fresh = append(fresh, logEntry{op: w.Op, at: min(w.At, nowMs)})
	}
	if len(fresh) > 0 {
		slices.SortStableFunc(fresh, func(a, b logEntry) int { return cmp.Compare(a.at, b.at) })
		l.addLocked(fresh, now)
	}
	l.mu.Unlock()
	if len(fresh) == 0 {
		return
	}
	l.log.Info("op log: applying operations missed earlier", "count", len(fresh))
	for _, e := range fresh {
		l.log.Debug("op log: applying an operation missed earlier", "id", e.op.ID(), "kind", e.op.Kind)
		l.replayed.Add(1)
		apply(e.op)
	}
}

// len is the number of entries kept.
func (l *opLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.entries)
}
