package node

import (
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"
)

// serveOn serves h on ln until the returned stop is called; stop closes
// every connection, as an origin process that exits does.
func serveOn(ln net.Listener, h http.Handler) (stop func()) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	return func() {
		srv.Close()
		<-done
	}
}

// TestOriginRestartIsTransparent: after the origin restarts on the same
// address, the node's kept-alive connections to the old process are dead;
// new requests must still get answers at once, not 502s until a breaker
// probe.
func TestOriginRestartIsTransparent(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(20 * time.Millisecond) // so that concurrent requests use several connections
		io.WriteString(w, "hello "+r.URL.Path+"\n")
	})
	stop := serveOn(ln, h)
	n := startNode(t, http.NotFoundHandler(), func(c *Config) { c.Origin = "http://" + addr })

	get := func(path string) (int, string) {
		resp, err := http.Get(n.url + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	// Fill the node's pool with kept-alive connections to this process.
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			if code, _ := get("/warm/" + string(rune('a'+i))); code != 200 {
				t.Errorf("warm-up: %d", code)
			}
		})
	}
	wg.Wait()

	stop() // the origin exits...
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen again on %s: %v", addr, err)
	}
	defer serveOn(ln, h)() // ...and is back on the same address
	for i := range 10 {
		path := "/after/" + string(rune('a'+i))
		if code, body := get(path); code != 200 || body != "hello "+path+"\n" {
			t.Fatalf("request %d after the restart: %d %q", i, code, body)
		}
	}
}
