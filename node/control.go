package node

import (
	"bytes"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"runtime"
	"time"

	"github.com/edgepush/edgepush/cache"
	"github.com/edgepush/edgepush/cluster"
	"github.com/edgepush/edgepush/fanout"
	"github.com/edgepush/edgepush/grip"
	"github.com/edgepush/edgepush/purge"
	"github.com/valyala/fasthttp"
)

// Version is the node's version, reported by /status.
const Version = "0.1.0"

// serveControl routes the control API.
func (s *Server) serveControl(ctx *fasthttp.RequestCtx) {
	defer recoverLog(s.log, "control request")
	if !ctx.IsGet() && !ctx.IsHead() && crossSite(ctx) {
		// A browser that holds the key (Basic auth given to the status
		// page) must not publish or purge for another site's page.
		controlError(ctx, fasthttp.StatusForbidden, "cross-site request refused")
		return
	}
	switch string(ctx.Path()) {
	case "/publish", "/publish/":
		s.servePublish(ctx)
	case "/purge", "/purge/":
		s.servePurge(ctx, false)
	case "/purge-publish", "/purge-publish/":
		s.servePurge(ctx, true)
	case cluster.OpsPath:
		s.serveTierOps(ctx)
	case "/healthz":
		// Liveness: the process is up and serving its control API.
		ctx.SetContentType("text/plain")
		ctx.SetBodyString("ok\n")
	case "/readyz":
		// Readiness: not while draining, so load balancers move new
		// clients elsewhere first.
		ctx.SetContentType("text/plain")
		if s.draining.Load() {
			ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
			ctx.SetBodyString("draining\n")
			return
		}
		ctx.SetBodyString("ready\n")
	case "/status":
		if !s.authorized(ctx) {
			controlError(ctx, fasthttp.StatusUnauthorized, "missing or invalid publish key")
			return
		}
		writeJSON(ctx, fasthttp.StatusOK, s.Status())
	case "/status/events":
		s.serveStatusEvents(ctx)
	case "/metrics":
		s.serveMetrics(ctx)
	case "/":
		s.serveRoot(ctx) // the status page for browsers, plain text otherwise
	default:
		controlError(ctx, fasthttp.StatusNotFound, "no such endpoint: "+string(ctx.Path()))
	}
}

// crossSite reports whether a browser sent the request for a page of
// another site (Sec-Fetch-Site, else an Origin that is not this host).
// Publishers on servers send neither header.
func crossSite(ctx *fasthttp.RequestCtx) bool {
	if site := ctx.Request.Header.Peek("Sec-Fetch-Site"); len(site) > 0 {
		return string(site) != "same-origin" && string(site) != "none"
	}
	origin := ctx.Request.Header.Peek("Origin")
	if len(origin) == 0 {
		return false
	}
	_, host, ok := bytes.Cut(origin, []byte("://"))
	return !ok || !bytes.Equal(host, ctx.Request.Header.Host())
}

// servePublish is Pushpin's POST /publish/: the items are delivered to
// the channels' subscribers, and the answer comes before delivery.
func (s *Server) servePublish(ctx *fasthttp.RequestCtx) {
	if !ctx.IsPost() {
		ctx.Response.Header.Set("Allow", "POST")
		controlError(ctx, fasthttp.StatusMethodNotAllowed, "Method not allowed: "+string(ctx.Method())+".")
		return
	}
	if !s.authorized(ctx) {
		controlError(ctx, fasthttp.StatusUnauthorized, "missing or invalid publish key")
		return
	}
	req, err := grip.ParsePublish(ctx.PostBody())
	if err != nil {
		controlError(ctx, fasthttp.StatusBadRequest, err.Error())
		return
	}
	for i := range req.Items {
		s.publish(&req.Items[i])
	}
	s.forward(opPublish, ctx.PostBody(), nil)
	if wantsJSON(ctx) {
		writeJSON(ctx, fasthttp.StatusOK, map[string]string{"message": "Published"})
		return
	}
	ctx.SetContentType("text/plain")
	ctx.SetBodyString("Published\n")
}

// servePurge is POST /purge/ (purges) and POST /purge-publish/ (purges,
// then publishes). Purges are rate-limited per key; publishes never wait.
func (s *Server) servePurge(ctx *fasthttp.RequestCtx, withPublish bool) {
	if !ctx.IsPost() {
		ctx.Response.Header.Set("Allow", "POST")
		writeJSON(ctx, fasthttp.StatusMethodNotAllowed, map[string]string{"error": "method not allowed: " + string(ctx.Method())})
		return
	}
	if !s.authorized(ctx) {
		writeJSON(ctx, fasthttp.StatusUnauthorized, map[string]string{"error": "missing or invalid publish key"})
		return
	}
	req, items, err := s.parsePurge(ctx, withPublish)
	if err != nil {
		writeJSON(ctx, fasthttp.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	resp := purge.Response{Purged: []purge.Outcome{}, Deferred: []purge.Outcome{}}
	for _, o := range s.purgeLocal(req) {
		resp.Add(o)
	}
	if items != nil {
		for i := range items.Items {
			s.publish(&items.Items[i])
		}
		resp.Published = len(items.Items)
	}
	if withPublish {
		s.forward(opPurgePublish, ctx.PostBody(), req)
	} else if data, err := json.Marshal(req); err == nil {
		s.forward(opPurge, data, req) // re-encoded: the keys may have come in a header
	}
	writeJSON(ctx, fasthttp.StatusOK, resp)
}

func (s *Server) parsePurge(ctx *fasthttp.RequestCtx, withPublish bool) (*purge.Request, *grip.PublishRequest, error) {
	if !withPublish {
		req, err := purge.ParsePurge(ctx.PostBody(), string(ctx.Request.Header.Peek("Surrogate-Key")))
		return req, nil, err
	}
	req, body, err := purge.ParsePurgePublish(ctx.PostBody())
	if err != nil || body == nil {
		return req, nil, err
	}
	items, err := grip.ParsePublish(body)
	if err != nil {
		return nil, nil, fmt.Errorf("items: %w", err)
	}
	return req, items, nil
}

// publish delivers one item to its channel's local subscribers.
func (s *Server) publish(item *grip.Item) {
	s.publishes.Add(1)
	s.hub.Publish(fanout.NewMessage(item.Channel, item))
}

// authorized checks the control API credentials when a publish key is
// set: "Bearer <key>", "Bearer <HS256 JWT signed with the key>" (Fanout's
// publisher libraries), or Basic auth with the key as password
// (pushpin-publish -u).
func (s *Server) authorized(ctx *fasthttp.RequestCtx) bool {
	if s.publishKey == nil {
		return true
	}
	auth := ctx.Request.Header.Peek("Authorization")
	scheme, cred, _ := bytes.Cut(auth, []byte(" "))
	switch {
	case bytes.EqualFold(scheme, []byte("Bearer")):
		if subtle.ConstantTimeCompare(cred, s.publishKey) == 1 {
			return true
		}
		_, err := grip.VerifyHS256(string(cred), s.publishKey, time.Now())
		return err == nil
	case bytes.EqualFold(scheme, []byte("Basic")):
		raw, err := base64.StdEncoding.DecodeString(string(cred))
		if err != nil {
			return false
		}
		_, pass, _ := bytes.Cut(raw, []byte(":"))
		return subtle.ConstantTimeCompare(pass, s.publishKey) == 1
	}
	return false
}

// Status is the node's state as GET /status reports it.
type Status struct {
	Node       string           `json:"node"`
	Version    string           `json:"version"`
	Uptime     string           `json:"uptime"`
	Listen     string           `json:"listen"`
	Origin     string           `json:"origin"`
	Held       int64            `json:"held_connections"`
	Requests   uint64           `json:"requests"`
	Published  uint64           `json:"published_items"`
	OriginReqs OriginStatus     `json:"origin_requests"`
	Hub        fanout.HubStats  `json:"hub"`
	Pool       fanout.PoolStats `json:"delivery"`
	Cache      cache.Stats      `json:"cache"`
	Purges     purge.Stats      `json:"purges"`
	Tier       *cluster.Stats   `json:"tier,omitempty"`
	Breaker    string           `json:"origin_breaker"` // "open" when any origin's breaker is
	Routes     []RouteStatus    `json:"routes"`
	Goroutines int              `json:"goroutines"`

	// Connections counts held connections by transport (stream,
	// longpoll, ws).
	Connections map[string]TransportStats `json:"connections"`
}

// TransportStats counts one transport's held connections.
type TransportStats struct {
	Held   int64  `json:"held"`   // held now
	Opened uint64 `json:"opened"` // since the node started
}

// OriginStatus counts requests to the origin.
type OriginStatus struct {
	Requests            uint64 `json:"requests"`
	Errors              uint64 `json:"errors"`
	InvalidInstructions uint64 `json:"invalid_instructions"`
}

// Status returns a snapshot of the node's counters.
func (s *Server) Status() Status {
	originRequests, originErrors := s.routes.originTotals()
	return Status{
		Node:      s.nodeName(),
		Version:   Version,
		Uptime:    time.Since(s.started).Round(time.Second).String(),
		Listen:    s.clientLn.Addr().String(),
		Origin:    s.cfg.Origin,
		Held:      s.held.Load(),
		Requests:  s.requests.Load(),
		Published: s.publishes.Load(),
		OriginReqs: OriginStatus{
			Requests:            originRequests,
			Errors:              originErrors,
			InvalidInstructions: s.badInstructs.Load(),
		},
		Hub:        s.hub.Stats(),
		Pool:       s.pool.Stats(),
		Cache:      s.cacheStats(),
		Purges:     s.limiter.Stats(),
		Tier:       s.tierStats(),
		Breaker:    map[bool]string{true: "open", false: "closed"}[s.breaker.isOpen()],
		Routes:     s.routeStatus(),
		Goroutines: runtime.NumGoroutine(),

		Connections: s.metrics.transports(),
	}
}

func (s *Server) tierStats() *cluster.Stats {
	if s.tier == nil {
		return nil
	}
	st := s.tier.Stats()
	return &st
}

func (s *Server) cacheStats() cache.Stats {
	if s.cache == nil {
		return cache.Stats{}
	}
	return s.cache.Stats()
}

func wantsJSON(ctx *fasthttp.RequestCtx) bool {
	return bytes.Contains(ctx.Request.Header.Peek("Accept"), []byte("application/json"))
}

// controlError answers like Pushpin (plain-text reason) unless the client
// asks for JSON, which gets {"error": "..."}.
func controlError(ctx *fasthttp.RequestCtx, code int, msg string) {
	if wantsJSON(ctx) {
		writeJSON(ctx, code, map[string]string{"error": msg})
		return
	}
	ctx.SetStatusCode(code)
	ctx.SetContentType("text/plain")
	ctx.SetBodyString(msg + "\n")
}

func writeJSON(ctx *fasthttp.RequestCtx, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = fasthttp.StatusInternalServerError, []byte(`{"error":"encoding failed"}`)
	}
	ctx.SetStatusCode(code)
	ctx.SetContentType("application/json")
	ctx.SetBody(append(b, '\n'))
}
