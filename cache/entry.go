package cache

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Entry is a stored (or just fetched) origin response with what the
// caching rules say about it. It is shared between requests and must not
// be modified.
type Entry struct {
	Response

	primary    string
	key        string
	varyNames  []string
	varyValues []string
	purgeNames []string // "k:<surrogate key>", "u:<url>" (any namespace and method)
	seq        uint64   // purge clock when the fetch started
	storedAt   time.Time
	initialAge time.Duration
	pol        policy
	gzip, zstd []byte
	compressed bool // gzip and zstd are computed (nil: not worth it)
	cost       int64
	// Set on a copy when a soft purge made the entry stale.
	softPurged bool
	staleSince time.Time
}

// newEntry builds the entry for resp, fetched for req, whose primary key
// (primaryKey) is primary.
func newEntry(resp *Response, req *Request, primary string, now time.Time, seq uint64, defaultStaleIfError time.Duration) *Entry {
	e := &Entry{Response: *resp, primary: primary, seq: seq, storedAt: now, initialAge: initialAge(resp)}
	e.pol = policyFor(resp, req, now, defaultStaleIfError)
	for _, v := range resp.values("Vary") {
		name := http.CanonicalHeaderKey(v)
		if name == "Accept-Encoding" { // the node serves encodings itself; the origin never sees it
			continue
		}
		e.varyNames = append(e.varyNames, name)
		val := ""
		if req.Header != nil {
			val = normalizeVaryValue(name, req.Header(name))
		}
		e.varyValues = append(e.varyValues, val)
	}
	e.key = variantKey(primary, e.varyNames, req.Header)
	e.purgeNames = purgeNamesOf(resp, req.URL)
	return e
}

// purgeNamesOf is what purges reach a response for url by: its
// surrogate keys ("k:") and the URL ("u:", without the namespace or
// method: a URL purge reaches them all).
func purgeNamesOf(resp *Response, url string) []string {
	var names []string
	for _, f := range resp.Header {
		if strings.EqualFold(f.Name, "Surrogate-Key") {
			for _, k := range strings.Fields(f.Value) {
				names = append(names, "k:"+k)
			}
		}
	}
	return append(names, "u:"+url)
}

// matches reports whether the entry may answer req: same values of the
// headers it varies on.
func (e *Entry) matches(req *Request) bool {
	for i, n := range e.varyNames {
		v := ""
		if req.Header != nil {
			v = normalizeVaryValue(n, req.Header(n))
		}
		if v != e.varyValues[i] {
			return false
		}
	}
	return true
}

// Age is the entry's current age (RFC 9111 §4.2.3): the origin's Age plus
// the time since it was stored.
func (e *Entry) Age(now time.Time) time.Duration {
	return e.initialAge + now.Sub(e.storedAt)
}

// StoredAt is when the origin produced the entry.
func (e *Entry) StoredAt() time.Time { return e.storedAt }

// Storable reports whether the caching rules allowed storing the entry.
func (e *Entry) Storable() bool { return e.pol.storable }

// staleAt is when the entry became stale: its expiry, or a soft purge.
func (e *Entry) staleAt() time.Time {
	exp := e.storedAt.Add(e.pol.freshFor - e.initialAge)
	if e.softPurged && e.staleSince.Before(exp) {
		return e.staleSince
	}
	return exp
}

// Body returns the body to send for a request's Accept-Encoding: a stored
// zstd or gzip variant when the client accepts it, else the identity
// body; encoding is "" for identity.
func (e *Entry) Body(acceptEncoding string) (body []byte, encoding string) {
	if e.zstd != nil && accepts(acceptEncoding, "zstd") {
		return e.zstd, "zstd"
	}
	if e.gzip != nil && accepts(acceptEncoding, "gzip") {
		return e.gzip, "gzip"
	}
	return e.Response.Body, ""
}

// reuseVariants takes the compressed variants of old, the entry e
// refreshes, when they still apply: same body, encoding and type.
func (e *Entry) reuseVariants(old *Entry) {
	if old.compressed && e.Compress && e.Get("Content-Encoding") == old.Get("Content-Encoding") &&
		e.Get("Content-Type") == old.Get("Content-Type") {
		e.gzip, e.zstd, e.compressed = old.gzip, old.zstd, true
	}
}

// HasVariants reports whether compressed variants exist (the response
// then varies on Accept-Encoding).
func (e *Entry) HasVariants() bool { return e.gzip != nil || e.zstd != nil }

// accepts reports whether an Accept-Encoding value accepts coding with a
// non-zero q.
func accepts(header, coding string) bool {
	for _, part := range strings.Split(header, ",") {
		name, params, _ := strings.Cut(part, ";")
		if !strings.EqualFold(strings.TrimSpace(name), coding) {
			continue
		}
		q := 1.0
		for _, p := range strings.Split(params, ";") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(p), "q="); ok {
				q, _ = strconv.ParseFloat(v, 64)
			}
		}
		return q > 0
	}
	return false
}

// size is the entry's cost in bytes.
func (e *Entry) size() int64 {
	n := 512 + len(e.key) + len(e.Response.Body) + len(e.gzip) + len(e.zstd)
	for _, f := range e.Header {
		n += len(f.Name) + len(f.Value) + 32
	}
	return int64(n)
}
