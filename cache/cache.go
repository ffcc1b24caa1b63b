package cache

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/ristretto/v2"
)

// Config configures a Cache.
type Config struct {
	// MaxBytes bounds the memory of stored entries (bodies, headers,
	// compressed variants). Zero: 256 MiB.
	MaxBytes int64
	// StaleIfError is how long past its freshness an entry may still be
	// served while the origin fails, when the response does not say
	// (stale-if-error=N). Zero disables it; DefaultConfig sets 24h.
	StaleIfError time.Duration
	// MaxLifetime caps how long an entry is kept, fresh and stale time
	// together. An entry with a validator (ETag, Last-Modified) is kept
	// that long, so that it can be revalidated once stale (see
	// Request.SetRevalidator). Zero: 48h.
	MaxLifetime time.Duration
	// CompressMin is the smallest body stored with gzip and zstd variants.
	// Zero: 1024 bytes.
	CompressMin int
	// Now is the clock; nil: time.Now. For tests.
	Now func() time.Time
}

// DefaultConfig returns the defaults (StaleIfError 24h).
func DefaultConfig() Config {
	return Config{MaxBytes: 256 << 20, StaleIfError: 24 * time.Hour, MaxLifetime: 48 * time.Hour, CompressMin: 1024}
}

// Request identifies what a client asks for.
type Request struct {
	// Namespace separates requests that are not plain HTTP requests for
	// URL (e.g. "ws" for WebSocket-over-HTTP opens) from HTTP ones and
	// from each other; it is part of the stored key, so no client request
	// can reach another namespace's entries. Empty: HTTP. It must not
	// contain a NUL byte.
	Namespace string
	// Method is GET or HEAD (cached); anything else bypasses the cache.
	Method string
	// URL is scheme://host/path?query as the client asked.
	URL string
	// Header looks up a request header (for Vary); nil: no headers.
	Header func(name string) string
	// Authorized is true when the request carries credentials
	// (Authorization, and the node treats Cookie alike): its response is
	// stored only if the response allows it (public, s-maxage,
	// must-revalidate: RFC 9111 §3.5) or varies on every header in
	// CredentialHeaders.
	Authorized bool
	// CredentialHeaders names the credential headers the request carries
	// (e.g. "Authorization", "Cookie").
	CredentialHeaders []string
	// Credentials separates concurrent misses that must not share one
	// origin answer (e.g. the Authorization value); it is not part of the
	// stored key.
	Credentials string
	// Detach returns a copy of the request and a fetcher that stay valid
	// after Get returns (the caller's buffers are reused once Get
	// returns), for a background refresh (stale-while-revalidate). Nil:
	// the refresh uses the Request and Fetcher given to Get. Get calls it
	// at most once, before it returns. The copy must keep Namespace,
	// Method, URL and Credentials; the cache never calls the copy's
	// Detach.
	Detach func() (*Request, Fetcher)
	// Outdated, when set, reports whether a stored entry that is fresh by
	// the HTTP rules is out of date for this request all the same (the
	// node: messages a long-poll would receive were published after the
	// entry's data was fetched). Such an entry is fetched again like an
	// expired one, concurrent requests coalesced, and still served while
	// the origin fails (stale-if-error). Nil: never.
	Outdated func(*Entry) bool
	// StaleIfError, when set, replaces Config.StaleIfError for the
	// response stored for this request (a per-route default; the
	// response's own stale-if-error still wins). Nil: Config.StaleIfError.
	StaleIfError *time.Duration

	// revalidate is set by SetRevalidator, and used only while
	// revalidateOwner is the request itself (not a copy).
	revalidate      Revalidator
	revalidateOwner *Request
}

// primaryKey is the stored key of req before Vary: Method and URL, behind
// the namespace if there is one. HTTP keys start with the method, which
// never contains a NUL, so they cannot collide with a namespaced key.
func primaryKey(req *Request) string {
	if req.Namespace == "" {
		return req.Method + " " + req.URL
	}
	return req.Namespace + "\x00" + req.Method + " " + req.URL
}

// Fetcher asks the origin. A transport failure is an error; any HTTP
// answer, 5xx included, is a Response.
type Fetcher func() (*Response, error)

// Result says how a Get was answered.
type Result int

const (
	// Miss: fetched from the origin (and stored if allowed).
	Miss Result = iota
	// Hit: a fresh stored entry.
	Hit
	// StaleRevalidating: a stale entry within stale-while-revalidate,
	// while one background fetch refreshes it.
	StaleRevalidating
	// StaleOnError: a stale entry served because the origin failed.
	StaleOnError
	// Bypass: the request is not cacheable; fetched.
	Bypass
	// Revalidated: a stored entry the origin confirmed (304 Not
	// Modified to the cache's conditional request), with its headers
	// and freshness refreshed.
	Revalidated
)

var resultNames = [...]string{"miss", "hit", "stale-revalidating", "stale-on-error", "bypass", "revalidated"}

// String returns the result's name as logged and counted.
func (r Result) String() string { return resultNames[r] }

// ErrClosed is returned by Get after Close.
var ErrClosed = errors.New("cache: closed")

// Cache stores origin responses. It is safe for concurrent use.
type Cache struct {
	cfg     Config
	store   *ristretto.Cache[string, *Entry]
	purges  *purges
	flights flightGroup
	vary    varySpecs
	enc     *encoders
	bg      sync.WaitGroup
	closed  atomic.Bool
	stats   counters
}

// New returns a Cache; Close releases it.
func New(cfg Config) (*Cache, error) {
	d := DefaultConfig()
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = d.MaxBytes
	}
	if cfg.MaxLifetime <= 0 {
		cfg.MaxLifetime = d.MaxLifetime
	}
	if cfg.CompressMin <= 0 {
		cfg.CompressMin = d.CompressMin
	}
	if cfg.StaleIfError < 0 {
		return nil, fmt.Errorf("cache: StaleIfError %v is negative", cfg.StaleIfError)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := &Cache{cfg: cfg, purges: newPurges(maxPurgeRecords)}
	store, err := ristretto.NewCache(&ristretto.Config[string, *Entry]{
		NumCounters:        max(cfg.MaxBytes/256, 10000),
		MaxCost:            cfg.MaxBytes,
		BufferItems:        64,
		IgnoreInternalCost: true,
		OnEvict:            func(*ristretto.Item[*Entry]) { c.stats.evictions.Add(1) },
		OnReject:           func(*ristretto.Item[*Entry]) { c.stats.rejected.Add(1) },
		// Called for every stored value that goes: evicted, expired,
		// rejected, deleted or replaced (nil when there was none).
		OnExit: func(e *Entry) {
			if e != nil {
				c.stats.entries.Add(-1)
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	c.store = store
	if c.enc, err = newEncoders(); err != nil {
		store.Close()
		return nil, err
	}
	return c, nil
}

// Close waits for background refreshes and releases the store. Get must
// not be called concurrently with or after Close.
func (c *Cache) Close() {
	if c.closed.Swap(true) {
		return
	}
	c.bg.Wait()
	c.store.Close()
	c.enc.close()
}

// cacheable reports whether requests of method are cached: GET and HEAD.
// Requests that are not plain HTTP (WebSocket-over-HTTP opens) come as GET
// in a Namespace of their own.
func cacheable(method string) bool { return method == "GET" || method == "HEAD" }

// Get answers req from the cache or through fetch, applying the caching
// rules: fresh hit; stale-while-revalidate; one fetch for concurrent
// misses, conditional when a stale stored entry has a validator and req
// a revalidator (SetRevalidator); stale-if-error when the origin fails.
// The returned Entry is shared and must not be modified.
func (c *Cache) Get(req *Request, fetch Fetcher) (*Entry, Result, error) {
	if c.closed.Load() {
		return nil, Miss, ErrClosed
	}
	c.stats.gets.Add(1)
	if !cacheable(req.Method) {
		c.stats.bypass.Add(1)
		resp, err := fetch()
		if err != nil {
			return nil, Bypass, err
		}
		return &Entry{Response: *resp}, Bypass, nil
	}
	now := c.cfg.Now()
	primary := primaryKey(req)
	stale := c.lookup(primary, req, now)
	if stale != nil && !req.outdated(stale) {
		switch c.freshness(stale, now) {
		case fresh:
			c.stats.hits.Add(1)
			return stale, Hit, nil
		case revalidating:
			c.refresh(primary, req, fetch)
			c.stats.staleRevalidating.Add(1)
			return stale, StaleRevalidating, nil
		}
	}
	res, waited := c.flights.do(primary+"\x00"+req.Credentials, func() loadResult { return c.fill(primary, req, fetch) })
	if waited && !res.reusableFor(req) {
		// The leader's answer is not reusable for this request:
		// ask on our own.
		res = c.fill(primary, req, fetch)
	}
	// Counted once the answer is known, so that the counters only grow:
	// every Get is one of Hit, Miss (Coalesced and Revalidated among
	// them), StaleRevalidating or Bypass.
	if res.hit {
		c.stats.hits.Add(1)
		return res.entry, Hit, nil
	}
	c.stats.misses.Add(1)
	if waited {
		c.stats.coalesced.Add(1)
	}
	if res.originFailed() {
		c.stats.originErrors.Add(1)
		if stale != nil && c.usableOnError(stale, now) {
			c.stats.staleOnError.Add(1)
			return stale, StaleOnError, nil
		}
	}
	if res.err != nil {
		return nil, Miss, res.err
	}
	if res.revalidated {
		return res.entry, Revalidated, nil
	}
	return res.entry, Miss, nil
}

// outdated reports whether req says e is out of date.
func (req *Request) outdated(e *Entry) bool { return req.Outdated != nil && req.Outdated(e) }

type loadResult struct {
	entry       *Entry
	err         error
	hit         bool // entry is a fresh stored one, found by fill's re-check
	revalidated bool // entry is a stored one the origin confirmed (304)
}

// originFailed: a transport error or a 5xx answer.
func (r loadResult) originFailed() bool {
	return r.err != nil || r.entry.Status >= 500
}

// reusableFor reports whether a flight's result may answer req, a
// request that waited for it: an origin failure is shared (the origin is
// not asked again at once), an answer only if it is storable (not
// private to the leader's request) and matches req's Vary'd headers.
func (r loadResult) reusableFor(req *Request) bool {
	if r.originFailed() {
		return true
	}
	return r.entry.pol.storable && r.entry.matches(req)
}

// fill is what a flight's leader runs (and a waiter the leader's answer
// does not fit): look the entry up again inside the flight, and fetch only
// if there is still no fresh one (groupcache's pattern). Without the
// re-check, this order of steps sends a second request to the origin for
// an answer already stored:
//
//  1. Get A looks the entry up: missing (or expired).
//  2. Get B, leading a flight for the same key, fetches, stores the entry
//     and ends its flight.
//  3. Get A finds no flight in progress, leads a new one and fetches
//     again.
//
// The same holds for a stale-while-revalidate refresh whose stale hit
// came just before another refresh stored the new entry.
//
// The stale entry the re-check finds is the one a conditional request
// revalidates.
func (c *Cache) fill(primary string, req *Request, fetch Fetcher) loadResult {
	now := c.cfg.Now()
	e := c.lookup(primary, req, now)
	if e != nil && c.freshness(e, now) == fresh && !req.outdated(e) {
		return loadResult{entry: e, hit: true}
	}
	return c.load(primary, req, fetch, e)
}

// load fetches and stores: conditionally when stale, the stored entry
// that may not be served as it is, has validators and req a
// revalidator. A 304 that selects stale refreshes it; any other answer
// replaces it. The purge clock is read before the fetch, so that a
// purge during the fetch makes the stored entry stale or gone.
func (c *Cache) load(primary string, req *Request, fetch Fetcher, stale *Entry) loadResult {
	seq := c.purges.tick()
	var resp *Response
	var err error
	revalidate := req.revalidator()
	if v := stale.validatorsFor(revalidate); v != nil {
		if resp, err = revalidate(v); err != nil {
			return loadResult{err: err}
		}
		c.stats.fetches.Add(1)
		if resp.Status == 304 {
			if selects(resp, &stale.Response) {
				c.stats.revalidations.Add(1)
				e := c.newEntry(refreshed(&stale.Response, resp), req, primary, seq)
				e.reuseVariants(stale)
				c.storeEntry(e)
				return loadResult{entry: e, revalidated: true}
			}
			resp = nil // not about the stored entry: ask in full
		}
	}
	if resp == nil {
		if resp, err = fetch(); err != nil {
			return loadResult{err: err}
		}
		c.stats.fetches.Add(1)
	}
	e := c.newEntry(resp, req, primary, seq)
	c.storeEntry(e)
	return loadResult{entry: e}
}

// validatorsFor returns the validators to revalidate e with, or nil when
// there is no entry, no revalidator or no validator.
func (e *Entry) validatorsFor(revalidate Revalidator) []Field {
	if e == nil || revalidate == nil {
		return nil
	}
	return e.validators()
}

// newEntry builds the entry for resp, fetched for req now; seq is the
// purge clock when the fetch started.
func (c *Cache) newEntry(resp *Response, req *Request, primary string, seq uint64) *Entry {
	staleIfError := c.cfg.StaleIfError
	if req.StaleIfError != nil {
		staleIfError = max(*req.StaleIfError, 0)
	}
	return newEntry(resp, req, primary, c.cfg.Now(), seq, staleIfError)
}

// refresh starts one background fetch for a stale-while-revalidate entry.
func (c *Cache) refresh(primary string, req *Request, fetch Fetcher) {
	// The flight is registered here, not in the goroutine, so that the
	// next stale hit sees it and starts no second refresh.
	key := primary + "\x00" + req.Credentials
	f, leader := c.flights.join(key)
	if !leader {
		return
	}
	// Detach runs here, before Get returns, while the caller's buffers
	// are still valid. The detached request is used as it is (its
	// revalidator is its own); without Detach, a copy of req keeps req's.
	var r *Request
	if req.Detach != nil {
		r, fetch = req.Detach()
	} else {
		cp := *req
		cp.SetRevalidator(req.revalidator())
		r = &cp
	}
	c.bg.Add(1)
	go func() {
		defer c.bg.Done()
		defer c.flights.finish(key, f)
		f.res = c.fill(primary, r, fetch)
	}()
}

// storeEntry stores e if the caching rules allow it.
func (c *Cache) storeEntry(e *Entry) {
	if !e.pol.storable {
		return
	}
	if e.Compress && !e.compressed {
		e.gzip, e.zstd = c.enc.variants(&e.Response, c.cfg.CompressMin)
		e.compressed = true
	}
	e.cost = e.size()
	ttl := min(e.pol.freshFor+max(e.pol.staleIfError, e.pol.swr), c.cfg.MaxLifetime)
	if e.validators() != nil {
		ttl = c.cfg.MaxLifetime // kept to be revalidated once stale
	}
	if ttl <= 0 {
		return
	}
	c.vary.set(e.primary, e.varyNames)
	if c.store.SetWithTTL(e.key, e, e.cost, ttl) {
		c.stats.stores.Add(1)
		c.stats.entries.Add(1)
	} else {
		c.stats.rejected.Add(1)
	}
	c.store.Wait() // so the next request sees it (misses are origin round trips anyway)
}

// lookup returns the stored entry for req, or nil. Hard-purged entries
// are dropped.
func (c *Cache) lookup(primary string, req *Request, now time.Time) *Entry {
	names, ok := c.vary.get(primary)
	if !ok {
		return nil
	}
	key := variantKey(primary, names, req.Header)
	e, ok := c.store.Get(key)
	if !ok || e.key != key {
		return nil
	}
	gone, softAt := c.purges.check(e.seq, e.purgeNames)
	if gone {
		c.store.Del(key)
		return nil
	}
	if !softAt.IsZero() {
		// Soft-purged: stale from the purge on, but not gone.
		cp := *e
		cp.staleSince = softAt
		cp.softPurged = true
		return &cp
	}
	return e
}

type freshnessState int

const (
	fresh freshnessState = iota
	revalidating
	expired
)

func (c *Cache) freshness(e *Entry, now time.Time) freshnessState {
	if !e.softPurged && e.Age(now) < e.pol.freshFor {
		return fresh
	}
	if now.Sub(e.staleAt()) < e.pol.swr {
		return revalidating
	}
	return expired
}

func (c *Cache) usableOnError(e *Entry, now time.Time) bool {
	return now.Sub(e.staleAt()) <= e.pol.staleIfError
}

// Purge purges the entries tagged with surrogate key: soft (stale:
// revalidated before use, still served while the origin fails) or hard
// (gone). It is O(1).
func (c *Cache) Purge(key string, soft bool) {
	c.stats.purges.Add(1)
	c.purges.purge("k:"+key, soft, c.cfg.Now(), c.cfg.MaxLifetime)
}

// PurgeURL purges every namespace, method and variant of url
// (scheme://host/path?query), soft or hard.
func (c *Cache) PurgeURL(url string, soft bool) {
	c.stats.purges.Add(1)
	c.purges.purge("u:"+url, soft, c.cfg.Now(), c.cfg.MaxLifetime)
}

// variantKey is the stored key: the primary key plus the values of the
// request headers the response varies on.
func variantKey(primary string, names []string, header func(string) string) string {
	if len(names) == 0 {
		return primary
	}
	var b strings.Builder
	b.WriteString(primary)
	for _, n := range names {
		b.WriteString("\x00")
		b.WriteString(n)
		b.WriteString("=")
		if header != nil {
			b.WriteString(normalizeVaryValue(n, header(n)))
		}
	}
	return b.String()
}

// normalizeVaryValue puts the value of name, a request header a response
// varies on, in the form keys are built from, folding differences that
// do not change its meaning: runs of whitespace are one space, the
// whitespace around a list's commas goes (RFC 9110 §5.6.1), and language
// ranges (Accept-Language) are compared without case (RFC 4647 §2).
func normalizeVaryValue(name, v string) string {
	out := strings.Join(strings.Fields(v), " ")
	if strings.Contains(out, ",") {
		parts := strings.Split(out, ",")
		for i, p := range parts {
			parts[i] = strings.TrimSpace(p)
		}
		out = strings.Join(parts, ",")
	}
	if strings.EqualFold(name, "Accept-Language") {
		out = strings.ToLower(out)
	}
	return out
}

// varySpecs remembers, per primary key, which request headers the stored
// response varies on. It is bounded: when full it starts over (entries
// then miss once and are fetched again).
type varySpecs struct {
	mu sync.RWMutex
	m  map[string][]string
}

const maxVarySpecs = 1 << 20

func (v *varySpecs) get(primary string) ([]string, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	names, ok := v.m[primary]
	return names, ok
}

func (v *varySpecs) set(primary string, names []string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.m == nil || len(v.m) >= maxVarySpecs {
		v.m = map[string][]string{}
	}
	v.m[primary] = names
}
