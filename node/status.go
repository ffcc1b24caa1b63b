package node

import (
	"net"
	"runtime"
	"time"

	"github.com/edgepush/edgepush/cache"
	"github.com/edgepush/edgepush/cluster"
	"github.com/edgepush/edgepush/fanout"
	"github.com/edgepush/edgepush/purge"
)

// Version is the node's version, reported by /status.
const Version = "0.1.0"

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

	// Region and Zone are -region and -zone (empty: not said).
	Region string `json:"region,omitempty"`
	Zone   string `json:"zone,omitempty"`
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
	// DurationCount and DurationSeconds are the count and the summed
	// duration of the requests timed by
	// edgepush_origin_request_duration_seconds (its _count and _sum): the
	// status page charts the mean latency from them.
	DurationCount   uint64  `json:"duration_count"`
	DurationSeconds float64 `json:"duration_seconds"`
}

// Status returns a snapshot of the node's counters.
func (s *Server) Status() Status {
	originRequests, originErrors := s.routes.originTotals()
	timed, seconds := s.metrics.originTime.load()
	return Status{
		Node:      s.nodeName(),
		Version:   Version,
		Uptime:    time.Since(s.started).Round(time.Second).String(),
		Listen:    addrString(s.Addr()),
		Origin:    s.cfg.Origin,
		Held:      s.held.Load(),
		Requests:  s.requests.Load(),
		Published: s.publishes.Load(),
		OriginReqs: OriginStatus{
			Requests:            originRequests,
			Errors:              originErrors,
			InvalidInstructions: s.badInstructs.Load(),
			DurationCount:       timed,
			DurationSeconds:     seconds,
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

		Region: s.cfg.Region,
		Zone:   s.cfg.Zone,
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

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}
