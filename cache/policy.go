package cache

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Field is one HTTP header field. It is an alias of the unnamed struct
// type, not a type of its own, so that the header lists of other packages
// that use the same alias (grip.Header) are the same type: a []grip.Header
// is a []Field and needs no conversion.
type Field = struct{ Name, Value string }

// Response is an origin response as the cache stores it.
type Response struct {
	Status int
	Reason string
	Header []Field
	Body   []byte
	// Value is the caller's parsed form of the response (for example its
	// GRIP instructions), computed once by the Fetcher and shared,
	// read-only, by every request the entry serves.
	Value any
	// Compress asks for gzip and zstd variants of Body when stored (for
	// bodies sent whole, not for the start of a stream).
	Compress bool
	// NoStore, set by the Fetcher, keeps the response out of the cache
	// whatever its headers say: it carries per-user state the cache
	// cannot see (e.g. WebSocket-over-HTTP meta set for one connection).
	NoStore bool
	// Reparse, set by a Revalidator on a 304 Not Modified answer,
	// computes Value (and Compress, NoStore) again for the stored
	// response the 304 refreshed: the 304 may change headers Value was
	// parsed from. Nil: the stored Value is kept.
	Reparse func(refreshed *Response)
}

// Get returns the first value of header name (case-insensitive).
func (r *Response) Get(name string) string {
	for _, f := range r.Header {
		if strings.EqualFold(f.Name, name) {
			return f.Value
		}
	}
	return ""
}

// values returns every value of header name, comma lists split.
func (r *Response) values(name string) []string {
	var out []string
	for _, f := range r.Header {
		if !strings.EqualFold(f.Name, name) {
			continue
		}
		for _, v := range strings.Split(f.Value, ",") {
			if v = strings.TrimSpace(v); v != "" {
				out = append(out, v)
			}
		}
	}
	return out
}

// directives are the parsed Cache-Control (and Surrogate-Control)
// directives that matter to a shared cache.
type directives struct {
	noStore, private, noCache, public, mustRevalidate bool
	mustUnderstand                                    bool
	maxAge, sMaxAge                                   time.Duration
	hasMaxAge, hasSMaxAge                             bool
	staleIfError, staleWhileRevalidate                time.Duration
	hasStaleIfError, hasSWR                           bool
}

// maxDeltaSeconds caps every delta-seconds value and computed lifetime
// (RFC 9111 §1.2.2: 2^31): a freshness lifetime plus a stale window, the
// store's TTL, then never overflows a time.Duration.
const maxDeltaSeconds = 1 << 31

func parseDirectives(values []string) directives {
	var d directives
	for _, v := range values {
		name, arg, _ := strings.Cut(v, "=")
		name = strings.ToLower(strings.TrimSpace(name))
		arg = strings.Trim(strings.TrimSpace(arg), `"`)
		secs := func() (time.Duration, bool) {
			n, err := strconv.ParseInt(arg, 10, 64)
			if err != nil || n < 0 {
				return 0, false
			}
			return min(time.Duration(n), maxDeltaSeconds) * time.Second, true
		}
		switch name {
		case "no-store":
			d.noStore = true
		case "private":
			d.private = true
		case "no-cache":
			d.noCache = true
		case "public":
			d.public = true
		case "must-revalidate", "proxy-revalidate":
			d.mustRevalidate = true
		case "must-understand":
			d.mustUnderstand = true
		case "max-age":
			d.maxAge, d.hasMaxAge = secs()
		case "s-maxage":
			d.sMaxAge, d.hasSMaxAge = secs()
		case "stale-if-error":
			d.staleIfError, d.hasStaleIfError = secs()
		case "stale-while-revalidate":
			d.staleWhileRevalidate, d.hasSWR = secs()
		}
	}
	return d
}

// policy is what the caching rules say about one response.
type policy struct {
	storable     bool
	freshFor     time.Duration
	staleIfError time.Duration
	swr          time.Duration
	// noStale: the response may not be served stale (must-revalidate,
	// proxy-revalidate, no-cache) unless it opted in with stale-if-error.
	noStale bool
}

// unstorableStatus lists statuses never stored: authorization failures,
// rate limits, server errors, and answers that are not a complete
// response to a plain request (206 Partial Content, 304 Not Modified:
// the node asks without the client's validators and range, so these only
// come from an origin that ignores that, and must never answer others).
func unstorableStatus(code int) bool {
	switch code {
	case 206, 304, 401, 403, 407, 429:
		return true
	}
	return code >= 500 || code < 200
}

// understoodStatus reports whether the cache knows the caching rules of
// status code (for must-understand): the final statuses HTTP defines.
func understoodStatus(code int) bool {
	return code >= 200 && code < 600 && http.StatusText(code) != ""
}

// policyFor applies RFC 9111 §3 and §4.2 as a shared cache, with
// CDN-Cache-Control (RFC 9213) in place of Cache-Control when present,
// plus Surrogate-Control, which a CDN obeys before either. A response is
// stored only with explicit freshness, or with no-cache (stale at once,
// revalidated on every use). It is never stored when it sets a
// cookie (Set-Cookie) or the caller marks it NoStore (per-user state the
// cache cannot see), and for a request with credentials only when the
// response says it is shared (public, s-maxage, must-revalidate) or
// varies on every credential header the request carries.
// defaultStaleIfError applies when the response does not say.
func policyFor(resp *Response, req *Request, now time.Time, defaultStaleIfError time.Duration) policy {
	cc := parseDirectives(resp.values("Cache-Control"))
	if cdn := resp.values("CDN-Cache-Control"); len(cdn) > 0 && validCDNCacheControl(cdn) {
		// RFC 9213: a CDN obeys CDN-Cache-Control instead of
		// Cache-Control, which is left to the caches after it; an
		// invalid one is ignored.
		cc = parseDirectives(cdn)
	}
	sc := parseDirectives(resp.values("Surrogate-Control"))
	if cc.mustUnderstand {
		// RFC 9111 §5.2.2.3: stored only if the cache understands the
		// status code, and then no-store (sent for caches that do not
		// know must-understand) does not apply.
		cc.noStore = !understoodStatus(resp.Status)
	}
	var p policy
	if cc.noStore || cc.private || sc.noStore || unstorableStatus(resp.Status) ||
		resp.NoStore || resp.Get("Set-Cookie") != "" {
		return p
	}
	vary := resp.values("Vary")
	for _, v := range vary {
		if v == "*" {
			return p
		}
	}
	if req.Authorized && !cc.public && !cc.hasSMaxAge && !cc.mustRevalidate && !variesOnAll(vary, req.CredentialHeaders) {
		return p
	}
	switch {
	case sc.hasMaxAge:
		p.freshFor = sc.maxAge
	case cc.hasSMaxAge:
		p.freshFor = cc.sMaxAge
	case cc.hasMaxAge:
		p.freshFor = cc.maxAge
	case resp.Get("Expires") != "":
		t, err := parseHTTPDate(resp.Get("Expires"))
		if err != nil || len(headerLines(resp, "Expires")) > 1 {
			return policy{storable: true} // invalid Expires: already stale (RFC 9111 §5.3)
		}
		date := now
		if d, err := http.ParseTime(resp.Get("Date")); err == nil {
			date = d
		}
		p.freshFor = min(max(t.Sub(date), 0), maxDeltaSeconds*time.Second)
	case cc.noCache:
		// Stored without freshness, to be revalidated on every use
		// (kept only with a validator, see Cache.storeEntry).
	default:
		return p // no explicit freshness: not stored
	}
	if cc.noCache {
		p.freshFor = 0
	}
	p.storable = true
	p.noStale = cc.mustRevalidate || cc.noCache
	p.staleIfError = defaultStaleIfError
	for _, d := range []directives{cc, sc} {
		if d.hasStaleIfError {
			p.staleIfError, p.noStale = d.staleIfError, false
		}
		if d.hasSWR {
			p.swr = d.staleWhileRevalidate
		}
	}
	if p.noStale {
		p.staleIfError, p.swr = 0, 0
	}
	return p
}

// validCDNCacheControl reports whether the members of a
// CDN-Cache-Control field (values split at commas) form the Structured
// Field Dictionary RFC 9213 requires: lower-case keys, the delta-seconds
// directives with integer values, other values bare items (tokens,
// numbers, quoted strings).
func validCDNCacheControl(members []string) bool {
	for _, m := range members {
		m, _, _ = strings.Cut(m, ";") // parameters: not used
		key, value, hasValue := strings.Cut(strings.TrimSpace(m), "=")
		if !validSFKey(key) {
			return false
		}
		if !hasValue {
			continue
		}
		switch key {
		case "max-age", "s-maxage", "stale-while-revalidate", "stale-if-error":
			if !validSFInteger(value) {
				return false
			}
		default:
			if !validSFBareItem(value) {
				return false
			}
		}
	}
	return true
}

func validSFKey(k string) bool {
	if k == "" || !(k[0] == '*' || 'a' <= k[0] && k[0] <= 'z') {
		return false
	}
	for i := 1; i < len(k); i++ {
		c := k[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || strings.IndexByte("_-.*", c) >= 0) {
			return false
		}
	}
	return true
}

func validSFInteger(v string) bool {
	v = strings.TrimPrefix(v, "-")
	if v == "" || len(v) > 15 {
		return false
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return false
		}
	}
	return true
}

// validSFBareItem accepts a quoted string, a number, a boolean (?0, ?1)
// or a token.
func validSFBareItem(v string) bool {
	switch {
	case v == "":
		return false
	case v[0] == '"':
		return len(v) >= 2 && v[len(v)-1] == '"'
	case v == "?0" || v == "?1":
		return true
	case v[0] == '-' || '0' <= v[0] && v[0] <= '9':
		_, err := strconv.ParseFloat(v, 64)
		return err == nil
	case v[0] == '*' || 'a' <= v[0] && v[0] <= 'z' || 'A' <= v[0] && v[0] <= 'Z':
		for i := 1; i < len(v); i++ {
			if c := v[i]; c <= ' ' || c >= 0x7f || strings.IndexByte("\"(),;<=>?@[\\]{}", c) >= 0 {
				return false
			}
		}
		return true
	}
	return false
}

// variesOnAll reports whether a response's Vary names every one of
// names (and names is not empty): each user's answer is then stored
// under its own key.
func variesOnAll(vary, names []string) bool {
	if len(names) == 0 {
		return false
	}
	for _, n := range names {
		found := false
		for _, v := range vary {
			if strings.EqualFold(v, n) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// parseHTTPDate parses an HTTP-date strictly (RFC 9110 §5.6.7): one of
// the three formats as written, two-digit hours and single spaces, GMT
// for the two that name a zone; Go's parser alone accepts variants a
// cache must treat as invalid. Letter case and the day-name (which
// recipients may ignore: the date names the day) do not matter.
func parseHTTPDate(v string) (time.Time, error) {
	if n := len(v); n > 4 && strings.EqualFold(v[n-4:], " GMT") {
		v = v[:n-3] + "GMT" // Go's parser matches the layout's literal GMT exactly
	}
	for _, layout := range []string{http.TimeFormat, time.RFC850, time.ANSIC} {
		t, err := time.Parse(layout, v)
		if err != nil || layout != time.ANSIC && !strings.HasSuffix(v, " GMT") {
			continue
		}
		if strings.EqualFold(afterDayName(t.Format(layout)), afterDayName(v)) {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("cache: invalid HTTP-date %q", v)
}

// afterDayName is an HTTP-date without its leading day-name.
func afterDayName(v string) string {
	return strings.TrimLeft(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
}

// headerLines returns the raw values of every line of header name.
func headerLines(r *Response, name string) []string {
	var out []string
	for _, f := range r.Header {
		if strings.EqualFold(f.Name, name) {
			out = append(out, f.Value)
		}
	}
	return out
}

// initialAge is the origin's Age header (RFC 9111 §4.2.3, simplified: the
// origin is close, so response delay is ignored).
func initialAge(resp *Response) time.Duration {
	// A list ("7200, 0") counts by its first member (RFC 9111 §5.1).
	first, _, _ := strings.Cut(resp.Get("Age"), ",")
	n, err := strconv.ParseInt(strings.TrimSpace(first), 10, 64)
	if err != nil || n < 0 {
		return 0
	}
	return min(time.Duration(n), maxDeltaSeconds) * time.Second
}
