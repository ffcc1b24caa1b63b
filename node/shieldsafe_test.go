package node

import (
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestShieldKeepsCredentialsOffTheTier: a request with Authorization or
// Cookie is never sent to a shield (the tier's control links are plain
// HTTP): the member asks the origin itself, and the shield serves
// nothing.
func TestShieldKeepsCredentialsOffTheTier(t *testing.T) {
	var fetches atomic.Int64
	origin := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		w.Header().Set("Cache-Control", "public, max-age=60")
		io.WriteString(w, "ok\n")
	})
	nodes := startTier(t, 2, origin)
	waitShieldView(t, nodes, "/x")
	shield, member := nodes[0], nodes[1]
	path := pathShieldedBy(t, nodes, shield.cfg.NodeName)
	for i, h := range []string{"Cookie: session=secret\r\n", "Authorization: Bearer secret\r\n"} {
		resp := dialRaw(t, member.Addr()).get(t, fmt.Sprintf("%s?i=%d", path, i), h)
		io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%q: status %d", h, resp.StatusCode)
		}
	}
	if n := shield.shieldStats.served.Load(); n != 0 {
		t.Errorf("the shield served %d requests carrying credentials", n)
	}
	if n := fetches.Load(); n != 2 {
		t.Errorf("origin fetches: %d, want 2 (the member's own)", n)
	}
	// A plain request for the same path still goes through the shield.
	resp := dialRaw(t, member.Addr()).get(t, path)
	io.ReadAll(resp.Body)
	if n := shield.shieldStats.served.Load(); n != 1 {
		t.Errorf("a request without credentials: the shield served %d, want 1", n)
	}
}

// TestShieldLeavesNonUTF8RequestsAlone: header values and URIs that are
// not UTF-8 reach the origin byte for byte, and requests that differ only
// in such bytes are not made one (the shield request carries JSON
// strings, which would replace them with U+FFFD).
func TestShieldLeavesNonUTF8RequestsAlone(t *testing.T) {
	origin := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=60")
		w.Header().Set("Vary", "X-Lang")
		io.WriteString(w, "lang="+hex.EncodeToString([]byte(r.Header.Get("X-Lang")))+" uri="+hex.EncodeToString([]byte(r.RequestURI))+"\n")
	})
	nodes := startTier(t, 2, origin)
	waitShieldView(t, nodes, "/x")
	path := pathShieldedBy(t, nodes, nodes[0].cfg.NodeName)
	member := nodes[1]
	for _, lang := range []string{"\xff", "\xfe"} {
		resp := dialRaw(t, member.Addr()).get(t, path, "X-Lang: "+lang+"\r\n")
		b, _ := io.ReadAll(resp.Body)
		if want := "lang=" + hex.EncodeToString([]byte(lang)) + " "; !strings.HasPrefix(string(b), want) {
			t.Errorf("X-Lang %q: the origin saw %q, want %s…", lang, b, want)
		}
	}
	for _, q := range []string{"\xff", "\xfe"} {
		resp := dialRaw(t, member.Addr()).get(t, path+"?q="+q)
		b, _ := io.ReadAll(resp.Body)
		if want := hex.EncodeToString([]byte(path + "?q=" + q)); !strings.Contains(string(b), "uri="+want) {
			t.Errorf("query %q: the origin saw %q, want uri=%s", q, b, want)
		}
	}
}

// TestShieldSlowURLDoesNotSkipTheShield: a request the shield cannot
// answer within -shield-timeout because that URL's origin is slow falls
// back to the origin for that request only; the shield, which still
// answers, keeps its other keys.
func TestShieldSlowURLDoesNotSkipTheShield(t *testing.T) {
	origin := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/slow") {
			time.Sleep(600 * time.Millisecond)
		}
		w.Header().Set("Cache-Control", "public, max-age=60")
		io.WriteString(w, "ok\n")
	})
	nodes := startTier(t, 2, origin, func(i int, c *Config) {
		c.ShieldTimeout, c.ShieldRetry = 300*time.Millisecond, time.Minute
	})
	waitShieldView(t, nodes, "/x")
	shield, member := nodes[0], nodes[1]
	var slow string
	for k := range 1000 {
		p := fmt.Sprintf("/slow%d", k)
		if m, _ := member.tier.ShieldFor(shieldKeyOf(p)); m.Name == shield.cfg.NodeName {
			slow = p
			break
		}
	}
	if slow == "" {
		t.Fatal("no slow path shielded by node 0")
	}
	other := pathShieldedBy(t, nodes, shield.cfg.NodeName)
	resp := dialRaw(t, member.Addr()).get(t, slow)
	io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("slow URL: status %d", resp.StatusCode)
	}
	if member.shieldStats.failed.Load() != 1 {
		t.Fatalf("the slow URL's shield request did not time out (failed %d): the test proves nothing", member.shieldStats.failed.Load())
	}
	if m, _ := member.tier.ShieldFor(shieldKeyOf(other)); m.Name != shield.cfg.NodeName {
		t.Errorf("after one slow URL, %s's shield is %s, want %s: a healthy shield is skipped for every key", other, m.Name, shield.cfg.NodeName)
	}
}
