package cache

import (
	"strconv"
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

// A purge record folded into its shard's floor (a flood of distinct
// purges) still counts for PurgedSince, for every name of the shard.
func TestPurgedSinceFolded(t *testing.T) {
	p := newPurges(32) // 2 records per shard: folding starts at once
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 200 {
		p.purge("k:"+strconv.Itoa(i), false, t0.Add(time.Duration(i+1)*time.Second), time.Hour)
	}
	folded := 0
	for i := range 200 {
		name := "k:" + strconv.Itoa(i)
		s := p.shard(name)
		if _, kept := s.records[name]; kept {
			continue
		}
		folded++
		if _, ok := p.lastAfter([]string{name}, t0.Add(time.Duration(i)*time.Second)); !ok {
			t.Fatalf("%s, folded, purged after the time asked about: not reported", name)
		}
	}
	if folded == 0 {
		t.Fatal("nothing was folded")
	}
}
