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

// originClient sends client requests to one origin.
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
func originStatus(err error) (int, string) {
	switch {
	case errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, fasthttp.ErrDialTimeout):
		return fasthttp.StatusGatewayTimeout, "origin timed out"
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		return fasthttp.StatusBadGateway, "origin response too large"
	case errors.Is(err, fasthttp.ErrNoFreeConns):
		return fasthttp.StatusServiceUnavailable, "too many requests to the origin"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fasthttp.StatusGatewayTimeout, "origin timed out"
	}
	return fasthttp.StatusBadGateway, "origin unavailable"
}

// hopHeaders are the hop-by-hop headers a proxy must not forward (RFC 9110
// §7.6.1), plus the framing headers the node sets itself.
var hopHeaders = []string{
	"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate",
	"Proxy-Authorization", "TE", "Trailer", "Transfer-Encoding", "Upgrade",
}

func isHopHeader(name string, connTokens []string) bool {
	for _, h := range hopHeaders {
		if strings.EqualFold(name, h) {
			return true
		}
	}
	for _, t := range connTokens {
		if strings.EqualFold(name, t) {
			return true
		}
	}
	return false
}

// connectionTokens returns the header names listed in a Connection header.
func connectionTokens(v []byte) []string {
	if len(v) == 0 {
		return nil
	}
	var out []string
	for _, t := range strings.Split(string(v), ",") {
		if t = strings.TrimSpace(t); t != "" {
			out = append(out, t)
		}
	}
	return out
}
