package node

import (
	"bytes"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/edgepush/edgepush/cache"
	"github.com/edgepush/edgepush/grip"
	"github.com/valyala/fasthttp"
)

// parsed is what the node derives from an origin response, once per
// response: kept in cache.Response.Value and shared by every hit.
type parsed struct {
	// since is the hub position when the origin was asked: messages after
	// it may be missing from the response and are replayed on subscribing.
	since uint64
	in    *grip.Instruct
	hr    heldResponse // what the client sees (GRIP headers removed)
	err   error        // invalid instructions
}

// originDo sends one request to rt's origins through their circuit
// breakers: the origins take turns; one whose breaker is open is
// skipped, and when connecting to one fails (nothing was sent) the next
// is tried at once. With every breaker open it fails with errCircuitOpen.
func (s *Server) originDo(rt *route, req *fasthttp.Request, resp *fasthttp.Response) error {
	n := uint32(len(rt.origins))
	first := uint32(0)
	if n > 1 {
		first = rt.next.Add(1)
	}
	err := errCircuitOpen
	for i := range n {
		o := rt.origins[(first+i)%n]
		if !o.breaker.allow() {
			continue
		}
		start := time.Now()
		err = o.client.do(req, resp)
		s.metrics.originDone(start, err, resp.StatusCode())
		o.breaker.record(err == nil && resp.StatusCode() < 500)
		if err == nil || !isDialError(err) {
			return err
		}
	}
	if err == errCircuitOpen {
		s.metrics.originRejected.Inc()
	}
	return err
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
		Header: toFields(headers),
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

func toFields(hs []grip.Header) []cache.Field {
	out := make([]cache.Field, len(hs))
	for i, h := range hs {
		out[i] = cache.Field(h)
	}
	return out
}

func toHeaders(fs []cache.Field) []grip.Header {
	out := make([]grip.Header, len(fs))
	for i, f := range fs {
		out[i] = grip.Header(f)
	}
	return out
}

// cacheRequest describes a client request on route rt to the cache.
// detached returns a fetcher that does not depend on ctx, for a
// background refresh.
func (s *Server) cacheRequest(ctx *fasthttp.RequestCtx, rt *route, method string, detached func() cache.Fetcher) *cache.Request {
	auth := ctx.Request.Header.Peek("Authorization")
	return &cache.Request{
		StaleIfError: rt.staleIfError,
		Method:       method,
		URL:          requestURL(ctx),
		Header:       func(name string) string { return string(ctx.Request.Header.Peek(name)) },
		Authorized:   len(auth) > 0,
		Credentials:  string(auth),
		Snapshot: func() (cache.Fetcher, func(string) string) {
			h := http.Header{}
			for k, v := range ctx.Request.Header.All() {
				h.Add(string(k), string(v))
			}
			return detached(), h.Get
		},
	}
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

// cacheLookup answers a client request from the cache or rt's origin.
func (s *Server) cacheLookup(rt *route, creq *cache.Request, oreq *fasthttp.Request) (*cache.Entry, cache.Result, error) {
	return s.cacheGet(rt, creq, func() (*cache.Response, error) { return s.fetchOrigin(rt, oreq) })
}

// clientCacheRequest describes a client's HTTP request to the cache.
func (s *Server) clientCacheRequest(ctx *fasthttp.RequestCtx, rt *route, oreq *fasthttp.Request) *cache.Request {
	return s.cacheRequest(ctx, rt, string(ctx.Method()), func() cache.Fetcher {
		own := &fasthttp.Request{}
		oreq.CopyTo(own)
		return func() (*cache.Response, error) { return s.fetchOrigin(rt, own) }
	})
}

// refetcher returns a function that asks the cache (or the origin) again
// for creq after the client request is over: a held long-poll's answer to
// a hint. Concurrent refetches of one URL make one origin request.
func (s *Server) refetcher(rt *route, creq *cache.Request) func() (*cache.Entry, error) {
	fetch, header := creq.Snapshot()
	own := *creq
	own.Header, own.Snapshot = header, nil
	return func() (*cache.Entry, error) {
		e, _, err := s.cacheGet(rt, &own, fetch)
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

// encoded returns hr with the body encoded as the client accepts, if the
// entry has compressed variants.
func encoded(ctx *fasthttp.RequestCtx, e *cache.Entry, hr heldResponse) heldResponse {
	if !e.HasVariants() {
		return hr
	}
	body, enc := e.Body(string(ctx.Request.Header.Peek("Accept-Encoding")))
	out := hr
	out.headers = append([]grip.Header(nil), hr.headers...)
	out.headers = appendVary(out.headers, "Accept-Encoding")
	if enc != "" {
		out.body = body
		out.headers = append(out.headers, grip.Header{Name: "Content-Encoding", Value: enc})
	}
	return out
}

func appendVary(hs []grip.Header, name string) []grip.Header {
	for i, h := range hs {
		if strings.EqualFold(h.Name, "Vary") {
			hs[i].Value = h.Value + ", " + name
			return hs
		}
	}
	return append(hs, grip.Header{Name: "Vary", Value: name})
}

// withAge adds the Age header to a response served from the cache.
func withAge(hr heldResponse, e *cache.Entry, r cache.Result) heldResponse {
	if !fromCache(r) {
		return hr
	}
	out := hr
	out.headers = make([]grip.Header, 0, len(hr.headers)+1)
	for _, h := range hr.headers {
		if !strings.EqualFold(h.Name, "Age") {
			out.headers = append(out.headers, h)
		}
	}
	age := int64(e.Age(time.Now()) / time.Second)
	out.headers = append(out.headers, grip.Header{Name: "Age", Value: strconv.FormatInt(age, 10)})
	return out
}

// originFailure answers a client whose request reached no usable origin
// answer and no cached copy.
func (s *Server) originFailure(ctx *fasthttp.RequestCtx, err error) {
	code, msg := originStatus(err)
	if errors.Is(err, errCircuitOpen) {
		code, msg = fasthttp.StatusBadGateway, "origin unavailable and no cached copy (the origin is being probed)"
	} else if msg == "origin unavailable" || msg == "origin timed out" {
		msg += " (no cached copy to serve)"
	}
	s.log.Warn("origin request failed", "path", string(ctx.Path()), "err", err, "status", code)
	clientError(ctx, code, msg)
}
