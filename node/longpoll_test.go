package node

import (
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
)

// longPollOrigin holds every request as a cacheable long-poll on "lp".
type longPollOrigin struct{ requests atomic.Int64 }

func (o *longPollOrigin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o.requests.Add(1)
	w.Header().Set("Cache-Control", "max-age=60")
	w.Header().Set("Grip-Hold", "response")
	w.Header().Set("Grip-Channel", "lp")
	w.Header().Set("Grip-Timeout", "120")
	io.WriteString(w, "timeout\n")
}

func lpItem(body string) map[string]any {
	return map[string]any{"channel": "lp", "formats": map[string]any{"http-response": map[string]any{"body": body}}}
}

// poll sends one long-poll on c and returns a function that reads its
// answer's body.
func poll(t *testing.T, c *rawConn) func() string {
	t.Helper()
	if _, err := io.WriteString(c, "GET /lp HTTP/1.1\r\nHost: test\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	return func() string {
		resp, err := http.ReadResponse(c.r, nil)
		if err != nil {
			t.Fatalf("long-poll answer: %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
}

// TestLongPollsFromCacheNeverRepeatAMessage: clients re-polling a cached
// long-poll URL after a publish each get that message once, then wait for
// the next; the origin is asked once for all of them; with the origin
// down, they wait too.
func TestLongPollsFromCacheNeverRepeatAMessage(t *testing.T) {
	o := &longPollOrigin{}
	n := startNode(t, o)
	const clients = 100
	conns := make([]*rawConn, clients)
	answers := make([]func() string, clients)
	for i := range conns {
		conns[i] = dialRaw(t, n.Addr())
		answers[i] = poll(t, conns[i])
	}
	n.waitSubscribers(t, "lp", clients)
	for round := 1; round <= 3; round++ {
		msg := fmt.Sprintf("m%d\n", round)
		n.publish(t, lpItem(msg))
		for i, answer := range answers {
			if got := answer(); got != msg {
				t.Fatalf("round %d, client %d: %q, want %q", round, i, got, msg)
			}
		}
		before := o.requests.Load()
		if round == 3 {
			n.origin.Close() // the origin goes down: re-polls are held from the stale copy
		}
		for i := range conns {
			answers[i] = poll(t, conns[i]) // kept-alive connections poll again
		}
		n.waitSubscribers(t, "lp", clients)
		if round < 3 && o.requests.Load() != before+1 {
			t.Fatalf("round %d: the origin was asked %d times for %d re-polls, want 1", round, o.requests.Load()-before, clients)
		}
	}
	// Held, not answered with m3 again: the next answer is the next message.
	n.publish(t, lpItem("m4\n"))
	for i, answer := range answers {
		if got := answer(); got != "m4\n" {
			t.Fatalf("origin down, client %d: %q, want m4", i, got)
		}
	}
}
