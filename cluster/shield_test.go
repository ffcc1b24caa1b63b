package cluster

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/edgepush/edgepush/internal/testnet"
	"github.com/valyala/fasthttp"
)

// shieldView is a member's view of the shields, without memberlist.
func shieldView(t *testing.T, self string, members ...string) *Cluster {
	t.Helper()
	cfg := Config{Name: self, ControlAddr: "127.0.0.1:1", Handler: &recorder{}, Shield: true, ShieldRetry: time.Hour}
	if err := cfg.check(); err != nil {
		t.Fatal(err)
	}
	c := newCluster(cfg)
	for _, m := range members {
		c.shields.update(m, meta{Control: m + ":5561", Shield: true}, false)
	}
	t.Cleanup(c.shields.close)
	return c
}

// Rendezvous hashing: every member picks the same shield for a key; keys
// spread over the shields; a member that goes moves only its own keys;
// members that may not shield, are leaving or failed a request are
// skipped.
func TestShieldFor(t *testing.T) {
	names := []string{"a", "b", "c", "d", "e"}
	views := map[string]*Cluster{}
	for _, n := range names {
		views[n] = shieldView(t, n, names...)
	}
	const keys = 2000
	owner := map[string]string{}
	per := map[string]int{}
	for k := range keys {
		key := fmt.Sprintf("GET http://x/%d", k)
		var first string
		for _, n := range names {
			m, ok := views[n].ShieldFor(key)
			if !ok {
				t.Fatalf("%s: no shield for %s", n, key)
			}
			if first == "" {
				first = m.Name
			} else if m.Name != first {
				t.Fatalf("%s picks %s for %s, a picks %s", n, m.Name, key, first)
			}
			if m.Self != (m.Name == n) || m.Control != m.Name+":5561" {
				t.Fatalf("%s: %+v", n, m)
			}
		}
		owner[key] = first
		per[first]++
	}
	for _, n := range names {
		if per[n] < keys/len(names)/2 {
			t.Fatalf("shield %s has %d of %d keys: %v", n, per[n], keys, per)
		}
	}
	// c leaves: only its keys move.
	v := views["a"]
	v.shields.update("c", meta{Control: "c:5561", Shield: true}, true)
	// d stops shielding, e is leaving.
	v.shields.update("d", meta{Control: "d:5561"}, false)
	v.shields.update("e", meta{Control: "e:5561", Shield: true, Leaving: true}, false)
	// b failed a request.
	v.shieldFailed(ShieldMember{Name: "b", Control: "b:5561"})
	for key := range owner {
		if m, _ := v.ShieldFor(key); m.Name != "a" {
			t.Fatalf("%s: shield %s; a is the only one left", key, m.Name)
		}
	}
	// b is back (its retry time over): it gets back its own keys, and
	// keys move between a and b only.
	v.shields.mu.Lock()
	e := v.shields.members["b"]
	e.downUntil = time.Time{}
	v.shields.members["b"] = e
	v.shields.mu.Unlock()
	for key, was := range owner {
		m, _ := v.ShieldFor(key)
		if (was == "a" || was == "b") && m.Name != was {
			t.Fatalf("%s moved from %s to %s", key, was, m.Name)
		}
	}
	// Nobody left.
	for _, n := range []string{"a", "b"} {
		v.shields.update(n, meta{}, true)
	}
	if m, ok := v.ShieldFor("GET http://x/1"); ok {
		t.Fatalf("shield %+v with no member shielding", m)
	}
}

// AskShield: a shield that cannot be reached fails with
// ErrShieldUnreachable and is skipped for ShieldRetry; one that is not a
// shield (any more) is not asked.
func TestAskShieldUnreachable(t *testing.T) {
	c := shieldView(t, "a", "a")
	addr := testnet.RefusingAddr(t)
	c.shields.update("b", meta{Control: addr, Shield: true}, false)
	m := ShieldMember{Name: "b", Control: addr}
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	if err := c.AskShield(m, req, resp, time.Second); !errors.Is(err, ErrShieldUnreachable) {
		t.Fatalf("refused: %v, want ErrShieldUnreachable", err)
	}
	for k := range 100 {
		if got, ok := c.ShieldFor(fmt.Sprint(k)); !ok || got.Name != "a" {
			t.Fatalf("key %d: %+v after b failed", k, got)
		}
	}
	c.shields.update("b", meta{Control: addr}, false) // no longer a shield
	if err := c.AskShield(m, req, resp, time.Second); !errors.Is(err, ErrNoShield) {
		t.Fatalf("not a shield: %v, want ErrNoShield", err)
	}
}
