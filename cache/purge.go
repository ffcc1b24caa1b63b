package cache

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"
)

// purges records purges as positions on one clock: an entry is affected by
// a purge of one of its surrogate keys or of its URL when the purge came
// after its fetch started. A purge is O(1); each lookup checks the entry's
// few keys. Records older than the longest an entry can live are dropped.
type purges struct {
	clock  atomic.Uint64
	seed   maphash.Seed
	shards [16]purgeShard
}

type purgeShard struct {
	mu      sync.RWMutex
	records map[string]purgeRecord
	gcAt    int // size at which the next sweep runs
}

type purgeRecord struct {
	soft, hard uint64    // clock positions of the last soft and hard purge
	softAt     time.Time // when the last soft purge ran
	at         time.Time // when the last purge of either kind ran
}

func newPurges() *purges {
	p := &purges{seed: maphash.MakeSeed()}
	p.clock.Store(1)
	for i := range p.shards {
		p.shards[i].records = map[string]purgeRecord{}
		p.shards[i].gcAt = 1024
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
		s.gcAt = max(1024, 2*len(s.records))
	}
}

// check returns whether an entry fetched at position seq under names is
// gone (hard-purged) or, if soft-purged, since when it is stale.
func (p *purges) check(seq uint64, names []string) (gone bool, staleSince time.Time) {
	for _, name := range names {
		s := p.shard(name)
		s.mu.RLock()
		r, ok := s.records[name]
		s.mu.RUnlock()
		if !ok {
			continue
		}
		if r.hard >= seq {
			return true, time.Time{}
		}
		if r.soft >= seq && (staleSince.IsZero() || r.softAt.Before(staleSince)) {
			staleSince = r.softAt
		}
	}
	return false, staleSince
}
