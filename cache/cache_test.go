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
	checkStatsAdd(t, c)
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
	if st := c.Stats(); st.Misses != n || st.Coalesced != n-1 {
		t.Fatalf("stats %+v", st)
	}
	checkStatsAdd(t, c)
}

// answer is what one Get returned.
type answer struct {
	body string
	res  Result
	err  error
}

// goGet runs Get in a goroutine; its answer comes on the channel.
func goGet(c *Cache, req *Request, fetch Fetcher) <-chan answer {
	ch := make(chan answer, 1)
	go func() {
		e, res, err := c.Get(req, fetch)
		a := answer{res: res, err: err}
		if err == nil {
			a.body = string(e.Response.Body)
		}
		ch <- a
	}()
	return ch
}

// await returns the answer on ch, failing after a generous bound.
func await(t *testing.T, what string, ch <-chan answer) answer {
	t.Helper()
	select {
	case a := <-ch:
		if a.err != nil {
			t.Fatalf("%s: %v", what, a.err)
		}
		return a
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: no answer", what)
		return answer{}
	}
}

// waitFor waits until cond holds, failing after a generous bound.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// checkStatsAdd checks that every Get was counted once in one outcome.
func checkStatsAdd(t *testing.T, c *Cache) {
	t.Helper()
	st := c.Stats()
	if sum := st.Hits + st.Misses + st.StaleRevalidating + st.Bypass; st.Gets != sum {
		t.Fatalf("Gets %d != Hits+Misses+StaleRevalidating+Bypass %d: %+v", st.Gets, sum, st)
	}
	if st.Coalesced > st.Misses || st.StaleOnError > st.Misses {
		t.Fatalf("Coalesced and StaleOnError must be misses: %+v", st)
	}
}

// TestConcurrentMissesWithOtherCredentialsDoNotShare: misses with
// different Authorization values do not wait for each other's fetch, and
// each gets its own answer.
func TestConcurrentMissesWithOtherCredentialsDoNotShare(t *testing.T) {
	c, _ := newCache(t)
	alice := &origin{gate: make(chan struct{})}
	alice.set("for alice", "Cache-Control", "private")
	bob := &origin{}
	bob.set("for bob", "Cache-Control", "private")
	req := func(cred string) *Request {
		return &Request{Method: "GET", URL: "http://h/p", Authorized: true, Credentials: cred}
	}
	aliceDone := goGet(c, req("Basic YWxpY2U6eA=="), alice.fetch)
	waitFor(t, "alice's fetch", func() bool { return alice.fetches.Load() == 1 })
	// Alice's fetch is in progress: Bob must not wait for it.
	bobDone := goGet(c, req("Basic Ym9iOng="), bob.fetch)
	waitFor(t, "Bob's answer", func() bool {
		if c.flights.waiting.Load() != 0 {
			close(alice.gate)
			t.Fatal("Bob waits for Alice's fetch")
		}
		return len(bobDone) == 1
	})
	if a := await(t, "bob", bobDone); a.body != "for bob" || a.res != Miss {
		t.Fatalf("bob got %q %v", a.body, a.res)
	}
	close(alice.gate)
	if a := await(t, "alice", aliceDone); a.body != "for alice" || a.res != Miss {
		t.Fatalf("alice got %q %v", a.body, a.res)
	}
	if a, b := alice.fetches.Load(), bob.fetches.Load(); a != 1 || b != 1 {
		t.Fatalf("fetches: alice %d, bob %d, want 1 each", a, b)
	}
	if st := c.Stats(); st.Coalesced != 0 || st.Misses != 2 {
		t.Fatalf("stats %+v", st)
	}
	checkStatsAdd(t, c)
}

// TestCoalescedWaiterWithSameCredentialsRefetchesPrivateAnswer: a waiter
// with the same credentials does not reuse an answer the cache may not
// store (private): it fetches its own.
func TestCoalescedWaiterWithSameCredentialsRefetchesPrivateAnswer(t *testing.T) {
	c, _ := newCache(t)
	gate := make(chan struct{})
	var n atomic.Int64
	fetch := func() (*Response, error) {
		i := n.Add(1)
		if i == 1 {
			<-gate
		}
		return &Response{Status: 200, Body: fmt.Appendf(nil, "answer %d", i),
			Header: []Field{{"Cache-Control", "private, max-age=60"}}}, nil
	}
	req := func() *Request {
		return &Request{Method: "GET", URL: "http://h/p", Authorized: true, Credentials: "Bearer t"}
	}
	first := goGet(c, req(), fetch)
	waitFor(t, "the first fetch", func() bool { return n.Load() == 1 })
	second := goGet(c, req(), fetch)
	waitWaiting(t, c, 1)
	close(gate)
	if a := await(t, "leader", first); a.body != "answer 1" {
		t.Fatalf("leader got %q", a.body)
	}
	if a := await(t, "waiter", second); a.body != "answer 2" || a.res != Miss {
		t.Fatalf("waiter got %q %v, want its own fetch", a.body, a.res)
	}
	if st := c.Stats(); st.Coalesced != 1 || st.Fetches != 2 {
		t.Fatalf("stats %+v", st)
	}
	checkStatsAdd(t, c)
}

// langOrigin answers in the request's Accept-Language and varies on it;
// the first fetch waits for gate.
type langOrigin struct {
	gate    chan struct{}
	fetches sync.Map // language -> *atomic.Int64
	total   atomic.Int64
}

func (o *langOrigin) fetcher(lang string) Fetcher {
	return func() (*Response, error) {
		n, _ := o.fetches.LoadOrStore(lang, new(atomic.Int64))
		n.(*atomic.Int64).Add(1)
		if o.total.Add(1) == 1 {
			<-o.gate
		}
		return &Response{Status: 200, Body: []byte("hello in " + lang), Header: []Field{
			{"Cache-Control", "max-age=60"}, {"Vary", "Accept-Language"}}}, nil
	}
}

func (o *langOrigin) count(lang string) int64 {
	n, ok := o.fetches.Load(lang)
	if !ok {
		return 0
	}
	return n.(*atomic.Int64).Load()
}

// TestCoalescedWaiterWithOtherVaryValueFetchesItsOwn: concurrent misses
// wait for one fetch, but the answer varies on Accept-Language: the waiter
// with the same value shares it, the one with another value fetches its
// own answer.
func TestCoalescedWaiterWithOtherVaryValueFetchesItsOwn(t *testing.T) {
	c, _ := newCache(t)
	o := &langOrigin{gate: make(chan struct{})}
	req := func(lang string) *Request {
		return &Request{Method: "GET", URL: "http://h/greeting",
			Header: headerMap(map[string]string{"Accept-Language": lang})}
	}
	leader := goGet(c, req("en"), o.fetcher("en"))
	waitFor(t, "the leader's fetch", func() bool { return o.total.Load() == 1 })
	sameLang := goGet(c, req("en"), o.fetcher("en"))
	otherLang := goGet(c, req("fr"), o.fetcher("fr"))
	waitWaiting(t, c, 2) // both wait for the leader's fetch
	close(o.gate)
	if a := await(t, "leader", leader); a.body != "hello in en" || a.res != Miss {
		t.Fatalf("leader got %q %v", a.body, a.res)
	}
	if a := await(t, "en waiter", sameLang); a.body != "hello in en" || a.res != Miss {
		t.Fatalf("en waiter got %q %v", a.body, a.res)
	}
	if a := await(t, "fr waiter", otherLang); a.body != "hello in fr" || a.res != Miss {
		t.Fatalf("fr waiter got %q %v, want its own answer", a.body, a.res)
	}
	if en, fr := o.count("en"), o.count("fr"); en != 1 || fr != 1 {
		t.Fatalf("fetches: en %d, fr %d, want 1 each", en, fr)
	}
	// Both variants are stored.
	for _, lang := range []string{"en", "fr"} {
		e, res, err := c.Get(req(lang), o.fetcher(lang))
		if err != nil || res != Hit || string(e.Response.Body) != "hello in "+lang {
			t.Fatalf("%s again: %v %v", lang, res, err)
		}
	}
	if st := c.Stats(); st.Coalesced != 2 || st.Fetches != 2 {
		t.Fatalf("stats %+v", st)
	}
	checkStatsAdd(t, c)
}

// TestMissJustAfterAnotherFlightStoredIsAHit: a Get whose lookup came
// before another flight stored the entry, and whose own flight began
// after that flight ended, finds the entry on its flight's re-check
// instead of fetching again. To make the order deterministic, the earlier
// entry varied on X-Old and the new one varies on X-New: B's lookup,
// paused in its Header, uses the X-Old spec read before A stored.
func TestMissJustAfterAnotherFlightStoredIsAHit(t *testing.T) {
	c, clk := newCache(t)
	o := &origin{}
	o.set("old", "Cache-Control", "max-age=10", "Vary", "X-Old")
	get(t, c, o, greq("http://h/n"))
	clk.add(11 * time.Second) // expired

	o.gate = make(chan struct{})
	o.set("new", "Cache-Control", "max-age=60", "Vary", "X-New")
	aDone := goGet(c, greq("http://h/n"), o.fetch)
	waitFor(t, "A's fetch", func() bool { return o.fetches.Load() == 2 })

	inLookup, resume := make(chan struct{}), make(chan struct{})
	var once sync.Once
	b := &Request{Method: "GET", URL: "http://h/n", Header: func(name string) string {
		if name == "X-Old" {
			once.Do(func() { close(inLookup); <-resume })
		}
		return ""
	}}
	bDone := goGet(c, b, o.fetch)
	select {
	case <-inLookup: // B's lookup has read the X-Old spec
	case <-time.After(10 * time.Second):
		t.Fatal("B never looked up")
	}
	close(o.gate)
	if a := await(t, "A", aDone); a.body != "new" || a.res != Miss {
		t.Fatalf("A got %q %v", a.body, a.res)
	}
	// A stored the entry and its flight is over; B's lookup goes on and
	// misses (it looks for an X-Old variant).
	close(resume)
	if a := await(t, "B", bDone); a.body != "new" || a.res != Hit {
		t.Fatalf("B got %q %v, want new Hit", a.body, a.res)
	}
	if f := o.fetches.Load(); f != 2 {
		t.Fatalf("fetches = %d, want 2 (B must not fetch again)", f)
	}
	if st := c.Stats(); st.Gets != 3 || st.Hits != 1 || st.Misses != 2 {
		t.Fatalf("stats %+v", st)
	}
	checkStatsAdd(t, c)
}

// TestRefreshJustAfterAnotherRefreshStoredMakesNoFetch is the same order
// for stale-while-revalidate: a stale hit whose lookup came before a
// refresh stored the new entry starts a refresh that finds it.
func TestRefreshJustAfterAnotherRefreshStoredMakesNoFetch(t *testing.T) {
	c, clk := newCache(t)
	o := &origin{}
	o.set("old", "Cache-Control", "max-age=10, stale-while-revalidate=60", "Vary", "X-Old")
	get(t, c, o, greq("http://h/r"))
	clk.add(20 * time.Second) // stale, within stale-while-revalidate

	o.gate = make(chan struct{})
	o.set("new", "Cache-Control", "max-age=60", "Vary", "X-New")
	if body, res := get(t, c, o, greq("http://h/r")); body != "old" || res != StaleRevalidating {
		t.Fatalf("A: %q %v", body, res)
	}
	inLookup, resume := make(chan struct{}), make(chan struct{})
	var once sync.Once
	b := &Request{Method: "GET", URL: "http://h/r", Header: func(name string) string {
		if name == "X-Old" {
			once.Do(func() { close(inLookup); <-resume })
		}
		return ""
	}}
	bDone := goGet(c, b, o.fetch)
	select {
	case <-inLookup:
	case <-time.After(10 * time.Second):
		t.Fatal("B never looked up")
	}
	close(o.gate)
	waitFor(t, "A's refresh to end", func() bool {
		c.flights.mu.Lock()
		defer c.flights.mu.Unlock()
		return len(c.flights.calls) == 0 && c.Stats().Stores == 2
	})
	close(resume)
	if a := await(t, "B", bDone); a.body != "old" || a.res != StaleRevalidating {
		t.Fatalf("B got %q %v", a.body, a.res)
	}
	c.bg.Wait() // B's refresh
	if f := o.fetches.Load(); f != 2 {
		t.Fatalf("fetches = %d, want 2 (one refresh)", f)
	}
	if body, res := get(t, c, o, greq("http://h/r")); body != "new" || res != Hit {
		t.Fatalf("after the refresh: %q %v", body, res)
	}
	checkStatsAdd(t, c)
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
	checkStatsAdd(t, c)
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
	checkStatsAdd(t, c)
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

// TestHotEntryKeptUnderEviction: an entry read between every two inserts
// of a flood of cold ones (the cache holds about 30 of them) is served
// from the cache for most of the flood. The store's eviction is sampled
// and learns how often entries are read from access records it may drop
// (nearly all of them under the race detector, whose sync.Pool drops
// items), so the hot entry is evicted now and then, the last insert
// included: how often it was a hit is counted, not whether the last read
// was one.
func TestHotEntryKeptUnderEviction(t *testing.T) {
	c, _ := newCache(t, func(cfg *Config) { cfg.MaxBytes = 64 << 10 })
	o := &origin{}
	o.set("hot", "Cache-Control", "max-age=600")
	get(t, c, o, greq("http://h/hot"))
	const n = 2000
	hits := 0
	for i := range n {
		if _, res := get(t, c, o, greq("http://h/hot")); res == Hit { // keep it hot
			hits++
		}
		cold := &origin{}
		cold.set(string(bytes.Repeat([]byte("c"), 2000)), "Cache-Control", "max-age=600")
		get(t, c, cold, greq(fmt.Sprintf("http://h/cold/%d", i)))
	}
	if hits < n/2 {
		t.Fatalf("hot entry served from the cache %d times of %d", hits, n)
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
	checkStatsAdd(t, c)
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

// Field is an alias of the unnamed struct type: header lists built from
// it, or from another package's alias of it, need no conversion.
var _ []Field = []struct{ Name, Value string }{{"Cache-Control", "max-age=60"}}

func TestNamespacesAreSeparate(t *testing.T) {
	c, _ := newCache(t)
	const url = "http://h/live"
	ws := &Request{Namespace: "ws", Method: "GET", URL: url}
	other := &Request{Namespace: "sse", Method: "GET", URL: url}
	httpo, wso, othero := &origin{}, &origin{}, &origin{}
	httpo.set("http answer", "Cache-Control", "max-age=60")
	wso.set("ws answer", "Cache-Control", "max-age=60")
	othero.set("sse answer", "Cache-Control", "max-age=60")
	for _, r := range []struct {
		req  *Request
		o    *origin
		body string
	}{{greq(url), httpo, "http answer"}, {ws, wso, "ws answer"}, {other, othero, "sse answer"}} {
		if body, res := get(t, c, r.o, r.req); body != r.body || res != Miss {
			t.Fatalf("%q first: %q %v", r.req.Namespace, body, res)
		}
		if body, res := get(t, c, r.o, r.req); body != r.body || res != Hit {
			t.Fatalf("%q again: %q %v", r.req.Namespace, body, res)
		}
	}
	// A URL purge reaches every namespace.
	c.PurgeURL(url, false)
	for _, r := range []*Request{greq(url), ws, other} {
		if _, res := get(t, c, httpo, r); res != Miss {
			t.Fatalf("%q after PurgeURL: %v", r.Namespace, res)
		}
	}
	checkStatsAdd(t, c)
}

func TestOpenMethodIsNotCached(t *testing.T) {
	c, _ := newCache(t)
	o := &origin{}
	o.set("opened", "Cache-Control", "max-age=60")
	for range 2 {
		if _, res := get(t, c, o, &Request{Method: "OPEN", URL: "http://h/ws"}); res != Bypass {
			t.Fatalf("OPEN: %v", res)
		}
	}
	if o.fetches.Load() != 2 {
		t.Fatal("OPEN was cached")
	}
}

// TestRefreshUsesDetachedRequest: the background refresh runs with the
// request and fetcher Detach returned, not with the caller's, whose
// buffers are reused once Get returns.
func TestRefreshUsesDetachedRequest(t *testing.T) {
	c, clk := newCache(t)
	o := &origin{}
	o.set("v1", "Cache-Control", "max-age=10, stale-while-revalidate=60", "Vary", "X-Lang")
	get(t, c, o, &Request{Method: "GET", URL: "http://h/d", Header: headerMap(map[string]string{"X-Lang": "en"})})
	clk.add(20 * time.Second)

	buf := map[string]string{"X-Lang": "en"} // the caller's reused buffer
	detached := &origin{gate: make(chan struct{})}
	detached.set("v2", "Cache-Control", "max-age=60", "Vary", "X-Lang")
	var detaches atomic.Int64
	req := &Request{Method: "GET", URL: "http://h/d", Header: headerMap(buf)}
	req.Detach = func() (*Request, Fetcher) {
		detaches.Add(1)
		cp := *req
		cp.Header = headerMap(map[string]string{"X-Lang": buf["X-Lang"]})
		cp.Detach = func() (*Request, Fetcher) { t.Error("Detach called on the copy"); return nil, nil }
		return &cp, detached.fetch
	}
	callerFetch := func() (*Response, error) {
		t.Error("the refresh used the fetcher given to Get")
		return nil, errDown
	}
	e, res, err := c.Get(req, callerFetch)
	if err != nil || res != StaleRevalidating || string(e.Response.Body) != "v1" {
		t.Fatalf("stale hit: %v %v", res, err)
	}
	if n := detaches.Load(); n != 1 {
		t.Fatalf("Detach called %d times before Get returned, want 1", n)
	}
	buf["X-Lang"] = "garbage" // Get has returned: the caller reuses its buffers
	close(detached.gate)
	c.bg.Wait()
	if body, res := get(t, c, o, &Request{Method: "GET", URL: "http://h/d", Header: headerMap(map[string]string{"X-Lang": "en"})}); body != "v2" || res != Hit {
		t.Fatalf("after the refresh: %q %v (stored under the wrong variant?)", body, res)
	}
	if f := detached.fetches.Load(); f != 1 {
		t.Fatalf("detached fetches = %d", f)
	}
}
