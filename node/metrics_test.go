package node

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape GETs /metrics, checks it with Prometheus' text-format parser
// (checkExposition) and parses it into name{labels} → value, as written.
func scrape(tb testing.TB, n *testNode, header ...string) map[string]float64 {
	tb.Helper()
	body := scrapeBody(tb, n, header...)
	checkExposition(tb, body)
	out := map[string]float64{}
	for line := range strings.Lines(string(body)) {
		line = strings.TrimSuffix(line, "\n")
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			tb.Fatalf("bad metrics line %q", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			tb.Fatalf("bad metrics value in %q: %v", line, err)
		}
		if _, dup := out[line[:i]]; dup {
			tb.Fatalf("metric %s twice", line[:i])
		}
		out[line[:i]] = v
	}
	return out
}

// scrapeBody GETs /metrics (with header pairs) and returns the body.
func scrapeBody(tb testing.TB, n *testNode, header ...string) []byte {
	tb.Helper()
	resp, body := getHost(tb, n.ctl+"/metrics", "", header...)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
		tb.Fatalf("/metrics: %d %s %q", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	return []byte(body)
}

// checkExposition parses body with Prometheus' own text-format parser
// and checks that every family has a help text and a type (counter,
// gauge, histogram or summary); it returns the families.
func checkExposition(tb testing.TB, body []byte) map[string]*dto.MetricFamily {
	tb.Helper()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		tb.Fatalf("/metrics is not valid Prometheus text: %v", err)
	}
	for name, mf := range families {
		if mf.GetHelp() == "" {
			tb.Errorf("%s: no HELP text", name)
		}
		if t := mf.GetType(); t == dto.MetricType_UNTYPED || t > dto.MetricType_HISTOGRAM {
			tb.Errorf("%s: type %v, want counter, gauge, summary or histogram", name, t)
		}
	}
	return families
}

// originSeries names a series of n's default route and its origin:
// name{labels}, with kind when given, as /metrics writes it.
func (n *testNode) originSeries(name string, kind ...string) string {
	return seriesName(name, "default", n.origin.URL, kind...)
}

// seriesName names a series of an origin metric: name{[kind,]origin,route}.
func seriesName(name, route, origin string, kind ...string) string {
	labels := `origin="` + origin + `",route="` + route + `"`
	if len(kind) > 0 {
		labels = `kind="` + kind[0] + `",` + labels
	}
	if name == "edgepush_origin_request_duration_seconds_bucket" {
		labels += `,le="+Inf"`
	}
	return name + "{" + labels + "}"
}

// metricsOrigin answers /stream with a cacheable stream hold on "m",
// /poll with a long-poll on "p", /fail with 500 and anything else with a
// plain cacheable body.
func metricsOrigin() http.Handler {
	stream := gripOrigin("hello\n", "Grip-Hold", "stream", "Grip-Channel", "m", "Cache-Control", "s-maxage=60")
	poll := gripOrigin("timeout\n", "Grip-Hold", "response", "Grip-Channel", "p", "Cache-Control", "s-maxage=60")
	plain := gripOrigin("plain body\n", "Cache-Control", "s-maxage=60")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/stream":
			stream.ServeHTTP(w, r)
		case "/poll":
			poll.ServeHTTP(w, r)
		case "/fail":
			http.Error(w, "broken", http.StatusInternalServerError)
		default:
			plain.ServeHTTP(w, r)
		}
	})
}

func TestMetricsMoveUnderLoad(t *testing.T) {
	n := startNode(t, metricsOrigin())
	before := scrape(t, n)
	for _, name := range []string{
		`edgepush_connections{transport="stream"}`, `edgepush_connections{transport="longpoll"}`,
		`edgepush_connections{transport="ws"}`, `edgepush_connections_opened_total{transport="ws"}`,
		"edgepush_subscriptions", "edgepush_channels", "edgepush_messages_published_total",
		"edgepush_messages_delivered_total", "edgepush_messages_dropped_total",
		"edgepush_slow_consumer_disconnects_total", "edgepush_cache_hits_total", "edgepush_cache_misses_total",
		`edgepush_cache_stale_total{reason="origin_error"}`, "edgepush_cache_coalesced_total",
		"edgepush_cache_entries", "edgepush_cache_bytes", "edgepush_purges_run_total", "edgepush_purges_folded_total",
		n.originSeries("edgepush_origin_errors_total", "refused"), n.originSeries("edgepush_origin_errors_total", "timeout"),
		n.originSeries("edgepush_origin_errors_total", "5xx"), n.originSeries("edgepush_origin_request_duration_seconds_count"),
		n.originSeries("edgepush_origin_request_duration_seconds_bucket"), "edgepush_uptime_seconds",
		"go_goroutines", "process_open_fds", "process_max_fds", "process_resident_memory_bytes",
	} {
		if _, ok := before[name]; !ok {
			t.Errorf("metric %s missing", name)
		}
	}

	// Three held streams (the first fills the cache, two are hits), a
	// long-poll, a failing request, then three publishes.
	var streams []*bufio.Reader
	for range 3 {
		c := dialRaw(t, n.Addr())
		body := bufio.NewReader(c.get(t, "/stream").Body)
		if got := readLine(t, body); got != "hello\n" {
			t.Fatalf("initial data %q", got)
		}
		streams = append(streams, body)
	}
	poll := dialRaw(t, n.Addr())
	io.WriteString(poll, "GET /poll HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, err := http.Get(n.url + "/fail"); err == nil {
		resp.Body.Close()
	}
	n.waitSubscribers(t, "m", 3)
	n.waitSubscribers(t, "p", 1)
	for i := range 3 {
		n.publish(t, streamItem("m", "msg "+strconv.Itoa(i)+"\n"))
	}
	for _, body := range streams {
		for range 3 {
			readLine(t, body)
		}
	}
	n.purge(t, `{"keys":["k"]}`)

	after := scrape(t, n)
	delta := func(name string) float64 { return after[name] - before[name] }
	for name, want := range map[string]float64{
		`edgepush_connections{transport="stream"}`:                3,
		`edgepush_connections_opened_total{transport="stream"}`:   3,
		`edgepush_connections{transport="longpoll"}`:              1,
		`edgepush_connections_opened_total{transport="longpoll"}`: 1,
		"edgepush_subscriptions":                                  4,
		"edgepush_messages_published_total":                       3,
		"edgepush_messages_delivered_total":                       9,
		"edgepush_cache_hits_total":                               2,
		n.originSeries("edgepush_origin_errors_total", "5xx"):     1,
		"edgepush_purges_run_total":                               1,
	} {
		if got := delta(name); got != want {
			t.Errorf("%s moved by %v, want %v", name, got, want)
		}
	}
	for _, name := range []string{"edgepush_cache_misses_total", "edgepush_cache_entries", "edgepush_cache_bytes",
		n.originSeries("edgepush_origin_request_duration_seconds_count"), n.originSeries("edgepush_origin_requests_total"),
		"edgepush_written_bytes_total"} {
		if delta(name) <= 0 {
			t.Errorf("%s did not grow: %v → %v", name, before[name], after[name])
		}
	}
	if after["edgepush_channels"] < 2 {
		t.Errorf("edgepush_channels = %v, want at least 2", after["edgepush_channels"])
	}
	if c, sum := after[n.originSeries("edgepush_origin_request_duration_seconds_count")], after[n.originSeries("edgepush_origin_request_duration_seconds_sum")]; sum <= 0 || sum > c*5 {
		t.Errorf("origin latency: %v requests took %vs in all", c, sum)
	}

	// Connections that end are no longer held.
	poll.Close()
	waitFor(t, "the long-poll to end", func() bool {
		return scrape(t, n)[`edgepush_connections{transport="longpoll"}`] == 0
	})
}

func TestMetricsOriginErrorKinds(t *testing.T) {
	down := startNode(t, metricsOrigin(), func(c *Config) { c.CacheOff = true })
	down.stopOrigin(t)
	slow := startNode(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Never answers before the node has given up (and hung up).
		select {
		case <-r.Context().Done():
		case <-time.After(waitTimeout):
		}
	}), func(c *Config) { c.OriginTimeout = 100 * time.Millisecond; c.CacheOff = true })
	for _, tc := range []struct {
		n    *testNode
		kind string
	}{{down, "refused"}, {slow, "timeout"}} {
		resp, err := http.Get(tc.n.url + "/x")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		m := scrape(t, tc.n)
		if got := m[tc.n.originSeries("edgepush_origin_errors_total", tc.kind)]; got != 1 {
			t.Errorf("%s: origin errors of that kind = %v, want 1 (status %d)", tc.kind, got, resp.StatusCode)
		}
		if got := m[tc.n.originSeries("edgepush_origin_errors_total", "other")]; got != 0 {
			t.Errorf("%s: %v errors counted as other", tc.kind, got)
		}
	}
}

func TestMetricsAuth(t *testing.T) {
	open := startNode(t, metricsOrigin(), func(c *Config) { c.PublishKey = "secret" })
	scrape(t, open) // open by default, even with a publish key
	closed := startNode(t, metricsOrigin(), func(c *Config) { c.PublishKey = "secret"; c.MetricsAuth = true })
	resp, err := http.Get(closed.ctl + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("/metrics without the key: %d, want 401", resp.StatusCode)
	}
	if m := scrape(t, closed, "Authorization", "Bearer secret"); m["edgepush_requests_total"] != 0 {
		t.Fatalf("requests_total = %v on an idle node", m["edgepush_requests_total"])
	}
}

// purge posts a /purge/ body to the node and checks for 200.
func (n *testNode) purge(tb testing.TB, body string) {
	tb.Helper()
	resp, err := http.Post(n.ctl+"/purge/", "application/json", strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		tb.Fatalf("purge: %d %q", resp.StatusCode, b)
	}
}

func TestMetricsTier(t *testing.T) {
	nodes := startTier(t, 2, streamOrigin())
	streams := openStreams(t, nodes)
	nodes[0].publish(t, streamItem("tier", "across\n"))
	for _, r := range streams {
		if got := readLine(t, r); got != "across\n" {
			t.Fatalf("got %q", got)
		}
	}
	// The sender counts the operation once the peer's answer is back.
	waitFor(t, "the sender to count the operation", func() bool {
		return scrape(t, nodes[0])[`edgepush_tier_peer_ops_sent_total{peer="node-1"}`] == 1
	})
	from, to := scrape(t, nodes[0]), scrape(t, nodes[1])
	for name, want := range map[string]float64{
		`edgepush_tier_members{state="alive"}`:                2,
		`edgepush_tier_peer_ops_sent_total{peer="node-1"}`:    1,
		`edgepush_tier_peer_ops_dropped_total{peer="node-1"}`: 0,
		"edgepush_tier_ops_sent":                              1,
	} {
		if got := from[name]; got != want {
			t.Errorf("sender: %s = %v, want %v", name, got, want)
		}
	}
	if got := to["edgepush_tier_ops_received_total"]; got != 1 {
		t.Errorf("receiver: edgepush_tier_ops_received_total = %v, want 1", got)
	}
	if got := to[`edgepush_tier_peer_ops_sent_total{peer="node-0"}`]; got != 0 {
		t.Errorf("receiver sent %v operations back", got)
	}
}

func TestMetricsSlowConsumer(t *testing.T) {
	n := startNode(t, gripOrigin("x\n", "Grip-Hold", "stream", "Grip-Channel", "firehose"),
		func(c *Config) { c.MaxQueueBytes = 64 << 10 })
	slow := dialRaw(t, n.Addr())
	slow.Conn.(*net.TCPConn).SetReadBuffer(4 << 10)
	slow.get(t, "/") // and never read again
	n.waitSubscribers(t, "firehose", 1)
	chunk := strings.Repeat("z", 8<<10) + "\n"
	items := make([]map[string]any, 10)
	for i := range items {
		items[i] = streamItem("firehose", chunk)
	}
	// Publish until the queue overflows: socket buffers take a few MB.
	for i := 0; scrape(t, n)["edgepush_slow_consumer_disconnects_total"] == 0; i++ {
		if i == 200 { // 16 MB
			t.Fatal("the slow consumer was never disconnected")
		}
		n.publish(t, items...)
	}
	m := scrape(t, n)
	if m["edgepush_messages_dropped_total"] < 1 || m["edgepush_slow_consumer_disconnects_total"] != 1 {
		t.Fatalf("dropped %v messages, %v slow consumers", m["edgepush_messages_dropped_total"], m["edgepush_slow_consumer_disconnects_total"])
	}
	waitFor(t, "the slow consumer to be gone", func() bool {
		return scrape(t, n)[`edgepush_connections{transport="stream"}`] == 0
	})
}

// TestMetricsExposition validates a tier member's /metrics, which has
// every family the node writes, with Prometheus' own text parser and
// linter (what promtool check metrics runs), and checks it against the
// README's metrics tables both ways: every family is documented with its
// type and label names, and every documented family is there.
func TestMetricsExposition(t *testing.T) {
	nodes := startTier(t, 2, metricsOrigin())
	n := nodes[0]
	// Some traffic first, so that no family is there only at zero.
	resp, err := http.Get(n.url + "/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	n.publish(t, streamItem("m", "x\n"))

	body := scrapeBody(t, n)
	families := checkExposition(t, body)
	problems, err := promlint.New(bytes.NewReader(body)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}

	docs := readmeMetrics(t)
	if len(docs) < 50 {
		t.Fatalf("found only %d metrics in README's tables", len(docs))
	}
	for name, mf := range families {
		doc, ok := docs[name]
		if !ok {
			t.Errorf("%s (%v) is not in README's metrics tables", name, mf.GetType())
			continue
		}
		if got := strings.ToLower(mf.GetType().String()); got != doc.typ {
			t.Errorf("%s: type %s, README says %s", name, got, doc.typ)
		}
		if got := familyLabels(mf); !slices.Equal(got, doc.labels) {
			t.Errorf("%s: labels %v, README says %v", name, got, doc.labels)
		}
	}
	for name := range docs {
		if _, ok := families[name]; !ok && (runtime.GOOS == "linux" || !strings.HasPrefix(name, "process_")) {
			t.Errorf("README documents %s, which /metrics does not have", name)
		}
	}
	for name, want := range map[string]dto.MetricType{
		"edgepush_origin_request_duration_seconds": dto.MetricType_HISTOGRAM,
		"edgepush_connections":                     dto.MetricType_GAUGE,
		"edgepush_items_published_total":           dto.MetricType_COUNTER,
		"process_open_fds":                         dto.MetricType_GAUGE,
		"go_gc_duration_seconds":                   dto.MetricType_SUMMARY,
	} {
		if got := families[name].GetType(); got != want {
			t.Errorf("%s: type %v, want %v", name, got, want)
		}
	}
}

// documented is a metric family as README's tables describe it.
type documented struct {
	typ    string   // counter, gauge, histogram or summary
	labels []string // sorted
}

// readmeMetrics reads the metrics tables of README's "Metrics, access
// log and status page" section: the first column names families
// (`name{label,…}`), the second gives their type.
func readmeMetrics(t *testing.T) map[string]documented {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n## Metrics, access log and status page\n")
	if !ok {
		t.Fatal("README: no metrics section")
	}
	if i := strings.Index(section, "\n#"); i >= 0 {
		section = section[:i]
	}
	nameRE := regexp.MustCompile("`([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\\{([a-z_,]*)\\})?`")
	out := map[string]documented{}
	for line := range strings.Lines(section) {
		cells := strings.Split(line, "|")
		if len(cells) < 4 || !strings.HasPrefix(strings.TrimSpace(cells[1]), "`") {
			continue // not a table row naming metrics
		}
		typ := strings.TrimSpace(cells[2])
		for _, m := range nameRE.FindAllStringSubmatch(cells[1], -1) {
			var labels []string
			if m[2] != "" {
				labels = strings.Split(m[2], ",")
				slices.Sort(labels)
			}
			if _, dup := out[m[1]]; dup {
				t.Errorf("README: %s documented twice", m[1])
			}
			out[m[1]] = documented{typ, labels}
		}
	}
	return out
}

// familyLabels returns the label names of a family's series, sorted,
// without the le and quantile of histograms and summaries.
func familyLabels(mf *dto.MetricFamily) []string {
	var names []string
	for _, m := range mf.GetMetric() {
		for _, l := range m.GetLabel() {
			if !slices.Contains(names, l.GetName()) {
				names = append(names, l.GetName())
			}
		}
	}
	slices.Sort(names)
	return names
}

// TestMetricsOriginLabels checks that origin metrics are counted per
// route and origin: requests, errors, latency, breaker state and
// requests refused by open breakers land in their own series. (Origin
// URLs with credentials are refused by New, so none can show.)
func TestMetricsOriginLabels(t *testing.T) {
	gone := httptest.NewServer(metricsOrigin())
	dead := gone.URL
	gone.Close() // connections are refused
	api := httptest.NewServer(metricsOrigin())
	t.Cleanup(api.Close)
	apiURL := api.URL
	n := startNode(t, metricsOrigin(), func(c *Config) { c.CacheOff, c.OriginFailures = true, 2 },
		withRoutes(t, "id=api path=/api/ strip-prefix=/api origin="+apiURL, "id=down path=/down/ origin="+dead))
	for _, path := range []string{"/api/fail", "/api/x", "/x", "/down/x", "/down/x", "/down/x"} {
		resp, err := http.Get(n.url + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	m := scrape(t, n)
	for name, want := range map[string]float64{
		seriesName("edgepush_origin_requests_total", "api", api.URL):                           2,
		seriesName("edgepush_origin_request_duration_seconds_count", "api", api.URL):           2,
		seriesName("edgepush_origin_errors_total", "api", api.URL, "5xx"):                      1,
		seriesName("edgepush_origin_breaker_open", "api", api.URL):                             0,
		n.originSeries("edgepush_origin_requests_total"):                                       1,
		n.originSeries("edgepush_origin_request_duration_seconds_count"):                       1,
		n.originSeries("edgepush_origin_errors_total", "5xx"):                                  0,
		seriesName("edgepush_origin_errors_total", "down", dead, "refused"):                    2,
		seriesName("edgepush_origin_breaker_open", "down", dead):                               1,
		`edgepush_origin_breaker_rejected_total{route="down"}`:                                 1,
		`edgepush_origin_breaker_rejected_total{route="api"}`:                                  0,
		`edgepush_origin_breaker_rejected_total{route="default"}`:                              0,
		seriesName("edgepush_origin_request_duration_seconds_bucket", "down", dead):            2,
		seriesName("edgepush_origin_request_duration_seconds_bucket", "default", n.origin.URL): 1,
	} {
		got, ok := m[name]
		if !ok {
			t.Errorf("no series %s", name)
		} else if got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}
