package node

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/edgepush/edgepush/cache"
	"github.com/edgepush/edgepush/cluster"
	"github.com/edgepush/edgepush/grip"
	"github.com/valyala/fasthttp"
)

// Origin shielding. In a tier, each cache key has a shield: one of the
// members that may shield (-shield), chosen by rendezvous hashing
// (cluster.ShieldFor). A member's miss or revalidation of a cacheable
// request goes to the key's shield (POST cluster.ShieldPath on its
// control listener, with the tier token) instead of the origin: the
// origin request the member would have sent, and what the shield needs
// to cache it alike (route, namespace, URL). The shield runs it through
// its own cache as its own miss, coalesced with every other member's and
// its own, and never through another shield; it answers the stored
// origin response (headers, GRIP instructions, Surrogate-Key and
// validators included), its Age, and how long ago its origin request
// was made. The member stores it under the same rules, its history
// position the one of that moment on its own hub (fanout.PositionAt).
//
// A shield that fails (unreachable, no answer within -shield-timeout, an
// error) is skipped for -shield-retry and the member asks the origin
// itself. A shield whose origin failed says so, and the member treats it
// as its own origin failure (its stale copy serves), without asking the
// origin again. A purge the member ran after the shield's origin request
// (the shield may not have run it yet) makes the member ask again for a
// copy fetched after it, once; then the origin.

// shieldKey names the cache entry an origin request fills, for requests
// that may go to the key's shield: set (url) before the cache calls the
// fetcher. Nil: the request never goes to a shield.
type shieldKey struct {
	namespace, url string
}

// shieldStats counts shield requests: as a member (by result) and as a
// shield.
type shieldStats struct {
	answered     atomic.Uint64 // the shield's answer was used
	purged       atomic.Uint64 // an answer older than a purge here, asked again
	originFailed atomic.Uint64 // the shield's origin failed: treated as ours
	failed       atomic.Uint64 // no usable answer: the origin was asked directly
	served       atomic.Uint64 // requests this member answered as a shield
}

// shieldRequest is what a member sends a shield, as a JSON line followed
// by the origin request's body.
type shieldRequest struct {
	Route     string      `json:"route"`
	Namespace string      `json:"namespace,omitempty"`
	URL       string      `json:"url"`
	Method    string      `json:"method"`
	URI       string      `json:"uri"`
	Host      string      `json:"host"`
	Header    [][2]string `json:"header"`
	// MaxAskedUs, when set, asks for a copy whose origin request is at
	// most this many microseconds old.
	MaxAskedUs *int64 `json:"max_asked_us,omitempty"`
}

// shieldAnswer is what a shield answers with status 200, as a JSON line
// followed by the stored response's body; with another status, Error
// says why and OriginFailed whether it was the origin (Status is then
// what a client would get).
type shieldAnswer struct {
	Status       int         `json:"status"`
	Reason       string      `json:"reason,omitempty"`
	Header       [][2]string `json:"header,omitempty"`
	AskedUs      int64       `json:"asked_us"` // how long ago the origin was asked, µs
	HeldUs       int64       `json:"held_us"`  // how long the shield had the request, µs
	Result       string      `json:"result,omitempty"`
	Error        string      `json:"error,omitempty"`
	OriginFailed bool        `json:"origin_failed,omitempty"`
}

// shieldOriginError is a shield's word that the origin failed it.
type shieldOriginError struct {
	code int
	msg  string
}

func (e *shieldOriginError) Error() string { return "origin failed at the shield: " + e.msg }

// shielded reports whether an origin request for sk may go to a shield.
func (s *Server) shielded(rt *route, sk *shieldKey) bool {
	return sk != nil && sk.url != "" && s.tier != nil && s.cache != nil && rt.cache
}

// shieldSafe reports whether req may travel to a shield. Not with
// credentials (Authorization, Cookie): the tier's control links are plain
// HTTP, so a client's credentials go only to this member and the origin.
// Not unless its URI, cache URL, host and header fields are valid UTF-8:
// the shield request carries them as JSON strings, which would replace
// other bytes, send the origin another request than the client's and make
// requests that differ only there one.
func shieldSafe(req *fasthttp.Request, sk *shieldKey) bool {
	for _, name := range credentialHeaders {
		if len(req.Header.Peek(name)) > 0 {
			return false
		}
	}
	if !utf8.Valid(req.Header.RequestURI()) || !utf8.Valid(req.Header.Host()) || !utf8.ValidString(sk.url) {
		return false
	}
	for k, v := range req.Header.All() {
		if !utf8.Valid(k) || !utf8.Valid(v) {
			return false
		}
	}
	return true
}

// fetchVia asks the shield of sk for req when there is one other than
// this member, else (and when the shield fails) rt's origin.
func (s *Server) fetchVia(rt *route, req *fasthttp.Request, sk *shieldKey) (*cache.Response, error) {
	if !s.shielded(rt, sk) || !shieldSafe(req, sk) {
		return s.fetchOrigin(rt, req)
	}
	key := sk.namespace + "\x00" + string(req.Header.Method()) + " " + sk.url
	m, ok := s.tier.ShieldFor(key)
	if !ok || m.Self {
		return s.fetchOrigin(rt, req)
	}
	r, err := s.fromShield(m, rt, req, sk)
	var oe *shieldOriginError
	switch {
	case err == nil:
		s.shieldStats.answered.Add(1)
		return r, nil
	case errors.As(err, &oe):
		s.shieldStats.originFailed.Add(1)
		return nil, err
	}
	s.shieldStats.failed.Add(1)
	if errors.Is(err, cluster.ErrShieldUnreachable) {
		// Skipped for -shield-retry from now on: logged once a while.
		s.log.Warn("shield unreachable: asking the origin directly, and skipping it for -shield-retry", "shield", m.Name,
			"retry", s.cfg.ShieldRetry, "err", err)
	} else {
		s.log.Debug("shield: asking the origin directly", "shield", m.Name, "url", sk.url, "err", err)
	}
	return s.fetchOrigin(rt, req)
}

// fromShield asks shield m, and asks again, once, for a copy fetched after
// what makes its first answer unusable here: a purge this member ran
// after the shield's origin request (as far as this member can tell: a
// purge within a round trip before it counts), or (for a hold) messages
// published since that the copy cannot be brought up to date with. The
// second answer is fetched after that point by the shield's own clock:
// it is used as it is.
func (s *Server) fromShield(m cluster.ShieldMember, rt *route, req *fasthttp.Request, sk *shieldKey) (*cache.Response, error) {
	start := time.Now()
	r, askedAt, err := s.askShield(m, rt, req, sk, -1)
	if err != nil {
		return nil, err
	}
	notBefore, purged := s.cache.PurgedSince(&cache.Request{URL: sk.url}, r, askedAt)
	if !purged {
		if r.Status == fasthttp.StatusNotModified || !s.outdated(&cache.Entry{Response: *r}) {
			return r, nil
		}
		notBefore = start
	}
	if purged {
		s.shieldStats.purged.Add(1)
	}
	r, _, err = s.askShield(m, rt, req, sk, time.Since(notBefore))
	return r, err
}

// askShield sends req to shield m and returns its answer, parsed as a
// response of rt's origin, and when the origin was asked for it (on this
// node's clock, erring earlier). maxAsked, when not negative, asks for a
// copy whose origin request is at most that old.
func (s *Server) askShield(m cluster.ShieldMember, rt *route, req *fasthttp.Request, sk *shieldKey,
	maxAsked time.Duration) (*cache.Response, time.Time, error) {
	sr := shieldRequest{Route: rt.id, Namespace: sk.namespace, URL: sk.url, Method: string(req.Header.Method()),
		URI: string(req.Header.RequestURI()), Host: string(req.Header.Host())}
	for k, v := range req.Header.All() {
		if name := string(k); !strings.EqualFold(name, "Host") && !strings.EqualFold(name, "Content-Length") {
			sr.Header = append(sr.Header, [2]string{name, string(v)})
		}
	}
	if maxAsked >= 0 {
		us := int64(maxAsked / time.Microsecond)
		sr.MaxAskedUs = &us
	}
	line, err := json.Marshal(sr)
	if err != nil {
		return nil, time.Time{}, err
	}
	out, in := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(out)
	defer fasthttp.ReleaseResponse(in)
	out.Header.SetContentType("application/x-edgepush-shield")
	out.SetBodyRaw(append(append(line, '\n'), req.Body()...))
	start := time.Now()
	if err := s.tier.AskShield(m, out, in, s.cfg.ShieldTimeout); err != nil {
		return nil, time.Time{}, err
	}
	head, body, _ := bytes.Cut(in.Body(), []byte{'\n'})
	var a shieldAnswer
	if err := json.Unmarshal(head, &a); err != nil {
		return nil, time.Time{}, fmt.Errorf("shield %s: answered %d, %w", m.Name, in.StatusCode(), err)
	}
	if in.StatusCode() != fasthttp.StatusOK {
		if a.OriginFailed && a.Status >= 500 {
			return nil, time.Time{}, &shieldOriginError{code: a.Status, msg: a.Error}
		}
		return nil, time.Time{}, fmt.Errorf("shield %s: answered %d: %s", m.Name, in.StatusCode(), a.Error)
	}
	if a.Status < 100 || a.Status > 999 || a.AskedUs < 0 {
		return nil, time.Time{}, fmt.Errorf("shield %s: bad answer (status %d, asked %d µs ago)", m.Name, a.Status, a.AskedUs)
	}
	// The shield measured its copy's age when it answered, at least
	// HeldUs after this request started: counting from then errs
	// earlier (by the request's time on the network).
	if a.HeldUs < 0 || a.HeldUs > int64(time.Since(start)/time.Microsecond) {
		a.HeldUs = 0
	}
	askedAt := start.Add(time.Duration(a.HeldUs-a.AskedUs) * time.Microsecond)
	r := &cache.Response{Status: a.Status, Reason: a.Reason, Body: bytes.Clone(body)}
	r.Header = make([]grip.Header, len(a.Header))
	for i, h := range a.Header {
		r.Header[i] = grip.Header{Name: h[0], Value: h[1]}
	}
	since := s.hub.PositionAt(askedAt)
	s.parse(r, since, askedAt)
	if a.Result == cache.StaleOnError.String() || a.Result == cache.StaleRevalidating.String() {
		// A copy the shield may serve only as stale (its origin failed,
		// or it is refreshing it; perhaps soft-purged, which its headers
		// do not say): for this request, not to be stored as fresh.
		r.NoStore = true
	}
	if r.Status == fasthttp.StatusNotModified {
		r.Reparse = func(refreshed *cache.Response) { s.parse(refreshed, since, askedAt) }
	}
	return r, askedAt, nil
}

// serveShield answers a member's shield request (POST cluster.ShieldPath):
// 401 without the tier token, 403 when this member does not shield, 400
// to a request that is not a cacheable origin request, 404 for a route
// this member does not cache; else the answer of its own cache, as for a
// client of its own (a miss asks the origin, never another shield), or
// 502/503/504 when the origin failed and there is no copy.
func (s *Server) serveShield(ctx *fasthttp.RequestCtx) {
	received := time.Now()
	fail := func(code int, msg string) {
		writeShieldAnswer(ctx, code, shieldAnswer{Error: msg}, nil)
	}
	switch {
	case s.tier == nil:
		fail(fasthttp.StatusNotFound, "not in a tier")
		return
	case !ctx.IsPost():
		ctx.Response.Header.Set(fasthttp.HeaderAllow, fasthttp.MethodPost)
		fail(fasthttp.StatusMethodNotAllowed, "method not allowed: POST shield requests")
		return
	case !s.tier.Authorized(ctx.Request.Header.Peek(fasthttp.HeaderAuthorization)):
		fail(fasthttp.StatusUnauthorized, "missing or invalid tier token")
		return
	case !s.cfg.Shield:
		fail(fasthttp.StatusForbidden, "this member does not shield (-shield=false)")
		return
	}
	head, body, _ := bytes.Cut(ctx.PostBody(), []byte{'\n'})
	var sr shieldRequest
	if err := json.Unmarshal(head, &sr); err != nil {
		fail(fasthttp.StatusBadRequest, "bad shield request: "+err.Error())
		return
	}
	if msg := sr.check(len(body)); msg != "" {
		fail(fasthttp.StatusBadRequest, "bad shield request: "+msg)
		return
	}
	rt := s.routeByID(sr.Route)
	if rt == nil || !rt.cache || s.cache == nil {
		fail(fasthttp.StatusNotFound, "no cached route "+strconv.Quote(sr.Route)+" here")
		return
	}
	s.shieldStats.served.Add(1)
	oreq := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(oreq)
	cond := sr.originRequest(oreq)
	creq := newCacheRequest(rt, sr.Namespace, sr.Method, sr.URL, joinedHeader(&oreq.Header), &oreq.Header,
		s.detachedFetch(rt, oreq, nil))
	creq.SetRevalidator(s.revalidator(nil, rt, oreq, nil))
	if sr.MaxAskedUs != nil {
		maxAsked := time.Duration(*sr.MaxAskedUs) * time.Microsecond
		creq.Outdated = func(e *cache.Entry) bool { return time.Since(askedAtOf(e)) > maxAsked }
	}
	e, result, err := s.cacheGet(rt, creq, s.fetcher(rt, oreq, nil))
	if err == nil && creq.Outdated != nil && creq.Outdated(e) {
		// The answer of a flight this request waited for, led by one
		// that took an older copy: once more, on its own.
		e, result, err = s.cacheGet(rt, creq, s.fetcher(rt, oreq, nil))
	}
	if err != nil {
		code, msg := originStatus(err)
		writeShieldAnswer(ctx, fasthttp.StatusBadGateway, shieldAnswer{Status: code, Error: msg, OriginFailed: true}, nil)
		return
	}
	now := time.Now()
	a := shieldAnswer{Status: e.Status, Reason: e.Reason, Result: result.String(),
		AskedUs: int64((now.Sub(askedAtOf(e)) + time.Microsecond - 1) / time.Microsecond),
		HeldUs:  int64(now.Sub(received) / time.Microsecond)}
	hr := heldResponse{code: e.Status, headers: e.Header}
	notMod := notModified(cond, hr)
	for _, h := range e.Header {
		if strings.EqualFold(h.Name, "Age") || notMod && strings.EqualFold(h.Name, "Content-Length") {
			continue
		}
		a.Header = append(a.Header, [2]string{h.Name, h.Value})
	}
	a.Header = append(a.Header, [2]string{"Age", strconv.FormatInt(int64(e.Age(now)/time.Second), 10)})
	if notMod {
		a.Status, a.Reason = fasthttp.StatusNotModified, ""
		writeShieldAnswer(ctx, fasthttp.StatusOK, a, nil)
		return
	}
	writeShieldAnswer(ctx, fasthttp.StatusOK, a, e.Response.Body)
}

// check says what is wrong with a shield request ("" when nothing):
// only cacheable requests of plain HTTP, without a body, for a path on
// the route's origin (never a URL naming another host).
func (sr *shieldRequest) check(bodyLen int) string {
	switch {
	case sr.Method != fasthttp.MethodGet && sr.Method != fasthttp.MethodHead:
		return "method " + strconv.Quote(sr.Method) + " is not cached"
	case sr.Namespace != "":
		return "namespace " + strconv.Quote(sr.Namespace) + " is not shielded"
	case !strings.HasPrefix(sr.URI, "/") || strings.HasPrefix(sr.URI, "//"):
		return "the URI must be a path"
	case sr.URL == "":
		return "no URL"
	case bodyLen > 0:
		return "a cacheable request has no body"
	}
	return ""
}

// originRequest fills req with the origin request sr carries, without
// its validators, which it returns: the shield's cache makes its own
// conditional requests, and answers the member's with 304 itself.
func (sr *shieldRequest) originRequest(req *fasthttp.Request) *fasthttp.RequestHeader {
	cond := &fasthttp.RequestHeader{}
	req.Header.SetMethod(sr.Method)
	req.SetRequestURI(sr.URI)
	req.UseHostHeader = true
	req.Header.SetHost(sr.Host)
	for _, h := range sr.Header {
		switch {
		case strings.EqualFold(h[0], "Host"), strings.EqualFold(h[0], "Content-Length"):
		case inList(conditionalHeaders, h[0]):
			cond.Add(h[0], h[1])
		default:
			req.Header.Add(h[0], h[1])
		}
	}
	return cond
}

// writeShieldAnswer answers a shield request: a JSON line, then body.
func writeShieldAnswer(ctx *fasthttp.RequestCtx, code int, a shieldAnswer, body []byte) {
	line, err := json.Marshal(a)
	if err != nil {
		code, line = fasthttp.StatusInternalServerError, []byte(`{"error":"encoding failed"}`)
	}
	ctx.SetStatusCode(code)
	ctx.SetContentType("application/x-edgepush-shield")
	out := make([]byte, 0, len(line)+1+len(body))
	ctx.Response.SetBodyRaw(append(append(append(out, line...), '\n'), body...))
}

// askedAtOf is when the origin was asked for e's response.
func askedAtOf(e *cache.Entry) time.Time {
	if p, ok := e.Value.(*parsed); ok && !p.askedAt.IsZero() {
		return p.askedAt
	}
	return e.StoredAt()
}

// routeByID returns the route named id, or nil.
func (s *Server) routeByID(id string) *route {
	for _, rt := range s.routes.all {
		if rt.id == id {
			return rt
		}
	}
	return nil
}

// collectShield sends the shielding metrics (in a tier only).
func (c statsCollector) collectShield(e emitter) {
	if c.s.tier == nil {
		return
	}
	st := &c.s.shieldStats
	f := e.family("edgepush_shield_requests_total", "Cache misses and revalidations sent to the key's shield, by result: answered (used), purged (older than a purge run here: asked again), origin_failed (the shield's origin failed: treated as this node's), failed (no usable answer: the origin was asked directly).", counter, "result")
	f.add(float64(st.answered.Load()), "answered")
	f.add(float64(st.purged.Load()), "purged")
	f.add(float64(st.originFailed.Load()), "origin_failed")
	f.add(float64(st.failed.Load()), "failed")
	e.one("edgepush_shield_served_total", "Shield requests from other members this node answered from its cache or its origin.", counter, float64(st.served.Load()))
}
