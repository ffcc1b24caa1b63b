package loadtest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
)

// TestHostHeader: with Config.Host, subscribers send it as their Host
// header (HTTP and WebSocket); without it, the URL's host.
func TestHostHeader(t *testing.T) {
	u, _ := url.Parse("http://127.0.0.1:19002/stream?ch=x")
	if got := string(buildRequest(u, TransportStream, "")); !strings.Contains(got, "\r\nHost: 127.0.0.1:19002\r\n") {
		t.Errorf("default Host: %q", got)
	}
	if got := string(buildRequest(u, TransportStream, "api.example")); !strings.Contains(got, "\r\nHost: api.example\r\n") ||
		strings.Contains(got, "19002") {
		t.Errorf("Host api.example: %q", got)
	}

	hosts := make(chan string, 1)
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hosts <- r.Host
		if c, err := up.Upgrade(w, r, nil); err == nil {
			c.Close()
		}
	}))
	defer srv.Close()
	ws := newWSDialers(newDialers(1, 5*time.Second), "api.example")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := ws.d[0].DialContext(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/ws", ws.header)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if h := <-hosts; h != "api.example" {
		t.Errorf("WebSocket Host = %q, want api.example", h)
	}

	if _, err := (Config{URL: "http://127.0.0.1:1/", ExternalPublish: true, Conns: 1, Host: "a b"}).withDefaults(); err == nil {
		t.Error("a Host with a space was accepted")
	}
}
