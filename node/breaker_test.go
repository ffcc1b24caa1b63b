package node

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestPerRequestFailuresDoNotOpenTheBreaker: the pattern of the
// cache-tests suite, whose origin answers 5xx on many URLs and drops the
// connection without answering on several at the same moment while
// other requests run: however many, in a row or at once, they do not
// open the breaker (a 5xx is an answer; a URL that fails again and again
// counts once; failures at one moment are not an origin gone), and the
// other URLs keep being served. A 5xx answer is the origin's own (the
// client gets it), not the node's 502.
func TestPerRequestFailuresDoNotOpenTheBreaker(t *testing.T) {
	n := startNode(t, failingOrigin(), func(c *Config) { c.OriginFailures = 3 })
	for i := range 6 { // in a row, nothing in between
		if code, body := n.get(t, fmt.Sprintf("/5xx/%d", i)); code != 503 || body != "origin 503" {
			t.Fatalf("5xx %d: %d %q", i, code, body)
		}
		if code, body := n.get(t, "/cut/a"); code != 502 || strings.Contains(body, "being probed") {
			t.Fatalf("cut %d: %d %q", i, code, body)
		}
	}
	var wg sync.WaitGroup
	for i := range 25 { // at once, as the suite runs its tests
		wg.Add(1)
		go func() {
			defer wg.Done()
			path := []string{"/5xx/", "/cut/", "/ok/"}[i%3] + strconv.Itoa(i)
			if code, body := n.get(t, path); strings.Contains(body, "being probed") {
				t.Errorf("%s: %d %q: the breaker opened", path, code, body)
			}
		}()
	}
	wg.Wait()
	if n.breaker.isOpen() {
		t.Fatal("breaker open")
	}
	if code, body := n.get(t, "/ok"); code != 200 || body != "ok" {
		t.Fatalf("another URL after the failures: %d %q", code, body)
	}
}

// TestSilentOriginOpensTheBreaker: an origin that accepts connections
// but does not answer — it drops them (dead behind a proxy that accepts
// for it), or never answers (hung) — on requests for -origin-failures
// URLs in a row, for a second, opens the breaker; one URL failing so
// again and again does not.
func TestSilentOriginOpensTheBreaker(t *testing.T) {
	hang := make(chan struct{})
	t.Cleanup(func() { close(hang) })
	h := failingOrigin()
	n := startNode(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/hang") {
			select {
			case <-hang:
			case <-r.Context().Done():
			}
			return
		}
		h.ServeHTTP(w, r)
	}), func(c *Config) { c.OriginFailures, c.OriginTimeout = 3, 200*time.Millisecond })
	for _, prefix := range []string{"/cut", "/hang"} {
		start := time.Now()
		for time.Since(start) < 1500*time.Millisecond { // past minFailingFor
			if code, _ := n.get(t, prefix+"/same"); code != 502 && code != 504 {
				t.Fatalf("%s/same: %d", prefix, code)
			}
		}
		if n.breaker.isOpen() {
			t.Fatalf("%s: breaker open after failures of one URL", prefix)
		}
		i := 0
		waitFor(t, prefix+": the breaker to open on failures of three URLs", func() bool {
			if code, _ := n.get(t, fmt.Sprintf("%s/%d", prefix, i%3)); code != 502 && code != 504 {
				t.Fatalf("%s/%d: %d", prefix, i%3, code)
			}
			i++
			return n.breaker.isOpen()
		})
		waitFor(t, "a probe to close the breaker", func() bool { return !n.breaker.isOpen() })
	}
}

// failingOrigin answers /5xx/… with 503, drops the connection without
// answering on /cut/…, and answers anything else with "ok".
func failingOrigin() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, "/5xx"):
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "origin 503")
		case strings.HasPrefix(r.URL.Path, "/cut"):
			c, _, _ := w.(http.Hijacker).Hijack()
			c.Close() // no answer at all
		default:
			io.WriteString(w, "ok")
		}
	})
}

// get GETs path from the node; failures are reported with t.Error, so
// that get may run on other goroutines.
func (n *testNode) get(t *testing.T, path string) (int, string) {
	resp, err := http.Get(n.url + path)
	if err != nil {
		t.Error(err)
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
