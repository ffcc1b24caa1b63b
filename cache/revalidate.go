package cache

import (
	"net/http"
	"strings"
)

// Conditional revalidation (RFC 9111 §4.3): a stored response that may
// not be served as it is (stale, no-cache, must-revalidate, soft-purged,
// out of date) but has a validator is not fetched again in full: the
// origin is asked with the stored response's validators, and a 304 Not
// Modified answer refreshes the stored response (its headers updated,
// its freshness computed again) instead of replacing it.

// Revalidator asks the origin for what the request's Fetcher asks for,
// with validators added to the request's headers (If-None-Match,
// If-Modified-Since, from a stored response): a conditional request. A
// transport failure is an error; any answer is a Response. A 304 answer
// may set Reparse to compute the refreshed response's Value.
type Revalidator func(validators []Field) (*Response, error)

// SetRevalidator makes the cache revalidate the request's stale stored
// response with f instead of fetching it again in full (nil: never).
//
// f belongs to r: it is not inherited by copies of r, which may be for
// another URL (a copy makes full fetches unless it is given its own). A
// copy that Detach returns needs one that stays valid after Get
// returns.
func (r *Request) SetRevalidator(f Revalidator) {
	r.revalidate, r.revalidateOwner = f, r
	if f == nil {
		r.revalidateOwner = nil
	}
}

// revalidator returns the request's own revalidator, or nil.
func (r *Request) revalidator() Revalidator {
	if r.revalidateOwner != r {
		return nil
	}
	return r.revalidate
}

// validators are the request headers that ask the origin whether e is
// still valid: If-None-Match with its ETag, If-Modified-Since with its
// Last-Modified (RFC 9111 §4.3.1). None when it has neither.
func (e *Entry) validators() []Field {
	var v []Field
	if etag := e.Get("ETag"); etag != "" {
		v = append(v, Field{Name: "If-None-Match", Value: etag})
	}
	if lm := e.Get("Last-Modified"); lm != "" {
		v = append(v, Field{Name: "If-Modified-Since", Value: lm})
	}
	return v
}

// selects reports whether a 304 answer to the conditional request for
// stored is about stored (RFC 9111 §4.3.4): its ETag, if it has one,
// matches stored's (strongly when it is strong), and its Last-Modified,
// if both have one, is stored's. A 304 without validators answers the
// request, which named stored's alone, and selects it.
func selects(notModified, stored *Response) bool {
	if etag := notModified.Get("ETag"); etag != "" {
		have := stored.Get("ETag")
		if strings.HasPrefix(etag, "W/") {
			return have != "" && strings.TrimPrefix(have, "W/") == strings.TrimPrefix(etag, "W/")
		}
		return have == etag
	}
	lm, have := notModified.Get("Last-Modified"), stored.Get("Last-Modified")
	if lm == "" || have == "" {
		return true
	}
	t1, err1 := http.ParseTime(lm)
	t2, err2 := http.ParseTime(have)
	if err1 != nil || err2 != nil {
		return lm == have
	}
	return t1.Equal(t2)
}

// notUpdated names the header fields a 304 does not update in a stored
// response (RFC 9111 §3.2): Content-Length, which describes the 304's
// own (empty) content, and the hop-by-hop fields, which are not stored
// (RFC 9111 §3.1).
var notUpdated = []string{"Content-Length", "Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate",
	"Proxy-Authentication-Info", "Proxy-Authorization", "TE", "Trailer", "Transfer-Encoding", "Upgrade"}

// refreshed returns stored updated by notModified, a 304 that selects
// it (RFC 9111 §3.2): each header field of the 304 replaces the stored
// fields of its name, but those notUpdated names and those the 304's
// Connection lists; the stored Age goes (the age starts again from the
// 304's own); status, reason and body stay. Value is the 304's Reparse
// of the result when set, else stored's.
func refreshed(stored, notModified *Response) *Response {
	skip := notModified.values("Connection")
	updates := make([]Field, 0, len(notModified.Header))
	for _, f := range notModified.Header {
		if !hasName(notUpdated, f.Name) && !hasName(skip, f.Name) {
			updates = append(updates, f)
		}
	}
	r := *stored
	r.Header = make([]Field, 0, len(stored.Header)+len(updates))
	for _, f := range stored.Header {
		if !strings.EqualFold(f.Name, "Age") && !hasField(updates, f.Name) {
			r.Header = append(r.Header, f)
		}
	}
	r.Header = append(r.Header, updates...)
	r.NoStore = stored.NoStore || notModified.NoStore
	r.Reparse = nil
	if notModified.Reparse != nil {
		notModified.Reparse(&r)
	}
	return &r
}

func hasName(names []string, name string) bool {
	for _, n := range names {
		if strings.EqualFold(n, name) {
			return true
		}
	}
	return false
}

func hasField(fs []Field, name string) bool {
	for _, f := range fs {
		if strings.EqualFold(f.Name, name) {
			return true
		}
	}
	return false
}
