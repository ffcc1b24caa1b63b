package node

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// validatingOrigin is a real origin that answers a conditional request
// whose If-None-Match is its ETag with 304 and the headers notModified
// sets, and any other with 200 and the whole response; it counts both
// and records the validators it was sent.
type validatingOrigin struct {
	full, not atomic.Int64

	mu          sync.Mutex
	cc          string      // Cache-Control of the 200
	notModified http.Header // headers of the 304
	asked       []string    // If-None-Match values received
}

func (o *validatingOrigin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o.mu.Lock()
	defer o.mu.Unlock()
	inm := r.Header.Get("If-None-Match")
	o.asked = append(o.asked, inm)
	w.Header().Set("ETag", `"v1"`)
	if inm == `"v1"` {
		for k, vs := range o.notModified {
			w.Header()[k] = vs
		}
		o.not.Add(1)
		w.WriteHeader(http.StatusNotModified)
		return
	}
	o.full.Add(1)
	w.Header().Set("Cache-Control", o.cc)
	w.Header().Set("X-Version", "1")
	w.Header().Set("Content-Type", "text/plain")
	io.WriteString(w, "body-1")
}

func (o *validatingOrigin) set(f func(*validatingOrigin)) {
	o.mu.Lock()
	defer o.mu.Unlock()
	f(o)
}

func (o *validatingOrigin) lastAsked() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.asked[len(o.asked)-1]
}

// getWith GETs path from the node with extra request headers and returns
// the response with its body read.
func (n *testNode) getWith(t *testing.T, path string, headers ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("GET", n.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// TestStoredResponseIsRevalidated: a stored response that must be
// revalidated (no-cache, then a soft purge) is asked about with its own
// ETag, never the client's; the origin's 304 refreshes it: the body
// stays, headers come from the 304 (Grip-* included: the instructions
// are parsed again), the 304's max-age makes it fresh, and clients get
// it (X-Cache: REVALIDATED); a client's matching conditional gets a 304.
func TestStoredResponseIsRevalidated(t *testing.T) {
	o := &validatingOrigin{cc: "no-cache", notModified: http.Header{
		"Cache-Control": {"max-age=3600"}, "X-Version": {"2"}}}
	n := startNode(t, o)
	if resp, body := n.getWith(t, "/r"); body != "body-1" || resp.Header.Get("X-Cache") != "MISS" {
		t.Fatalf("first: %q %v", body, resp.Header)
	}
	resp, body := n.getWith(t, "/r", "If-None-Match", `"client"`)
	if body != "body-1" || resp.StatusCode != 200 || resp.Header.Get("X-Cache") != "REVALIDATED" ||
		resp.Header.Get("X-Version") != "2" || resp.Header.Get("ETag") != `"v1"` {
		t.Fatalf("no-cache, revalidated: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	if got := o.lastAsked(); got != `"v1"` {
		t.Fatalf("origin asked with If-None-Match %q, want the stored ETag", got)
	}
	if resp, body := n.getWith(t, "/r"); body != "body-1" || resp.Header.Get("X-Cache") != "HIT" {
		t.Fatalf("fresh by the 304's max-age: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	if resp, _ := n.getWith(t, "/r", "If-None-Match", `"v1"`); resp.StatusCode != 304 {
		t.Fatalf("client's matching conditional: %d", resp.StatusCode)
	}

	o.set(func(o *validatingOrigin) {
		o.notModified.Set("X-Version", "3")
		o.notModified.Set("Grip-Status", "203 Refreshed")
	})
	n.purgeURL(t, "/r", true)
	if resp, body := n.getWith(t, "/r"); body != "body-1" || resp.Header.Get("X-Cache") != "REVALIDATED" ||
		resp.Header.Get("X-Version") != "3" || resp.StatusCode != 203 {
		t.Fatalf("soft-purged: %q %v", body, resp.Header)
	}
	if o.full.Load() != 1 || o.not.Load() != 2 {
		t.Fatalf("origin answered %d in full, %d with 304", o.full.Load(), o.not.Load())
	}
	if st := n.cache.Stats(); st.Revalidations != 2 {
		t.Fatalf("cache stats %+v", st)
	}
}

// purgeURL purges path on the node's control port, softly or not.
func (n *testNode) purgeURL(t *testing.T, path string, soft bool) {
	t.Helper()
	body := fmt.Sprintf(`{"urls":[%q],"soft":%v}`, n.url+path, soft)
	resp, err := http.Post(n.ctl+"/purge", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if b, _ := io.ReadAll(resp.Body); resp.StatusCode != 200 {
		t.Fatalf("purge: %d %q", resp.StatusCode, b)
	}
}

// TestBackgroundRefreshRevalidates: a stale-while-revalidate refresh,
// which runs after the client request is over, asks conditionally too
// (from its own copy of the request), and the 304 refreshes the entry.
func TestBackgroundRefreshRevalidates(t *testing.T) {
	o := &validatingOrigin{cc: "max-age=1, stale-while-revalidate=600", notModified: http.Header{
		"Cache-Control": {"max-age=3600"}, "X-Version": {"2"}}}
	n := startNode(t, o)
	n.getWith(t, "/b")
	waitFor(t, "a stale hit", func() bool {
		resp, body := n.getWith(t, "/b")
		return resp.Header.Get("X-Cache") == "STALE" && body == "body-1"
	})
	waitFor(t, "the background revalidation", func() bool { return o.not.Load() == 1 })
	waitFor(t, "the refreshed entry", func() bool {
		resp, body := n.getWith(t, "/b")
		return resp.Header.Get("X-Cache") == "HIT" && resp.Header.Get("X-Version") == "2" && body == "body-1"
	})
	if o.full.Load() != 1 || o.not.Load() != 1 || o.lastAsked() != `"v1"` {
		t.Fatalf("origin answered %d in full, %d with 304; last If-None-Match %q", o.full.Load(), o.not.Load(), o.lastAsked())
	}
}
