package node

import (
	"io"
	"net/http"
	"sync"
	"testing"
	"time"
)

// TestOriginRestartIsTransparent: after the origin restarts on the same
// address, the node's kept-alive connections to the old process are dead;
// new requests must still get answers at once, not 502s until a breaker
// probe.
func TestOriginRestartIsTransparent(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(20 * time.Millisecond) // so that concurrent requests use several connections
		io.WriteString(w, "hello "+r.URL.Path+"\n")
	})
	origin := newRestartableOrigin(t, h)
	n := startNode(t, http.NotFoundHandler(), func(c *Config) { c.Origin = origin.url() })

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

	// The origin exits (its connections are reset) and is back on the
	// same address.
	origin.stop()
	origin.start()
	for i := range 10 {
		path := "/after/" + string(rune('a'+i))
		if code, body, err := get(path); err != nil || code != 200 || body != "hello "+path+"\n" {
			t.Fatalf("request %d after the restart: %d %q %v", i, code, body, err)
		}
	}
}
