package node

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgepush/edgepush/grip"
	"github.com/fasthttp/websocket"
)

// testRouteTable builds the route table of routes (ParseRoute syntax)
// plus, when origin is set, the catch-all route.
func testRouteTable(tb testing.TB, origin string, routes ...string) *routeTable {
	tb.Helper()
	cfg := DefaultConfig()
	cfg.Origin = origin
	for _, r := range routes {
		if err := cfg.Routes.Set(r); err != nil {
			tb.Fatalf("route %q: %v", r, err)
		}
	}
	cfg, _, err := cfg.withDefaults()
	if err != nil {
		tb.Fatal(err)
	}
	t, err := newRouteTable(cfg, []byte("k"))
	if err != nil {
		tb.Fatal(err)
	}
	return t
}

var selectionRoutes = []string{
	"id=a host=api.example.com origin=http://127.0.0.1:1",
	"id=b host=api.example.com path=/v1/ origin=http://127.0.0.1:1",
	"id=c host=api.example.com path=/v1/admin/ origin=http://127.0.0.1:1",
	"id=d host=*.example.com origin=http://127.0.0.1:1",
	"id=e host=*.eu.example.com origin=http://127.0.0.1:1",
	"id=f host=* path=/v1/ origin=http://127.0.0.1:1",
	"id=g host=[::1] path=/ origin=http://127.0.0.1:1",
}

func TestRouteSelection(t *testing.T) {
	withDefault := testRouteTable(t, "http://127.0.0.1:2", selectionRoutes...)
	without := testRouteTable(t, "", selectionRoutes...)
	for _, tc := range []struct {
		host, path string
		want       string // route id; "" none
	}{
		{"api.example.com", "/x", "a"},
		{"API.Example.COM:8443", "/v1/x", "b"},        // case and port ignored
		{"api.example.com", "/v1/admin/users", "c"},   // longest prefix
		{"api.example.com.", "/v1", "a"},              // "/v1/" is not a prefix of "/v1"
		{"www.example.com", "/v1/x", "d"},             // a wildcard host beats any host
		{"x.eu.example.com", "/", "e"},                // the longer wildcard
		{"a.b.example.com", "/", "d"},                 // a wildcard takes every depth
		{"example.com", "/v1/x", "f"},                 // "*.example.com" is not example.com
		{"example.com", "/", "default"},               // nothing else: the catch-all
		{"other.org", "/v1/x", "f"},                   // any host
		{"", "/v1/", "f"},                             // no Host (HTTP/1.0)
		{"[::1]:7999", "/x", "g"},                     // IPv6 literal
		{strings.Repeat("a", 300), "/v1/", "f"},       // too long for a name: any host only
		{"api.example.com", "/V1/x", "a"},             // paths are case-sensitive
		{"api.example.com", "/v1%2fadmin/", "a"},      // and not decoded
		{"api.example.com.evil.org", "/x", "default"}, // exact means exact
		{"xexample.com", "/", "default"},              // a suffix, on a dot
		{"api.example.com:", "/v1/admin", "b"},        // empty port
		{"other.org", "/v1x", "default"},              // plain prefix: "/v1/" needs the slash
		{"*.example.com", "/", "d"},                   // a literal "*" host label is a subdomain like another
	} {
		for _, table := range []*routeTable{withDefault, without} {
			want := tc.want
			if want == "default" && table == without {
				want = ""
			}
			got := ""
			if rt := table.match([]byte(tc.host), []byte(tc.path)); rt != nil {
				got = rt.id
			}
			if got != want {
				t.Errorf("host %q path %q: route %q, want %q", tc.host, tc.path, got, want)
			}
		}
	}
}

func TestRouteMatchDoesNotAllocate(t *testing.T) {
	table := testRouteTable(t, "http://127.0.0.1:2", selectionRoutes...)
	host, path := []byte("X.EU.Example.com:443"), []byte("/v1/admin/x")
	if n := testing.AllocsPerRun(1000, func() { table.match(host, path) }); n != 0 {
		t.Fatalf("match allocates %v times", n)
	}
}

// BenchmarkRouteMatch is route selection over the selection table: an
// exact host with the longest prefix, a wildcard, any host, the default.
func BenchmarkRouteMatch(b *testing.B) {
	table := testRouteTable(b, "http://127.0.0.1:2", selectionRoutes...)
	reqs := [][2][]byte{
		{[]byte("api.example.com"), []byte("/v1/admin/users/42")},
		{[]byte("X.EU.Example.com:443"), []byte("/feed")},
		{[]byte("other.org"), []byte("/v1/stream")},
		{[]byte("other.org"), []byte("/")},
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		r := reqs[i%len(reqs)]
		if table.match(r[0], r[1]) == nil {
			b.Fatal("no route")
		}
	}
}

func TestParseRoute(t *testing.T) {
	r, err := ParseRoute(`host=API.example.com path=/v1/ origin=https://10.0.0.5:8443/base/,https://10.0.0.6:8443/base ` +
		`strip-prefix=/v1 host-rewrite=backend.internal sig-key="a key" sig-iss=edge ws=off cache=off ` +
		`stale-if-error=60s trust-xff=10.0.0.0/8,192.168.1.1 ca-file=/ca.pem client-cert=/c.pem client-key=/k.pem id=api`)
	if err != nil {
		t.Fatal(err)
	}
	if r.ID != "api" || r.Host != "API.example.com" || r.Path != "/v1/" || len(r.Origins) != 2 || r.StripPrefix != "/v1" ||
		r.HostRewrite != "backend.internal" || r.SigKey != "a key" || r.SigIss != "edge" || *r.WebSocket || *r.Cache ||
		*r.StaleIfError != time.Minute || r.TrustXFF != "10.0.0.0/8,192.168.1.1" || r.CAFile != "/ca.pem" ||
		r.ClientCert != "/c.pem" || r.ClientKey != "/k.pem" {
		t.Fatalf("parsed %+v", r)
	}
	for _, tc := range []struct{ route, want string }{
		{"host=a path=v1 origin=http://x", "path=v1"},
		{"origin=ftp://x", "origin=ftp://x"},
		{"foo=1 origin=http://x", `unknown key "foo"`},
		{"ws=maybe origin=http://x", "ws=maybe: want on or off"},
		{"cache=1x origin=http://x", "cache=1x"},
		{"stale-if-error=soon origin=http://x", "stale-if-error=soon"},
		{"stale-if-error=-1s origin=http://x", "stale-if-error=-1s: negative"},
		{"trust-xff=10.0.0.0/33 origin=http://x", "trust-xff=10.0.0.0/33"},
		{"host=a", "origin: missing"},
		{"origin=http://a client-cert=/c.pem", "client-cert and client-key"},
		{"origin=http://a/x,http://b/y", "share one path"},
		{"host=a:80 origin=http://x", "host=a:80"},
		{"host=*.*.a origin=http://x", "host=*.*.a"},
		{"sig-key=base64:!! origin=http://x", "sig-key"},
		{"origin=http://a origin=http://b", "origin: given twice"},
		{"path origin=http://a", `"path": want key=value`},
		{`sig-key="open origin=http://a`, "unterminated quote"},
		{"   ", "empty route"},
		{"strip-prefix=v1 origin=http://a", "strip-prefix=v1"},
		{"host-rewrite=a/b origin=http://a", "host-rewrite=a/b"},
		{"host-rewrite=\"a\r\nX-Evil: 1\" origin=http://a", "host-rewrite="},
	} {
		if _, err := ParseRoute(tc.route); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want %q", tc.route, err, tc.want)
		}
	}
	var l RouteList
	if err := l.Set("host=a.com path=/x/ origin=http://x"); err != nil {
		t.Fatal(err)
	}
	if err := l.Set("host=A.com path=/x/ origin=http://y"); err == nil || !strings.Contains(err.Error(), `route "a.com/x/" already takes`) {
		t.Fatalf("same host and path: %v", err)
	}
	if err := l.Set("id=a.com/x/ host=b.com origin=http://y"); err == nil || !strings.Contains(err.Error(), "used twice") {
		t.Fatalf("same id: %v", err)
	}
}

func TestRoutesConfigFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "edgepush.conf")
	os.WriteFile(path, []byte(`origin = http://127.0.0.1:9000
# the API, versioned
route = host=api.example.com path=/v1/ origin=http://127.0.0.1:9001 strip-prefix=/v1 ws=off
route = host=*.example.com origin=https://127.0.0.1:9443,https://127.0.0.1:9444 cache=off stale-if-error=60s trust-xff=10.0.0.0/8
trust-xff = 192.168.0.0/16
cdn-loop = edge-eu
`), 0o600)
	load := func(args ...string) (Config, error) {
		cfg := DefaultConfig()
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		cfg.RegisterFlags(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		return cfg, LoadConfigFile(fs, path)
	}
	cfg, err := load()
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Routes) != 2 || cfg.Routes[0].routeID() != "api.example.com/v1/" || cfg.Routes[1].routeID() != "*.example.com/" ||
		len(cfg.Routes[1].Origins) != 2 || cfg.TrustXFF != "192.168.0.0/16" || cfg.CDNLoop != "edge-eu" {
		t.Fatalf("cfg = %+v", cfg)
	}
	cfg.CacheOff = true // New starts no goroutines then
	s, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ids := s.routeIDs(); strings.Join(ids, " ") != "api.example.com/v1/ *.example.com/ default" {
		t.Fatalf("routes %v", ids)
	}
	// -route on the command line replaces the file's routes (flags win).
	if cfg, err = load("-route", "host=x.org origin=http://127.0.0.1:9002"); err != nil || len(cfg.Routes) != 1 || cfg.Routes[0].Host != "x.org" {
		t.Fatalf("with -route: %v %+v", err, cfg.Routes)
	}

	for _, tc := range []struct{ body, want string }{
		{"route = host=a.org origin=http://x\nroute = host=b.org bogus=1 origin=http://x\n", `:2: route: unknown key "bogus"`},
		{"\n\nroute = host=a.org stale-if-error=1 origin=http://x\n", `:3: route: stale-if-error=1`},
		{"route = host=a.org origin=http://x\n# same again\nroute = host=A.org path=/ origin=http://y\n", `:3: route: host=A.org path=/: route "a.org/" already takes`},
		{"route = host=a.org\n", `:1: route: origin: missing`},
		{"trust-xff = 10.0.0.0/8,nonsense\nroute = origin=http://x\n", `-trust-xff: "nonsense"`},
		{"cdn-loop = a b\norigin = http://x\n", `-cdn-loop "a b"`},
	} {
		os.WriteFile(path, []byte(tc.body), 0o600)
		cfg, err := load()
		if err == nil {
			_, err = New(cfg, nil)
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want %q", tc.body, err, tc.want)
		}
	}
	// A route's files are read by New, which names the route and key.
	cfg = DefaultConfig()
	cfg.Routes.Set("id=tls origin=https://127.0.0.1:1 ca-file=" + filepath.Join(dir, "nope.pem"))
	if _, err := New(cfg, nil); err == nil || !strings.Contains(err.Error(), `route "tls": ca-file`) {
		t.Fatalf("missing CA file: %v", err)
	}
	// Without -origin, a route for every request is not required.
	cfg = DefaultConfig()
	if _, err := New(cfg, nil); err == nil || !strings.Contains(err.Error(), "-origin is required (or at least one -route)") {
		t.Fatalf("no origin: %v", err)
	}
	// -origin is the catch-all: a route that takes every request too is a clash.
	cfg.Origin = "http://127.0.0.1:1"
	cfg.Routes.Set("host=* path=/ origin=http://127.0.0.1:2")
	if _, err := New(cfg, nil); err == nil || !strings.Contains(err.Error(), `route "default"`) {
		t.Fatalf("two catch-alls: %v", err)
	}
}

// echoOrigin answers every request with what it saw, in X-Seen-*
// headers; it verifies Grip-Sig with key and iss. hits counts requests.
func echoOrigin(tb testing.TB, name, key, iss string, hits *atomic.Int64) *httptest.Server {
	tb.Helper()
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits != nil {
			hits.Add(1)
		}
		h := w.Header()
		h.Set("X-Origin", name)
		h.Set("X-Seen-Uri", r.RequestURI)
		h.Set("X-Seen-Host", r.Host)
		h.Set("X-Seen-Xff", strings.Join(r.Header.Values("X-Forwarded-For"), ", "))
		h.Set("X-Seen-Cdn-Loop", strings.Join(r.Header.Values("Cdn-Loop"), ", "))
		claims, err := grip.VerifyHS256(r.Header.Get("Grip-Sig"), []byte(key), time.Now())
		switch {
		case err != nil:
			h.Set("X-Sig", "invalid: "+err.Error())
		case claims["iss"] != iss:
			h.Set("X-Sig", fmt.Sprintf("iss %v", claims["iss"]))
		default:
			h.Set("X-Sig", "valid")
		}
		io.WriteString(w, name+"\n")
	}))
	tb.Cleanup(o.Close)
	return o
}

// getHost GETs url with Host host and extra header pairs; it returns the
// response (body read and closed) and the body.
func getHost(tb testing.TB, url, host string, headers ...string) (*http.Response, string) {
	tb.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		tb.Fatal(err)
	}
	req.Host = host
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// withRoutes adds routes to a node's config.
func withRoutes(tb testing.TB, routes ...string) func(*Config) {
	return func(c *Config) {
		for _, r := range routes {
			if err := c.Routes.Set(r); err != nil {
				tb.Fatal(err)
			}
		}
	}
}

func TestRoutesRewriteAndSign(t *testing.T) {
	api := echoOrigin(t, "api", "route-key", "route-iss", nil)
	def := echoOrigin(t, "default", "node-key", "node-iss", nil)
	n := startNode(t, http.NotFoundHandler(), func(c *Config) { c.SigKey, c.SigIss, c.Origin = "node-key", "node-iss", def.URL },
		withRoutes(t, "host=api.test path=/v1 strip-prefix=/v1 host-rewrite=backend.internal sig-key=route-key sig-iss=route-iss origin="+api.URL+"/base/"))
	for _, tc := range []struct {
		host, path                 string
		origin, uri, seenHost, sig string
	}{
		{"api.test", "/v1/items?x=1", "api", "/base/items?x=1", "backend.internal", "valid"},
		{"API.test:80", "/v1", "api", "/base/", "backend.internal", "valid"}, // nothing left: "/"
		{"api.test", "/v1?q", "api", "/base/?q", "backend.internal", "valid"},
		{"api.test", "/v2/items", "default", "/v2/items", "api.test", "valid"},
		{"www.test", "/v1/items", "default", "/v1/items", "www.test", "valid"},
	} {
		resp, body := getHost(t, n.url+tc.path, tc.host)
		h := resp.Header
		if body != tc.origin+"\n" || h.Get("X-Seen-Uri") != tc.uri || h.Get("X-Seen-Host") != tc.seenHost || h.Get("X-Sig") != tc.sig {
			t.Errorf("%s%s: origin %q uri %q host %q sig %q", tc.host, tc.path, body, h.Get("X-Seen-Uri"), h.Get("X-Seen-Host"), h.Get("X-Sig"))
		}
	}
}

func TestRoutesNoRouteAndLoop(t *testing.T) {
	// The node's own address, to point a route back at it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	self := ln.Addr().String()
	ln.Close()
	api := echoOrigin(t, "api", "k", "edgepush", nil)
	n := startNode(t, http.NotFoundHandler(), func(c *Config) { c.Listen, c.Origin, c.SigKey = self, "", "k" },
		withRoutes(t, "host=api.test origin="+api.URL, "host=loop.test origin=http://"+self))

	resp, body := getHost(t, n.url+"/x", "other.test")
	if resp.StatusCode != 404 || !strings.Contains(body, `no route for host "other.test" and path "/x"`) {
		t.Fatalf("no route: %d %q", resp.StatusCode, body)
	}
	// CDN-Loop: appended to what the client sent.
	resp, _ = getHost(t, n.url+"/x", "api.test", "CDN-Loop", "upstream-cdn; v=1")
	if got := resp.Header.Get("X-Seen-Cdn-Loop"); got != "upstream-cdn; v=1, edgepush" {
		t.Fatalf("origin saw CDN-Loop %q", got)
	}
	// A request that already passed through: 508, the origin not asked.
	resp, body = getHost(t, n.url+"/x", "api.test", "CDN-Loop", "other, EdgePush; v=2")
	if resp.StatusCode != 508 || !strings.Contains(body, "loop detected") || resp.Header.Get("X-Origin") != "" {
		t.Fatalf("looped request: %d %q", resp.StatusCode, body)
	}
	// A route whose origin is the node itself: the second pass is refused,
	// and the client sees that.
	resp, body = getHost(t, n.url+"/x", "loop.test")
	if resp.StatusCode != 508 || !strings.Contains(body, "loop detected") {
		t.Fatalf("self-routed request: %d %q", resp.StatusCode, body)
	}
}

func TestRoutesForwardedFor(t *testing.T) {
	def := echoOrigin(t, "default", "k", "edgepush", nil)
	n := startNode(t, http.NotFoundHandler(), func(c *Config) { c.Origin, c.SigKey = def.URL, "k" },
		withRoutes(t, "path=/trusted/ trust-xff=10.0.0.0/8,127.0.0.1 origin="+def.URL,
			"path=/lan/ trust-xff=192.168.0.0/16 origin="+def.URL))
	for _, tc := range []struct{ path, want string }{
		{"/x", "127.0.0.1"},                                // untrusted client: replaced
		{"/lan/x", "127.0.0.1"},                            // trusted proxies, but not this one
		{"/trusted/x", "203.0.113.9, 10.1.1.1, 127.0.0.1"}, // a trusted proxy: appended
	} {
		resp, _ := getHost(t, n.url+tc.path, "t", "X-Forwarded-For", "203.0.113.9", "X-Forwarded-For", " 10.1.1.1")
		if got := resp.Header.Get("X-Seen-Xff"); got != tc.want {
			t.Errorf("%s: origin saw X-Forwarded-For %q, want %q", tc.path, got, tc.want)
		}
	}
}

// countingOrigin answers with a cacheable body naming the request, and
// 503 once down is set; hits counts requests.
func countingOrigin(tb testing.TB, hits *atomic.Int64, down *atomic.Bool) *httptest.Server {
	tb.Helper()
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Cache-Control", "max-age=1")
		io.WriteString(w, "v1 "+r.URL.Path)
	}))
	tb.Cleanup(o.Close)
	return o
}

func TestRoutesCacheOffAndStaleIfError(t *testing.T) {
	var hits atomic.Int64
	var down atomic.Bool
	o := countingOrigin(t, &hits, &down)
	n := startNode(t, http.NotFoundHandler(), func(c *Config) { c.Origin, c.StaleIfError = o.URL, 0 },
		withRoutes(t, "path=/live/ cache=off origin="+o.URL, "path=/sie/ stale-if-error=60s origin="+o.URL))
	xcache := func(path string) (string, string, int) {
		resp, body := getHost(t, n.url+path, "t")
		return resp.Header.Get("X-Cache"), body, resp.StatusCode
	}
	// Cache off on /live/, on elsewhere.
	for i, want := range []string{"BYPASS", "BYPASS"} {
		if got, _, _ := xcache("/live/a"); got != want {
			t.Fatalf("/live/a #%d: X-Cache %q, want %q", i, got, want)
		}
	}
	if hits.Load() != 2 {
		t.Fatalf("cache=off route: %d origin requests for 2 GETs", hits.Load())
	}
	for i, want := range []string{"MISS", "HIT"} {
		if got, _, _ := xcache("/plain"); got != want {
			t.Fatalf("/plain #%d: X-Cache %q, want %q", i, got, want)
		}
	}
	xcache("/sie/a")
	if hits.Load() != 4 {
		t.Fatalf("%d origin requests, want 4", hits.Load())
	}
	// The origin fails: /sie/ serves its stale entry (the route's
	// stale-if-error), the node-wide 0 gives /plain the origin's 503.
	down.Store(true)
	waitFor(t, "/sie/a to be served stale", func() bool {
		got, body, code := xcache("/sie/a")
		if got != "STALE" && (got != "HIT" || body != "v1 /sie/a") {
			t.Fatalf("/sie/a while the origin is down: %d %q %q", code, got, body)
		}
		return got == "STALE" && code == 200 && body == "v1 /sie/a"
	})
	if got, body, code := xcache("/plain"); code != 503 || got == "STALE" {
		t.Fatalf("/plain with stale-if-error 0: %d %q %q", code, got, body)
	}
}

func TestRoutesWebSocketOff(t *testing.T) {
	ws := &wsOrigin{}
	other := httptest.NewServer(ws)
	t.Cleanup(other.Close)
	n := startNode(t, &wsOrigin{}, withRoutes(t, "path=/feeds/ ws=off origin="+other.URL, "path=/chat/ strip-prefix=/chat origin="+other.URL))
	d := websocket.Dialer{HandshakeTimeout: waitTimeout}
	c, resp, err := d.Dial("ws://"+n.Addr().String()+"/feeds/x", nil)
	if err == nil {
		c.Close()
		t.Fatal("WebSocket upgraded on a ws=off route")
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 403 || !strings.Contains(string(body), `WebSocket is not enabled on this route (*/feeds/)`) {
		t.Fatalf("ws=off: %d %q", resp.StatusCode, body)
	}
	// On a route with WebSockets on, the route's origin sees the stripped
	// path (its /refuse answers 403 "nope").
	_, resp, err = d.Dial("ws://"+n.Addr().String()+"/chat/refuse", nil)
	if err == nil {
		t.Fatal("/chat/refuse upgraded")
	}
	body, _ = io.ReadAll(resp.Body)
	if resp.StatusCode != 403 || string(body) != "nope\n" {
		t.Fatalf("/chat/refuse: %d %q", resp.StatusCode, body)
	}
	conn := dialWS(t, n, "/chat/room", false)
	if got := readText(t, conn); got != "welcome" {
		t.Fatalf("first message %q", got)
	}
	if !ws.hasEvent(grip.WSEventOpen, "") {
		t.Fatal("the /chat/ route's origin saw no OPEN")
	}
	if resp, _ = getHost(t, n.url+"/feeds/x", "t"); resp.StatusCode != 400 { // the origin's answer to a plain GET
		t.Fatalf("plain GET on the ws=off route: %d", resp.StatusCode)
	}
}

func TestRoutesFailoverRoundRobinAndStatus(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	var hitsA, hitsB atomic.Int64
	a, b := echoOrigin(t, "a", "k", "edgepush", &hitsA), echoOrigin(t, "b", "k", "edgepush", &hitsB)
	n := startNode(t, http.NotFoundHandler(), func(c *Config) { c.OriginFailures, c.SigKey = 2, "k" },
		withRoutes(t, "id=pool path=/pool/ origin="+dead+","+a.URL+","+b.URL))
	for i := range 12 {
		if resp, body := getHost(t, n.url+"/pool/x", "t"); resp.StatusCode != 200 {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
		}
	}
	if hitsA.Load() < 3 || hitsB.Load() < 3 || hitsA.Load()+hitsB.Load() != 12 {
		t.Fatalf("round-robin: a %d, b %d of 12", hitsA.Load(), hitsB.Load())
	}
	resp, err := http.Get(n.ctl + "/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	if len(st.Routes) != 2 || st.Routes[0].ID != "pool" || st.Routes[1].ID != "default" {
		t.Fatalf("routes %+v", st.Routes)
	}
	pool := st.Routes[0]
	if pool.Breaker != "partial" || len(pool.Origins) != 3 || pool.Origins[0].Breaker != "open" || pool.Origins[0].Errors < 2 ||
		pool.Origins[1].Requests != uint64(hitsA.Load()) || pool.Origins[1].Errors != 0 || pool.Origins[2].Breaker != "closed" {
		t.Fatalf("pool status %+v", pool)
	}
	// 12 answered, 2 failed connects, maybe a probe of the dead origin.
	if st.OriginReqs.Requests < 14 || st.OriginReqs.Errors < 2 || st.Breaker != "open" {
		t.Fatalf("origin totals %+v, breaker %q", st.OriginReqs, st.Breaker)
	}
}

// routeIDs returns the IDs of the node's routes, in order.
func (s *Server) routeIDs() []string {
	ids := make([]string, len(s.routes.all))
	for i, rt := range s.routes.all {
		ids[i] = rt.id
	}
	return ids
}
