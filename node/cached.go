package node

import (
	"bytes"
	"net/http"

	"github.com/edgepush/edgepush/cache"
	"github.com/edgepush/edgepush/grip"
	"github.com/valyala/fasthttp"
)

// What the node hands the cache: a description of each client request
// (cacheRequest), the fetcher that asks the origin on a miss
// (fetchOrigin), and what it stores with each response (parsed).

// parsed is what the node derives from an origin response, once per
// response: kept in cache.Response.Value and shared by every hit.
type parsed struct {
	// since is the hub position when the origin was asked: messages after
	// it may be missing from the response and are replayed on subscribing.
	since uint64
	in    *grip.Instruct // nil for a WebSocket-over-HTTP answer
	hr    heldResponse   // what the client sees (GRIP headers removed)
	err   error          // invalid instructions
}

// parsedOf returns what the node stored with an entry.
func parsedOf(e *cache.Entry) *parsed { return e.Value.(*parsed) }

// fetcher asks rt's origins with req and parses the answer.
func (s *Server) fetcher(rt *route, req *fasthttp.Request) cache.Fetcher {
	return func() (*cache.Response, error) { return s.fetchOrigin(rt, req) }
}

// detachedFetch returns a function that makes a fetcher with its own copy
// of req, valid after the client request is over (req goes back to its
// pool): for background refreshes and hints.
func (s *Server) detachedFetch(rt *route, req *fasthttp.Request) func() cache.Fetcher {
	return func() cache.Fetcher {
		own := &fasthttp.Request{}
		req.CopyTo(own)
		return s.fetcher(rt, own)
	}
}

// fetchOrigin asks rt's origin and parses its answer.
func (s *Server) fetchOrigin(rt *route, req *fasthttp.Request) (*cache.Response, error) {
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	since := s.hub.Position()
	if err := s.originDo(rt, req, resp); err != nil {
		return nil, err
	}
	headers := originHeaders(resp)
	r := &cache.Response{
		Status: resp.StatusCode(),
		Reason: string(resp.Header.StatusMessage()),
		Header: headers,
		Body:   bytes.Clone(resp.Body()),
	}
	in, err := grip.ParseInstruct(headers, r.Status, r.Body)
	if err == nil {
		err = s.checkChannels(in)
	}
	p := &parsed{since: since, in: in, err: err}
	if err == nil {
		p.hr = responseFor(r.Status, r.Reason, headers, r.Body, in)
		r.Compress = in.Hold != grip.HoldStream
	}
	r.Value = p
	return r, nil
}

// cacheRequest describes a client request on route rt to the cache.
// namespace separates requests that are not plain HTTP (WebSocket
// opens: "ws"); detached returns a fetcher that does not depend on ctx,
// for work after the request (a background refresh, a hint).
func (s *Server) cacheRequest(ctx *fasthttp.RequestCtx, rt *route, namespace string, detached func() cache.Fetcher) *cache.Request {
	auth := ctx.Request.Header.Peek("Authorization")
	r := &cache.Request{
		Namespace:    namespace,
		Method:       string(ctx.Method()),
		URL:          requestURL(ctx),
		Header:       func(name string) string { return string(ctx.Request.Header.Peek(name)) },
		Authorized:   len(auth) > 0,
		Credentials:  string(auth),
		StaleIfError: rt.staleIfError,
	}
	r.Detach = func() (*cache.Request, cache.Fetcher) {
		h := http.Header{}
		for k, v := range ctx.Request.Header.All() {
			h.Add(string(k), string(v))
		}
		own := *r
		own.Header, own.Detach = h.Get, nil
		return &own, detached()
	}
	return r
}

// requestURL is scheme://host/path?query, the cache's and purge's name for
// what a client asked.
func requestURL(ctx *fasthttp.RequestCtx) string {
	scheme := "http://"
	if ctx.IsTLS() {
		scheme = "https://"
	}
	// The target as sent, as routes match it and the origin gets it, so
	// that a request is cached under the name of what it fetched.
	return scheme + string(ctx.Request.Header.Host()) + string(requestTarget(ctx))
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
	}
	return "MISS"
}

// fromCache reports whether a result was answered by a stored entry.
func fromCache(r cache.Result) bool {
	return r == cache.Hit || r == cache.StaleOnError || r == cache.StaleRevalidating
}
