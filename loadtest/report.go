package loadtest

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// ErrorCount is one distinct error text and how often it occurred.
type ErrorCount struct {
	Text  string `json:"text"`
	Count int    `json:"count"`
}

// Report is the outcome of a run. Times are in milliseconds (…Ms) or
// seconds (…Seconds), memory in MiB (…MB) or KiB (KBPerConn). The server
// figures (RSS…, KBPerConn, ServerCPUSeconds) are sums over Config.PIDs
// and zero without PIDs.
type Report struct {
	// Transport, URL and Channel echo the configuration.
	Transport string `json:"transport"`
	URL       string `json:"url"`
	Channel   string `json:"channel"`
	// Concurrency, LocalAddrs, Rate and SettleSeconds echo the
	// configuration (after defaults).
	Concurrency   int     `json:"concurrency"`
	LocalAddrs    int     `json:"local_addrs"`
	Rate          float64 `json:"rate"`
	SettleSeconds float64 `json:"settle_s"`
	// PIDs are the sampled server processes.
	PIDs []int `json:"pids"`
	// SlowShare echoes Config.SlowShare.
	SlowShare float64 `json:"slow_share"`
	// OriginDown is set when the origin was taken down after the warm-up
	// (Config.OriginDown): the measured connections were opened without
	// it.
	OriginDown bool `json:"origin_down"`
	// ExternalPublish is set when another process published
	// (Config.ExternalPublish): MsgsPublished is then the number of
	// messages expected, and the publish figures are empty.
	ExternalPublish bool `json:"external_publish,omitempty"`

	// WarmupConns is Config.Warmup (after defaults) and WarmupOK how many
	// of them were set up; WarmupErrors are the distinct failures (and a
	// failure to stop the origin).
	WarmupConns  int          `json:"warmup_conns"`
	WarmupOK     int          `json:"warmup_ok"`
	WarmupErrors []ErrorCount `json:"warmup_errors"`

	// ConnsRequested is Config.Conns; ConnsOK were set up (slow readers
	// included), ConnsFailed were not; ConnsDropped were set up but ended
	// before the run did (slow readers excluded).
	ConnsRequested int `json:"conns_requested"`
	ConnsOK        int `json:"conns_ok"`
	ConnsFailed    int `json:"conns_failed"`
	ConnsDropped   int `json:"conns_dropped"`
	// SlowConns counts the slow readers among ConnsOK (Config.SlowShare);
	// SlowDropped those of them the server had disconnected by the end of
	// the run (as slow consumers, or for another reason).
	SlowConns   int `json:"slow_conns"`
	SlowDropped int `json:"slow_dropped"`
	// SetupErrors and DropErrors are the first distinct error texts of
	// failed and dropped connections, with counts.
	SetupErrors []ErrorCount `json:"setup_errors"`
	DropErrors  []ErrorCount `json:"drop_errors"`
	// SetupP50Ms, SetupP99Ms and SetupMaxMs are connection setup times:
	// dial to the first body byte (streams) or to the request sent
	// (long-poll).
	SetupP50Ms float64 `json:"setup_p50_ms"`
	SetupP99Ms float64 `json:"setup_p99_ms"`
	SetupMaxMs float64 `json:"setup_max_ms"`
	// SetupSeconds is the length of the setup phase and SetupsPerSec the
	// connections set up per second during it.
	SetupSeconds float64 `json:"setup_s"`
	SetupsPerSec float64 `json:"setups_per_s"`

	// MsgsRequested is Config.Msgs; MsgsPublished were acknowledged by the
	// publish API. PublishErrors are the distinct failures.
	MsgsRequested int          `json:"msgs_requested"`
	MsgsPublished int          `json:"msgs_published"`
	PublishErrors []ErrorCount `json:"publish_errors"`
	// PublishSeconds is the length of the publish phase.
	PublishSeconds float64 `json:"publish_s"`
	// PublishRTTP50Ms and PublishRTTMaxMs are publish request round trips.
	PublishRTTP50Ms float64 `json:"publish_rtt_p50_ms"`
	PublishRTTMaxMs float64 `json:"publish_rtt_max_ms"`

	// DeliveriesExpected is (ConnsOK − SlowConns) × MsgsPublished;
	// DeliveriesReceived
	// counts the distinct (connection, message) pairs that arrived before
	// the settle time ran out; Lost is the difference (LostPct in percent).
	DeliveriesExpected int64   `json:"deliveries_expected"`
	DeliveriesReceived int64   `json:"deliveries_received"`
	Lost               int64   `json:"lost"`
	LostPct            float64 `json:"lost_pct"`
	// Duplicated counts messages a connection received more than once,
	// OutOfOrder those it received after a later one, Unexpected message
	// lines with a sequence number this run did not publish.
	Duplicated int64 `json:"duplicated"`
	OutOfOrder int64 `json:"out_of_order"`
	Unexpected int64 `json:"unexpected"`
	// Latency… summarise delivery latency: receive time minus the time the
	// publish request was started.
	LatencyP50Ms  float64 `json:"latency_p50_ms"`
	LatencyP90Ms  float64 `json:"latency_p90_ms"`
	LatencyP99Ms  float64 `json:"latency_p99_ms"`
	LatencyMaxMs  float64 `json:"latency_max_ms"`
	LatencyMeanMs float64 `json:"latency_mean_ms"`
	// LatencyByMessage is each message's minimum, mean and maximum
	// delivery latency, in publish order (runs of at most 1,000 messages): whether
	// the latency stays level over a run or grows with a backlog.
	LatencyByMessage []MessageLatency `json:"latency_by_message,omitempty"`
	// LatencyCurve is the delivery latency distribution as a percentile
	// curve, for WriteSVG; it is not part of the JSON.
	LatencyCurve []CurvePoint `json:"-"`
	// Repolls counts long-poll answers after which the client polled again.
	Repolls int64 `json:"repolls"`

	// RSSBaseMB is the servers' RSS before connecting, RSSLoadedMB after
	// setup, RSSPeakMB the largest sample, RSSHWMMB the sum of the
	// processes' own peak (VmHWM) at the end.
	RSSBaseMB   float64 `json:"rss_base_mb"`
	RSSLoadedMB float64 `json:"rss_loaded_mb"`
	RSSPeakMB   float64 `json:"rss_peak_mb"`
	RSSHWMMB    float64 `json:"rss_hwm_mb"`
	// KBPerConn is (loaded − base RSS) / ConnsOK, in KiB.
	KBPerConn float64 `json:"kb_per_conn"`
	// ServerCPUSeconds is the servers' CPU time (user+system) from the
	// first publish to the end of the settle wait.
	ServerCPUSeconds float64 `json:"server_cpu_s"`
	// ClientCPUSeconds is this process's CPU time over the same span.
	ClientCPUSeconds float64 `json:"client_cpu_s"`
	// SampleErrors are errors reading /proc (e.g. a process exited).
	SampleErrors []string `json:"sample_errors,omitempty"`

	// ElapsedSeconds is the length of the whole run.
	ElapsedSeconds float64 `json:"elapsed_s"`
	// Aborted, when set, says why the run stopped early (timeout or
	// cancellation); the figures cover what was measured until then.
	Aborted string `json:"aborted,omitempty"`
}

// WriteTable writes the report as a table for people.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(name, format string, args ...any) {
		fmt.Fprintf(tw, "%s\t"+format+"\n", append([]any{name}, args...)...)
	}
	row("run", "%s %s (channel %q)", r.Transport, r.URL, r.Channel)
	row("", "concurrency %d, local addrs %d, %d msgs at %g/s, settle %gs", r.Concurrency, r.LocalAddrs,
		r.MsgsRequested, r.Rate, r.SettleSeconds)
	if r.WarmupConns > 0 || r.OriginDown {
		down := ""
		if r.OriginDown {
			down = "; then the origin was taken down"
		}
		row("warm-up", "%d/%d connections ok%s", r.WarmupOK, r.WarmupConns, down)
		errorRows(row, "warm-up errors", r.WarmupErrors)
	}
	row("connections", "%d requested, %d ok, %d failed, %d dropped",
		r.ConnsRequested, r.ConnsOK, r.ConnsFailed, r.ConnsDropped)
	if r.SlowConns > 0 || r.SlowShare > 0 {
		row("", "%d of them slow readers (share %g, not measured), %d of those disconnected by the server",
			r.SlowConns, r.SlowShare, r.SlowDropped)
	}
	row("setup", "p50 %.1f ms, p99 %.1f ms, max %.1f ms; %.0f conns/s (%.2f s)",
		r.SetupP50Ms, r.SetupP99Ms, r.SetupMaxMs, r.SetupsPerSec, r.SetupSeconds)
	errorRows(row, "setup errors", r.SetupErrors)
	errorRows(row, "drop errors", r.DropErrors)
	if r.ExternalPublish {
		row("publish", "by another process: %d msgs expected, listened %.2f s", r.MsgsRequested, r.PublishSeconds)
	} else {
		row("publish", "%d/%d msgs in %.2f s, rtt p50 %.2f ms, max %.2f ms",
			r.MsgsPublished, r.MsgsRequested, r.PublishSeconds, r.PublishRTTP50Ms, r.PublishRTTMaxMs)
	}
	errorRows(row, "publish errors", r.PublishErrors)
	row("deliveries", "%d/%d received, %d lost (%.3g%%), %d duplicated, %d out of order",
		r.DeliveriesReceived, r.DeliveriesExpected, r.Lost, r.LostPct, r.Duplicated, r.OutOfOrder)
	if r.Unexpected > 0 {
		row("", "%d unexpected message lines", r.Unexpected)
	}
	if r.Repolls > 0 {
		row("", "%d long-poll re-polls", r.Repolls)
	}
	row("latency", "p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms (mean %.1f ms)",
		r.LatencyP50Ms, r.LatencyP90Ms, r.LatencyP99Ms, r.LatencyMaxMs, r.LatencyMeanMs)
	if len(r.PIDs) > 0 {
		pids := make([]string, len(r.PIDs))
		for i, p := range r.PIDs {
			pids[i] = fmt.Sprint(p)
		}
		row("server", "pid %s", strings.Join(pids, ","))
		row("", "RSS base %.1f MB, loaded %.1f MB, peak %.1f MB (HWM %.1f MB); %.2f KB/conn",
			r.RSSBaseMB, r.RSSLoadedMB, r.RSSPeakMB, r.RSSHWMMB, r.KBPerConn)
		row("", "CPU %.2f s (publish to settle; client %.2f s)", r.ServerCPUSeconds, r.ClientCPUSeconds)
		for _, e := range r.SampleErrors {
			row("", "sampling: %s", e)
		}
	} else {
		row("server", "not sampled (no PIDs); client CPU %.2f s", r.ClientCPUSeconds)
	}
	row("elapsed", "%.2f s", r.ElapsedSeconds)
	if r.Aborted != "" {
		row("ABORTED", "%s", r.Aborted)
	}
	return tw.Flush()
}

func errorRows(row func(string, string, ...any), name string, errs []ErrorCount) {
	for _, e := range errs {
		row(name, "%d× %s", e.Count, e.Text)
		name = ""
	}
}
