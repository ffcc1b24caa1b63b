package node

import (
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"
)

// Transports of held connections, as metrics and the access log name them.
const (
	transportPlain    = "plain"    // a request answered at once (access log only)
	transportStream   = "stream"   // Grip-Hold: stream (HTTP streaming, SSE)
	transportLongPoll = "longpoll" // Grip-Hold: response
	transportWS       = "ws"       // WebSocket-over-HTTP
)

// heldTransports lists the held transports in the order of
// nodeMetrics.held and nodeMetrics.opened.
var heldTransports = [...]string{transportStream, transportLongPoll, transportWS}

// transportIndex maps a heldConn.kind to its index in heldTransports.
func transportIndex(kind string) int {
	switch kind {
	case "stream":
		return 0
	case "response":
		return 1
	}
	return 2 // "websocket"
}

// originLatencyBuckets are the upper bounds, in seconds, of the origin
// request latency histogram.
var originLatencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// Kinds of origin errors, the "kind" label of edgepush_origin_errors_total.
var originErrorKinds = [...]string{"refused", "timeout", "5xx", "too_large", "no_free_conns", "other"}

// nodeMetrics is the node's Prometheus metrics, in a metrics.Set of its own
// (several nodes live in one test process). Most values are read at scrape
// time from the counters the packages keep anyway (fanout, cache, purge,
// cluster); only what nothing else counts is counted here: held
// connections per transport, origin latency and origin errors by kind.
type nodeMetrics struct {
	set *metrics.Set

	held   [len(heldTransports)]atomic.Int64
	opened [len(heldTransports)]*metrics.Counter

	originLatency  *metrics.PrometheusHistogram
	originErrors   [len(originErrorKinds)]*metrics.Counter
	originRejected *metrics.Counter // not sent: the circuit breaker is open
	cacheGaps      *metrics.Counter // held from a copy too old to bring up to date (origin down)
}

// newNodeMetrics registers the node's metrics; values computed from s are
// read when /metrics is scraped.
func newNodeMetrics(s *Server) *nodeMetrics {
	m := &nodeMetrics{set: metrics.NewSet()}
	for i, name := range heldTransports {
		label := `{transport="` + name + `"}`
		m.opened[i] = m.set.NewCounter("edgepush_connections_opened_total" + label)
		m.set.NewGauge("edgepush_connections"+label, func() float64 { return float64(m.held[i].Load()) })
	}
	m.originLatency = m.set.NewPrometheusHistogramExt("edgepush_origin_request_duration_seconds", originLatencyBuckets)
	for i, kind := range originErrorKinds {
		m.originErrors[i] = m.set.NewCounter(`edgepush_origin_errors_total{kind="` + kind + `"}`)
	}
	m.originRejected = m.set.NewCounter("edgepush_origin_breaker_rejected_total")
	m.cacheGaps = m.set.NewCounter("edgepush_cache_gaps_total")
	m.set.RegisterMetricsWriter(s.writeStatsMetrics)
	return m
}

// connOpened counts a held connection of kind (heldConn.kind) starting.
func (m *nodeMetrics) connOpened(kind string) {
	i := transportIndex(kind)
	m.held[i].Add(1)
	m.opened[i].Inc()
}

// connClosed counts a held connection of kind ending.
func (m *nodeMetrics) connClosed(kind string) { m.held[transportIndex(kind)].Add(-1) }

// transports returns the held and opened connections per transport.
func (m *nodeMetrics) transports() map[string]TransportStats {
	out := make(map[string]TransportStats, len(heldTransports))
	for i, name := range heldTransports {
		out[name] = TransportStats{Held: m.held[i].Load(), Opened: m.opened[i].Get()}
	}
	return out
}

// originDone records one origin request that took since start: its
// latency and, if it failed or answered 5xx, the kind of error.
func (m *nodeMetrics) originDone(start time.Time, err error, status int) {
	m.originLatency.UpdateDuration(start)
	if k := originErrorKind(err, status); k >= 0 {
		m.originErrors[k].Inc()
	}
}

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

// writeMetrics writes the node's metrics in the Prometheus text format.
func (m *nodeMetrics) writeMetrics(w io.Writer) { m.set.WritePrometheus(w) }

// writeStatsMetrics writes the metrics read from the packages' counters
// at scrape time.
func (s *Server) writeStatsMetrics(w io.Writer) {
	counter, gauge := metrics.WriteCounterUint64, metrics.WriteGaugeUint64
	metrics.WriteGaugeFloat64(w, "edgepush_uptime_seconds", time.Since(s.started).Seconds())
	gauge(w, `edgepush_build_info{version="`+Version+`"}`, 1)
	gauge(w, "edgepush_goroutines", uint64(runtime.NumGoroutine()))
	counter(w, "edgepush_requests_total", s.requests.Load())
	counter(w, "edgepush_items_published_total", s.publishes.Load())

	hub, pool := s.hub.Stats(), s.pool.Stats()
	gauge(w, "edgepush_channels", uint64(hub.Channels))
	gauge(w, "edgepush_subscriptions", uint64(hub.Subscriptions))
	counter(w, "edgepush_messages_published_total", hub.Published)
	counter(w, "edgepush_messages_delivered_total", hub.Delivered)
	counter(w, "edgepush_messages_replayed_total", hub.Replayed)
	counter(w, "edgepush_publish_duplicates_total", hub.Duplicates)
	counter(w, "edgepush_publish_parked_total", hub.Parked)
	counter(w, "edgepush_publish_released_late_total", hub.ReleasedLate)
	counter(w, "edgepush_publish_sequence_dropped_total", hub.SequenceDropped)
	gauge(w, "edgepush_publish_pending", uint64(hub.Pending))
	counter(w, "edgepush_messages_dropped_total", pool.DroppedFrames)
	counter(w, "edgepush_slow_consumer_disconnects_total", pool.SlowConsumers)
	counter(w, "edgepush_write_error_disconnects_total", pool.WriteErrors)
	counter(w, "edgepush_blocked_writes_total", pool.BlockedWrites)
	counter(w, "edgepush_written_bytes_total", pool.BytesWritten)

	originRequests, _ := s.routes.originTotals()
	counter(w, "edgepush_origin_requests_total", originRequests)
	counter(w, "edgepush_origin_invalid_instructions_total", s.badInstructs.Load())
	open := uint64(0)
	if s.breaker.isOpen() {
		open = 1
	}
	gauge(w, "edgepush_origin_breaker_open", open)

	c := s.cacheStats()
	counter(w, "edgepush_cache_lookups_total", c.Gets)
	counter(w, "edgepush_cache_hits_total", c.Hits)
	counter(w, "edgepush_cache_misses_total", c.Misses)
	counter(w, `edgepush_cache_stale_total{reason="revalidating"}`, c.StaleRevalidating)
	counter(w, `edgepush_cache_stale_total{reason="origin_error"}`, c.StaleOnError)
	counter(w, "edgepush_cache_coalesced_total", c.Coalesced)
	counter(w, "edgepush_cache_revalidations_total", c.Revalidations)
	counter(w, "edgepush_cache_bypass_total", c.Bypass)
	counter(w, "edgepush_cache_stores_total", c.Stores)
	counter(w, "edgepush_cache_rejected_total", c.Rejected)
	counter(w, "edgepush_cache_evictions_total", c.Evictions)
	counter(w, "edgepush_cache_purges_total", c.Purges)
	gauge(w, "edgepush_cache_entries", c.Entries)
	gauge(w, "edgepush_cache_bytes", c.Bytes)

	p := s.limiter.Stats()
	counter(w, "edgepush_purges_requested_total", p.Requested)
	counter(w, "edgepush_purges_run_total", p.Run)
	counter(w, "edgepush_purges_deferred_total", p.Deferred)
	counter(w, "edgepush_purges_folded_total", p.Folded)

	s.writeTierMetrics(w)
}

// writeTierMetrics writes the tier's members and delivery counters, when
// the node is in a tier.
func (s *Server) writeTierMetrics(w io.Writer) {
	if s.tier == nil {
		return
	}
	counter, gauge := metrics.WriteCounterUint64, metrics.WriteGaugeUint64
	st := s.tier.Stats()
	states := map[string]uint64{"alive": 0, "suspect": 0, "dead": 0, "left": 0}
	for _, m := range st.Members {
		states[m.State]++
	}
	for _, state := range []string{"alive", "suspect", "dead", "left"} {
		gauge(w, `edgepush_tier_members{state="`+state+`"}`, states[state])
	}
	counter(w, "edgepush_tier_ops_received_total", st.Received)
	counter(w, "edgepush_tier_ops_deduplicated_total", st.Duplicates)
	var sent, failed, dropped uint64
	for _, p := range st.Peers {
		label := `{peer="` + labelValue(p.Name) + `"}`
		counter(w, "edgepush_tier_peer_ops_sent_total"+label, p.Sent)
		counter(w, "edgepush_tier_peer_failed_attempts_total"+label, p.Failures)
		counter(w, "edgepush_tier_peer_ops_dropped_total"+label, p.Dropped)
		gauge(w, "edgepush_tier_peer_queued"+label, uint64(max(p.Queued, 0)))
		sent, failed, dropped = sent+p.Sent, failed+p.Failures, dropped+p.Dropped
	}
	// Sums over the current peers: a peer's counters go when it leaves.
	gauge(w, "edgepush_tier_ops_sent", sent)
	gauge(w, "edgepush_tier_failed_attempts", failed)
	gauge(w, "edgepush_tier_ops_dropped", dropped)
}

// labelValue escapes a Prometheus label value (backslash, quote, newline).
func labelValue(v string) string {
	if !strings.ContainsAny(v, "\\\"\n") {
		return v
	}
	var b strings.Builder
	for _, r := range v {
		switch r {
		case '\\':
			b.WriteString(`\\`)
		case '"':
			b.WriteString(`\"`)
		case '\n':
			b.WriteString(`\n`)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
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
	s.metrics.writeMetrics(ctx)
}
