package node

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// scrape GETs /metrics and parses the Prometheus text into name{labels}
// → value.
func scrape(tb testing.TB, n *testNode, header ...string) map[string]float64 {
	tb.Helper()
	req, _ := http.NewRequest("GET", n.ctl+"/metrics", nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
		b, _ := io.ReadAll(resp.Body)
		tb.Fatalf("/metrics: %d %s %q", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
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
		`edgepush_origin_errors_total{kind="refused"}`, `edgepush_origin_errors_total{kind="timeout"}`,
		`edgepush_origin_errors_total{kind="5xx"}`, "edgepush_origin_request_duration_seconds_count",
		`edgepush_origin_request_duration_seconds_bucket{le="+Inf"}`, "edgepush_uptime_seconds",
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
		`edgepush_origin_errors_total{kind="5xx"}`:                1,
		"edgepush_purges_run_total":                               1,
	} {
		if got := delta(name); got != want {
			t.Errorf("%s moved by %v, want %v", name, got, want)
		}
	}
	for _, name := range []string{"edgepush_cache_misses_total", "edgepush_cache_entries", "edgepush_cache_bytes",
		"edgepush_origin_request_duration_seconds_count", "edgepush_origin_requests_total", "edgepush_written_bytes_total"} {
		if delta(name) <= 0 {
			t.Errorf("%s did not grow: %v → %v", name, before[name], after[name])
		}
	}
	if after["edgepush_channels"] < 2 {
		t.Errorf("edgepush_channels = %v, want at least 2", after["edgepush_channels"])
	}
	if c, sum := after["edgepush_origin_request_duration_seconds_count"], after["edgepush_origin_request_duration_seconds_sum"]; sum <= 0 || sum > c*5 {
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
		if got := m[`edgepush_origin_errors_total{kind="`+tc.kind+`"}`]; got != 1 {
			t.Errorf("%s: origin errors of that kind = %v, want 1 (status %d)", tc.kind, got, resp.StatusCode)
		}
		if got := m[`edgepush_origin_errors_total{kind="other"}`]; got != 0 {
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
