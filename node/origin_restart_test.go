package node

import (
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"
)

// restartingOrigin serves h on ln until the test ends; restart closes
// every connection it has, as an origin process that exits does, and it
// goes on accepting new ones, as the process started again on the same
// address does. Its listener is never closed meanwhile, so no other
// socket can take the address in between.
type restartingOrigin struct {
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

func serveRestarting(t *testing.T, ln net.Listener, h http.Handler) *restartingOrigin {
	o := &restartingOrigin{conns: map[net.Conn]struct{}{}}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: waitTimeout, ConnState: func(c net.Conn, st http.ConnState) {
		o.mu.Lock()
		defer o.mu.Unlock()
		switch st {
		case http.StateNew:
			o.conns[c] = struct{}{}
		case http.StateClosed, http.StateHijacked:
			delete(o.conns, c)
		}
	}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return o
}

func (o *restartingOrigin) restart() {
	o.mu.Lock()
	defer o.mu.Unlock()
	for c := range o.conns {
		c.Close()
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
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(20 * time.Millisecond) // so that concurrent requests use several connections
		io.WriteString(w, "hello "+r.URL.Path+"\n")
	})
	origin := serveRestarting(t, ln, h)
	n := startNode(t, http.NotFoundHandler(), func(c *Config) { c.Origin = "http://" + ln.Addr().String() })

	get := func(path string) (int, string, error) {
		resp, err := http.Get(n.url + path)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), err
	}
	// Fill the node's pool with kept-alive connections to this process.
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			if code, _, err := get("/warm/" + string(rune('a'+i))); err != nil || code != 200 {
				t.Errorf("warm-up: %d %v", code, err)
			}
		})
	}
	wg.Wait()
	origin.mu.Lock()
	kept := len(origin.conns)
	origin.mu.Unlock()
	if kept == 0 {
		t.Fatal("the node kept no connection to the origin")
	}

	origin.restart() // the origin exits and is back on the same address
	for i := range 10 {
		path := "/after/" + string(rune('a'+i))
		if code, body, err := get(path); err != nil || code != 200 || body != "hello "+path+"\n" {
			t.Fatalf("request %d after the restart: %d %q %v", i, code, body, err)
		}
	}
}
