package node

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/edgepush/edgepush/cache"
	"github.com/edgepush/edgepush/grip"
	"github.com/valyala/fasthttp"
)

// serveClient answers one client request: it picks the route, then either
// opens a WebSocket (wsclient.go) or asks the cache, which asks the
// origin on a miss (cached.go, origin.go), and acts on the GRIP
// instructions of the answer: relayed as is, or held as a stream or a
// long-poll (hold.go).
func (s *Server) serveClient(ctx *fasthttp.RequestCtx) {
	defer recoverLog(s.log, "client request")
	defer s.access.request(ctx) // no-op when the access log is off
	s.requests.Add(1)
	if s.overConnLimit() {
		clientError(ctx, fasthttp.StatusServiceUnavailable, "too many connections")
		ctx.SetConnectionClose()
		return
	}
	if code, msg := refusedRequest(ctx); code != 0 {
		clientError(ctx, code, msg)
		return
	}
	rt := s.routeFor(ctx)
	if rt == nil {
		return // answered: no route, or a loop
	}
	if isWebSocketUpgrade(ctx) {
		s.serveWebSocket(ctx, rt)
		return
	}
	oreq := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(oreq)
	cacheable := s.cacheable(ctx, rt)
	s.originRequest(ctx, oreq, rt, cacheable)
	var sk *shieldKey // its URL is set once known (shield.go)
	if cacheable && s.tier != nil {
		sk = &shieldKey{}
	}
	creq := s.cacheRequest(ctx, rt, "", joinedHeader(&oreq.Header), s.detachedFetch(rt, oreq, sk))
	if sk != nil {
		sk.url = creq.URL
	}
	creq.SetRevalidator(s.revalidator(ctx, rt, oreq, sk))
	creq.Outdated = s.outdated
	e, result, err := s.cacheGet(rt, creq, s.clientFetcher(ctx, rt, oreq, sk))
	s.access.noteCache(ctx, result)
	if err != nil {
		s.originFailure(ctx, err)
		return
	}
	p := parsedOf(e)
	if p.err != nil {
		s.badInstructs.Add(1)
		s.log.Warn("invalid GRIP instructions from origin", "path", string(ctx.Path()), "err", p.err)
		clientError(ctx, fasthttp.StatusBadGateway, "invalid GRIP instructions from origin: "+p.err.Error())
		return
	}
	hr, in := p.hr, p.in
	outdated := fromCache(result) && s.outdated(e) // served only because the origin is down
	if outdated && s.tooOld(p) {
		s.metrics.cacheGaps.Inc()
	}
	hold := in.Hold
	if hold == grip.HoldStream && in.NextLink == nil && sequenced(in) {
		hold = grip.HoldNone // as Pushpin: a sequenced stream needs a next link to recover through
	}
	paging := hold == grip.HoldNone && in.NextLink != nil && !ctx.IsHead()
	switch {
	case (hold == grip.HoldNone && !paging) || ctx.IsHead():
		notMod := cacheable && notModified(&ctx.Request.Header, hr) // before Range (RFC 9110 §13.2.2)
		if r, ok := ranged(&ctx.Request.Header, e, hr); cacheable && !notMod && ok {
			hr = r
		} else {
			hr = encoded(ctx, e, hr)
		}
		hr = withAge(hr, e, result)
		// A copy: hr.headers may still be the stored response's, which
		// concurrent requests share.
		hr.headers = append(hr.headers[:len(hr.headers):len(hr.headers)], grip.Header{Name: "X-Cache", Value: cacheStatus(result)})
		if notMod {
			hr = notModifiedResponse(hr)
		}
		relay(ctx, hr)
		s.invalidateAfter(ctx, hr.code)
	case s.held.Load() >= int64(s.cfg.MaxConns):
		clientError(ctx, fasthttp.StatusServiceUnavailable, "too many connections")
	case hold == grip.HoldStream || paging:
		s.holdStream(ctx, hr, in, p.since, s.linksFor(ctx, rt, oreq, creq, in), paging)
	default:
		since := p.since
		if outdated {
			// Served while the origin is down: hold, without replaying a
			// message the client may have had (longpoll.go).
			since = s.hub.Position()
		}
		s.holdResponse(ctx, hr, encoded(ctx, e, hr), in, since, s.refetcher(rt, creq), s.linksFor(ctx, rt, oreq, creq, in))
	}
}

// sequenced reports whether any channel of a hold gives a prev-id.
func sequenced(in *grip.Instruct) bool {
	for _, c := range in.Channels {
		if c.PrevID != "" {
			return true
		}
	}
	return false
}

// linksFor returns what a hold needs to make its own origin requests
// (next and gone links, a sequenced long-poll's retry), or nil.
func (s *Server) linksFor(ctx *fasthttp.RequestCtx, rt *route, oreq *fasthttp.Request, creq *cache.Request,
	in *grip.Instruct) *linkFetcher {
	if in.NextLink == nil && in.GoneLink == nil && !sequenced(in) {
		return nil
	}
	return s.newLinkFetcher(ctx, rt, oreq, creq)
}

// overConnLimit reports whether the node holds more than -max-conns
// client connections: those fasthttp serves (this one included) plus the
// held ones it handed over. fasthttp's own limit (Concurrency, counted per
// listener) is set one above, so that this one answers first, with its
// 503 and a clean close: fasthttp's would answer a plain connection with a
// generic 503 and a reset, and a TLS one with nothing at all.
func (s *Server) overConnLimit() bool {
	open := int64(s.client.GetOpenConnectionsCount())
	if s.tlsLn != nil {
		open-- // fasthttp counts each listening Serve as one open connection
	}
	return open+s.held.Load() > int64(s.cfg.MaxConns)
}

// cacheable reports whether a client request goes through the cache: a
// GET or HEAD on a route with caching on.
func (s *Server) cacheable(ctx *fasthttp.RequestCtx, rt *route) bool {
	return s.cache != nil && rt.cache && (ctx.IsGet() || ctx.IsHead())
}

// invalidateAfter drops the stored responses for the request's URL when
// an unsafe request (POST, PUT, DELETE, …) to it succeeded (RFC 9111
// §4.4): what was stored may be out of date now.
func (s *Server) invalidateAfter(ctx *fasthttp.RequestCtx, status int) {
	if s.cache == nil || ctx.IsGet() || ctx.IsHead() || ctx.IsOptions() || status < 200 || status >= 400 {
		return
	}
	s.cache.PurgeURL(requestURL(ctx), false)
}

// refusedRequest says why a plain client request is refused at the
// edge (status and message), or 0 when it is not: CONNECT (the node is
// not a forward proxy), TRACE and TRACK (they echo credentials back), a
// header name that is not an HTTP token (what the origin would make of it
// is anyone's guess), and bodies typed as WebSocket-over-HTTP events
// (only the node speaks for a WebSocket).
func refusedRequest(ctx *fasthttp.RequestCtx) (int, string) {
	switch m := string(ctx.Method()); m {
	case "CONNECT", "TRACE", "TRACK":
		return fasthttp.StatusMethodNotAllowed, "method " + m + " is not allowed"
	}
	for k := range ctx.Request.Header.All() {
		if !isToken(k) {
			return fasthttp.StatusBadRequest, fmt.Sprintf("header name %q is not a token", k)
		}
	}
	if bytes.HasPrefix(ctx.Request.Header.ContentType(), []byte(grip.WebSocketEventsType)) {
		return fasthttp.StatusBadRequest, grip.WebSocketEventsType + " is reserved for WebSocket-over-HTTP"
	}
	return 0, ""
}

// isToken reports whether b is an HTTP token (RFC 9110 §5.6.2).
func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case bytes.IndexByte([]byte("!#$%&'*+-.^_`|~"), c) >= 0:
		default:
			return false
		}
	}
	return true
}

// originRequest fills req with the client request as it goes to rt's
// origins: target rewritten (origin path, strip-prefix), Host as the
// route says, the client's headers as copyToOrigin lets through, the
// proxy headers (X-Forwarded-*, CDN-Loop, Grip-Sig), the body. A
// cacheable request goes without the client's validators, range and
// body: its answer may serve every client. Every origin request made for
// a client is built here: plain requests, and the WebSocket-over-HTTP
// requests of a WebSocket (wsorigin.go).
func (s *Server) originRequest(ctx *fasthttp.RequestCtx, req *fasthttp.Request, rt *route, cacheable bool) {
	in := &ctx.Request
	req.Header.SetMethodBytes(in.Header.Method())
	rt.setTarget(req, requestTarget(ctx))
	req.UseHostHeader = true
	rt.setHost(req, in.Header.Host())
	copyToOrigin(&req.Header, &in.Header, originHeaderRules{trusted: rt.trusts(clientIP(ctx)), cacheable: cacheable})
	var buf [64]byte
	s.setProxyHeaders(req, rt, rt.forwardedFor(buf[:0], ctx), ctx.IsTLS())
	if body := in.Body(); len(body) > 0 && !cacheable {
		req.SetBodyRaw(body)
	}
}

// checkChannels applies the node's limits to a hold's channels.
func (s *Server) checkChannels(in *grip.Instruct) error {
	switch {
	case in.Hold == grip.HoldNone:
		return nil
	case len(in.Channels) == 0:
		return errors.New("Grip-Hold without Grip-Channel")
	case len(in.Channels) > s.cfg.MaxChannels:
		return fmt.Errorf("%d channels, at most %d allowed", len(in.Channels), s.cfg.MaxChannels)
	}
	return nil
}

// heldResponse is what the client sees of an origin response: a relayed
// response, the stream's head and initial body, or a long-poll's timeout
// answer.
type heldResponse struct {
	code    int
	reason  string
	headers []grip.Header // client-visible: no Grip-*, hop-by-hop or Content-Length
	body    []byte
}

// responseFor computes what the client sees of an origin response under
// its instructions.
func responseFor(code int, reason string, headers []grip.Header, body []byte, in *grip.Instruct) heldResponse {
	hr := heldResponse{code: code, reason: reason, headers: headers, body: body}
	if r := in.Response; r != nil {
		hr = heldResponse{code: r.Code, reason: r.Reason, headers: r.Headers, body: r.Body}
	} else if in.Status != 0 {
		hr.code, hr.reason = in.Status, in.Reason
	}
	if hr.reason == "" {
		hr.reason = grip.StatusText(hr.code)
	}
	hr.headers = clientHeaders(hr.headers, in.ExposeHeaders)
	return hr
}

// relay answers the client with a response that is not held, with its
// own Date (a stored response's is the one it was stored with), or now.
func relay(ctx *fasthttp.RequestCtx, hr heldResponse) {
	setDate(&ctx.Response.Header, headerValue(hr.headers, "Date"))
	ctx.SetStatusCode(hr.code)
	if hr.reason != grip.StatusText(hr.code) {
		ctx.Response.Header.SetStatusMessage([]byte(hr.reason))
	}
	for _, h := range hr.headers {
		ctx.Response.Header.Add(h.Name, h.Value)
	}
	ctx.SetBody(hr.body)
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

// originFailure answers a client whose request reached no usable origin
// answer and no cached copy.
func (s *Server) originFailure(ctx *fasthttp.RequestCtx, err error) {
	code, msg := originStatus(err)
	s.log.Warn("origin request failed", "path", string(ctx.Path()), "err", err, "status", code)
	clientError(ctx, code, msg)
}

// isWebSocketUpgrade reports whether the client asks to upgrade to
// WebSocket. Other upgrades (h2c, TLS) are ignored: the request is served
// as HTTP/1.1, as RFC 9110 §7.8 allows.
func isWebSocketUpgrade(ctx *fasthttp.RequestCtx) bool {
	if !ctx.Request.Header.ConnectionUpgrade() {
		return false
	}
	for _, p := range bytes.Split(ctx.Request.Header.Peek("Upgrade"), []byte(",")) {
		name, _, _ := bytes.Cut(bytes.TrimSpace(p), []byte("/"))
		if bytes.EqualFold(name, []byte("websocket")) {
			return true
		}
	}
	return false
}

// notModified reports whether the client's conditional GET (or HEAD)
// is answered by hr, a complete 200 response, with 304 (RFC 9110 §13.2.2:
// If-None-Match first, else If-Modified-Since, compared with
// Last-Modified or, without one, Date: RFC 9111 §4.3.2).
func notModified(req *fasthttp.RequestHeader, hr heldResponse) bool {
	if hr.code != fasthttp.StatusOK {
		return false
	}
	if inm := req.Peek("If-None-Match"); len(inm) > 0 {
		etag := headerValue(hr.headers, "ETag")
		return etag != "" && etagListMatches(string(inm), etag)
	}
	ims, lm := req.Peek("If-Modified-Since"), headerValue(hr.headers, "Last-Modified")
	if lm == "" {
		lm = headerValue(hr.headers, "Date")
	}
	if len(ims) == 0 || lm == "" {
		return false
	}
	since, err1 := http.ParseTime(string(ims))
	modified, err2 := http.ParseTime(lm)
	return err1 == nil && err2 == nil && !modified.After(since)
}

// etagListMatches is If-None-Match's weak comparison of a list of entity
// tags (or "*") with the response's ETag.
func etagListMatches(list, etag string) bool {
	if strings.TrimSpace(list) == "*" {
		return true
	}
	want := strings.TrimPrefix(etag, "W/")
	for _, t := range strings.Split(list, ",") {
		if strings.TrimPrefix(strings.TrimSpace(t), "W/") == want {
			return true
		}
	}
	return false
}

// notModifiedResponse is the 304 for hr: no body, and of its headers
// those a 304 carries (RFC 9110 §15.4.5).
func notModifiedResponse(hr heldResponse) heldResponse {
	out := heldResponse{code: fasthttp.StatusNotModified, reason: grip.StatusText(fasthttp.StatusNotModified)}
	for _, h := range hr.headers {
		if inList(notModifiedHeaders, h.Name) {
			out.headers = append(out.headers, h)
		}
	}
	return out
}

// notModifiedHeaders are the headers a 304 repeats from the 200.
var notModifiedHeaders = []string{"Cache-Control", "Content-Location", "Date", "ETag", "Expires", "Vary",
	"Last-Modified", "Age", "X-Cache"}

// headerValue is the first value of name in hs.
func headerValue(hs []grip.Header, name string) string {
	for _, h := range hs {
		if strings.EqualFold(h.Name, name) {
			return h.Value
		}
	}
	return ""
}

// requestError answers a request fasthttp could not read.
func requestError(ctx *fasthttp.RequestCtx, err error) {
	var small *fasthttp.ErrSmallBuffer
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		clientError(ctx, fasthttp.StatusRequestEntityTooLarge, "request body too large")
	case errors.As(err, &small):
		clientError(ctx, fasthttp.StatusRequestHeaderFieldsTooLarge, "request header too large")
	default:
		var te interface{ Timeout() bool }
		if errors.As(err, &te) && te.Timeout() {
			clientError(ctx, fasthttp.StatusRequestTimeout, "request timed out")
			return
		}
		clientError(ctx, fasthttp.StatusBadRequest, "malformed request")
	}
}

// clientError answers a client with a short plain-text error.
func clientError(ctx *fasthttp.RequestCtx, code int, msg string) {
	ctx.Response.Reset()
	ctx.SetStatusCode(code)
	ctx.SetContentType("text/plain; charset=utf-8")
	ctx.SetBodyString("edgepush: " + msg + "\n")
}
