package node

import (
	"errors"
	"io"
	"net"
	"net/url"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/common/expfmt"
	"github.com/valyala/fasthttp"
)

// Transports of held connections, as metrics and the access log name them.
const (
	transportPlain    = "plain"    // a request answered at once (access log only)
	transportStream   = "stream"   // Grip-Hold: stream (HTTP streaming, SSE)
	transportLongPoll = "longpoll" // Grip-Hold: response
	transportWS       = "ws"       // WebSocket-over-HTTP
)

// heldTransports names the held transports, indexed by heldKind (the
// order of nodeMetrics.held and nodeMetrics.opened).
var heldTransports = [...]string{kindStream: transportStream, kindResponse: transportLongPoll, kindWebSocket: transportWS}

// originLatencyBuckets are the upper bounds, in seconds, of the origin
// request latency histogram.
var originLatencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// Kinds of origin errors, the "kind" label of edgepush_origin_errors_total.
var originErrorKinds = [...]string{"refused", "timeout", "5xx", "too_large", "no_free_conns", "other"}

// nodeMetrics is the node's Prometheus metrics, in a registry of its own
// (several nodes live in one test process). Most values are read at
// scrape time from the counters the packages keep anyway (fanout, cache,
// purge, cluster); only what nothing else counts is counted here: held
// connections per transport, origin latency and origin errors per route
// and origin, requests refused by open breakers. The Prometheus client
// library writes the exposition, with the HELP and TYPE of every family,
// and adds the Go runtime's go_* and the process's process_* metrics.
type nodeMetrics struct {
	reg *prometheus.Registry

	held   [len(heldTransports)]atomic.Int64
	opened [len(heldTransports)]atomic.Uint64

	// origins, series and rejected cover every origin and route: the
	// route table is fixed at start, so they are read without locks.
	origins    map[*routeOrigin]*originMetrics
	series     []*originMetrics          // each (route, origin) label pair once, in configuration order
	rejected   map[*route]*atomic.Uint64 // not sent: every breaker of the route is open
	cacheGaps  *atomicCounter            // held from a copy too old to bring up to date (origin down)
	originTime durationSum               // every origin request's duration, for /status's mean latency
}

// originMetrics is what is counted of one origin of one route: one set of
// series with its route and origin labels. An origin listed twice in a
// route (or two URLs that differ only in credentials) share one.
type originMetrics struct {
	route, origin string         // label values
	members       []*routeOrigin // the origins counted here
	latency       prometheus.Observer
	errors        [len(originErrorKinds)]atomic.Uint64
}

// atomicCounter is a counter that code outside this file increments.
type atomicCounter struct{ n atomic.Uint64 }

// Inc adds one.
func (c *atomicCounter) Inc() { c.n.Add(1) }

// Get returns the count.
func (c *atomicCounter) Get() uint64 { return c.n.Load() }

// newNodeMetrics registers the node's metrics; values computed from s are
// read when /metrics is scraped. s.routes must be set.
func newNodeMetrics(s *Server) *nodeMetrics {
	m := &nodeMetrics{
		reg:       prometheus.NewRegistry(),
		origins:   map[*routeOrigin]*originMetrics{},
		rejected:  map[*route]*atomic.Uint64{},
		cacheGaps: &atomicCounter{},
	}
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "edgepush_origin_request_duration_seconds",
		Help:    "Time taken by requests to origins (client requests, WebSocket-over-HTTP, hints), failures included; breaker probes not included.",
		Buckets: originLatencyBuckets,
	}, []string{"route", "origin"})
	byLabels := map[[2]string]*originMetrics{}
	for _, rt := range s.routes.all {
		m.rejected[rt] = new(atomic.Uint64)
		for _, o := range rt.origins {
			key := [2]string{labelValue(rt.id), labelValue(originLabel(o.url))}
			om := byLabels[key]
			if om == nil {
				om = &originMetrics{route: key[0], origin: key[1], latency: latency.WithLabelValues(key[0], key[1])}
				byLabels[key] = om
				m.series = append(m.series, om)
			}
			om.members = append(om.members, o)
			m.origins[o] = om
		}
	}
	m.reg.MustRegister(latency, statsCollector{s},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// connOpened counts a held connection of kind (heldConn.kind) starting.
func (m *nodeMetrics) connOpened(kind heldKind) {
	m.held[kind].Add(1)
	m.opened[kind].Add(1)
}

// connClosed counts a held connection of kind ending.
func (m *nodeMetrics) connClosed(kind heldKind) { m.held[kind].Add(-1) }

// transports returns the held and opened connections per transport.
func (m *nodeMetrics) transports() map[string]TransportStats {
	out := make(map[string]TransportStats, len(heldTransports))
	for i, name := range heldTransports {
		out[name] = TransportStats{Held: m.held[i].Load(), Opened: m.opened[i].Load()}
	}
	return out
}

// originDone records one request to origin o of route rt that took
// since start: its latency and, if it failed or answered 5xx, the kind of
// error.
func (m *nodeMetrics) originDone(o *routeOrigin, start time.Time, err error, status int) {
	om := m.origins[o]
	d := time.Since(start)
	om.latency.Observe(d.Seconds())
	m.originTime.add(d)
	if k := originErrorKind(err, status); k >= 0 {
		om.errors[k].Add(1)
	}
}

// breakerRejected counts a request to rt not sent because every breaker
// of its origins was open.
func (m *nodeMetrics) breakerRejected(rt *route) { m.rejected[rt].Add(1) }

// originErrorKind returns the index in originErrorKinds of an origin
// request's failure, or -1 if it did not fail.
func originErrorKind(err error, status int) int {
	var ne net.Error
	switch {
	case err == nil && status >= 500:
		return 2
	case err == nil:
		return -1
	case errors.Is(err, syscall.ECONNREFUSED):
		return 0
	case errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, fasthttp.ErrDialTimeout),
		errors.As(err, &ne) && ne.Timeout():
		return 1
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		return 3
	case errors.Is(err, fasthttp.ErrNoFreeConns):
		return 4
	}
	return 5
}

// originLabel is an origin URL as its metrics' "origin" label shows it:
// without credentials.
func originLabel(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	u.User = nil
	return u.String()
}

// labelValue makes v a valid label value (UTF-8).
func labelValue(v string) string { return strings.ToValidUTF8(v, "\uFFFD") }

// writeMetrics writes the node's metrics in the Prometheus text format.
// A family that cannot be gathered whole is logged and left out or
// written in part; the others are written.
func (s *Server) writeMetrics(w io.Writer) {
	families, err := s.metrics.reg.Gather()
	if err != nil {
		s.log.Warn("metrics: gathering", "err", err)
	}
	for _, mf := range families {
		if _, err := expfmt.MetricFamilyToText(w, mf); err != nil {
			return // the scraper went away
		}
	}
}

// statsCollector sends the node's metrics that are read at scrape time.
// It describes nothing in advance (an unchecked collector): the families
// are written in Collect, each with its help.
type statsCollector struct{ s *Server }

// Describe sends nothing: the collector is unchecked.
func (statsCollector) Describe(chan<- *prometheus.Desc) {}

// Collect sends the node's metrics.
func (c statsCollector) Collect(ch chan<- prometheus.Metric) {
	s, m := c.s, c.s.metrics
	e := emitter{ch}

	f := e.family("edgepush_connections", "Held connections now, by transport.", gauge, "transport")
	g := e.family("edgepush_connections_opened_total", "Held connections opened, by transport.", counter, "transport")
	for i, name := range heldTransports {
		f.add(float64(m.held[i].Load()), name)
		g.add(float64(m.opened[i].Load()), name)
	}
	e.one("edgepush_requests_total", "Client requests.", counter, float64(s.requests.Load()))
	e.one("edgepush_items_published_total", "Items given to the node to publish (control API and tier members), before duplicate and sequence checks.", counter, float64(s.publishes.Load()))
	e.one("edgepush_cache_gaps_total", "Connections opened while the origin was down from a cached copy older than its channels' history.", counter, float64(m.cacheGaps.Get()))

	hub, pool := s.hub.Stats(), s.pool.Stats()
	e.one("edgepush_channels", "Channels with subscribers, history, held items or recent ids.", gauge, float64(hub.Channels))
	e.one("edgepush_subscriptions", "Subscriptions: (channel, connection) pairs.", gauge, float64(hub.Subscriptions))
	e.one("edgepush_messages_published_total", "Messages published on this node (local or from the tier).", counter, float64(hub.Published))
	e.one("edgepush_messages_delivered_total", "Messages handed to connections.", counter, float64(hub.Delivered))
	e.one("edgepush_messages_replayed_total", "Messages replayed from channel history.", counter, float64(hub.Replayed))
	e.one("edgepush_publish_duplicates_total", "Published items dropped as duplicate ids.", counter, float64(hub.Duplicates))
	e.one("edgepush_publish_parked_total", "Published items held for their prev-id.", counter, float64(hub.Parked))
	e.one("edgepush_publish_released_late_total", "Held published items delivered after -sequence-wait without their prev-id.", counter, float64(hub.ReleasedLate))
	e.one("edgepush_publish_sequence_dropped_total", "Published items dropped instead of held for their prev-id.", counter, float64(hub.SequenceDropped))
	e.one("edgepush_publish_pending", "Published items held for their prev-id now.", gauge, float64(hub.Pending))
	e.one("edgepush_messages_dropped_total", "Frames discarded with the queue of a connection dropped as a slow consumer.", counter, float64(pool.DroppedFrames))
	e.one("edgepush_slow_consumer_disconnects_total", "Held connections dropped for a full queue.", counter, float64(pool.SlowConsumers))
	e.one("edgepush_write_error_disconnects_total", "Held connections dropped for a failed write.", counter, float64(pool.WriteErrors))
	e.one("edgepush_blocked_writes_total", "Writes to held connections that needed a blocking writer.", counter, float64(pool.BlockedWrites))
	e.one("edgepush_written_bytes_total", "Bytes written to held connections.", counter, float64(pool.BytesWritten))
	e.one("edgepush_socket_writes_total", "Non-blocking writes to held connections (each carries every frame queued for the connection then).", counter, float64(pool.Writes))

	c.collectOrigins(e)

	cs := s.cacheStats()
	e.one("edgepush_cache_lookups_total", "Cache lookups.", counter, float64(cs.Gets))
	e.one("edgepush_cache_hits_total", "Cache lookups answered from a fresh entry.", counter, float64(cs.Hits))
	e.one("edgepush_cache_misses_total", "Cache lookups that went to the origin, coalesced or not.", counter, float64(cs.Misses))
	f = e.family("edgepush_cache_stale_total", "Stale cache entries served, by reason.", counter, "reason")
	f.add(float64(cs.StaleRevalidating), "revalidating")
	f.add(float64(cs.StaleOnError), "origin_error")
	e.one("edgepush_cache_coalesced_total", "Cache misses that waited for another request's fetch.", counter, float64(cs.Coalesced))
	e.one("edgepush_cache_revalidations_total", "304 answers to the node's conditional requests that refreshed a stored entry.", counter, float64(cs.Revalidations))
	e.one("edgepush_cache_bypass_total", "Cache lookups of requests that are not cacheable.", counter, float64(cs.Bypass))
	e.one("edgepush_cache_stores_total", "Entries stored in the cache.", counter, float64(cs.Stores))
	e.one("edgepush_cache_rejected_total", "Entries the cache dropped or refused.", counter, float64(cs.Rejected))
	e.one("edgepush_cache_evictions_total", "Cache entries evicted to stay within -cache-max-bytes.", counter, float64(cs.Evictions))
	e.one("edgepush_cache_purges_total", "Purge calls on the cache (keys and URLs).", counter, float64(cs.Purges))
	e.one("edgepush_cache_entries", "Entries in the cache.", gauge, float64(cs.Entries))
	e.one("edgepush_cache_bytes", "Bytes in the cache.", gauge, float64(cs.Bytes))

	p := s.limiter.Stats()
	e.one("edgepush_purges_requested_total", "Purge requests, one per key or URL, given to the per-key purge limiter.", counter, float64(p.Requested))
	e.one("edgepush_purges_run_total", "Purges applied to the cache by the limiter, leading and trailing.", counter, float64(p.Run))
	e.one("edgepush_purges_deferred_total", "Purge requests that scheduled a trailing purge.", counter, float64(p.Deferred))
	e.one("edgepush_purges_folded_total", "Purge requests that joined an already scheduled purge.", counter, float64(p.Folded))

	e.one("edgepush_uptime_seconds", "Seconds since the node started.", gauge, time.Since(s.started).Seconds())
	e.family("edgepush_build_info", "Always 1; the version label is the node's version.", gauge, "version").add(1, Version)
	e.one("edgepush_goroutines", "Goroutines now (as go_goroutines).", gauge, float64(runtime.NumGoroutine()))

	c.collectTier(e)
	c.collectShield(e)
}

// collectOrigins sends the metrics of every origin of every route.
func (c statsCollector) collectOrigins(e emitter) {
	s, m := c.s, c.s.metrics
	requests := e.family("edgepush_origin_requests_total", "Requests sent to the origin, breaker probes included.", counter, "route", "origin")
	errs := e.family("edgepush_origin_errors_total", "Origin requests that failed or answered 5xx, by kind.", counter, "route", "origin", "kind")
	open := e.family("edgepush_origin_breaker_open", "1 while the origin's circuit breaker is open.", gauge, "route", "origin")
	rejected := e.family("edgepush_origin_breaker_rejected_total", "Requests to the route not sent because the breakers of all its origins were open.", counter, "route")
	for _, rt := range s.routes.all {
		rejected.add(float64(m.rejected[rt].Load()), labelValue(rt.id))
	}
	for _, om := range m.series {
		var sent uint64
		isOpen := 0.0
		for _, o := range om.members {
			sent += o.client.requests.Load()
			if o.breaker.isOpen() {
				isOpen = 1
			}
		}
		requests.add(float64(sent), om.route, om.origin)
		open.add(isOpen, om.route, om.origin)
		for i, kind := range originErrorKinds {
			errs.add(float64(om.errors[i].Load()), om.route, om.origin, kind)
		}
	}
	e.one("edgepush_origin_invalid_instructions_total", "Origin answers with invalid GRIP instructions.", counter, float64(s.badInstructs.Load()))
}

// collectTier sends the tier's members and delivery counters, when the
// node is in a tier.
func (c statsCollector) collectTier(e emitter) {
	if c.s.tier == nil {
		return
	}
	st := c.s.tier.Stats()
	states := map[string]int{"alive": 0, "suspect": 0, "dead": 0, "left": 0}
	for _, m := range st.Members {
		states[m.State]++
	}
	// Members declared dead are no longer members, but their queues are
	// kept for the retry window: they count as dead meanwhile.
	states["dead"] += len(st.Lost)
	f := e.family("edgepush_tier_members", "Tier members this node sees, by memberlist state.", gauge, "state")
	for _, state := range []string{"alive", "suspect", "dead", "left"} {
		f.add(float64(states[state]), state)
	}
	e.one("edgepush_tier_ops_received_total", "Operations received from tier members.", counter, float64(st.Received))
	e.one("edgepush_tier_ops_deduplicated_total", "Operations received from tier members again, ignored.", counter, float64(st.Duplicates))
	sentF := e.family("edgepush_tier_peer_ops_sent_total", "Operations forwarded to the member and accepted.", counter, "peer")
	failedF := e.family("edgepush_tier_peer_failed_attempts_total", "Failed attempts to forward operations to the member (retried).", counter, "peer")
	droppedF := e.family("edgepush_tier_peer_ops_dropped_total", "Operations for the member dropped undelivered (queue full, past the retry window).", counter, "peer")
	queuedF := e.family("edgepush_tier_peer_queued", "Operations waiting to be forwarded to the member.", gauge, "peer")
	var sent, failed, dropped uint64
	for _, p := range append(st.Peers, st.Lost...) {
		name := labelValue(p.Name)
		sentF.add(float64(p.Sent), name)
		failedF.add(float64(p.Failures), name)
		droppedF.add(float64(p.Dropped), name)
		queuedF.add(float64(max(p.Queued, 0)), name)
		sent, failed, dropped = sent+p.Sent, failed+p.Failures, dropped+p.Dropped
	}
	// Sums over the current peers: a peer's counters go when it leaves.
	e.one("edgepush_tier_ops_sent", "Operations forwarded and accepted, summed over the current members.", gauge, float64(sent))
	e.one("edgepush_tier_failed_attempts", "Failed forwarding attempts, summed over the current members.", gauge, float64(failed))
	e.one("edgepush_tier_ops_dropped", "Operations dropped, summed over the current members.", gauge, float64(dropped))
	reasons := e.family("edgepush_tier_ops_dropped_total", "Operations dropped undelivered to a member, by reason: its queue full, past the retry window, with the member gone.", counter, "reason")
	reasons.add(float64(st.Dropped.QueueFull), "queue_full")
	reasons.add(float64(st.Dropped.RetryWindow), "retry_window")
	reasons.add(float64(st.Dropped.MemberGone), "member_gone")
	e.one("edgepush_tier_members_failed_total", "Members declared dead: they stopped answering probes (a crash, a partition).", counter, float64(st.Failed))
	e.one("edgepush_tier_rejoins_total", "Joins that reached a lost member (declared dead) or, alone, a seed again.", counter, float64(st.Rejoins))
}

// Value types, as statsCollector names them.
const (
	counter = prometheus.CounterValue
	gauge   = prometheus.GaugeValue
)

// emitter sends constant metrics built at scrape time.
type emitter struct{ ch chan<- prometheus.Metric }

// family is one metric family with its label names, ready for samples.
type family struct {
	ch   chan<- prometheus.Metric
	desc *prometheus.Desc
	typ  prometheus.ValueType
}

// family starts the family name of type typ with labels.
func (e emitter) family(name, help string, typ prometheus.ValueType, labels ...string) family {
	return family{e.ch, prometheus.NewDesc(name, help, labels, nil), typ}
}

// one sends a family of one sample without labels.
func (e emitter) one(name, help string, typ prometheus.ValueType, v float64) {
	e.family(name, help, typ).add(v)
}

// add sends one sample of f with the values of its labels. A sample
// that cannot be built (a bad label value) reaches Gather as an error.
func (f family) add(v float64, labelValues ...string) {
	m, err := prometheus.NewConstMetric(f.desc, f.typ, v, labelValues...)
	if err != nil {
		m = prometheus.NewInvalidMetric(f.desc, err)
	}
	f.ch <- m
}

// serveMetrics is GET /metrics: the Prometheus text format. It is open
// unless -metrics-auth is set (scrapers usually send no key; the control
// listener is on loopback by default).
func (s *Server) serveMetrics(ctx *fasthttp.RequestCtx) {
	if s.cfg.MetricsAuth && !s.authorized(ctx) {
		controlError(ctx, fasthttp.StatusUnauthorized, "missing or invalid publish key")
		return
	}
	if !ctx.IsGet() && !ctx.IsHead() {
		ctx.Response.Header.Set("Allow", "GET, HEAD")
		controlError(ctx, fasthttp.StatusMethodNotAllowed, "method not allowed: "+string(ctx.Method()))
		return
	}
	ctx.SetContentType("text/plain; version=0.0.4; charset=utf-8")
	s.writeMetrics(ctx)
}
