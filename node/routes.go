package node

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
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

// isDialError reports whether err happened before anything was sent:
// the origin could not be connected to.
func isDialError(err error) bool {
	var oe *net.OpError
	return errors.Is(err, fasthttp.ErrDialTimeout) || errors.As(err, &oe) && oe.Op == "dial"
}

// startProbes runs one prober per origin: it waits for the origin's
// breaker to open, then probes until the origin answers.
func (s *Server) startProbes() {
	if s.cfg.OriginFailures <= 0 {
		return // no breakers
	}
	for _, rt := range s.routes.all {
		for _, o := range rt.origins {
			s.bg.Go(func() { o.breaker.probeLoop(s.stop, func() bool { return s.probeOrigin(rt, o) }) })
		}
	}
}

// probeOrigin asks one origin of rt whether it is back (any answer
// below 500).
func (s *Server) probeOrigin(rt *route, o *routeOrigin) bool {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(rt.prefix + s.cfg.OriginProbePath)
	req.UseHostHeader = true
	req.Header.SetHost(cmp(rt.hostRewrite, o.client.hc.Addr))
	req.Header.Set("CDN-Loop", s.cfg.CDNLoop)
	req.Header.Set("Grip-Sig", rt.signer.Token(time.Now()))
	err := o.client.do(req, resp)
	ok := err == nil && resp.StatusCode() < 500
	s.log.Info("origin probe", "route", rt.id, "origin", o.url, "ok", ok, "err", err)
	return ok
}

// originBreakers is the origins' circuit breakers seen together.
type originBreakers struct{ routes *routeTable }

// isOpen reports whether any origin's breaker is open.
func (b originBreakers) isOpen() bool {
	for _, rt := range b.routes.all {
		if rt.breakerState() != "closed" {
			return true
		}
	}
	return false
}

// breakerState is "closed", "open" (every origin's breaker is open: the
// route fails fast) or "partial" (requests go to the other origins).
func (rt *route) breakerState() string {
	open := 0
	for _, o := range rt.origins {
		if o.breaker.isOpen() {
			open++
		}
	}
	switch open {
	case 0:
		return "closed"
	case len(rt.origins):
		return "open"
	}
	return "partial"
}

// RouteStatus is one route as GET /status reports it.
type RouteStatus struct {
	ID        string `json:"id"`
	Host      string `json:"host"` // "*": any
	Path      string `json:"path"`
	WebSocket bool   `json:"websocket"`
	Cache     bool   `json:"cache"`
	// Breaker is "closed", "open" (every origin's) or "partial".
	Breaker string              `json:"breaker"`
	Origins []RouteOriginStatus `json:"origins"`
}

// RouteOriginStatus is one origin of a route: its request counters and
// its circuit breaker.
type RouteOriginStatus struct {
	URL      string `json:"url"`
	Requests uint64 `json:"requests"`
	Errors   uint64 `json:"errors"`
	Breaker  string `json:"breaker"` // "open" or "closed"
}

// routeStatus reports every route in configuration order.
func (s *Server) routeStatus() []RouteStatus {
	out := make([]RouteStatus, 0, len(s.routes.all))
	for _, rt := range s.routes.all {
		st := RouteStatus{ID: rt.id, Host: cmp(rt.host, "*"), Path: rt.path, WebSocket: rt.ws,
			Cache: rt.cache && s.cache != nil, Breaker: rt.breakerState()}
		for _, o := range rt.origins {
			st.Origins = append(st.Origins, RouteOriginStatus{
				URL:      o.url,
				Requests: o.client.requests.Load(),
				Errors:   o.client.errors.Load(),
				Breaker:  map[bool]string{true: "open", false: "closed"}[o.breaker.isOpen()],
			})
		}
		out = append(out, st)
	}
	return out
}
