package node

import (
	"bufio"
	"io"
	"testing"
)

// TestConnectionLimit: over -max-conns a new client gets 503 and the
// connection closed, the held ones keep receiving, and a freed slot is
// usable again.
func TestConnectionLimit(t *testing.T) {
	const limit = 5
	n := startNode(t, gripOrigin("open\n", "Grip-Hold", "stream", "Grip-Channel", "full"), func(c *Config) { c.MaxConns = limit })
	var conns []*rawConn
	var bodies []*bufio.Reader
	for range limit {
		c := dialRaw(t, n.Addr())
		b := bufio.NewReader(c.get(t, "/s").Body)
		readLine(t, b)
		conns, bodies = append(conns, c), append(bodies, b)
	}
	n.waitSubscribers(t, "full", limit)

	over := dialRaw(t, n.Addr())
	resp := over.get(t, "/s")
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 503 || string(body) != "edgepush: too many connections\n" || !resp.Close {
		t.Fatalf("over the limit: %d %q close=%v", resp.StatusCode, body, resp.Close)
	}
	n.publish(t, streamItem("full", "still served\n"))
	for _, b := range bodies {
		if got := readLine(t, b); got != "still served\n" {
			t.Fatalf("held stream got %q", got)
		}
	}

	conns[0].Close()
	n.waitSubscribers(t, "full", limit-1)
	waitFor(t, "the slot to be freed", func() bool { return n.held.Load() == limit-1 })
	again := dialRaw(t, n.Addr())
	if got := readLine(t, bufio.NewReader(again.get(t, "/s").Body)); got != "open\n" {
		t.Fatalf("after a slot freed: %q", got)
	}
}
