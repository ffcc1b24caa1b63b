package node

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/edgepush/edgepush/internal/browsertest"
)

// getWith GETs url with header name/value pairs.
func getWith(tb testing.TB, url string, header ...string) *http.Response {
	tb.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	return resp
}

// nextStatusEvent reads the next Server-Sent Event of /status/events.
func nextStatusEvent(tb testing.TB, r *bufio.Reader) Status {
	tb.Helper()
	for {
		line := readLine(tb, r)
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			continue
		}
		var st Status
		if err := json.Unmarshal([]byte(data), &st); err != nil {
			tb.Fatalf("event %q: %v", data, err)
		}
		return st
	}
}

func TestStatusPageAndEvents(t *testing.T) {
	n := startNode(t, metricsOrigin(), func(c *Config) { c.NodeName = "edge-page" })

	resp := getWith(t, n.ctl+"/", "Accept", "text/html,application/xhtml+xml")
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" ||
		!strings.Contains(string(page), "<title>edgepush status</title>") || !strings.Contains(string(page), "status/events") ||
		strings.Contains(string(page), "http://") || strings.Contains(string(page), "https://") {
		t.Fatalf("status page: %d %s, %d bytes (no external assets allowed)", resp.StatusCode, resp.Header.Get("Content-Type"), len(page))
	}
	resp = getWith(t, n.ctl+"/", "Accept", "text/plain")
	plain, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(plain) != "edgepush API\n" {
		t.Fatalf("plain-text answer %q", plain)
	}

	resp = getWith(t, n.ctl+"/status/events")
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	events := bufio.NewReader(resp.Body)
	st := nextStatusEvent(t, events)
	if st.Node != "edge-page" || st.Version != Version || st.Connections["stream"].Held != 0 {
		t.Fatalf("first event: node %q version %q connections %v", st.Node, st.Version, st.Connections)
	}
	c := dialRaw(t, n.Addr())
	readLine(t, bufio.NewReader(c.get(t, "/stream").Body))
	deadline := time.Now().Add(waitTimeout)
	for st.Connections["stream"].Held != 1 || st.Connections["stream"].Opened != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("events never showed the held stream: %v", st.Connections)
		}
		st = nextStatusEvent(t, events)
	}

	// Shutdown ends the event stream instead of waiting for its client:
	// a stream left open would hold the control server's shutdown until
	// the context ends (events come every second, for minutes), and
	// Shutdown would report it. The client keeps the stream open
	// meanwhile, reading nothing.
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := n.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown with an open event stream: %v", err)
	}
	if _, err := io.Copy(io.Discard, events); err != nil {
		t.Fatalf("event stream did not end cleanly: %v", err)
	}
}

func TestStatusPageNeedsTheKey(t *testing.T) {
	n := startNode(t, metricsOrigin(), func(c *Config) { c.PublishKey = "secret" })
	for _, path := range []string{"/", "/status/events"} {
		resp := getWith(t, n.ctl+path, "Accept", "text/html")
		resp.Body.Close()
		if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic ") {
			t.Fatalf("%s without the key: %d %q", path, resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
	}
	resp := getWith(t, n.ctl+"/", "Accept", "text/html", "Authorization", "Basic OnNlY3JldA==") // ":secret"
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("page with the key: %d", resp.StatusCode)
	}
	resp = getWith(t, n.ctl+"/status/events", "Authorization", "Bearer secret")
	defer resp.Body.Close()
	if st := nextStatusEvent(t, bufio.NewReader(resp.Body)); st.Version != Version {
		t.Fatalf("event %+v", st)
	}
	// API clients still get the plain-text answer without a key.
	resp = getWith(t, n.ctl+"/")
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "edgepush API\n" {
		t.Fatalf("plain / : %d %q", resp.StatusCode, b)
	}
}

// TestStatusPageInBrowser loads the status page in headless Chromium
// (check.js, with playwright-core) and checks that it shows the node, its
// region and zone (for itself and in the tier's members), that its
// numbers follow a stream opened and a publish made meanwhile, and that
// its charts draw and move with them and with a cache miss and hit.
func TestStatusPageInBrowser(t *testing.T) {
	n := startNode(t, metricsOrigin(), func(c *Config) {
		c.NodeName, c.Region, c.Zone = "edge-browser", "eu-west-1", "b"
		c.ClusterBind, c.ClusterLocal = "127.0.0.1:0", true // a tier of one: the members table shows
	})
	script := browsertest.Start(t, "testdata/browser", "check.js", 60*time.Second, n.ctl+"/", "edge-browser", "eu-west-1 / b")
	script.Expect("ready") // the page shows the node, 0 held streams, flat charts

	c := dialRaw(t, n.Addr())
	body := bufio.NewReader(c.get(t, "/stream").Body) // a miss: the origin is asked
	readLine(t, body)
	for range 2 { // a miss, then a hit
		resp := getWith(t, n.url+"/plain")
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	n.waitSubscribers(t, "m", 1)
	n.publish(t, streamItem("m", "live\n"))
	readLine(t, body)

	script.Expect("ok") // the page showed 1 held stream and 1 published message, the charts moved
	script.End()
}
