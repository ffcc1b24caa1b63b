package node

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// The origin client: every request the node sends to an origin goes
// through originDo (the route's origins in turn, each behind its circuit
// breaker) and originClient.do (timeouts, one retry on a stale kept-alive
// connection); probes ask an origin whose breaker is open whether it is
// back.

// originClient sends requests to one origin.
type originClient struct {
	hc      *fasthttp.HostClient
	prefix  string // origin URL path, prepended to request URIs
	timeout time.Duration

	requests atomic.Uint64
	errors   atomic.Uint64
}

// newOriginClient returns a client for the origin at rawURL; tlsConfig
// (nil: the defaults) applies to https:// origins.
func newOriginClient(cfg Config, rawURL string, tlsConfig *tls.Config) (*originClient, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("origin: %w", err)
	}
	host := u.Host
	isTLS := u.Scheme == "https"
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), map[bool]string{true: "443", false: "80"}[isTLS])
	}
	dialTimeout := cfg.OriginDialTimeout
	attempts := 1 + max(cfg.OriginRetries, 0)
	hc := &fasthttp.HostClient{
		Addr:                          host,
		IsTLS:                         isTLS,
		TLSConfig:                     tlsConfig,
		Dial:                          func(addr string) (net.Conn, error) { return fasthttp.DialTimeout(addr, dialTimeout) },
		MaxConns:                      cfg.OriginMaxConns,
		MaxConnWaitTimeout:            cfg.OriginTimeout,
		MaxIdleConnDuration:           10 * time.Second,
		ReadTimeout:                   cfg.OriginTimeout,
		WriteTimeout:                  cfg.OriginTimeout,
		MaxResponseBodySize:           cfg.OriginMaxBody,
		ReadBufferSize:                cfg.OriginMaxHeaderBytes,
		MaxIdemponentCallAttempts:     attempts,
		NoDefaultUserAgentHeader:      true,
		DisablePathNormalizing:        true,
		DisableHeaderNamesNormalizing: false,
	}
	return &originClient{hc: hc, prefix: strings.TrimSuffix(u.Path, "/"), timeout: cfg.OriginTimeout}, nil
}

// do sends req and reads the whole response into resp.
func (o *originClient) do(req *fasthttp.Request, resp *fasthttp.Response) error {
	o.requests.Add(1)
	if o.hc.IsTLS { // the client checks that the URI says so
		req.URI().SetScheme("https")
	} else {
		req.URI().SetScheme("http")
	}
	err := o.hc.DoTimeout(req, resp, o.timeout)
	if err != nil && staleConn(err) {
		// The origin dropped its kept-alive connections (a restart, an
		// idle timeout): forget every idle one, so no later request
		// fails on them, and try an idempotent request once more on a
		// fresh connection, which tells a restarted origin from a dead
		// one (dial errors are not retried).
		o.hc.CloseIdleConnections()
		if m := req.Header.Method(); string(m) == "GET" || string(m) == "HEAD" {
			resp.Reset()
			err = o.hc.DoTimeout(req, resp, o.timeout)
		}
	}
	if err != nil {
		o.errors.Add(1)
	}
	return err
}

// staleConn reports whether err is a kept-alive connection found closed
// by the origin, rather than an origin that cannot be reached.
func staleConn(err error) bool {
	return errors.Is(err, fasthttp.ErrConnectionClosed) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// originStatus maps an origin failure to what the client gets.
func originStatus(err error) (code int, msg string) {
	var ne net.Error
	var small *fasthttp.ErrSmallBuffer
	var shield *shieldOriginError
	switch {
	case errors.As(err, &shield):
		return shield.code, shield.msg
	case errors.Is(err, errCircuitOpen):
		return fasthttp.StatusBadGateway, "origin unavailable and no cached copy (the origin is being probed)"
	case errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, fasthttp.ErrDialTimeout),
		errors.As(err, &ne) && ne.Timeout():
		return fasthttp.StatusGatewayTimeout, "origin timed out (no cached copy to serve)"
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		return fasthttp.StatusBadGateway, "origin response too large"
	case errors.As(err, &small):
		return fasthttp.StatusBadGateway, "origin response header too large (see -origin-max-header-bytes)"
	case errors.Is(err, fasthttp.ErrNoFreeConns):
		return fasthttp.StatusServiceUnavailable, "too many requests to the origin"
	}
	return fasthttp.StatusBadGateway, "origin unavailable (no cached copy to serve)"
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
		s.metrics.originDone(o, start, err, resp.StatusCode())
		switch originHealthOf(err) {
		case originAlive:
			o.breaker.record(true, "")
		case originUnreachable:
			o.breaker.record(false, "")
		case originSilent:
			o.breaker.record(false, string(req.Header.RequestURI()))
		}
		if err == nil || !isDialError(err) {
			return err
		}
	}
	if errors.Is(err, errCircuitOpen) {
		s.metrics.breakerRejected(rt)
	}
	return err
}

// originHealth is what the outcome of one origin request says of the
// origin as a whole, for its circuit breaker.
type originHealth int

const (
	// originAlive: it answered, whatever the status (5xx included: the
	// origin is there, and the cache serves stale entries on a 5xx by
	// itself). It closes the run of failures.
	originAlive originHealth = iota
	// originUnreachable: it could not be connected to (connection
	// refused, dial timeout), whatever the request: it counts toward
	// opening the breaker.
	originUnreachable
	// originSilent: connected, but no answer (none in time, or the
	// connection dropped before it; a kept-alive connection found closed
	// is retried first): the origin is hung, or dead behind a proxy that
	// accepts for it, if it happens across URLs; or that one URL's
	// request fails. It counts once per URL in a run of failures, so that
	// a few URLs failing again and again cannot open the breaker, while
	// an origin failing them all does.
	originSilent
	// originUnknown: a failure of one answer (cut in the middle, too
	// large or malformed), which says nothing of the origin's others: it
	// counts for nothing, so that one client cannot take the origin away
	// from everyone.
	originUnknown
)

// originHealthOf classifies an origin request's outcome (err nil: an
// answer).
func originHealthOf(err error) originHealth {
	if err == nil {
		return originAlive
	}
	var ne net.Error
	switch {
	case isDialError(err):
		return originUnreachable
	case errors.Is(err, fasthttp.ErrTimeout), errors.As(err, &ne) && ne.Timeout(),
		errors.Is(err, fasthttp.ErrConnectionClosed), errors.Is(err, syscall.ECONNRESET):
		return originSilent
	}
	return originUnknown
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
			s.bg.Go(func() { o.breaker.probeLoop(s.bgCtx.Done(), func() bool { return s.probeOrigin(rt, o) }) })
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
	s.setProxyHeaders(req, rt, nil, false)
	err := o.client.do(req, resp)
	ok := err == nil && resp.StatusCode() < 500
	s.log.Info("origin probe", "route", rt.id, "origin", o.url, "ok", ok, "err", err)
	return ok
}
