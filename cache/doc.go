// Package cache keeps origin responses — GRIP instructions, initial data
// and plain responses alike — in a ristretto cache under HTTP caching rules
// (RFC 9111, RFC 5861), so that new connections open while the origin is
// down.
//
// It owns cache keys (with Vary), freshness, stale-if-error and
// stale-while-revalidate, coalescing of concurrent misses, surrogate-key
// and URL purges (soft and hard, O(1) each), and compressed variants of
// stored bodies. It does no HTTP I/O: the caller hands it a Fetcher.
package cache
