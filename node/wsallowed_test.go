package node

import (
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/valyala/fasthttp"
)

// TestWSAllowedOrigins: with -ws-allowed-origins, a handshake from a
// listed Origin (in any case) upgrades, one without Origin (not a
// browser) too, and any other Origin, "null" included, gets 403 before
// the origin server is asked.
func TestWSAllowedOrigins(t *testing.T) {
	o := &wsOrigin{}
	var asked atomic.Int64
	n := startNode(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		o.ServeHTTP(w, r)
	}), func(c *Config) { c.WSAllowedOrigins = "https://app.example, https://Other.example" })
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	dial := func(origin string) (*websocket.Conn, *http.Response, error) {
		h := http.Header{}
		if origin != "" {
			h.Set("Origin", origin)
		}
		c, resp, err := d.Dial("ws://"+n.Addr().String()+"/ws", h)
		if c != nil {
			t.Cleanup(func() { c.Close() })
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
		}
		return c, resp, err
	}

	for _, origin := range []string{"https://app.example", "https://other.EXAMPLE", ""} {
		before := asked.Load()
		c, resp, err := dial(origin)
		if err != nil {
			t.Fatalf("Origin %q: %v (response %v)", origin, err, resp)
		}
		if got := readText(t, c); got != "welcome" {
			t.Fatalf("Origin %q: first message %q", origin, got)
		}
		if asked.Load() == before {
			t.Fatalf("Origin %q: upgraded without asking the origin", origin)
		}
	}

	for _, origin := range []string{"https://evil.example", "https://app.example.evil", "http://app.example", "null"} {
		before := asked.Load()
		_, resp, err := dial(origin)
		if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("Origin %q: err %v, response %v; want 403", origin, err, resp)
		}
		if got := asked.Load() - before; got != 0 {
			t.Fatalf("Origin %q: the origin server was asked %d times", origin, got)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "edgepush: WebSocket origin not allowed\n" {
			t.Fatalf("Origin %q: refusal %q", origin, body)
		}
	}
}

// TestWSOriginRule: the Origin rule of the check before the origin is
// asked, with the list set and without it. (The node does the upgrade
// itself since session 5: that check is the only one.)
func TestWSOriginRule(t *testing.T) {
	for _, tc := range []struct {
		allowed string
		origin  string
		want    bool
	}{
		{"https://app.example", "https://app.example", true},
		{"https://app.example", "https://APP.example", true},
		{"https://app.example", "", true},
		{"https://app.example", "https://evil.example", false},
		{"https://app.example", "null", false},
		{"", "https://evil.example", true},
	} {
		s, err := New(Config{Origin: "http://127.0.0.1:1", WSAllowedOrigins: tc.allowed}, nil)
		if err != nil {
			t.Fatal(err)
		}
		var ctx fasthttp.RequestCtx
		if tc.origin != "" {
			ctx.Request.Header.Set("Origin", tc.origin)
		}
		if got := s.originAllowed(&ctx); got != tc.want {
			t.Errorf("allowed %q, Origin %q: originAllowed %v, want %v", tc.allowed, tc.origin, got, tc.want)
		}
	}
}
