package demo

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// publishRecord is one request received by the fake publish endpoint.
type publishRecord struct {
	Method        string
	Path          string
	ContentType   string
	Authorization string
	Body          []byte
}

// fakePublisher is a real HTTP publish endpoint that records what it gets and
// answers with status (200 unless changed).
type fakePublisher struct {
	srv *httptest.Server

	mu      sync.Mutex
	records []publishRecord
	status  int
}

func newFakePublisher(tb testing.TB) *fakePublisher {
	tb.Helper()
	p := &fakePublisher{status: http.StatusOK}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		p.mu.Lock()
		p.records = append(p.records, publishRecord{
			Method:        r.Method,
			Path:          r.URL.Path,
			ContentType:   r.Header.Get("Content-Type"),
			Authorization: r.Header.Get("Authorization"),
			Body:          body,
		})
		status := p.status
		p.mu.Unlock()
		w.WriteHeader(status)
		if status == http.StatusOK {
			_, _ = io.WriteString(w, "Published\n")
		} else {
			_, _ = io.WriteString(w, "bad things\n")
		}
	}))
	tb.Cleanup(p.srv.Close)
	return p
}

func (p *fakePublisher) url() string { return p.srv.URL + "/publish/" }

func (p *fakePublisher) setStatus(code int) {
	p.mu.Lock()
	p.status = code
	p.mu.Unlock()
}

func (p *fakePublisher) received() []publishRecord {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]publishRecord(nil), p.records...)
}

// startOrigin serves a new demo origin publishing to pubURL.
func startOrigin(tb testing.TB, cfg Config) *httptest.Server {
	tb.Helper()
	srv := httptest.NewServer(New(cfg))
	tb.Cleanup(srv.Close)
	return srv
}

type response struct {
	Status int
	Header http.Header
	Body   string
}

func do(tb testing.TB, method, url string) response {
	tb.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return doReq(tb, req)
}

func doReq(tb testing.TB, req *http.Request) response {
	tb.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, string(body)}
}

func checkHeaders(tb testing.TB, what string, got http.Header, want map[string]string) {
	tb.Helper()
	for k, v := range want {
		if g := got.Values(k); len(g) != 1 || g[0] != v {
			tb.Errorf("%s: header %s = %q, want [%q]", what, k, g, v)
		}
	}
}

func TestPage(t *testing.T) {
	srv := startOrigin(t, Config{PublishURL: "http://127.0.0.1:1/publish/"})
	r := do(t, http.MethodGet, srv.URL+"/")
	if r.Status != http.StatusOK {
		t.Fatalf("GET /: status %d", r.Status)
	}
	if ct := r.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type = %q", ct)
	}
	for _, want := range []string{
		"<title>edgepush live counter</title>",
		"new EventSource(",
		`addEventListener("value"`,
		`fetch(incrementPrefix + name + "/increment", { method: "POST" })`,
		`incrementPrefix = "/demo/counters/"`,
		`id="origin-toggle"`,
		"open a new tab", "it connects and updates from the cache",
		`data-name="a"`, `data-name="b"`, `data-name="c"`,
		">+1</button>",
		"connected", "reconnecting",
		"pushed by edgepush (GRIP)",
		"two tabs",
		"curl -N http://localhost:7999/counters/a/stream",
		"curl -X POST http://localhost:7999/counters/a/increment",
	} {
		if !strings.Contains(r.Body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	// No external assets: no src/href attributes but the empty inline
	// icon (no favicon request), no CSS imports, and the only absolute
	// URL is the node address in the curl hints.
	body := strings.Replace(r.Body, `<link rel="icon" href="data:,">`, "", 1)
	for _, bad := range []string{"src=", "href=", "<link", "@import", "url(", "https:", "//cdn"} {
		if strings.Contains(body, bad) {
			t.Errorf("page contains %q", bad)
		}
	}
	for _, u := range regexp.MustCompile(`[a-z]+://[^\s"'<]*`).FindAllString(r.Body, -1) {
		if !strings.HasPrefix(u, "http://localhost:7999/") && u != "http://localhost:7999" {
			t.Errorf("page contains external URL %q", u)
		}
	}

	head := do(t, http.MethodHead, srv.URL+"/")
	if head.Status != http.StatusOK || head.Body != "" {
		t.Errorf("HEAD /: status %d body %q", head.Status, head.Body)
	}
}

func TestCounterRoutes(t *testing.T) {
	pub := newFakePublisher(t)
	srv := startOrigin(t, Config{PublishURL: pub.url()})
	for range 2 {
		if r := do(t, http.MethodPost, srv.URL+"/counters/a/increment"); r.Status != http.StatusOK {
			t.Fatalf("increment: %d %s", r.Status, r.Body)
		}
	}
	const a2 = `{"name":"a","value":2}`
	tests := []struct {
		path   string
		header map[string]string
		absent []string
		body   string
	}{
		{
			path: "/counters/a/events",
			header: map[string]string{
				"Content-Type":    "text/event-stream",
				"Grip-Hold":       "stream",
				"Grip-Channel":    "counter-a-sse",
				"Grip-Keep-Alive": `:\n\n; format=cstring; timeout=20`,
				"Cache-Control":   "s-maxage=10, stale-if-error=86400",
				"Surrogate-Key":   "counter-a",
			},
			absent: []string{"Grip-Timeout"},
			body:   "event: value\ndata: " + a2 + "\n\n",
		},
		{
			path: "/counters/a/stream",
			header: map[string]string{
				"Content-Type":    "text/plain; charset=utf-8",
				"Grip-Hold":       "stream",
				"Grip-Channel":    "counter-a",
				"Grip-Keep-Alive": `\n; format=cstring; timeout=20`,
				"Cache-Control":   "s-maxage=10, stale-if-error=86400",
				"Surrogate-Key":   "counter-a",
			},
			absent: []string{"Grip-Timeout"},
			body:   a2 + "\n",
		},
		{
			path: "/counters/a",
			header: map[string]string{
				"Content-Type":  "application/json",
				"Grip-Hold":     "response",
				"Grip-Channel":  "counter-a",
				"Grip-Timeout":  "20",
				"Cache-Control": "s-maxage=10, stale-if-error=86400",
				"Surrogate-Key": "counter-a",
			},
			absent: []string{"Grip-Keep-Alive"},
			body:   a2,
		},
		{
			path: "/counters/a/value",
			header: map[string]string{
				"Content-Type":  "application/json",
				"Cache-Control": "s-maxage=10, stale-if-error=86400",
				"Surrogate-Key": "counter-a",
			},
			absent: []string{"Grip-Hold", "Grip-Channel", "Grip-Timeout", "Grip-Keep-Alive"},
			body:   a2,
		},
		{
			// Never incremented: reads 0 (and is not created by reading).
			path: "/counters/zz-9/value",
			header: map[string]string{
				"Content-Type":  "application/json",
				"Surrogate-Key": "counter-zz-9",
			},
			body: `{"name":"zz-9","value":0}`,
		},
		{
			path: "/events?counters=a,b,a",
			header: map[string]string{
				"Content-Type":    "text/event-stream",
				"Grip-Hold":       "stream",
				"Grip-Channel":    "counter-a-sse, counter-b-sse",
				"Grip-Keep-Alive": `:\n\n; format=cstring; timeout=20`,
				"Cache-Control":   "s-maxage=10, stale-if-error=86400",
				"Surrogate-Key":   "counter-a counter-b",
			},
			body: "event: value\ndata: " + a2 + "\n\nevent: value\ndata: {\"name\":\"b\",\"value\":0}\n\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			r := do(t, http.MethodGet, srv.URL+tt.path)
			if r.Status != http.StatusOK {
				t.Fatalf("status %d, body %q", r.Status, r.Body)
			}
			checkHeaders(t, tt.path, r.Header, tt.header)
			for _, k := range tt.absent {
				if v, ok := r.Header[k]; ok {
					t.Errorf("header %s present: %q", k, v)
				}
			}
			if r.Body != tt.body {
				t.Errorf("body = %q, want %q", r.Body, tt.body)
			}
		})
	}
	if got := len(pub.received()); got != 2 {
		t.Errorf("reads published: %d publishes, want 2", got)
	}
}

// wantPublish is the exact publish body for counter name reaching value.
func wantPublish(name string, value int) map[string]any {
	body := fmt.Sprintf(`{"name":%q,"value":%d}`, name, value)
	raw := fmt.Sprintf(`{"items":[
		{"channel":"counter-%[1]s","id":"%[2]d","formats":{
			"http-stream":{"content":%[3]q},
			"http-response":{"headers":{"Content-Type":"application/json"},"body":%[4]q},
			"ws-message":{"content":%[4]q}}},
		{"channel":"counter-%[1]s-sse","id":"%[2]d","formats":{
			"http-stream":{"content":%[5]q}}}]}`,
		name, value, body+"\n", body, "event: value\ndata: "+body+"\n\n")
	var m map[string]any
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		panic(err)
	}
	return m
}

func TestIncrementPublishes(t *testing.T) {
	for _, key := range []string{"", "s3cret"} {
		t.Run("key="+key, func(t *testing.T) {
			pub := newFakePublisher(t)
			srv := startOrigin(t, Config{PublishURL: pub.url(), PublishKey: key})
			for i := 1; i <= 2; i++ {
				r := do(t, http.MethodPost, srv.URL+"/counters/x-1/increment")
				want := fmt.Sprintf(`{"name":"x-1","value":%d}`, i)
				if r.Status != http.StatusOK || r.Body != want {
					t.Fatalf("increment %d: %d %q, want 200 %q", i, r.Status, r.Body, want)
				}
				checkHeaders(t, "increment", r.Header, map[string]string{"Content-Type": "application/json", "Cache-Control": "no-store"})
			}
			recs := pub.received()
			if len(recs) != 2 {
				t.Fatalf("got %d publishes, want 2", len(recs))
			}
			for i, rec := range recs {
				if rec.Method != http.MethodPost || rec.Path != "/publish/" || rec.ContentType != "application/json" {
					t.Errorf("publish %d: %s %s Content-Type %q", i, rec.Method, rec.Path, rec.ContentType)
				}
				wantAuth := ""
				if key != "" {
					wantAuth = "Bearer " + key
				}
				if rec.Authorization != wantAuth {
					t.Errorf("publish %d: Authorization %q, want %q", i, rec.Authorization, wantAuth)
				}
				var got map[string]any
				if err := json.Unmarshal(rec.Body, &got); err != nil {
					t.Fatalf("publish %d: %v in %s", i, err, rec.Body)
				}
				if want := wantPublish("x-1", i+1); !reflect.DeepEqual(got, want) {
					t.Errorf("publish %d body:\n got %s\nwant %v", i, rec.Body, want)
				}
			}
		})
	}
}

func TestPublishFailure(t *testing.T) {
	down := httptest.NewServer(http.NotFoundHandler())
	downURL := down.URL + "/publish/"
	down.Close()
	failing := newFakePublisher(t)
	failing.setStatus(http.StatusInternalServerError)

	for _, tt := range []struct {
		name, url, errPart string
	}{
		{"down", downURL, "connection refused"},
		{"500", failing.url(), "500 Internal Server Error: bad things"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := startOrigin(t, Config{PublishURL: tt.url})
			r := do(t, http.MethodPost, srv.URL+"/counters/a/increment")
			if r.Status != http.StatusBadGateway {
				t.Fatalf("status %d, want 502", r.Status)
			}
			var e struct{ Error string }
			if err := json.Unmarshal([]byte(r.Body), &e); err != nil {
				t.Fatalf("body %q: %v", r.Body, err)
			}
			if !strings.HasPrefix(e.Error, "publish: ") || !strings.Contains(e.Error, tt.errPart) {
				t.Errorf("error %q, want publish: ...%s", e.Error, tt.errPart)
			}
			// The increment stands.
			if v := do(t, http.MethodGet, srv.URL+"/counters/a/value"); v.Body != `{"name":"a","value":1}` {
				t.Errorf("value after failed publish: %q", v.Body)
			}
		})
	}
}

func TestNotFoundAndMethods(t *testing.T) {
	pub := newFakePublisher(t)
	srv := startOrigin(t, Config{PublishURL: pub.url()})
	long := strings.Repeat("a", MaxNameLen+1)
	for _, name := range []string{"A", "a_b", "a.b", "caf%C3%A9", "a%2Fb", long} {
		for _, suffix := range []string{"", "/events", "/stream", "/value"} {
			path := "/counters/" + name + suffix
			if r := do(t, http.MethodGet, srv.URL+path); r.Status != http.StatusNotFound {
				t.Errorf("GET %s: %d, want 404", path, r.Status)
			}
		}
		path := "/counters/" + name + "/increment"
		if r := do(t, http.MethodPost, srv.URL+path); r.Status != http.StatusNotFound {
			t.Errorf("POST %s: %d, want 404", path, r.Status)
		}
	}
	for _, path := range []string{"/nope", "/counters/a/nope", "/counters/a/b/c", "/counters/"} {
		if r := do(t, http.MethodGet, srv.URL+path); r.Status != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, r.Status)
		}
	}
	if r := do(t, http.MethodGet, srv.URL+"/counters/"+strings.Repeat("a", MaxNameLen)+"/value"); r.Status != http.StatusOK {
		t.Errorf("name of %d chars: %d, want 200", MaxNameLen, r.Status)
	}
	for _, q := range []string{"", "?counters=", "?counters=a,,b", "?counters=A", "?counters=a,b,c,d,e,f,g,h,i"} {
		if r := do(t, http.MethodGet, srv.URL+"/events"+q); r.Status != http.StatusBadRequest {
			t.Errorf("GET /events%s: %d, want 400", q, r.Status)
		}
	}
	for _, tt := range []struct{ method, path, allow string }{
		{http.MethodPost, "/counters/a/events", "GET, HEAD"},
		{http.MethodPost, "/counters/a", "GET, HEAD"},
		{http.MethodDelete, "/counters/a/value", "GET, HEAD"},
		{http.MethodGet, "/counters/a/increment", "POST"},
		{http.MethodPut, "/", "GET, HEAD"},
	} {
		r := do(t, tt.method, srv.URL+tt.path)
		if r.Status != http.StatusMethodNotAllowed || r.Header.Get("Allow") != tt.allow {
			t.Errorf("%s %s: %d Allow %q, want 405 Allow %q", tt.method, tt.path, r.Status, r.Header.Get("Allow"), tt.allow)
		}
	}
	if n := len(pub.received()); n != 0 {
		t.Errorf("%d publishes, want 0", n)
	}
}

func TestCounterLimit(t *testing.T) {
	pub := newFakePublisher(t)
	o := New(Config{PublishURL: pub.url()})
	post := func(name string) int {
		w := httptest.NewRecorder()
		o.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/counters/"+name+"/increment", nil))
		return w.Code
	}
	for i := range MaxCounters {
		if code := post(fmt.Sprintf("c%d", i)); code != http.StatusOK {
			t.Fatalf("counter %d: %d", i, code)
		}
	}
	if code := post("one-too-many"); code != http.StatusTooManyRequests {
		t.Errorf("counter %d: %d, want 429", MaxCounters+1, code)
	}
	if code := post("c0"); code != http.StatusOK {
		t.Errorf("existing counter after limit: %d, want 200", code)
	}
	// Reading unknown counters does not create them.
	w := httptest.NewRecorder()
	o.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/counters/unseen/events", nil))
	if w.Code != http.StatusOK || len(o.counters) != MaxCounters {
		t.Errorf("read unseen: %d, %d counters", w.Code, len(o.counters))
	}
}

func TestConcurrentIncrementsPublishInOrder(t *testing.T) {
	pub := newFakePublisher(t)
	srv := startOrigin(t, Config{PublishURL: pub.url()})
	const n = 40
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if r := do(t, http.MethodPost, srv.URL+"/counters/a/increment"); r.Status != http.StatusOK {
				t.Errorf("increment: %d", r.Status)
			}
		})
	}
	wg.Wait()
	if r := do(t, http.MethodGet, srv.URL+"/counters/a/value"); r.Body != fmt.Sprintf(`{"name":"a","value":%d}`, n) {
		t.Errorf("final value %q", r.Body)
	}
	recs := pub.received()
	if len(recs) != n {
		t.Fatalf("%d publishes, want %d", len(recs), n)
	}
	for i, rec := range recs {
		var req publishRequest
		if err := json.Unmarshal(rec.Body, &req); err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprint(i + 1); req.Items[0].ID != want || req.Items[1].ID != want {
			t.Errorf("publish %d has ids %q/%q, want %s (in order)", i, req.Items[0].ID, req.Items[1].ID, want)
		}
	}
}

func TestDefaultClient(t *testing.T) {
	o := New(Config{PublishURL: "http://127.0.0.1:1/"})
	if o.client == nil || o.client.Timeout != 5*time.Second {
		t.Errorf("default client %+v, want 5s timeout", o.client)
	}
	c := &http.Client{}
	if o := New(Config{Client: c}); o.client != c {
		t.Error("Config.Client not used")
	}
}

func TestIncrementPurgesAndPublishesInOneCall(t *testing.T) {
	pub := newFakePublisher(t)
	srv := startOrigin(t, Config{PublishURL: pub.url(), PurgeKeys: true})
	if r := do(t, http.MethodPost, srv.URL+"/counters/b/increment"); r.Status != http.StatusOK {
		t.Fatalf("increment: %d %s", r.Status, r.Body)
	}
	recs := pub.received()
	if len(recs) != 1 {
		t.Fatalf("%d publish calls", len(recs))
	}
	var body struct {
		Purge struct{ Keys []string } `json:"purge"`
		Items []struct{ Channel string }
	}
	if err := json.Unmarshal(recs[0].Body, &body); err != nil {
		t.Fatal(err)
	}
	if len(body.Purge.Keys) != 1 || body.Purge.Keys[0] != "counter-b" || len(body.Items) != 2 {
		t.Fatalf("purge-publish body: %s", recs[0].Body)
	}
}
