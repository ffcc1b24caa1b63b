package cache

import (
	"sync"
	"testing"
)

// TestOutdatedEntriesAreRefetchedOnce: a fresh entry the caller calls
// outdated is fetched again, concurrent requests sharing one fetch; while
// the origin fails, it is still served.
func TestOutdatedEntriesAreRefetchedOnce(t *testing.T) {
	c, _ := newCache(t)
	o := &origin{}
	o.set("v1", "Cache-Control", "max-age=600")
	get(t, c, o, greq("http://h/lp"))
	outdated := func(e *Entry) bool { return string(e.Response.Body) == "v1" }
	req := func() *Request { r := greq("http://h/lp"); r.Outdated = outdated; return r }
	if body, res := get(t, c, o, greq("http://h/lp")); body != "v1" || res != Hit {
		t.Fatalf("without Outdated: %q %v", body, res)
	}
	o.set("v2", "Cache-Control", "max-age=600")
	o.gate = make(chan struct{})
	var wg sync.WaitGroup
	bodies := make(chan string, 20)
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e, _, err := c.Get(req(), o.fetch)
			if err != nil {
				bodies <- err.Error()
				return
			}
			bodies <- string(e.Response.Body)
		}()
	}
	waitFor(t, "one refetch and 19 waiting for it", func() bool { return o.fetches.Load() == 2 && c.flights.waiting.Load() == 19 })
	close(o.gate)
	wg.Wait()
	close(bodies)
	for b := range bodies {
		if b != "v2" {
			t.Fatalf("a request got %q", b)
		}
	}
	if n := o.fetches.Load(); n != 2 {
		t.Fatalf("%d origin fetches, want 2 (the first and one refetch)", n)
	}
	o.gate = nil
	if body, res := get(t, c, o, req()); body != "v2" || res != Hit {
		t.Fatalf("after the refetch: %q %v", body, res)
	}
	// Outdated while the origin is down: served all the same.
	c2, _ := newCache(t)
	o2 := &origin{}
	o2.set("v1", "Cache-Control", "max-age=600")
	get(t, c2, o2, greq("http://h/lp"))
	o2.fail(errDown)
	if body, res := get(t, c2, o2, req()); body != "v1" || res != StaleOnError {
		t.Fatalf("outdated, origin down: %q %v", body, res)
	}
}
