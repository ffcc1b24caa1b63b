package cache

import "sync/atomic"

// counters are named after the branches of Get.
type counters struct {
	gets, hits, misses, coalesced, fetches, bypass        atomic.Uint64
	staleRevalidating, staleOnError, originErrors, stores atomic.Uint64
	revalidations                                         atomic.Uint64
	rejected, evictions, purges                           atomic.Uint64
	entries                                               atomic.Int64 // stored and not yet gone
}

// Stats is a snapshot of the cache's counters.
type Stats struct {
	// Gets counts lookups. Each is counted once more, when it returns, in
	// exactly one of Hits, Misses, StaleRevalidating and Bypass.
	Gets uint64 `json:"gets"`
	// Hits counts fresh entries served, including those found by the
	// re-check of a miss's flight (an entry stored just before it).
	Hits uint64 `json:"hits"`
	// Misses counts lookups that went to the origin, coalesced or not
	// (those then served stale on error included).
	Misses uint64 `json:"misses"`
	// Coalesced counts misses that waited for another request's flight.
	Coalesced uint64 `json:"coalesced"`
	// Fetches counts origin answers received.
	Fetches uint64 `json:"fetches"`
	// Revalidations counts 304 Not Modified answers to the cache's
	// conditional requests that refreshed a stored entry (for lookups,
	// which are then Misses, and background refreshes alike).
	Revalidations uint64 `json:"revalidations"`
	// Bypass counts requests that are not cacheable (methods).
	Bypass uint64 `json:"bypass"`
	// StaleRevalidating counts stale entries served during a background
	// refresh (stale-while-revalidate).
	StaleRevalidating uint64 `json:"stale_revalidating"`
	// StaleOnError counts stale entries served because the origin failed
	// (a subset of Misses).
	StaleOnError uint64 `json:"stale_on_error"`
	// OriginErrors counts fetches that failed or answered 5xx.
	OriginErrors uint64 `json:"origin_errors"`
	// Stores counts entries stored.
	Stores uint64 `json:"stores"`
	// Rejected counts entries the store dropped or refused.
	Rejected uint64 `json:"rejected"`
	// Evictions counts entries evicted to stay within MaxBytes.
	Evictions uint64 `json:"evictions"`
	// Purges counts purge calls (keys and URLs).
	Purges uint64 `json:"purges"`
	// Bytes is the cost of the entries stored now.
	Bytes uint64 `json:"bytes"`
	// Entries is the number of entries stored now (including those
	// queued for admission, which the store may still refuse).
	Entries uint64 `json:"entries"`
}

// Stats returns a snapshot of the counters.
func (c *Cache) Stats() Stats {
	s := &c.stats
	st := Stats{
		Gets: s.gets.Load(), Hits: s.hits.Load(), Misses: s.misses.Load(), Coalesced: s.coalesced.Load(),
		Fetches: s.fetches.Load(), Revalidations: s.revalidations.Load(), Bypass: s.bypass.Load(), StaleRevalidating: s.staleRevalidating.Load(),
		StaleOnError: s.staleOnError.Load(), OriginErrors: s.originErrors.Load(), Stores: s.stores.Load(),
		Rejected: s.rejected.Load(), Evictions: s.evictions.Load(), Purges: s.purges.Load(),
	}
	if !c.closed.Load() {
		st.Bytes = uint64Of(c.store.MaxCost() - c.store.RemainingCost())
		st.Entries = uint64Of(s.entries.Load())
	}
	return st
}

func uint64Of(n int64) uint64 { return uint64(max(n, 0)) }
