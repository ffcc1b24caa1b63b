package cache

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// fieldsFromText turns "Name: value" lines into header fields.
func fieldsFromText(s string) []Field {
	var out []Field
	for line := range strings.SplitSeq(s, "\n") {
		if line == "" {
			continue
		}
		name, value, _ := strings.Cut(line, ":")
		out = append(out, Field{Name: name, Value: strings.TrimSpace(value)})
	}
	return out
}

// lookupFirst is a request's header lookup as the node's is: the first
// field of that name, compared without case.
func lookupFirst(fs []Field) func(string) string {
	return func(name string) string {
		for _, f := range fs {
			if strings.EqualFold(f.Name, name) {
				return f.Value
			}
		}
		return ""
	}
}

// hasDirective reports whether a field called header lists directive
// (its name before any "=", without case or surrounding space).
func hasDirective(fs []Field, header string, directives ...string) bool {
	for _, f := range fs {
		if !strings.EqualFold(f.Name, header) {
			continue
		}
		for elem := range strings.SplitSeq(f.Value, ",") {
			name, _, _ := strings.Cut(elem, "=")
			if slices.Contains(directives, strings.ToLower(strings.TrimSpace(name))) {
				return true
			}
		}
	}
	return false
}

// maxAgeCap is the longest age or freshness the rules may give: sums of
// two of them must not overflow a time.Duration.
const maxAgeCap = 1 << 31 * time.Second

// FuzzPolicy: the caching rules, for any response headers, status and
// clock: no duration is negative or past maxAgeCap (freshFor plus the
// stale windows is the store's TTL and must not overflow); no-store and
// private (Cache-Control), no-store (Surrogate-Control), Vary: *, error
// statuses and, for authorized requests, the lack of public, s-maxage or
// must-revalidate each prevent storing; nothing is stored without
// explicit freshness; no-cache means no freshness, and a response that may
// not be served stale gets no stale windows.
func FuzzPolicy(f *testing.F) {
	for _, s := range []struct {
		headers    string
		status     int
		authorized bool
	}{
		{"Cache-Control: public, max-age=60\nAge: 10", 200, false},
		{"Cache-Control: s-maxage=600, stale-while-revalidate=30, stale-if-error=86400", 200, true},
		{"Surrogate-Control: max-age=3600\nCache-Control: no-cache", 200, false},
		{"Cache-Control: private, max-age=60", 200, false},
		{"Cache-Control: no-store", 200, false},
		{"Cache-Control: max-age=\"60\", must-revalidate\nVary: Accept-Language, *", 200, false},
		{"Expires: Thu, 01 Dec 2044 16:00:00 GMT\nDate: Tue, 15 Nov 1994 08:12:31 GMT", 200, false},
		{"Expires: 0", 200, false},
		{"Cache-Control: max-age=-1, s-maxage=99999999999999999999", 404, false},
		{"Cache-Control: max-age=60", 503, false},
		{"Cache-Control: max-age=60\nAge: 18446744073", 200, false},
		{"Expires: Fri, 31 Dec 9999 23:59:59 GMT\nDate: Mon, 01 Jan 0001 00:00:00 GMT", 200, false},
	} {
		f.Add(s.headers, s.status, s.authorized, int64(1_700_000_000))
	}
	f.Fuzz(func(t *testing.T, headerText string, status int, authorized bool, nowSec int64) {
		fs := fieldsFromText(headerText)
		resp := &Response{Status: status, Header: fs}
		now := time.Unix(max(nowSec, -nowSec-1)%253402300800, 0) // 1970 to 9999
		defaultSIE := 24 * time.Hour
		p := policyFor(resp, &Request{Authorized: authorized}, now, defaultSIE)
		for _, d := range []time.Duration{p.freshFor, p.staleIfError, p.swr} {
			if d < 0 || d > max(maxAgeCap, defaultSIE) {
				t.Fatalf("duration out of range: %+v", p)
			}
		}
		if age := initialAge(resp); age < 0 || age > maxAgeCap {
			t.Fatalf("Age %q: initial age %v", resp.Get("Age"), age)
		}
		if !p.storable {
			if p != (policy{}) {
				t.Fatalf("not storable but %+v", p)
			}
			return
		}
		fail := func(why string) { t.Helper(); t.Fatalf("stored %s: %+v", why, p) }
		switch {
		case hasDirective(fs, "Cache-Control", "no-store", "private"):
			fail("with Cache-Control no-store or private")
		case hasDirective(fs, "Surrogate-Control", "no-store"):
			fail("with Surrogate-Control no-store")
		case slices.Contains(resp.values("Vary"), "*"):
			fail("with Vary: *")
		case status < 200 || status >= 500 || slices.Contains([]int{401, 403, 407, 429}, status):
			fail("an error status")
		case authorized && !hasDirective(fs, "Cache-Control", "public", "s-maxage", "must-revalidate", "proxy-revalidate"):
			fail("for an authorized request")
		case !hasDirective(fs, "Cache-Control", "max-age", "s-maxage", "no-cache") && !hasDirective(fs, "CDN-Cache-Control", "no-cache") &&
			!hasDirective(fs, "Surrogate-Control", "max-age") && resp.Get("Expires") == "":
			// no-cache is storable by policy, to be revalidated on every
			// use (Cache.storeEntry keeps it only with a validator).
			fail("without explicit freshness")
		case hasDirective(fs, "Cache-Control", "no-cache") && p.freshFor != 0:
			fail("fresh with no-cache")
		case p.noStale && (p.staleIfError != 0 || p.swr != 0):
			fail("with stale windows though it may not be served stale")
		}
		e := newEntry(resp, &Request{Method: "GET", URL: "http://h/"}, "GET http://h/", now, 0, defaultSIE)
		if e.Age(now) < 0 || e.staleAt().Before(now.Add(-maxAgeCap)) {
			t.Fatalf("entry age %v, stale at %v (now %v)", e.Age(now), e.staleAt(), now)
		}
	})
}

// FuzzVaryKey: the stored key of a request and the entry's match agree:
// two requests whose Vary'd headers are equal but for whitespace (and
// the case of Accept-Language) share a key and each matches the other's
// entry; requests that differ in a
// Vary'd header (its value without NUL, which HTTP parsers refuse in
// field values) have different keys and do not match; a header the
// response does not vary on (Accept-Encoding included: the node serves
// encodings itself) never changes the key; normalizeVaryValue is
// idempotent.
func FuzzVaryKey(f *testing.F) {
	for _, s := range []struct{ vary, a, b, extraName, extraValue string }{
		{"Accept-Language", "Accept-Language: en-US,en;q=0.9", "accept-language: en-US,en;q=0.9", "Cookie", "a=1"},
		{"Accept-Language, Cookie", "Accept-Language: fr\nCookie: s=1", "Accept-Language: fr\nCookie: s=2", "Accept-Encoding", "gzip, br"},
		{"accept-encoding, origin", "Origin: https://a.example\nAccept-Encoding: gzip", "Origin:  https://a.example \nAccept-Encoding: zstd", "User-Agent", "curl/8.5.0"},
		{"X-A, X-B", "X-A: x\x00X-B=y", "X-A: x\nX-B: y\x00X-B=", "X-C", ""},
		{"", "X-A: 1", "X-A: 2", "X-A", "3"},
		{"User-Agent", "User-Agent: Mozilla/5.0 (X11; Linux x86_64)", "User-Agent: Mozilla/5.0\t(X11;  Linux x86_64)", "Vary", "User-Agent"},
		{"Accept-Language, Foo", "Accept-Language: en, de\nFoo: 1,2", "Accept-Language:  eN ,De\nFoo:  1 , 2 ", "Bar", "x"},
	} {
		f.Add("GET http://example.com/stream?x=1", s.vary, s.a, s.b, s.extraName, s.extraValue)
	}
	f.Fuzz(func(t *testing.T, primary, vary, aText, bText, extraName, extraValue string) {
		resp := &Response{Status: 200, Header: []Field{{Name: "Cache-Control", Value: "max-age=60"}, {Name: "Vary", Value: vary}}}
		a, b := fieldsFromText(aText), fieldsFromText(bText)
		reqA := &Request{Method: "GET", URL: "http://h/", Header: lookupFirst(a)}
		reqB := &Request{Method: "GET", URL: "http://h/", Header: lookupFirst(b)}
		e := newEntry(resp, reqA, primary, time.Unix(0, 0), 0, 0)
		names := e.varyNames
		if len(names) == 0 && e.key != primary || !e.matches(reqA) {
			t.Fatalf("entry %q (names %q) does not match its own request", e.key, names)
		}
		if variantKey(primary, names, reqA.Header) != e.key {
			t.Fatalf("entry key %q is not the request's key", e.key)
		}
		keyB := variantKey(primary, names, reqB.Header)
		same, nul := true, false
		for _, n := range names {
			va, vb := reqA.Header(n), reqB.Header(n)
			same = same && slices.Equal(listWords(n, va), listWords(n, vb))
			nul = nul || strings.ContainsRune(va+vb, 0)
		}
		if same && (keyB != e.key || !e.matches(reqB)) {
			t.Fatalf("equal Vary'd headers (names %q): keys %q and %q, match %v", names, e.key, keyB, e.matches(reqB))
		}
		if !same && (e.matches(reqB) || (!nul && keyB == e.key)) {
			t.Fatalf("different Vary'd headers (names %q): keys %q and %q, match %v", names, e.key, keyB, e.matches(reqB))
		}
		// A header not varied on, first in the list.
		varied := slices.ContainsFunc(names, func(n string) bool { return strings.EqualFold(n, extraName) })
		if !varied {
			c := append([]Field{{Name: extraName, Value: extraValue}}, a...)
			if k := variantKey(primary, names, lookupFirst(c)); k != e.key {
				t.Fatalf("header %q (not in Vary %q) changed the key: %q vs %q", extraName, names, k, e.key)
			}
		}
		// Whitespace added around and inside values.
		d := make([]Field, len(a))
		for i, fl := range a {
			d[i] = Field{Name: fl.Name, Value: " \t" + strings.ReplaceAll(fl.Value, " ", " \t ") + " "}
		}
		if k := variantKey(primary, names, lookupFirst(d)); k != e.key {
			t.Fatalf("whitespace changed the key: %q vs %q", k, e.key)
		}
		for _, v := range []string{extraValue, aText} {
			if n := normalizeVaryValue(vary, v); normalizeVaryValue(vary, n) != n {
				t.Fatalf("normalizeVaryValue(%q) = %q is not a fixed point", v, n)
			}
		}
		if slices.Contains(names, "Accept-Encoding") || slices.ContainsFunc(names, func(n string) bool { return n != http.CanonicalHeaderKey(n) }) {
			t.Fatalf("vary names %q", names)
		}
	})
}

// listWords is how FuzzVaryKey tells equivalent values of header name:
// the words of v, commas words of their own, in lower case for
// Accept-Language.
func listWords(name, v string) []string {
	if strings.EqualFold(name, "Accept-Language") {
		v = strings.ToLower(v)
	}
	return strings.Fields(strings.ReplaceAll(v, ",", " , "))
}

// TestHugeAgeIsStale: an Age past what a Duration holds in nanoseconds
// (found by FuzzPolicy) made the entry's age negative, so it was served
// as fresh far past its max-age; the age is capped at 2^31 seconds.
func TestHugeAgeIsStale(t *testing.T) {
	c, clk := newCache(t)
	o := &origin{}
	o.set("x", "Cache-Control", "max-age=60", "Age", "9223372037")
	if _, res := get(t, c, o, greq("http://h/old")); res != Miss {
		t.Fatalf("first get: %v", res)
	}
	clk.add(time.Second)
	e, res, err := c.Get(greq("http://h/old"), o.fetch)
	if err != nil || res != Miss || o.fetches.Load() != 2 {
		t.Fatalf("an answer older than its max-age: %v, %d fetches, %v", res, o.fetches.Load(), err)
	}
	if e.Age(clk.now()) != maxAgeCap {
		t.Fatalf("age %v, want %v", e.Age(clk.now()), maxAgeCap)
	}
}

// TestFarFutureExpiresIsStored: an Expires more than 292 years ahead
// (found by FuzzPolicy) gave a freshness that overflowed the store's TTL,
// so the response was never stored; the freshness is capped at 2^31
// seconds, and the entry kept for MaxLifetime.
func TestFarFutureExpiresIsStored(t *testing.T) {
	c, clk := newCache(t)
	o := &origin{}
	o.set("x", "Expires", "Fri, 31 Dec 9999 23:59:59 GMT")
	get(t, c, o, greq("http://h/forever"))
	clk.add(time.Hour)
	if _, res := get(t, c, o, greq("http://h/forever")); res != Hit || o.fetches.Load() != 1 {
		t.Fatalf("far-future Expires: %v after %d fetches", res, o.fetches.Load())
	}
}
