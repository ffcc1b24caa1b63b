package node

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/edgepush/edgepush/grip"
	"github.com/valyala/fasthttp"
)

// maxHostLen bounds a Host the route table compares (a DNS name is at
// most 253 bytes); longer ones match only any-host routes.
const maxHostLen = 255

// route is one RouteConfig ready to serve: its origins, their circuit
// breakers and the settings resolved against the node's.
type route struct {
	id           string
	host         string // lower case; "" any, "*.x" wildcard
	path         string
	strip        string
	hostRewrite  string
	prefix       string // the origins' URL path, prepended to targets
	signer       *grip.Signer
	ws, cache    bool
	staleIfError *time.Duration // nil: the node's default
	trusted      []netip.Prefix // proxies whose X-Forwarded-For is kept
	origins      []*routeOrigin
	next         atomic.Uint32 // round-robin position
}

// routeOrigin is one origin of a route, with its own client and breaker.
type routeOrigin struct {
	url     string
	client  *originClient
	breaker *breaker
}

// routeTable picks the route of a request: routes of the exact host
// first, then wildcard hosts (longest suffix first), then any-host routes;
// within each, the longest path prefix that matches. It is built once
// and read without locks.
type routeTable struct {
	exact    map[string][]*route // lower-case host → routes, longest path first
	wildcard []hostRoutes        // longest suffix first
	anyHost  []*route            // longest path first
	all      []*route            // configuration order, for /status
}

// originTotals sums the requests to, and the errors of, every origin of
// every route.
func (t *routeTable) originTotals() (requests, errors uint64) {
	for _, rt := range t.all {
		for _, o := range rt.origins {
			requests += o.client.requests.Load()
			errors += o.client.errors.Load()
		}
	}
	return requests, errors
}

// hostRoutes are the routes of one wildcard host.
type hostRoutes struct {
	suffix string // ".example.com" for "*.example.com"
	routes []*route
}

// newRouteTable builds the routes of cfg (after withDefaults): its
// Routes, then Origin as the catch-all route named "default".
func newRouteTable(cfg Config, sigKey []byte) (*routeTable, error) {
	list := slices.Clone(cfg.Routes)
	if cfg.Origin != "" {
		list = append(list, RouteConfig{ID: "default", Origins: []string{cfg.Origin}})
	}
	t := &routeTable{exact: map[string][]*route{}}
	var errs []error
	for i := range list {
		rc := &list[i]
		if err := rc.validate(); err != nil {
			errs = append(errs, fmt.Errorf("config: route %q: %w", rc.routeID(), err))
			continue
		}
		if err := RouteList(list[:i]).checkNew(rc); err != nil {
			errs = append(errs, fmt.Errorf("config: route %q: %w", rc.routeID(), err))
			continue
		}
		rt, err := newRoute(cfg, rc, sigKey)
		if err != nil {
			errs = append(errs, fmt.Errorf("config: route %q: %w", rc.routeID(), err))
			continue
		}
		t.add(rt)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	t.sort()
	return t, nil
}

func (t *routeTable) add(rt *route) {
	t.all = append(t.all, rt)
	switch {
	case rt.host == "":
		t.anyHost = append(t.anyHost, rt)
	case strings.HasPrefix(rt.host, "*."):
		suffix := rt.host[1:]
		i := slices.IndexFunc(t.wildcard, func(w hostRoutes) bool { return w.suffix == suffix })
		if i < 0 {
			t.wildcard = append(t.wildcard, hostRoutes{suffix: suffix})
			i = len(t.wildcard) - 1
		}
		t.wildcard[i].routes = append(t.wildcard[i].routes, rt)
	default:
		t.exact[rt.host] = append(t.exact[rt.host], rt)
	}
}

// sort orders every list for match: longest path (and suffix) first.
func (t *routeTable) sort() {
	byPath := func(a, b *route) int { return len(b.path) - len(a.path) }
	for _, rs := range t.exact {
		slices.SortStableFunc(rs, byPath)
	}
	for _, w := range t.wildcard {
		slices.SortStableFunc(w.routes, byPath)
	}
	slices.SortStableFunc(t.anyHost, byPath)
	slices.SortStableFunc(t.wildcard, func(a, b hostRoutes) int { return len(b.suffix) - len(a.suffix) })
}

// match returns the route for a Host header and a request path, or nil.
// It does not allocate.
func (t *routeTable) match(hostHeader, path []byte) *route {
	var buf [maxHostLen]byte
	host, ok := matchHost(&buf, hostHeader)
	if ok {
		if rs := t.exact[string(host)]; rs != nil {
			if rt := byPath(rs, path); rt != nil {
				return rt
			}
		}
		for i := range t.wildcard {
			w := &t.wildcard[i]
			if len(host) > len(w.suffix) && string(host[len(host)-len(w.suffix):]) == w.suffix {
				if rt := byPath(w.routes, path); rt != nil {
					return rt
				}
			}
		}
	}
	return byPath(t.anyHost, path)
}

func byPath(rs []*route, path []byte) *route {
	for _, rt := range rs {
		if len(path) >= len(rt.path) && string(path[:len(rt.path)]) == rt.path {
			return rt
		}
	}
	return nil
}

// matchHost writes a Host header's host into buf as the table compares
// it: port and a trailing dot removed, lower case. ok is false when it
// does not fit.
func matchHost(buf *[maxHostLen]byte, h []byte) (host []byte, ok bool) {
	if len(h) > 0 && h[0] == '[' {
		if end := bytes.IndexByte(h, ']'); end > 0 {
			h = h[:end+1]
		}
	} else if i := bytes.LastIndexByte(h, ':'); i >= 0 {
		h = h[:i]
	}
	h = bytes.TrimSuffix(h, []byte("."))
	if len(h) > len(buf) {
		return nil, false
	}
	for i, c := range h {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	return buf[:len(h)], true
}

// newRoute resolves rc against the node's settings and builds its
// origins.
func newRoute(cfg Config, rc *RouteConfig, sigKey []byte) (*route, error) {
	rt := &route{
		id:          rc.routeID(),
		host:        routeHost(rc.Host),
		path:        rc.pathPrefix(),
		strip:       rc.StripPrefix,
		hostRewrite: rc.HostRewrite,
		ws:          rc.WebSocket == nil || *rc.WebSocket,
		cache:       !cfg.CacheOff,
	}
	if rc.Cache != nil {
		rt.cache = *rc.Cache
	}
	if rc.StaleIfError != nil {
		d := *rc.StaleIfError
		rt.staleIfError = &d
	}
	rt.prefix, _ = originPath(rc.Origins) // checked by validate
	key, iss := sigKey, cmp(rc.SigIss, cfg.SigIss)
	if rc.SigKey != "" {
		key, _ = grip.ParseKey(rc.SigKey) // checked by validate
	}
	rt.signer = grip.NewSigner(iss, key)
	trusted, err := parseTrusted(cmp(rc.TrustXFF, cfg.TrustXFF))
	if err != nil {
		return nil, fmt.Errorf("trust-xff: %w", err)
	}
	rt.trusted = trusted
	tlsConfig, err := originTLS(cmp(rc.CAFile, cfg.OriginCAFile), cmp(rc.ClientCert, cfg.OriginClientCert), cmp(rc.ClientKey, cfg.OriginClientKey))
	if err != nil {
		return nil, err
	}
	for _, u := range rc.Origins {
		oc, err := newOriginClient(cfg, u, tlsConfig)
		if err != nil {
			return nil, err
		}
		rt.origins = append(rt.origins, &routeOrigin{
			url:     u,
			client:  oc,
			breaker: newBreaker(cfg.OriginFailures, time.Second, cfg.OriginProbeMaxPause),
		})
	}
	return rt, nil
}

// cmp returns v, or def when v is empty.
func cmp(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// originTLS builds the TLS settings for HTTPS origins: caFile replaces
// the system's CAs, cert and key are the client certificate. All empty:
// nil (the defaults).
func originTLS(caFile, cert, key string) (*tls.Config, error) {
	if caFile == "" && cert == "" && key == "" {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("ca-file: %w", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca-file %s: no PEM certificate in it", caFile)
		}
	}
	if cert != "" || key != "" {
		if cert == "" || key == "" {
			return nil, errors.New("client-cert and client-key: give both or neither")
		}
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("client-cert: %w", err)
		}
		c.Certificates = []tls.Certificate{pair}
	}
	return c, nil
}

// caching reports whether any route uses the cache.
func (t *routeTable) caching() bool {
	return slices.ContainsFunc(t.all, func(rt *route) bool { return rt.cache })
}

// routeFor picks the route of a client request. When the request has
// looped back to this CDN (its CDN-Loop names this node's token) or no
// route takes it, it answers the client (508, 404) and returns nil.
func (s *Server) routeFor(ctx *fasthttp.RequestCtx) *route {
	if s.looped(ctx) {
		s.log.Warn("request loop", "host", string(ctx.Request.Header.Host()), "path", string(ctx.Path()),
			"cdn_loop", string(ctx.Request.Header.Peek("CDN-Loop")))
		clientError(ctx, fasthttp.StatusLoopDetected, "loop detected: this request already passed through this CDN (CDN-Loop: "+
			s.cfg.CDNLoop+"); a route's origin leads back to it")
		return nil
	}
	if bytes.IndexByte(ctx.Request.Header.Host(), '@') >= 0 {
		// user:pass@host: an origin client could turn the userinfo into
		// credentials of its own.
		clientError(ctx, fasthttp.StatusBadRequest, "Host with userinfo (user@host)")
		return nil
	}
	path := requestTarget(ctx)
	if i := bytes.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	if hasDotSegment(path) {
		// "/public/../admin" would be matched by one route and name
		// another route's resource: refused, as browsers never send it.
		clientError(ctx, fasthttp.StatusBadRequest, "request path with dot-segments (/./ or /../, escaped or not)")
		return nil
	}
	rt := s.routes.match(ctx.Request.Header.Host(), path)
	if rt == nil {
		clientError(ctx, fasthttp.StatusNotFound, fmt.Sprintf("no route for host %q and path %q", ctx.Request.Header.Host(), path))
	}
	return rt
}

// hasDotSegment reports whether path has a "." or ".." segment as an
// origin might read it: literal or percent-encoded dots, with
// percent-encoded or backslash separators (..%2f, %2e%2e%5c, ..\), and
// with matrix parameters (..;x), which some servers strip.
func hasDotSegment(path []byte) bool {
	var buf [256]byte
	if bytes.ContainsAny(path, "%\\;") {
		path = pathAsOriginsRead(buf[:0], path)
	}
	for len(path) > 0 {
		var seg []byte
		seg, path, _ = bytes.Cut(path, []byte{'/'})
		if string(seg) == "." || string(seg) == ".." {
			return true
		}
	}
	return false
}

// pathAsOriginsRead appends path to dst with every escape decoded once,
// backslashes read as slashes and each segment's ";parameters" dropped:
// the loosest reading an origin server may apply.
func pathAsOriginsRead(dst, path []byte) []byte {
	params := false
	for i := 0; i < len(path); i++ {
		c := path[i]
		if c == '%' && i+2 < len(path) && isHex(path[i+1]) && isHex(path[i+2]) {
			c = unhex(path[i+1])<<4 | unhex(path[i+2])
			i += 2
		}
		switch {
		case c == '/' || c == '\\':
			dst, params = append(dst, '/'), false
		case c == ';':
			params = true
		case !params:
			dst = append(dst, c)
		}
	}
	return dst
}

// requestTarget is the request target as the client sent it (path and
// query), what routes match and what goes to the origin.
func requestTarget(ctx *fasthttp.RequestCtx) []byte {
	if t := ctx.Request.Header.RequestURI(); len(t) > 0 && t[0] == '/' {
		return t
	}
	return ctx.Request.RequestURI() // absolute-form: the parsed URI's
}

// setTarget sets req's request URI for the client's target: strip-prefix
// removed, the origins' path prepended.
func (rt *route) setTarget(req *fasthttp.Request, target []byte) {
	slash := false
	if rt.strip != "" && bytes.HasPrefix(target, []byte(rt.strip)) {
		target = target[len(rt.strip):]
		slash = len(target) == 0 || target[0] != '/'
	}
	if rt.prefix == "" && !slash {
		req.SetRequestURIBytes(target)
		return
	}
	var buf [256]byte
	b := append(buf[:0], rt.prefix...)
	if slash {
		b = append(b, '/')
	}
	req.SetRequestURIBytes(append(b, target...))
}

// looped reports whether the request's CDN-Loop header (RFC 8586) names
// this node's token.
func (s *Server) looped(ctx *fasthttp.RequestCtx) bool {
	for _, v := range ctx.Request.Header.PeekAll("CDN-Loop") {
		if cdnLoopHas(v, s.cfg.CDNLoop) {
			return true
		}
	}
	return false
}

// cdnLoopHas reports whether a CDN-Loop value ("a, b; p=1, c") lists the
// CDN id token, compared without ASCII case.
func cdnLoopHas(v []byte, token string) bool {
	for len(v) > 0 {
		var item []byte
		item, v, _ = bytes.Cut(v, []byte{','})
		if i := bytes.IndexByte(item, ';'); i >= 0 {
			item = item[:i]
		}
		if equalFoldASCII(bytes.TrimSpace(item), token) {
			return true
		}
	}
	return false
}

func equalFoldASCII(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// validCDNLoopToken reports whether t can stand in a CDN-Loop header: an
// HTTP token, or host:port.
func validCDNLoopToken(t string) bool {
	if t == "" {
		return false
	}
	for i := range len(t) {
		c := t[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case bytes.IndexByte([]byte("!#$%&'*+-.^_`|~:[]"), c) >= 0:
		default:
			return false
		}
	}
	return true
}
