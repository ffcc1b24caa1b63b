package node

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestDateIsServedAsStored: a response served from the cache keeps the
// Date the origin gave it (the node does not put its own time in its
// place); a response without Date gets one when received, kept on hits;
// a relayed answer keeps the origin's; the node's own answers have one.
func TestDateIsServedAsStored(t *testing.T) {
	const originDate = "Wed, 01 Jan 2025 00:00:00 GMT"
	n := startNode(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		if r.URL.Path == "/dated" || r.Method == "POST" {
			w.Header().Set("Date", originDate)
		} else {
			w.Header()["Date"] = nil // net/http's server adds one unless told not to
		}
		w.Write([]byte("ok"))
	}))
	for i, want := range []string{"MISS", "HIT"} {
		resp, _ := n.getWith(t, "/dated")
		if resp.Header.Get("X-Cache") != want || resp.Header.Values("Date")[0] != originDate || len(resp.Header.Values("Date")) != 1 {
			t.Fatalf("request %d: X-Cache %q, Date %q", i, resp.Header.Get("X-Cache"), resp.Header.Values("Date"))
		}
	}
	// The Date is set from a parsed head (fasthttp drops a set one):
	// connections stay kept alive.
	c := dialRaw(t, n.Addr())
	for i := range 2 {
		resp := c.get(t, "/dated")
		io.ReadAll(resp.Body)
		if resp.Close || resp.Header.Get("Date") != originDate || resp.ContentLength != 2 {
			t.Fatalf("kept-alive request %d: close %v, Date %q, Content-Length %d", i, resp.Close, resp.Header.Get("Date"), resp.ContentLength)
		}
	}
	resp, _ := n.getWith(t, "/undated")
	added := resp.Header.Get("Date")
	if _, err := http.ParseTime(added); err != nil || resp.Header.Get("X-Cache") != "MISS" {
		t.Fatalf("no Date from the origin: Date %q (%v), X-Cache %q", added, err, resp.Header.Get("X-Cache"))
	}
	// A hit a second later still has the Date of the moment it was
	// received (Date has one-second resolution).
	d, _ := http.ParseTime(added)
	time.Sleep(time.Until(d.Add(1100 * time.Millisecond)))
	if resp, _ := n.getWith(t, "/undated"); resp.Header.Get("X-Cache") != "HIT" || resp.Header.Get("Date") != added {
		t.Fatalf("hit: X-Cache %q, Date %q, want %q", resp.Header.Get("X-Cache"), resp.Header.Get("Date"), added)
	}
	post, err := http.Post(n.url+"/form", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	post.Body.Close()
	if post.Header.Get("Date") != originDate {
		t.Fatalf("relayed POST answer: Date %q", post.Header.Get("Date"))
	}
	n.stopOrigin(t)
	resp, _ = n.getWith(t, "/nothing-cached")
	if _, err := http.ParseTime(resp.Header.Get("Date")); resp.StatusCode != 502 || err != nil {
		t.Fatalf("node's own error: %d, Date %q", resp.StatusCode, resp.Header.Get("Date"))
	}
}

// TestIfModifiedSinceWithoutLastModified: a client's If-Modified-Since
// is compared with the response's Date when it has no Last-Modified
// (RFC 9111 §4.3.2): 304 when not older, else the response.
func TestIfModifiedSinceWithoutLastModified(t *testing.T) {
	n := startNode(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Header().Set("Date", "Wed, 01 Jan 2025 00:00:00 GMT")
		w.Write([]byte("ok"))
	}))
	for _, tc := range []struct {
		ims  string
		code int
	}{
		{"Thu, 02 Jan 2025 00:00:00 GMT", 304},
		{"Wed, 01 Jan 2025 00:00:00 GMT", 304},
		{"Tue, 31 Dec 2024 00:00:00 GMT", 200},
	} {
		if resp, _ := n.getWith(t, "/d", "If-Modified-Since", tc.ims); resp.StatusCode != tc.code {
			t.Errorf("If-Modified-Since %s: %d, want %d", tc.ims, resp.StatusCode, tc.code)
		}
	}
}
