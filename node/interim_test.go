package node

import (
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/valyala/fasthttp"
)

// interimOrigin sends 102 and a 103 (Link, X-Interim) before a
// cacheable final response (without them).
func interimOrigin(requests *atomic.Int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		w.WriteHeader(http.StatusProcessing)
		w.Header().Set("Link", "</style.css>; rel=preload; as=style")
		w.Header().Set("X-Interim", "yes")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		w.Header().Del("X-Interim")
		w.Header().Set("Cache-Control", "max-age=600")
		io.WriteString(w, "final")
	})
}

// TestInterimResponsesArePassedOnNotStored: the origin's interim
// responses (102, 103 with its headers) reach the client whose request
// went to the origin, before the final response; the final response,
// stored, has none of the 103's headers, and a hit comes without interim
// responses. An HTTP/1.0 client gets none (RFC 9110 §15.2).
func TestInterimResponsesArePassedOnNotStored(t *testing.T) {
	var requests atomic.Int64
	n := startNode(t, interimOrigin(&requests))
	c := dialRaw(t, n.Addr())
	resp := c.get(t, "/page")
	if resp.StatusCode != 102 {
		t.Fatalf("first response %d, want 102", resp.StatusCode)
	}
	if resp, _ = http.ReadResponse(c.r, nil); resp.StatusCode != 103 ||
		resp.Header.Get("Link") != "</style.css>; rel=preload; as=style" || resp.Header.Get("X-Interim") != "yes" {
		t.Fatalf("second response %d %v, want the 103", resp.StatusCode, resp.Header)
	}
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(body) != "final" || resp.Header.Get("X-Cache") != "MISS" ||
		resp.Header.Get("X-Interim") != "" || resp.Header.Get("Link") != "" {
		t.Fatalf("final response %d %q %v", resp.StatusCode, body, resp.Header)
	}
	resp = c.get(t, "/page") // same connection: kept alive
	body, _ = io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || resp.Header.Get("X-Cache") != "HIT" || resp.Header.Get("X-Interim") != "" ||
		resp.Header.Get("Link") != "" || string(body) != "final" {
		t.Fatalf("hit %d %q %v", resp.StatusCode, body, resp.Header)
	}

	old := dialRaw(t, n.Addr())
	io.WriteString(old, "GET /old HTTP/1.0\r\nHost: test\r\n\r\n")
	resp, err = http.ReadResponse(old.r, nil)
	if err != nil {
		t.Fatal(err)
	}
	if body, _ := io.ReadAll(resp.Body); resp.StatusCode != 200 || string(body) != "final" {
		t.Fatalf("HTTP/1.0 client: %d %q", resp.StatusCode, body)
	}
	if requests.Load() != 2 {
		t.Fatalf("origin requests %d", requests.Load())
	}
}

// TestInterimResponsesOfRequestsForNoClient: an origin request made for
// no client (a background refresh, a link, a WebSocket-over-HTTP
// request) reads the interim responses away, and its final response has
// none of their headers.
func TestInterimResponsesOfRequestsForNoClient(t *testing.T) {
	var requests atomic.Int64
	n := startNode(t, interimOrigin(&requests))
	req := &fasthttp.Request{}
	req.SetRequestURI("/y")
	req.Header.SetHost("test")
	r, err := n.fetchOrigin(n.routes.all[0], req)
	if err != nil || r.Status != 200 || string(r.Body) != "final" {
		t.Fatalf("fetch: %v %+v", err, r)
	}
	for _, h := range r.Header {
		if strings.EqualFold(h.Name, "X-Interim") || strings.EqualFold(h.Name, "Link") {
			t.Fatalf("interim header in the final response: %v", r.Header)
		}
	}
}

// TestTooManyInterimResponses: an origin that sends interim responses
// without end gets its request failed (502) after maxInterims of them,
// which the client got.
func TestTooManyInterimResponses(t *testing.T) {
	n := startNode(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for range maxInterims + 5 {
			w.WriteHeader(http.StatusProcessing)
		}
		io.WriteString(w, "never")
	}))
	c := dialRaw(t, n.Addr())
	resp := c.get(t, "/endless")
	for i := 0; resp.StatusCode == 102; i++ {
		if i > maxInterims {
			t.Fatalf("more than %d interim responses passed on", maxInterims)
		}
		var err error
		if resp, err = http.ReadResponse(c.r, nil); err != nil {
			t.Fatal(err)
		}
	}
	if resp.StatusCode != 502 {
		t.Fatalf("final response %d, want 502", resp.StatusCode)
	}
}
