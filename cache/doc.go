// Package cache keeps origin responses — GRIP instructions, initial data
// and plain responses alike — in a ristretto cache under HTTP caching rules
// (RFC 9111, RFC 5861), so that new connections open while the origin is
// down.
//
// It owns cache keys (namespace, method, URL and Vary), freshness,
// stale-if-error and stale-while-revalidate, conditional revalidation of
// stale entries that have a validator (a 304 refreshes the stored entry's
// headers and freshness, RFC 9111 §3.2 and §4.3), coalescing of
// concurrent misses (one origin fetch, and none when the entry was stored
// just before the flight began), surrogate-key and URL purges (soft and
// hard, O(1) each), and compressed variants of stored bodies. It does no
// HTTP I/O: the caller hands it a Fetcher, a Revalidator for conditional
// requests (Request.SetRevalidator), and for background refreshes a
// detached copy of the request (Request.Detach).
//
// Only GET and HEAD are cached. Requests that are not plain HTTP requests
// for their URL, such as WebSocket-over-HTTP opens, come as GET in a
// Request.Namespace of their own ("ws"), which keeps their entries apart
// from HTTP ones; a URL purge reaches every namespace.
package cache
