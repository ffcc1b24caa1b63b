package node

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// get sends a request with an optional Host and Authorization to url and
// returns the status and body.
func get(t *testing.T, method, url, host, auth string) (int, string) {
	t.Helper()
	return send(t, method, url, host, auth, nil)
}

// send is get with a request body (nil: none).
func send(t *testing.T, method, url, host, auth string, body io.Reader) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	c := http.Client{Timeout: waitTimeout}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// -metrics-listen serves /healthz, /readyz and /metrics to any Host, and
// nothing else of the control API; /readyz turns 503 there too when the
// node drains.
func TestMetricsListener(t *testing.T) {
	// Not startNode: its cleanup wants a clean shutdown, and this one is
	// cut short.
	cfg := lifecycleConfig()
	cfg.MetricsListen = "127.0.0.1:0"
	cfg.DrainDelay = waitTimeout // the drain waits here until the test cuts it short
	n, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	ctl := "http://" + n.ControlAddr().String()
	if n.MetricsAddr() == nil {
		t.Fatal("no metrics listener")
	}
	base := "http://" + n.MetricsAddr().String()
	const host = "edgepush.monitoring.svc" // a name the open control API refuses (DNS rebinding)
	if code, _ := get(t, "GET", ctl+"/metrics", host, ""); code != http.StatusMisdirectedRequest {
		t.Fatalf("the control API answered a DNS name with %d", code)
	}
	for path, want := range map[string]string{"/healthz": "ok\n", "/readyz": "ready\n", "/metrics": "edgepush_"} {
		if code, body := get(t, "GET", base+path, host, ""); code != 200 || !strings.Contains(body, want) {
			t.Errorf("GET %s: %d %q", path, code, body)
		}
	}
	for _, r := range []struct{ method, path string }{
		{"POST", "/publish/"}, {"POST", "/purge/"}, {"POST", "/purge-publish/"}, {"GET", "/status"},
		{"GET", "/status/events"}, {"GET", "/"}, {"POST", "/_cluster/ops"},
	} {
		if code, body := get(t, r.method, base+r.path, "", ""); code != http.StatusNotFound || !strings.Contains(body, "-control") {
			t.Errorf("%s %s on the metrics listener: %d %q", r.method, r.path, code, body)
		}
	}
	if code, _ := get(t, "POST", base+"/metrics", "", ""); code != http.StatusMethodNotAllowed {
		t.Errorf("POST /metrics: %d", code)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Shutdown(ctx) }()
	waitFor(t, "/readyz to turn 503 on the metrics listener", func() bool {
		code, body := get(t, "GET", base+"/readyz", "", "")
		return code == http.StatusServiceUnavailable && body == "draining\n"
	})
	if code, _ := get(t, "GET", base+"/healthz", "", ""); code != 200 {
		t.Errorf("/healthz while draining: %d", code)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(waitTimeout):
		t.Fatal("Shutdown did not return")
	}
	if _, err := net.Dial("tcp", n.MetricsAddr().String()); err == nil {
		t.Fatal("the metrics listener is still open after Shutdown")
	}
}

// With -metrics-auth, /metrics on the metrics listener needs the publish
// key too; the probes never do.
func TestMetricsListenerAuth(t *testing.T) {
	n := startNode(t, streamOrigin(), func(c *Config) {
		c.MetricsListen, c.PublishKey, c.MetricsAuth = "127.0.0.1:0", "the-key", true
	})
	base := "http://" + n.MetricsAddr().String()
	if code, _ := get(t, "GET", base+"/metrics", "", ""); code != http.StatusUnauthorized {
		t.Fatalf("/metrics without the key: %d", code)
	}
	if code, _ := get(t, "GET", base+"/metrics", "", "Bearer the-key"); code != 200 {
		t.Fatalf("/metrics with the key: %d", code)
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		if code, _ := get(t, "GET", base+p, "", ""); code != 200 {
			t.Fatalf("%s without the key: %d", p, code)
		}
	}
}
