package cache

import (
	"testing"
	"time"
)

// PurgedSince reports a purge of a relayed response's surrogate key or
// URL that ran after the response was fetched from the origin, and only
// such a purge.
func TestPurgedSince(t *testing.T) {
	c, clk := newCache(t)
	req := &Request{Method: "GET", URL: "http://a.example/x"}
	resp := &Response{Status: 200, Header: []Field{{Name: "Surrogate-Key", Value: "k1 k2"}}}
	fetched := clk.now()
	if _, ok := c.PurgedSince(req, resp, fetched); ok {
		t.Fatal("purged before any purge")
	}
	clk.add(time.Second)
	c.Purge("other", false)
	c.PurgeURL("http://a.example/y", false)
	if _, ok := c.PurgedSince(req, resp, fetched); ok {
		t.Fatal("purges of other keys and URLs reached it")
	}
	clk.add(time.Second)
	c.Purge("k2", true)
	at, ok := c.PurgedSince(req, resp, fetched)
	if !ok || !at.Equal(clk.now()) {
		t.Fatalf("after a soft purge of its key: %v %v, want %v", at, ok, clk.now())
	}
	if _, ok := c.PurgedSince(req, resp, clk.now()); ok {
		t.Fatal("a purge reached a response fetched after it")
	}
	clk.add(time.Second)
	c.PurgeURL(req.URL, false)
	if at, ok := c.PurgedSince(req, resp, fetched.Add(2*time.Second)); !ok || !at.Equal(clk.now()) {
		t.Fatalf("after a purge of its URL: %v %v", at, ok)
	}
}
