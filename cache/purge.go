package cache

import (
	"cmp"
	"hash/maphash"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// purges records purges as positions on one clock: an entry is affected by
// a purge of one of its surrogate keys or of its URL when the purge came
// after its fetch started. A purge is O(1); each lookup checks the entry's
// few keys.
//
// The records are bounded twice. By age: records older than the longest
// an entry can live are dropped. By count: a shard holding more than its
// share of maxPurgeRecords folds its oldest records into its floor, one
// record that stands for all of them and applies to every entry with a
// name in the shard: an entry fetched before the floor's hard position is
// gone, before its soft position stale. Folding never lets a purged entry
// be served as fresh; it may purge entries that were not (only under a
// flood of distinct purges, and only entries older than the folded ones).
type purges struct {
	clock  atomic.Uint64
	seed   maphash.Seed
	limit  int // records per shard
	shards [16]purgeShard
}

// maxPurgeRecords bounds the purge records of one cache (about 150 bytes
// each with a URL-sized name).
const maxPurgeRecords = 1 << 18

type purgeShard struct {
	mu      sync.RWMutex
	records map[string]purgeRecord
	floor   purgeRecord // the folded records (see purges)
	gcAt    int         // size at which the next sweep runs
}

type purgeRecord struct {
	soft, hard uint64    // clock positions of the last soft and hard purge
	softAt     time.Time // when the last soft purge ran
	at         time.Time // when the last purge of either kind ran
}

// newPurges returns purges keeping at most about maxRecords records.
func newPurges(maxRecords int) *purges {
	p := &purges{seed: maphash.MakeSeed()}
	p.limit = max(maxRecords/len(p.shards), 2)
	p.clock.Store(1)
	for i := range p.shards {
		p.shards[i].records = map[string]purgeRecord{}
		p.shards[i].gcAt = min(1024, p.limit)
	}
	return p
}

// tick returns the current clock position, to be read when a fetch starts.
func (p *purges) tick() uint64 { return p.clock.Add(1) }

func (p *purges) shard(name string) *purgeShard {
	return &p.shards[maphash.String(p.seed, name)%uint64(len(p.shards))]
}

// purge records a purge of name ("k:" surrogate key or "u:" URL).
func (p *purges) purge(name string, soft bool, now time.Time, maxLifetime time.Duration) {
	pos := p.clock.Add(1)
	s := p.shard(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.records[name]
	if soft {
		r.soft, r.softAt = pos, now
	} else {
		r.hard = pos
	}
	r.at = now
	s.records[name] = r
	if len(s.records) >= s.gcAt {
		for k, rec := range s.records {
			if now.Sub(rec.at) > maxLifetime {
				delete(s.records, k)
			}
		}
		if len(s.records) > p.limit/2 {
			s.fold(len(s.records) - p.limit/2)
		}
		s.gcAt = min(max(1024, 2*len(s.records)), p.limit)
	}
}

// fold merges the n oldest records into the floor; called with s.mu held.
func (s *purgeShard) fold(n int) {
	type named struct {
		name string
		pos  uint64
	}
	all := make([]named, 0, len(s.records))
	for k, r := range s.records {
		all = append(all, named{k, max(r.soft, r.hard)})
	}
	slices.SortFunc(all, func(a, b named) int { return cmp.Compare(a.pos, b.pos) })
	f := &s.floor
	for _, o := range all[:n] {
		r := s.records[o.name]
		f.hard, f.soft = max(f.hard, r.hard), max(f.soft, r.soft)
		if r.softAt.After(f.softAt) {
			f.softAt = r.softAt
		}
		if r.at.After(f.at) {
			f.at = r.at
		}
		delete(s.records, o.name)
	}
}

// check returns whether an entry fetched at position seq under names is
// gone (hard-purged) or, if soft-purged, since when it is stale.
func (p *purges) check(seq uint64, names []string) (gone bool, staleSince time.Time) {
	for _, name := range names {
		s := p.shard(name)
		s.mu.RLock()
		r := s.records[name] // the zero record when none: it affects nothing
		floor := s.floor
		s.mu.RUnlock()
		for _, rec := range [...]purgeRecord{r, floor} {
			if rec.hard >= seq {
				return true, time.Time{}
			}
			if rec.soft >= seq && (staleSince.IsZero() || rec.softAt.Before(staleSince)) {
				staleSince = rec.softAt
			}
		}
	}
	return false, staleSince
}

// lastAfter returns the time of the newest purge, soft or hard, of one of
// names that ran after t, if any (a folded record counts for every name
// of its shard).
func (p *purges) lastAfter(names []string, t time.Time) (last time.Time, ok bool) {
	for _, name := range names {
		s := p.shard(name)
		s.mu.RLock()
		r, floor := s.records[name], s.floor
		s.mu.RUnlock()
		for _, at := range [...]time.Time{r.at, floor.at} {
			if at.After(t) && at.After(last) {
				last, ok = at, true
			}
		}
	}
	return last, ok
}
