package cache

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// validatingOrigin answers plain fetches with its current response, and
// conditional ones (revalidate) with 304 and notModified's headers when
// the validators match its current ETag or Last-Modified.
type validatingOrigin struct {
	origin
	notModified []Field
	full        atomic.Int64 // conditional requests answered in full
	not         atomic.Int64 // conditional requests answered 304
	asked       [][]Field
	gate        chan struct{} // if set, conditional requests wait for it
}

func (o *validatingOrigin) revalidate(v []Field) (*Response, error) {
	if o.gate != nil {
		<-o.gate
	}
	o.mu.Lock()
	o.asked = append(o.asked, v)
	if o.err != nil {
		o.mu.Unlock()
		return nil, o.err
	}
	match := false
	for _, f := range v {
		switch f.Name {
		case "If-None-Match":
			match = match || f.Value == o.resp.Get("ETag")
		case "If-Modified-Since":
			match = match || f.Value == o.resp.Get("Last-Modified")
		}
	}
	if !match {
		o.mu.Unlock()
		o.full.Add(1)
		r := o.resp
		return &r, nil
	}
	hs := append([]Field(nil), o.notModified...)
	o.mu.Unlock()
	o.not.Add(1)
	return &Response{Status: 304, Header: hs, Reparse: func(r *Response) { r.Value = "reparsed:" + r.Get("X-Version") }}, nil
}

func (o *validatingOrigin) lastAsked() []Field {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.asked) == 0 {
		return nil
	}
	return o.asked[len(o.asked)-1]
}

// staleAfterStoring stores, for url, the response o is set to answer
// with body and headers, then lets 20 s pass: a max-age=10 entry is then
// stale.
func staleAfterStoring(t *testing.T, url, body string, headers ...string) (*Cache, *clock, *validatingOrigin) {
	t.Helper()
	c, clk := newCache(t)
	o := &validatingOrigin{}
	o.set(body, headers...)
	get(t, c, &o.origin, condReq(url, o))
	clk.add(20 * time.Second)
	return c, clk, o
}

// condReq is a GET that revalidates through o.
func condReq(url string, o *validatingOrigin) *Request {
	r := greq(url)
	r.SetRevalidator(o.revalidate)
	return r
}

func fieldValue(fs []Field, name string) string {
	var vs []string
	for _, f := range fs {
		if strings.EqualFold(f.Name, name) {
			vs = append(vs, f.Value)
		}
	}
	return strings.Join(vs, ",")
}

// TestRevalidationRefreshesStoredEntry: a stale entry with validators
// is revalidated with a conditional request carrying them; the 304
// refreshes it (RFC 9111 §3.2: its headers replace the stored ones of
// their names, Content-Length, hop-by-hop fields and the stored Age
// aside; the body stays; Value is parsed again; freshness comes from the
// merged headers) and it is served, then fresh, without another request.
func TestRevalidationRefreshesStoredEntry(t *testing.T) {
	c, clk := newCache(t)
	o := &validatingOrigin{}
	o.set("body-v1", "Cache-Control", "max-age=10", "ETag", `"e1"`, "Last-Modified", "Wed, 01 Jan 2025 00:00:00 GMT",
		"X-Version", "1", "Content-Length", "7", "Age", "3", "X-Kept", "k")
	o.resp.Value = "parsed:1"
	if body, res := get(t, c, &o.origin, condReq("http://h/r", o)); body != "body-v1" || res != Miss {
		t.Fatalf("first: %q %v", body, res)
	}
	o.notModified = []Field{{"Cache-Control", "max-age=100"}, {"X-Version", "2"}, {"Content-Length", "0"},
		{"Connection", "close, X-Hop"}, {"X-Hop", "h"}, {"Keep-Alive", "timeout=5"}}
	clk.add(20 * time.Second)
	e, res, err := c.Get(condReq("http://h/r", o), o.fetch)
	if err != nil || res != Revalidated {
		t.Fatalf("stale: %v %v", res, err)
	}
	if got := o.lastAsked(); fieldValue(got, "If-None-Match") != `"e1"` ||
		fieldValue(got, "If-Modified-Since") != "Wed, 01 Jan 2025 00:00:00 GMT" {
		t.Fatalf("conditional request headers %v", got)
	}
	if string(e.Response.Body) != "body-v1" || e.Status != 200 {
		t.Fatalf("refreshed entry: %d %q", e.Status, e.Response.Body)
	}
	for name, want := range map[string]string{"Cache-Control": "max-age=100", "X-Version": "2", "Content-Length": "7",
		"ETag": `"e1"`, "X-Kept": "k", "Age": "", "Connection": "", "X-Hop": "", "Keep-Alive": ""} {
		if got := fieldValue(e.Header, name); got != want {
			t.Errorf("%s = %q, want %q (headers %v)", name, got, want, e.Header)
		}
	}
	if e.Value != "reparsed:2" {
		t.Errorf("Value %v: not parsed again from the merged headers", e.Value)
	}
	clk.add(90 * time.Second) // fresh by the 304's max-age=100, counted from the revalidation
	if body, res := get(t, c, &o.origin, condReq("http://h/r", o)); body != "body-v1" || res != Hit {
		t.Fatalf("after the revalidation: %q %v", body, res)
	}
	if o.fetches.Load() != 1 || o.not.Load() != 1 || o.full.Load() != 0 {
		t.Fatalf("fetches %d, 304s %d, conditional 200s %d", o.fetches.Load(), o.not.Load(), o.full.Load())
	}
	if st := c.Stats(); st.Revalidations != 1 || st.Fetches != 2 || st.Hits != 1 || st.Misses != 2 {
		t.Fatalf("stats %+v", st)
	}
	checkStatsAdd(t, c)
}

// TestRevalidationAnsweredInFullReplaces: a 200 to the conditional
// request replaces the entry; a 304 whose ETag is not the stored one's
// does not refresh it: the entry is fetched in full.
func TestRevalidationAnsweredInFullReplaces(t *testing.T) {
	c, clk, o := staleAfterStoring(t, "http://h/f", "v1", "Cache-Control", "max-age=10", "ETag", `"e1"`)
	o.set("v2", "Cache-Control", "max-age=10", "ETag", `"e2"`)
	if body, res := get(t, c, &o.origin, condReq("http://h/f", o)); body != "v2" || res != Miss {
		t.Fatalf("changed: %q %v", body, res)
	}
	if o.full.Load() != 1 || o.fetches.Load() != 1 {
		t.Fatalf("conditional 200s %d, plain fetches %d", o.full.Load(), o.fetches.Load())
	}
	clk.add(20 * time.Second)
	// An origin that answers 304 about another representation.
	wrong := &Request{Method: "GET", URL: "http://h/f"}
	wrong.SetRevalidator(func([]Field) (*Response, error) {
		return &Response{Status: 304, Header: []Field{{"ETag", `"other"`}}}, nil
	})
	o.set("v3", "Cache-Control", "max-age=10", "ETag", `"e3"`)
	if body, res := get(t, c, &o.origin, wrong); body != "v3" || res != Miss {
		t.Fatalf("304 for another ETag: %q %v", body, res)
	}
	if o.fetches.Load() != 2 || c.Stats().Revalidations != 0 {
		t.Fatalf("plain fetches %d, stats %+v", o.fetches.Load(), c.Stats())
	}
}

// TestNoCacheAndMustRevalidateRevalidate: a no-cache response is stored
// and revalidated on every use; a stale must-revalidate one too, and
// neither is served stale while the origin fails.
func TestNoCacheAndMustRevalidateRevalidate(t *testing.T) {
	for _, cc := range []string{"no-cache", "max-age=10, must-revalidate", "max-age=10, no-cache"} {
		t.Run(cc, func(t *testing.T) {
			c, clk := newCache(t)
			o := &validatingOrigin{}
			o.set("v1", "Cache-Control", cc, "ETag", `W/"w1"`)
			get(t, c, &o.origin, condReq("http://h/n", o))
			for i := range 3 {
				clk.add(11 * time.Second)
				if body, res := get(t, c, &o.origin, condReq("http://h/n", o)); body != "v1" || res != Revalidated {
					t.Fatalf("use %d: %q %v", i, body, res)
				}
			}
			if o.not.Load() != 3 || o.fetches.Load() != 1 || fieldValue(o.lastAsked(), "If-None-Match") != `W/"w1"` {
				t.Fatalf("304s %d, plain fetches %d, asked %v", o.not.Load(), o.fetches.Load(), o.lastAsked())
			}
			clk.add(11 * time.Second)
			o.fail(errDown)
			if _, _, err := c.Get(condReq("http://h/n", o), o.fetch); err == nil {
				t.Fatal("served stale while the origin is down")
			}
		})
	}
}

// TestNoCacheWithoutValidatorIsNotStored: a no-cache response without a
// validator could only be fetched again: it is not kept.
func TestNoCacheWithoutValidatorIsNotStored(t *testing.T) {
	c, _ := newCache(t)
	o := &validatingOrigin{}
	o.set("v1", "Cache-Control", "no-cache")
	get(t, c, &o.origin, condReq("http://h/nv", o))
	get(t, c, &o.origin, condReq("http://h/nv", o))
	if o.fetches.Load() != 2 || len(o.asked) != 0 || c.Stats().Stores != 0 {
		t.Fatalf("plain fetches %d, conditional %d, stats %+v", o.fetches.Load(), len(o.asked), c.Stats())
	}
}

// TestRevalidatorIsNotInheritedByCopies: a copy of a request (for
// another URL, say) does not use the original's revalidator: it fetches
// in full unless given its own.
func TestRevalidatorIsNotInheritedByCopies(t *testing.T) {
	c, clk := newCache(t)
	o := &validatingOrigin{}
	o.set("v1", "Cache-Control", "max-age=10", "ETag", `"e1"`)
	req := condReq("http://h/c", o)
	get(t, c, &o.origin, req)
	clk.add(20 * time.Second)
	cp := *req
	if _, res := get(t, c, &o.origin, &cp); res != Miss || len(o.asked) != 0 || o.fetches.Load() != 2 {
		t.Fatalf("copy: %v, conditional %d, plain fetches %d", res, len(o.asked), o.fetches.Load())
	}
	clk.add(20 * time.Second)
	cp.SetRevalidator(o.revalidate)
	if _, res := get(t, c, &o.origin, &cp); res != Revalidated {
		t.Fatalf("copy with its own revalidator: %v", res)
	}
	req.SetRevalidator(nil)
	clk.add(20 * time.Second)
	if _, res := get(t, c, &o.origin, req); res != Miss {
		t.Fatalf("revalidator cleared: %v", res)
	}
}

// TestSoftPurgeRevalidates: a soft-purged entry is revalidated, not
// fetched in full; the 304 makes it fresh again.
func TestSoftPurgeRevalidates(t *testing.T) {
	c, _ := newCache(t)
	o := &validatingOrigin{}
	o.set("v1", "Cache-Control", "max-age=600", "ETag", `"e1"`, "Surrogate-Key", "k")
	get(t, c, &o.origin, condReq("http://h/p", o))
	c.Purge("k", true)
	if body, res := get(t, c, &o.origin, condReq("http://h/p", o)); body != "v1" || res != Revalidated {
		t.Fatalf("soft-purged: %q %v", body, res)
	}
	if _, res := get(t, c, &o.origin, condReq("http://h/p", o)); res != Hit {
		t.Fatalf("after the revalidation: %v", res)
	}
	c.PurgeURL("http://h/p", false) // hard: gone, fetched in full
	if _, res := get(t, c, &o.origin, condReq("http://h/p", o)); res != Miss {
		t.Fatalf("hard-purged: %v", res)
	}
	if o.not.Load() != 1 || o.fetches.Load() != 2 {
		t.Fatalf("304s %d, plain fetches %d", o.not.Load(), o.fetches.Load())
	}
}

// TestBackgroundRefreshRevalidates: a stale-while-revalidate refresh
// asks conditionally with the detached request's revalidator, and the
// 304 refreshes the entry.
func TestBackgroundRefreshRevalidates(t *testing.T) {
	c, _, o := staleAfterStoring(t, "http://h/b", "v1", "Cache-Control", "max-age=10, stale-while-revalidate=60", "ETag", `"e1"`, "X-Version", "1")
	o.notModified = []Field{{"X-Version", "2"}}
	var detached atomic.Int64
	req := greq("http://h/b")
	req.SetRevalidator(func([]Field) (*Response, error) {
		t.Error("the refresh used the caller's revalidator")
		return nil, errDown
	})
	req.Detach = func() (*Request, Fetcher) {
		detached.Add(1)
		cp := *req
		cp.SetRevalidator(o.revalidate)
		return &cp, o.fetch
	}
	if body, res := get(t, c, &o.origin, req); body != "v1" || res != StaleRevalidating {
		t.Fatalf("stale: %q %v", body, res)
	}
	c.bg.Wait()
	e, res, err := c.Get(condReq("http://h/b", o), o.fetch)
	if err != nil || res != Hit || fieldValue(e.Header, "X-Version") != "2" {
		t.Fatalf("after the refresh: %v %v %v", res, err, e.Header)
	}
	if detached.Load() != 1 || o.not.Load() != 1 || o.fetches.Load() != 1 || c.Stats().Revalidations != 1 {
		t.Fatalf("detaches %d, 304s %d, plain fetches %d", detached.Load(), o.not.Load(), o.fetches.Load())
	}
}

// TestConcurrentRevalidationsCoalesce: concurrent requests for a stale
// entry make one conditional request, and all get the refreshed entry.
func TestConcurrentRevalidationsCoalesce(t *testing.T) {
	c, _, o := staleAfterStoring(t, "http://h/cc", "v1", "Cache-Control", "max-age=10", "ETag", `"e1"`)
	o.gate = make(chan struct{})
	const n = 8
	answers := make([]<-chan answer, n)
	for i := range answers {
		answers[i] = goGet(c, condReq("http://h/cc", o), o.fetch)
	}
	waitWaiting(t, c, n-1)
	close(o.gate)
	for i, ch := range answers {
		if a := await(t, fmt.Sprint("request ", i), ch); a.body != "v1" || a.res != Revalidated {
			t.Errorf("request %d: %q %v, want the revalidated entry", i, a.body, a.res)
		}
	}
	if o.not.Load() != 1 || o.fetches.Load() != 1 {
		t.Fatalf("304s %d, plain fetches %d", o.not.Load(), o.fetches.Load())
	}
	if st := c.Stats(); st.Coalesced != n-1 {
		t.Fatalf("stats %+v", st)
	}
	checkStatsAdd(t, c)
}

// TestRefreshedVariantsAreReused: a refreshed entry keeps the stored
// compressed variants (same body, type and encoding).
func TestRefreshedVariantsAreReused(t *testing.T) {
	c, clk := newCache(t)
	o := &validatingOrigin{}
	o.set(strings.Repeat("compressible ", 200), "Cache-Control", "max-age=10", "ETag", `"e1"`, "Content-Type", "text/plain")
	o.resp.Compress = true
	first, _, _ := c.Get(condReq("http://h/z", o), o.fetch)
	clk.add(20 * time.Second)
	e, res, _ := c.Get(condReq("http://h/z", o), o.fetch)
	if res != Revalidated || !e.HasVariants() {
		t.Fatalf("%v, variants %v", res, e.HasVariants())
	}
	b1, _ := first.Body("gzip")
	b2, _ := e.Body("gzip")
	if &b1[0] != &b2[0] {
		t.Fatal("gzip variant computed again")
	}
}
