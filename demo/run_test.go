package demo

import (
	"errors"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgepush/edgepush/internal/browsertest"
	"github.com/edgepush/edgepush/internal/nodetest"
	"github.com/edgepush/edgepush/node"
)

// waitTimeout bounds every wait: generous, so that it only catches a hang.
const waitTimeout = 20 * time.Second

// startDemo runs a Demo in front of a real node, wired as edgepush -demo
// wires it (loopback, random ports).
func startDemo(t *testing.T) (*Demo, *node.Server) {
	t.Helper()
	d, err := Listen(nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	srv := nodetest.Start(t, func(cfg *node.Config) {
		cfg.DrainPeriod = time.Millisecond
		d.Configure(cfg)
	})
	if err := d.Serve(Config{PublishURL: PublishURL(srv.ControlAddr()), PurgeKeys: true}); err != nil {
		t.Fatal(err)
	}
	return d, srv
}

// dialRefused reports whether a connection to addr is refused.
func dialRefused(t *testing.T, addr string) bool {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, waitTimeout)
	if err == nil {
		c.Close()
		return false
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial %s: %v, want refused or connected", addr, err)
	}
	return true
}

// switchOrigin posts {"up":up} to the node's demo backend route with
// header pairs, and returns the status and body.
func switchOrigin(t *testing.T, base, body string, header ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+BackendPath+"origin", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	r := doReq(t, req)
	return r.Status, r.Body
}

func TestOriginSwitch(t *testing.T) {
	d, srv := startDemo(t)
	nodeURL := "http://" + srv.Addr().String()
	originAddr := strings.TrimPrefix(d.OriginURL(), "http://")

	if r := do(t, http.MethodGet, nodeURL+BackendPath+"origin"); r.Status != 200 || r.Body != `{"up":true}`+"\n" {
		t.Fatalf("state: %d %q", r.Status, r.Body)
	}
	page := do(t, http.MethodGet, nodeURL+"/")
	if page.Status != 200 || page.Header.Get("X-Cache") != "MISS" {
		t.Fatalf("page: %d X-Cache %q", page.Status, page.Header.Get("X-Cache"))
	}

	if code, body := switchOrigin(t, nodeURL, `{"up":false}`); code != 200 || body != `{"up":false}`+"\n" {
		t.Fatalf("down: %d %q", code, body)
	}
	if d.OriginUp() || !dialRefused(t, originAddr) {
		t.Fatalf("origin still answers on %s", originAddr)
	}
	// Down: the page comes from the cache, the backend still counts and
	// publishes, the origin's own increment fails.
	if r := do(t, http.MethodGet, nodeURL+"/"); r.Status != 200 || r.Body != page.Body {
		t.Fatalf("page while down: %d X-Cache %q", r.Status, r.Header.Get("X-Cache"))
	}
	if r := do(t, http.MethodPost, nodeURL+BackendPath+"counters/a/increment"); r.Status != 200 || r.Body != `{"name":"a","value":1}` {
		t.Fatalf("backend increment while down: %d %q", r.Status, r.Body)
	}
	if r := do(t, http.MethodPost, nodeURL+"/counters/a/increment"); r.Status != http.StatusBadGateway {
		t.Fatalf("origin increment while down: %d %q", r.Status, r.Body)
	}
	if code, _ := switchOrigin(t, nodeURL, `{"up":false}`); code != 200 {
		t.Fatalf("down twice: %d", code)
	}

	if code, body := switchOrigin(t, nodeURL, `{"up":true}`); code != 200 || body != `{"up":true}`+"\n" {
		t.Fatalf("up: %d %q", code, body)
	}
	if !d.OriginUp() || dialRefused(t, originAddr) {
		t.Fatal("origin not back up")
	}
	// The same counters as before.
	if r := do(t, http.MethodGet, d.OriginURL()+"/counters/a/value"); r.Body != `{"name":"a","value":1}` {
		t.Fatalf("value after up: %q", r.Body)
	}
}

func TestOriginSwitchRefusals(t *testing.T) {
	d, srv := startDemo(t)
	nodeURL := "http://" + srv.Addr().String()
	for _, tt := range []struct {
		name, url, body string
		header          []string
		want            int
	}{
		// Through the node: X-Forwarded-For is the node's, the client's
		// own is dropped (untrusted), so only the content type matters.
		{"text/plain", nodeURL, `{"up":false}`, []string{"Content-Type", "text/plain"}, http.StatusUnsupportedMediaType},
		{"no state", nodeURL, `{}`, nil, http.StatusBadRequest},
		{"not JSON", nodeURL, `up`, nil, http.StatusBadRequest},
		// Straight to the backend, as the node would send it for a
		// client on another machine.
		{"remote client", d.BackendURL(), `{"up":false}`, []string{"X-Forwarded-For", "203.0.113.7"}, http.StatusForbidden},
		{"remote client behind a proxy", d.BackendURL(), `{"up":false}`, []string{"X-Forwarded-For", "127.0.0.1, 203.0.113.7"}, http.StatusForbidden},
	} {
		if code, body := switchOrigin(t, tt.url, tt.body, tt.header...); code != tt.want {
			t.Errorf("%s: %d %q, want %d", tt.name, code, body, tt.want)
		}
	}
	if !d.OriginUp() {
		t.Fatal("a refused request took the origin down")
	}
	if code, _ := switchOrigin(t, d.BackendURL(), `{"up":false}`, "X-Forwarded-For", "203.0.113.7, ::1"); code != 200 || d.OriginUp() {
		t.Fatalf("local client behind a proxy: %d", code)
	}
}

func TestDemoLifecycle(t *testing.T) {
	d, err := Listen(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.SetOriginUp(false); !errors.Is(err, errNotServing) {
		t.Fatalf("switch before Serve: %v", err)
	}
	// Closed before Serve: both ports are released.
	d.Close()
	for _, u := range []string{d.OriginURL(), d.BackendURL()} {
		if !dialRefused(t, strings.TrimPrefix(u, "http://")) {
			t.Errorf("%s still listens", u)
		}
	}

	d, _ = startDemo(t)
	if err := d.Serve(Config{}); err == nil {
		t.Error("Serve twice: no error")
	}
	if err := d.SetOriginUp(false); err != nil {
		t.Fatal(err)
	}
	// Closed while down: the held port is released too.
	d.Close()
	d.Close()
	if err := d.SetOriginUp(true); !errors.Is(err, errNotServing) {
		t.Fatalf("switch after Close: %v", err)
	}
	ln, err := net.Listen("tcp", strings.TrimPrefix(d.OriginURL(), "http://"))
	if err != nil {
		t.Fatalf("origin port after Close: %v", err)
	}
	ln.Close()
}

func TestPublishURL(t *testing.T) {
	for addr, want := range map[string]string{
		"127.0.0.1:5561": "http://127.0.0.1:5561/purge-publish/",
		"0.0.0.0:5561":   "http://127.0.0.1:5561/purge-publish/",
		"[::]:5561":      "http://127.0.0.1:5561/purge-publish/",
		"[::1]:5561":     "http://[::1]:5561/purge-publish/",
	} {
		a, err := net.ResolveTCPAddr("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := PublishURL(a); got != want {
			t.Errorf("PublishURL(%s) = %q, want %q", addr, got, want)
		}
	}
}

// TestOriginSwitchInBrowser drives the demo page in headless Chromium
// (node/testdata/browser/demo.js): the origin goes down from the page, a
// second tab opens and updates from the node's cache, the origin comes
// back up.
func TestOriginSwitchInBrowser(t *testing.T) {
	d, srv := startDemo(t)
	script := browsertest.Start(t, "../node/testdata/browser", "demo.js", 60*time.Second, "http://"+srv.Addr().String()+"/")
	script.Expect("down")
	script.Expect("live")
	// The second tab opened with the origin refusing connections: its
	// stream came from a stale cached copy.
	if !dialRefused(t, strings.TrimPrefix(d.OriginURL(), "http://")) {
		t.Fatal("the origin answered while down")
	}
	st := srv.Status()
	if st.Cache.StaleOnError == 0 || st.OriginReqs.Errors == 0 {
		t.Errorf("while down: %d stale-on-error answers, %d origin errors; want both > 0", st.Cache.StaleOnError, st.OriginReqs.Errors)
	}
	script.Send("go on")
	script.Expect("up")
	script.Expect("ok")
	script.End()
	if !d.OriginUp() || dialRefused(t, strings.TrimPrefix(d.OriginURL(), "http://")) {
		t.Fatal("origin not back up")
	}
}
