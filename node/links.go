package node

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"time"

	"github.com/edgepush/edgepush/cache"
	"github.com/edgepush/edgepush/grip"
	"github.com/valyala/fasthttp"
)

// Grip-Link: the origin requests a held connection makes after its first
// answer. A next link (rel=next) is fetched to page through data on one
// connection, to refresh a stream every timeout, on a hint, and to
// recover messages a sequenced stream missed (with Grip-Last); a gone
// link (rel=gone) is told when the connection ends. Links resolve
// against the URL the client asked for and go to the route's origins as
// a client request for that target would; their scheme and host are not
// used (an origin cannot send the node elsewhere).

const (
	// linkRetries is how many times a failed next-link request is
	// retried before the stream ends (Pushpin's RETRY_MAX).
	linkRetries = 5
	// linkRetryDelay is the first retry's delay, doubled on each further
	// one, plus up to a second of jitter (Pushpin's RETRY_TIMEOUT).
	linkRetryDelay = time.Second
	// goneAttempts bounds the requests telling a gone link.
	goneAttempts = 3
)

// errLinkStatus is a next-link answer that is not 2xx.
var errLinkStatus = errors.New("next link answered with an error status")

// linkFetcher makes a held connection's link requests from its own copy
// of the client's origin request.
type linkFetcher struct {
	s    *Server
	rt   *route
	base *url.URL          // the URL the client asked for
	req  *fasthttp.Request // the client's origin request (own copy, never sent)
	creq *cache.Request    // the client's cache request, detached; nil: no caching
}

// newLinkFetcher captures what link requests need of the client request;
// creq is nil when the request does not go through the cache.
func (s *Server) newLinkFetcher(ctx *fasthttp.RequestCtx, rt *route, oreq *fasthttp.Request, creq *cache.Request) *linkFetcher {
	base, _ := url.Parse(requestURL(ctx))
	own := &fasthttp.Request{}
	oreq.Header.CopyTo(&own.Header)
	lf := &linkFetcher{s: s, rt: rt, base: base, req: own}
	if creq != nil && s.cache != nil && rt.cache {
		c := *creq
		c.Detach = nil
		lf.creq = &c
	}
	return lf
}

// link is a resolved Grip-Link: the target as a client would send it, and
// the absolute URL the cache names it by.
type link struct {
	u       *url.URL
	target  string
	abs     string
	timeout time.Duration // rel=next: the refresh period; 0: none
}

// resolve resolves l relative to from (the link whose answer gave it),
// or to the client's URL when from is nil; nil when l is nil or unusable.
func (lf *linkFetcher) resolve(l *grip.Link, from *link) *link {
	base := lf.base
	if from != nil {
		base = from.u
	}
	if l == nil || base == nil {
		return nil
	}
	ref, err := url.Parse(l.URI)
	if err != nil {
		return nil
	}
	u := base.ResolveReference(ref)
	// Only the path and query are the origin's to choose.
	abs := *lf.base
	abs.Path, abs.RawPath, abs.RawQuery, abs.Fragment = u.Path, u.RawPath, u.RawQuery, ""
	return &link{u: &abs, target: abs.RequestURI(), abs: abs.String(), timeout: l.Timeout}
}

// request builds an origin request for target with method.
func (lf *linkFetcher) request(method, target string) *fasthttp.Request {
	req := &fasthttp.Request{}
	lf.req.Header.CopyTo(&req.Header)
	req.Header.SetMethod(method)
	req.Header.Del("Content-Type")
	req.Header.Del("Content-Encoding")
	req.Header.SetContentLength(0)
	lf.rt.setTarget(req, []byte(target))
	signRequest(req, lf.rt)
	return req
}

// next fetches a next link and parses the answer. A request carrying
// Grip-Last (a sequenced connection recovering) goes to the origin; any
// other goes through the cache like a client's GET of that URL, so that
// the connections refreshing or paging through one link share one
// origin request.
func (lf *linkFetcher) next(l *link, gripLast []string) (*parsed, int, error) {
	req := lf.request(fasthttp.MethodGet, l.target)
	for _, v := range gripLast {
		req.Header.Add("Grip-Last", v)
	}
	fetch := lf.s.fetcher(lf.rt, req, nil)
	var r *cache.Response
	if len(gripLast) > 0 || lf.creq == nil {
		var err error
		if r, err = fetch(); err != nil {
			return nil, 0, err
		}
	} else {
		creq := *lf.creq
		creq.Method, creq.URL, creq.Header = fasthttp.MethodGet, normalizeURL(l.abs), joinedHeader(&req.Header)
		creq.Detach = func() (*cache.Request, cache.Fetcher) {
			own := creq
			own.Detach = nil
			return &own, fetch
		}
		e, _, err := lf.s.cacheGet(lf.rt, &creq, fetch)
		if err != nil {
			return nil, 0, err
		}
		r = &e.Response
	}
	p := r.Value.(*parsed)
	if r.Status < 200 || r.Status > 299 {
		return p, r.Status, errLinkStatus
	}
	if p.err != nil {
		return p, r.Status, p.err
	}
	return p, r.Status, nil
}

// again asks the origin once more for the client's own request (method
// and target as first sent, no body), with Grip-Last: a sequenced
// long-poll's retry. It never goes through the cache.
func (lf *linkFetcher) again(gripLast []string) (*parsed, error) {
	req := &fasthttp.Request{}
	lf.req.Header.CopyTo(&req.Header)
	req.Header.SetContentLength(0)
	for _, v := range gripLast {
		req.Header.Add("Grip-Last", v)
	}
	signRequest(req, lf.rt)
	r, err := lf.s.fetchOrigin(lf.rt, req)
	if err != nil {
		return nil, err
	}
	p := r.Value.(*parsed)
	if p.err != nil {
		return nil, p.err
	}
	return p, nil
}

// nextRetrying is next, retried as Pushpin retries a next link: up to
// linkRetries times, waiting 1 s, 2 s, 4 s … (plus jitter) between
// tries, and not at all once the node shuts down.
func (lf *linkFetcher) nextRetrying(ctx context.Context, l *link, gripLast func() []string) (*parsed, error) {
	delay := linkRetryDelay
	for try := 0; ; try++ {
		p, status, err := lf.next(l, gripLast())
		if err == nil {
			return p, nil
		}
		lf.s.log.Debug("next link failed", "link", l.target, "status", status, "err", err, "try", try+1)
		if try >= linkRetries || !sleepCtx(ctx, delay+rand.N(time.Second)) {
			return nil, fmt.Errorf("next link %s: %w", l.target, err)
		}
		delay *= 2
	}
}

// gone tells a gone link that the connection ended: an empty POST, as
// Pushpin sends it, retried a few times while the origin fails, in the
// background.
func (lf *linkFetcher) gone(l *link) {
	lf.s.bg.Go(func() {
		delay := linkRetryDelay
		for try := 1; ; try++ {
			req := fasthttp.AcquireRequest()
			resp := fasthttp.AcquireResponse()
			req.Header.SetMethod(fasthttp.MethodPost)
			req.UseHostHeader = true
			req.Header.SetHostBytes(lf.req.Header.Host())
			req.Header.Set("CDN-Loop", lf.s.cfg.CDNLoop)
			lf.rt.setTarget(req, []byte(l.target))
			signRequest(req, lf.rt)
			err := lf.s.originDo(lf.rt, req, resp)
			status := resp.StatusCode()
			fasthttp.ReleaseRequest(req)
			fasthttp.ReleaseResponse(resp)
			if err == nil && status < 500 {
				return
			}
			lf.s.log.Debug("gone link failed", "link", l.target, "status", status, "err", err, "try", try)
			if try >= goneAttempts || !sleepCtx(lf.s.bgCtx, delay) {
				return
			}
			delay *= 2
		}
	})
}
