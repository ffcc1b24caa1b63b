package cache

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newCache(t *testing.T, mod ...func(*Config)) (*Cache, *clock) {
	t.Helper()
	clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	cfg := DefaultConfig()
	cfg.Now = clk.now
	for _, f := range mod {
		f(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c, clk
}

// origin is a Fetcher factory that counts fetches and answers with the
// response it currently holds (or fails).
type origin struct {
	mu      sync.Mutex
	resp    Response
	err     error
	fetches atomic.Int64
	gate    chan struct{} // if set, fetches wait for it
}

func (o *origin) set(body string, headers ...string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.resp = Response{Status: 200, Body: []byte(body)}
	for i := 0; i+1 < len(headers); i += 2 {
		o.resp.Header = append(o.resp.Header, Field{headers[i], headers[i+1]})
	}
	o.err = nil
}

func (o *origin) fail(err error) { o.mu.Lock(); o.err = err; o.mu.Unlock() }

func (o *origin) fetch() (*Response, error) {
	o.fetches.Add(1)
	if o.gate != nil {
		<-o.gate
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.err != nil {
		return nil, o.err
	}
	r := o.resp
	return &r, nil
}

func get(t *testing.T, c *Cache, o *origin, req *Request) (string, Result) {
	t.Helper()
	e, res, err := c.Get(req, o.fetch)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	return string(e.Response.Body), res
}

// waitWaiting waits until n callers wait for another's fetch.
func waitWaiting(t *testing.T, c *Cache, n int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for c.flights.waiting.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d callers waiting, want %d", c.flights.waiting.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func greq(url string) *Request { return &Request{Method: "GET", URL: url} }

var errDown = errors.New("connection refused")

func TestFreshHitThenExpiry(t *testing.T) {
	c, clk := newCache(t)
	o := &origin{}
	o.set("v1", "Cache-Control", "max-age=10")
	if body, res := get(t, c, o, greq("http://h/a")); body != "v1" || res != Miss {
		t.Fatalf("first: %q %v", body, res)
	}
	o.set("v2", "Cache-Control", "max-age=10")
	clk.add(9 * time.Second)
	if body, res := get(t, c, o, greq("http://h/a")); body != "v1" || res != Hit {
		t.Fatalf("fresh: %q %v", body, res)
	}
	clk.add(2 * time.Second)
	if body, res := get(t, c, o, greq("http://h/a")); body != "v2" || res != Miss {
		t.Fatalf("expired: %q %v", body, res)
	}
	if n := o.fetches.Load(); n != 2 {
		t.Fatalf("fetches = %d", n)
	}
	st := c.Stats()
	if st.Hits != 1 || st.Misses != 2 || st.Stores != 2 || st.Gets != 3 {
		t.Fatalf("stats %+v", st)
	}
}

func TestWhatIsNeverStored(t *testing.T) {
	for _, tc := range []struct {
		name    string
		status  int
		headers []string
		auth    bool
		stored  bool
	}{
		{"max-age", 200, []string{"Cache-Control", "max-age=60"}, false, true},
		{"s-maxage", 200, []string{"Cache-Control", "s-maxage=60"}, false, true},
		{"surrogate-control", 200, []string{"Surrogate-Control", "max-age=60"}, false, true},
		{"expires", 200, []string{"Expires", "Thu, 01 Jan 2026 00:01:00 GMT", "Date", "Thu, 01 Jan 2026 00:00:00 GMT"}, false, true},
		{"no freshness", 200, nil, false, false},
		{"no-store", 200, []string{"Cache-Control", "max-age=60, no-store"}, false, false},
		{"private", 200, []string{"Cache-Control", "private, max-age=60"}, false, false},
		{"surrogate no-store", 200, []string{"Cache-Control", "max-age=60", "Surrogate-Control", "no-store"}, false, false},
		{"vary star", 200, []string{"Cache-Control", "max-age=60", "Vary", "*"}, false, false},
		{"401", 401, []string{"Cache-Control", "max-age=60"}, false, false},
		{"403", 403, []string{"Cache-Control", "max-age=60"}, false, false},
		{"407", 407, []string{"Cache-Control", "max-age=60"}, false, false},
		{"429", 429, []string{"Cache-Control", "max-age=60"}, false, false},
		{"503", 503, []string{"Cache-Control", "max-age=60"}, false, false},
		{"404 is cacheable", 404, []string{"Cache-Control", "max-age=60"}, false, true},
		{"authorized plain max-age", 200, []string{"Cache-Control", "max-age=60"}, true, false},
		{"authorized public", 200, []string{"Cache-Control", "public, max-age=60"}, true, true},
		{"authorized s-maxage", 200, []string{"Cache-Control", "s-maxage=60"}, true, true},
		{"authorized must-revalidate", 200, []string{"Cache-Control", "max-age=60, must-revalidate"}, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := newCache(t)
			o := &origin{}
			o.set("x", tc.headers...)
			o.resp.Status = tc.status
			req := &Request{Method: "GET", URL: "http://h/x", Authorized: tc.auth}
			get(t, c, o, req)
			_, res := get(t, c, o, req)
			if stored := res == Hit; stored != tc.stored {
				t.Fatalf("second Get = %v, stored = %v, want %v", res, stored, tc.stored)
			}
		})
	}
}

func headerMap(m map[string]string) func(string) string {
	return func(n string) string { return m[n] }
}

func TestVaryIsolatesVariants(t *testing.T) {
	c, _ := newCache(t)
	o := &origin{}
	alice := &Request{Method: "GET", URL: "http://h/me", Header: headerMap(map[string]string{"X-User": "alice"})}
	bob := &Request{Method: "GET", URL: "http://h/me", Header: headerMap(map[string]string{"X-User": "bob"})}
	anon := &Request{Method: "GET", URL: "http://h/me"}
	o.set("for alice", "Cache-Control", "max-age=60", "Vary", "X-User")
	get(t, c, o, alice)
	o.set("for bob", "Cache-Control", "max-age=60", "Vary", "X-User")
	if body, _ := get(t, c, o, bob); body != "for bob" {
		t.Fatalf("bob got %q", body)
	}
	o.set("for nobody", "Cache-Control", "max-age=60", "Vary", "X-User")
	if body, _ := get(t, c, o, anon); body != "for nobody" {
		t.Fatalf("anonymous got %q", body)
	}
	if body, res := get(t, c, o, alice); body != "for alice" || res != Hit {
		t.Fatalf("alice again: %q %v", body, res)
	}
}

func TestConcurrentMissesMakeOneFetch(t *testing.T) {
	c, _ := newCache(t)
	o := &origin{gate: make(chan struct{})}
	o.set("shared", "Cache-Control", "max-age=60")
	const n = 1000
	var wg sync.WaitGroup
	results := make(chan string, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e, _, err := c.Get(greq("http://h/hot"), o.fetch)
			if err != nil {
				results <- err.Error()
				return
			}
			results <- string(e.Response.Body)
		}()
	}
	waitWaiting(t, c, n-1)
	close(o.gate)
	wg.Wait()
	close(results)
	for r := range results {
		if r != "shared" {
			t.Fatalf("a caller got %q", r)
		}
	}
	if f := o.fetches.Load(); f != 1 {
		t.Fatalf("%d concurrent misses made %d fetches, want 1", n, f)
	}
}

func TestCoalescedWaitersWithOtherCredentialsOrVaryRefetch(t *testing.T) {
	c, _ := newCache(t)
	o := &origin{gate: make(chan struct{})}
	o.set("private to alice", "Cache-Control", "private")
	done := make(chan string, 2)
	for _, cred := range []string{"alice", "alice"} {
		go func() {
			e, _, err := c.Get(&Request{Method: "GET", URL: "http://h/p", Authorized: true, Credentials: cred}, o.fetch)
			if err != nil {
				done <- err.Error()
				return
			}
			done <- string(e.Response.Body)
		}()
	}
	waitWaiting(t, c, 1)
	close(o.gate)
	<-done
	<-done
	// The waiter could not reuse a private answer: it fetched its own.
	if f := o.fetches.Load(); f != 2 {
		t.Fatalf("fetches = %d, want 2", f)
	}
}

func TestStaleIfError(t *testing.T) {
	c, clk := newCache(t, func(cfg *Config) { cfg.StaleIfError = time.Hour })
	o := &origin{}
	o.set("kept", "Cache-Control", "max-age=10")
	get(t, c, o, greq("http://h/s"))
	o.fail(errDown)
	clk.add(30 * time.Minute)
	if body, res := get(t, c, o, greq("http://h/s")); body != "kept" || res != StaleOnError {
		t.Fatalf("origin down: %q %v", body, res)
	}
	// 5xx counts as failing too.
	o.set("oops", "Cache-Control", "max-age=10")
	o.resp.Status = 503
	if body, res := get(t, c, o, greq("http://h/s")); body != "kept" || res != StaleOnError {
		t.Fatalf("origin 503: %q %v", body, res)
	}
	clk.add(31 * time.Minute) // beyond the window
	o.fail(errDown)
	if _, _, err := c.Get(greq("http://h/s"), o.fetch); !errors.Is(err, errDown) {
		t.Fatalf("beyond stale-if-error: %v", err)
	}
	if st := c.Stats(); st.StaleOnError != 2 || st.OriginErrors != 3 {
		t.Fatalf("stats %+v", st)
	}
}

func TestStaleIfErrorWindowRules(t *testing.T) {
	for _, tc := range []struct {
		name    string
		def     time.Duration
		cc      string
		wait    time.Duration
		servedd bool
	}{
		{"response window", 0, "max-age=1, stale-if-error=100", 50 * time.Second, true},
		{"response window over", 0, "max-age=1, stale-if-error=100", 200 * time.Second, false},
		{"node default", time.Hour, "max-age=1", 50 * time.Minute, true},
		{"disabled", 0, "max-age=1", 5 * time.Second, false},
		{"must-revalidate", time.Hour, "max-age=1, must-revalidate", 5 * time.Second, false},
		{"must-revalidate opts in", time.Hour, "max-age=1, must-revalidate, stale-if-error=60", 5 * time.Second, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, clk := newCache(t, func(cfg *Config) { cfg.StaleIfError = tc.def })
			o := &origin{}
			o.set("old", "Cache-Control", tc.cc)
			get(t, c, o, greq("http://h/w"))
			clk.add(tc.wait)
			o.fail(errDown)
			_, res, err := c.Get(greq("http://h/w"), o.fetch)
			if served := err == nil && res == StaleOnError; served != tc.servedd {
				t.Fatalf("served stale = %v (%v, %v), want %v", served, res, err, tc.servedd)
			}
		})
	}
}

func TestStaleWhileRevalidate(t *testing.T) {
	c, clk := newCache(t)
	o := &origin{}
	o.set("v1", "Cache-Control", "max-age=10, stale-while-revalidate=60")
	get(t, c, o, greq("http://h/r"))
	clk.add(20 * time.Second)
	o.gate = make(chan struct{})
	o.set("v2", "Cache-Control", "max-age=10, stale-while-revalidate=60")
	for range 5 {
		if body, res := get(t, c, o, greq("http://h/r")); body != "v1" || res != StaleRevalidating {
			t.Fatalf("during revalidation: %q %v", body, res)
		}
	}
	close(o.gate)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if body, res := get(t, c, o, greq("http://h/r")); body == "v2" && res == Hit {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("background refresh never stored v2")
		}
		time.Sleep(time.Millisecond)
	}
	if f := o.fetches.Load(); f != 2 {
		t.Fatalf("fetches = %d, want 2 (one background refresh)", f)
	}
}

func TestSoftAndHardPurge(t *testing.T) {
	c, _ := newCache(t)
	o := &origin{}
	o.set("v1", "Cache-Control", "max-age=60", "Surrogate-Key", "counter-a all")
	get(t, c, o, greq("http://h/a"))

	c.Purge("counter-a", true) // soft: stale, so refetched...
	o.set("v2", "Cache-Control", "max-age=60", "Surrogate-Key", "counter-a all")
	if body, res := get(t, c, o, greq("http://h/a")); body != "v2" || res != Miss {
		t.Fatalf("after soft purge: %q %v", body, res)
	}
	c.Purge("all", true) // ...but served if the origin is down
	o.fail(errDown)
	if body, res := get(t, c, o, greq("http://h/a")); body != "v2" || res != StaleOnError {
		t.Fatalf("soft-purged, origin down: %q %v", body, res)
	}
	c.Purge("counter-a", false) // hard: gone
	if _, _, err := c.Get(greq("http://h/a"), o.fetch); !errors.Is(err, errDown) {
		t.Fatalf("hard-purged, origin down: %v", err)
	}
	o.set("v3", "Cache-Control", "max-age=60")
	get(t, c, o, greq("http://h/b?x=1"))
	c.PurgeURL("http://h/b?x=1", false)
	o.set("v4", "Cache-Control", "max-age=60")
	if body, _ := get(t, c, o, greq("http://h/b?x=1")); body != "v4" {
		t.Fatalf("after URL purge: %q", body)
	}
}

func TestPurgeDuringFetchDoesNotStorePrePurgeData(t *testing.T) {
	c, _ := newCache(t)
	o := &origin{gate: make(chan struct{})}
	o.set("pre-purge", "Cache-Control", "max-age=60", "Surrogate-Key", "k")
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Get(greq("http://h/race"), o.fetch)
	}()
	for o.fetches.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	c.Purge("k", false) // the data being fetched is already out of date
	close(o.gate)
	<-done
	o.gate = nil
	o.set("post-purge", "Cache-Control", "max-age=60", "Surrogate-Key", "k")
	if body, res := get(t, c, o, greq("http://h/race")); body != "post-purge" || res != Miss {
		t.Fatalf("after purge during fetch: %q %v", body, res)
	}
}

func TestHotEntryKeptUnderEviction(t *testing.T) {
	c, _ := newCache(t, func(cfg *Config) { cfg.MaxBytes = 64 << 10 })
	o := &origin{}
	o.set("hot", "Cache-Control", "max-age=600")
	get(t, c, o, greq("http://h/hot"))
	for i := range 2000 {
		get(t, c, o, greq("http://h/hot")) // keep it hot
		cold := &origin{}
		cold.set(string(bytes.Repeat([]byte("c"), 2000)), "Cache-Control", "max-age=600")
		get(t, c, cold, greq(fmt.Sprintf("http://h/cold/%d", i)))
	}
	if _, res := get(t, c, o, greq("http://h/hot")); res != Hit {
		t.Fatalf("hot entry: %v", res)
	}
	st := c.Stats()
	if st.Bytes > 64<<10 || st.Evictions+st.Rejected == 0 {
		t.Fatalf("stats %+v: want bytes within the limit and evictions", st)
	}
}

func TestCompressedVariants(t *testing.T) {
	c, _ := newCache(t)
	body := bytes.Repeat([]byte(`{"counter":"a","value":1234}`), 100)
	fetch := func() (*Response, error) {
		return &Response{Status: 200, Body: body, Compress: true, Header: []Field{
			{"Content-Type", "application/json"}, {"Cache-Control", "max-age=60"}}}, nil
	}
	e, _, err := c.Get(greq("http://h/json"), fetch)
	if err != nil {
		t.Fatal(err)
	}
	zb, enc := e.Body("gzip, deflate, br, zstd")
	if enc != "zstd" || len(zb) >= len(body) {
		t.Fatalf("zstd variant: %q %d bytes", enc, len(zb))
	}
	dec, _ := zstd.NewReader(nil)
	defer dec.Close()
	if out, err := dec.DecodeAll(zb, nil); err != nil || !bytes.Equal(out, body) {
		t.Fatalf("zstd round trip: %v", err)
	}
	gb, enc := e.Body("gzip;q=1, zstd;q=0")
	if enc != "gzip" {
		t.Fatalf("gzip variant: %q", enc)
	}
	zr, _ := gzip.NewReader(bytes.NewReader(gb))
	if out, _ := io.ReadAll(zr); !bytes.Equal(out, body) {
		t.Fatal("gzip round trip")
	}
	if b, enc := e.Body(""); enc != "" || !bytes.Equal(b, body) {
		t.Fatal("identity")
	}
}

func TestAge(t *testing.T) {
	c, clk := newCache(t)
	o := &origin{}
	o.set("x", "Cache-Control", "max-age=100", "Age", "30")
	get(t, c, o, greq("http://h/age"))
	clk.add(20 * time.Second)
	e, res, _ := c.Get(greq("http://h/age"), o.fetch)
	if res != Hit || e.Age(clk.now()) != 50*time.Second {
		t.Fatalf("%v age %v", res, e.Age(clk.now()))
	}
	clk.add(60 * time.Second) // 110s old: past max-age=100
	if _, res := get(t, c, o, greq("http://h/age")); res != Miss {
		t.Fatalf("past max-age counting Age: %v", res)
	}
}

func TestBypassForOtherMethods(t *testing.T) {
	c, _ := newCache(t)
	o := &origin{}
	o.set("posted", "Cache-Control", "max-age=60")
	for range 2 {
		if _, res := get(t, c, o, &Request{Method: "POST", URL: "http://h/p"}); res != Bypass {
			t.Fatalf("POST: %v", res)
		}
	}
	if o.fetches.Load() != 2 {
		t.Fatal("POST was cached")
	}
}

// BenchmarkGetHit is the cost of answering from a fresh entry.
func BenchmarkGetHit(b *testing.B) {
	c, err := New(DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	fetch := func() (*Response, error) {
		return &Response{Status: 200, Body: []byte("hello"), Header: []Field{
			{"Cache-Control", "max-age=600"}, {"Surrogate-Key", "a b"}}}, nil
	}
	req := greq("http://h/bench?x=1")
	c.Get(req, fetch)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, res, _ := c.Get(req, fetch); res != Hit {
				b.Fatal(res)
			}
		}
	})
}

// BenchmarkGetHitVary is a hit on an entry that varies on two headers.
func BenchmarkGetHitVary(b *testing.B) {
	c, err := New(DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	fetch := func() (*Response, error) {
		return &Response{Status: 200, Body: []byte("hello"), Header: []Field{
			{"Cache-Control", "max-age=600"}, {"Vary", "Accept, X-User"}}}, nil
	}
	req := &Request{Method: "GET", URL: "http://h/v", Header: headerMap(map[string]string{"Accept": "text/event-stream", "X-User": "alice"})}
	c.Get(req, fetch)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, res, _ := c.Get(req, fetch); res != Hit {
			b.Fatal(res)
		}
	}
}

func TestEntriesCount(t *testing.T) {
	c, clk := newCache(t)
	o := &origin{}
	o.set("v1", "Cache-Control", "max-age=10", "Surrogate-Key", "k")
	get(t, c, o, greq("http://h/a"))
	get(t, c, o, greq("http://h/b"))
	if st := c.Stats(); st.Entries != 2 || st.Bytes == 0 {
		t.Fatalf("two stored: %+v", st)
	}
	clk.add(11 * time.Second) // expired: the refetch replaces the entry
	get(t, c, o, greq("http://h/a"))
	if st := c.Stats(); st.Entries != 2 {
		t.Fatalf("after a replacement: %d entries", st.Entries)
	}
	c.Purge("k", false) // hard: dropped when next looked up
	o.set("v2", "Cache-Control", "no-store")
	get(t, c, o, greq("http://h/a"))
	get(t, c, o, greq("http://h/b"))
	if st := c.Stats(); st.Entries != 0 {
		t.Fatalf("after a hard purge: %d entries", st.Entries)
	}
}
