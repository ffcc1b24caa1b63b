package cache

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// records counts the purge records the cache keeps.
func (p *purges) records() int {
	n := 0
	for i := range p.shards {
		s := &p.shards[i]
		s.mu.RLock()
		n += len(s.records)
		s.mu.RUnlock()
	}
	return n
}

// TestPurgeRecordsExpire: records of purges older than the longest an
// entry can live are dropped, so a steady stream of distinct purges keeps
// about one lifetime's worth of records, not every purge ever made.
func TestPurgeRecordsExpire(t *testing.T) {
	const lifetime = time.Hour
	c, clk := newCache(t, func(cfg *Config) { cfg.MaxLifetime = lifetime })
	const perLifetime, lifetimes = 10000, 5
	peak := 0
	for l := range lifetimes {
		for i := range perLifetime {
			c.Purge(fmt.Sprintf("key-%d-%d", l, i), i%2 == 0)
			peak = max(peak, c.purges.records())
		}
		clk.add(lifetime + time.Second)
	}
	if peak >= maxPurgeRecords {
		t.Fatalf("the count bound (%d) was reached: this test is about the age bound", maxPurgeRecords)
	}
	// A sweep keeps the records younger than a lifetime (one batch) and
	// runs again at twice what it kept.
	if bound := 3 * perLifetime; peak > bound {
		t.Fatalf("%d purge records at once, want at most %d (of %d purges)", peak, bound, perLifetime*lifetimes)
	}
}

// TestPurgeRecordsBoundedByCount floods the cache with distinct purges
// within one lifetime: the records stay within the count bound, and the
// records folded away still do their job (a hard-purged entry stays gone,
// a soft-purged one stale), while an entry fetched after them is
// untouched.
func TestPurgeRecordsBoundedByCount(t *testing.T) {
	c, _ := newCache(t)
	const limit = 16 * 256
	c.purges = newPurges(limit) // before any use
	hard, soft, later := &origin{}, &origin{}, &origin{}
	hard.set("hard v1", "Cache-Control", "max-age=600", "Surrogate-Key", "hard")
	soft.set("soft v1", "Cache-Control", "max-age=600, stale-if-error=600", "Surrogate-Key", "soft")
	later.set("later v1", "Cache-Control", "max-age=600", "Surrogate-Key", "later")
	// The soft-purged entry is fetched after the hard purge: when both
	// keys share a shard, the folded hard purge must not reach it.
	get(t, c, hard, greq("http://h/hard"))
	c.Purge("hard", false)
	get(t, c, soft, greq("http://h/soft"))
	c.Purge("soft", true)

	peak := 0
	const flood = 20 * limit
	for i := range flood {
		// Soft: a folded hard purge would make every older entry in its
		// shard gone, the soft-purged one included.
		c.PurgeURL(fmt.Sprintf("http://h/flood/%d", i), true)
		peak = max(peak, c.purges.records())
	}
	if peak > limit {
		t.Fatalf("%d purge records at once, want at most %d (of %d purges)", peak, limit, flood+2)
	}
	for _, name := range []string{"k:hard", "k:soft"} {
		s := c.purges.shard(name)
		if _, kept := s.records[name]; kept {
			t.Fatalf("%s is still recorded after the flood: nothing was folded", name)
		}
	}
	get(t, c, later, greq("http://h/later"))

	for _, o := range []*origin{hard, soft, later} {
		o.fail(errDown)
	}
	if _, _, err := c.Get(greq("http://h/hard"), hard.fetch); !errors.Is(err, errDown) {
		t.Fatalf("hard-purged entry after its record was folded: %v, want the origin's error", err)
	}
	if body, res := get(t, c, soft, greq("http://h/soft")); body != "soft v1" || res != StaleOnError {
		t.Fatalf("soft-purged entry after its record was folded: %q %v, want it stale", body, res)
	}
	if body, res := get(t, c, later, greq("http://h/later")); body != "later v1" || res != Hit {
		t.Fatalf("entry fetched after the flood: %q %v, want a hit", body, res)
	}
}
