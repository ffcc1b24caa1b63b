package node

import (
	"bytes"
	"strings"
	"time"

	"github.com/edgepush/edgepush/cache"
	"github.com/edgepush/edgepush/grip"
	"github.com/valyala/fasthttp"
)

// What the node hands the cache: a description of each client request
// (cacheRequest), the fetcher that asks the origin on a miss
// (fetchOrigin), the revalidator that asks it conditionally for a stale
// stored response (revalidator), and what it stores with each response
// (parsed).

// parsed is what the node derives from an origin response, once per
// response: kept in cache.Response.Value and shared by every hit.
type parsed struct {
	// since is the hub position when the origin was asked: messages after
	// it may be missing from the response and are replayed on subscribing.
	since uint64
	// askedAt is when the origin was asked (by this node or, for a copy
	// from a shield, by the shield): how old a shield says its copy is.
	askedAt time.Time
	in      *grip.Instruct // nil for a WebSocket-over-HTTP answer
	hr      heldResponse   // what the client sees (GRIP headers removed)
	err     error          // invalid instructions
	// wsChannels are the channels a WebSocket-over-HTTP answer subscribes
	// to (c:subscribe), for too-old copies (longpoll.go).
	wsChannels []string
}

// parsedOf returns what the node stored with an entry.
func parsedOf(e *cache.Entry) *parsed { return e.Value.(*parsed) }

// fetcher asks rt's origins with req, or the shield of sk (shield.go),
// and parses the answer.
func (s *Server) fetcher(rt *route, req *fasthttp.Request, sk *shieldKey) cache.Fetcher {
	return func() (*cache.Response, error) { return s.fetchVia(rt, req, sk) }
}

// clientFetcher is fetcher for the request of ctx, whose client gets the
// origin's interim responses (interim.go). It must be called before the
// handler of ctx returns.
func (s *Server) clientFetcher(ctx *fasthttp.RequestCtx, rt *route, req *fasthttp.Request, sk *shieldKey) cache.Fetcher {
	return func() (*cache.Response, error) {
		s.interim.relay(req, ctx)
		defer s.interim.forget(req)
		return s.fetchVia(rt, req, sk)
	}
}

// revalidator asks rt's origin for req conditionally: the validators of
// the stale stored response are added to a copy of req (the client's own
// validators never reach the origin for a cacheable request: see
// conditionalHeaders). When ctx is not nil, its client gets the origin's
// interim responses, as with clientFetcher.
func (s *Server) revalidator(ctx *fasthttp.RequestCtx, rt *route, req *fasthttp.Request, sk *shieldKey) cache.Revalidator {
	return func(validators []cache.Field) (*cache.Response, error) {
		cond := fasthttp.AcquireRequest()
		defer fasthttp.ReleaseRequest(cond)
		req.CopyTo(cond)
		for _, v := range validators {
			cond.Header.Set(v.Name, v.Value)
		}
		if ctx != nil {
			s.interim.relay(cond, ctx)
			defer s.interim.forget(cond)
		}
		return s.fetchVia(rt, cond, sk)
	}
}

// detachedFetch returns a function that makes, from its own copy of
// req (valid after the client request is over: req goes back to its
// pool), the header lookup the cache keys on, a fetcher and a
// revalidator: for background refreshes and hints.
func (s *Server) detachedFetch(rt *route, req *fasthttp.Request, sk *shieldKey) func() (func(string) string, cache.Fetcher, cache.Revalidator) {
	return func() (func(string) string, cache.Fetcher, cache.Revalidator) {
		own := &fasthttp.Request{}
		req.CopyTo(own)
		return joinedHeader(&own.Header), s.fetcher(rt, own, sk), s.revalidator(nil, rt, own, sk)
	}
}

// fetchOrigin asks rt's origin and parses its answer. A 304 (to a
// revalidator's conditional request) comes with Reparse: the cache
// parses the stored response it refreshes again, as of this request.
func (s *Server) fetchOrigin(rt *route, req *fasthttp.Request) (*cache.Response, error) {
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	askedAt := time.Now()
	since := s.hub.Position()
	if err := s.originDo(rt, req, resp); err != nil {
		return nil, err
	}
	r := &cache.Response{
		Status: resp.StatusCode(),
		Reason: string(resp.Header.StatusMessage()),
		Header: withDate(originHeaders(resp)),
		Body:   bytes.Clone(resp.Body()),
	}
	s.parse(r, since, askedAt)
	if r.Status == fasthttp.StatusNotModified {
		r.Reparse = func(refreshed *cache.Response) { s.parse(refreshed, since, askedAt) }
	}
	return r, nil
}

// parse sets r's Value, what the node derives from an origin response
// (its GRIP instructions and what the client sees), and whether its body
// is stored compressed; since is the hub position when the origin was
// asked, askedAt the time.
func (s *Server) parse(r *cache.Response, since uint64, askedAt time.Time) {
	in, err := grip.ParseInstruct(r.Header, r.Status, r.Body)
	if err == nil {
		err = s.checkChannels(in)
	}
	p := &parsed{since: since, askedAt: askedAt, in: in, err: err}
	if err == nil {
		p.hr = responseFor(r.Status, r.Reason, r.Header, r.Body, in)
		r.Compress = in.Hold != grip.HoldStream
	}
	r.Value = p
}

// cacheRequest describes a client request on route rt to the cache.
// namespace separates requests that are not plain HTTP (WebSocket
// opens: "ws"); header looks up the headers of the request as sent to the
// origin (what Vary'd keys are built from); detach returns a lookup and
// fetcher that do not depend on ctx, for work after the request (a
// background refresh, a hint), and a revalidator (nil: none) for the
// detached request. Requests with credentials (Authorization, Cookie)
// share an answer only when the answer allows it.
func (s *Server) cacheRequest(ctx *fasthttp.RequestCtx, rt *route, namespace string, header func(string) string,
	detach func() (func(string) string, cache.Fetcher, cache.Revalidator)) *cache.Request {
	return newCacheRequest(rt, namespace, string(ctx.Method()), requestURL(ctx), header, &ctx.Request.Header, detach)
}

// newCacheRequest is cacheRequest for a request of method for url, whose
// credentials are in creds (the client's request, or an origin request
// that carries them).
func newCacheRequest(rt *route, namespace, method, url string, header func(string) string, creds *fasthttp.RequestHeader,
	detach func() (func(string) string, cache.Fetcher, cache.Revalidator)) *cache.Request {
	r := &cache.Request{
		Namespace:    namespace,
		Method:       method,
		URL:          url,
		Header:       header,
		StaleIfError: rt.staleIfError,
	}
	var credentials []byte
	for _, name := range credentialHeaders {
		if v := creds.Peek(name); len(v) > 0 {
			r.CredentialHeaders = append(r.CredentialHeaders, name)
			credentials = append(append(append(credentials, name...), ':'), v...)
			credentials = append(credentials, 0)
		}
	}
	r.Authorized, r.Credentials = len(credentials) > 0, string(credentials)
	r.Detach = func() (*cache.Request, cache.Fetcher) {
		own := *r
		var fetch cache.Fetcher
		var revalidate cache.Revalidator
		own.Header, fetch, revalidate = detach()
		own.Detach = nil
		own.SetRevalidator(revalidate)
		return &own, fetch
	}
	return r
}

// credentialHeaders are the request headers that make an answer one
// user's: a shared cache stores it only when the answer allows it.
var credentialHeaders = []string{"Authorization", "Cookie"}

// requestURL is scheme://host/path?query, the cache's and purge's name for
// what a client asked.
func requestURL(ctx *fasthttp.RequestCtx) string {
	scheme := "http://"
	if ctx.IsTLS() {
		scheme = "https://"
	}
	// The target as sent, as routes match it and the origin gets it, so
	// that a request is cached under the name of what it fetched; in
	// normal form, so that spellings of one URL share an entry and a
	// purge by URL finds them all.
	return normalizeURL(scheme + string(ctx.Request.Header.Host()) + string(requestTarget(ctx)))
}

// normalizeURL puts scheme://host/target in the normal form the cache
// keys on (RFC 3986 §6.2.2): host in lower case, percent-encoded
// unreserved characters decoded, other escapes in upper-case hex. Purges
// by URL are normalized alike.
func normalizeURL(u string) string {
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok {
		return u
	}
	host, target := rest, ""
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		host, target = rest[:i], rest[i:]
	}
	if !needsNormalizing(host, target) {
		return u
	}
	var b strings.Builder
	b.Grow(len(u))
	b.WriteString(strings.ToLower(scheme))
	b.WriteString("://")
	b.WriteString(strings.ToLower(host))
	for i := 0; i < len(target); i++ {
		c := target[i]
		if c != '%' || i+2 >= len(target) || !isHex(target[i+1]) || !isHex(target[i+2]) {
			b.WriteByte(c)
			continue
		}
		d := unhex(target[i+1])<<4 | unhex(target[i+2])
		if isUnreserved(d) {
			b.WriteByte(d)
		} else {
			b.WriteByte('%')
			b.WriteByte(upperHex(target[i+1]))
			b.WriteByte(upperHex(target[i+2]))
		}
		i += 2
	}
	return b.String()
}

func needsNormalizing(host, target string) bool {
	return strings.IndexByte(target, '%') >= 0 || strings.ToLower(host) != host
}

func isHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

func upperHex(c byte) byte {
	if 'a' <= c && c <= 'f' {
		return c - 'a' + 'A'
	}
	return c
}

func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

// refetcher returns a function that asks the cache (or the origin) again
// for creq after the client request is over: a held long-poll's answer to
// a hint. Concurrent refetches of one URL make one origin request.
func (s *Server) refetcher(rt *route, creq *cache.Request) func() (*cache.Entry, error) {
	own, fetch := creq.Detach()
	return func() (*cache.Entry, error) {
		e, _, err := s.cacheGet(rt, own, fetch)
		return e, err
	}
}

// cacheGet is Get on the cache, or a plain fetch when caching is off for
// the node or for route rt.
func (s *Server) cacheGet(rt *route, creq *cache.Request, fetch cache.Fetcher) (*cache.Entry, cache.Result, error) {
	if s.cache == nil || !rt.cache {
		r, err := fetch()
		if err != nil {
			return nil, cache.Bypass, err
		}
		return &cache.Entry{Response: *r}, cache.Bypass, nil
	}
	return s.cache.Get(creq, fetch)
}

// cacheStatus is the X-Cache header value for a result.
func cacheStatus(r cache.Result) string {
	switch r {
	case cache.Hit:
		return "HIT"
	case cache.StaleOnError, cache.StaleRevalidating:
		return "STALE"
	case cache.Bypass:
		return "BYPASS"
	case cache.Revalidated:
		return "REVALIDATED"
	}
	return "MISS"
}

// fromCache reports whether a result was answered by a stored entry.
func fromCache(r cache.Result) bool {
	return r == cache.Hit || r == cache.StaleOnError || r == cache.StaleRevalidating || r == cache.Revalidated
}
