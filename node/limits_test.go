package node

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
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

// TestRequestLimits: each client-side limit answers with its status and
// a reason, and the node goes on serving.
func TestRequestLimits(t *testing.T) {
	channels := "a"
	for i := range 4 {
		channels += ", c" + string(rune('0'+i))
	}
	n := startNode(t, gripOrigin("hi\n", "Grip-Hold", "stream", "Grip-Channel", channels), func(c *Config) {
		c.MaxHeaderBytes, c.MaxBody, c.MaxChannels = 2048, 1024, 3
		c.ReadTimeout = 300 * time.Millisecond
	})
	for _, tc := range []struct {
		name, req string
		code      int
		body      string
	}{
		{"header too large", "GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + strings.Repeat("b", 4096) + "\r\n\r\n", 431, "edgepush: request header too large\n"},
		{"body too large", "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n" + strings.Repeat("b", 5000), 413, "edgepush: request body too large\n"},
		{"too many channels", "GET / HTTP/1.1\r\nHost: t\r\n\r\n", 502, "edgepush: invalid GRIP instructions from origin: 5 channels, at most 3 allowed\n"},
	} {
		c := dialRaw(t, n.Addr())
		io.WriteString(c, tc.req)
		resp, err := http.ReadResponse(c.r, nil)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != tc.code || string(b) != tc.body {
			t.Errorf("%s: %d %q, want %d %q", tc.name, resp.StatusCode, b, tc.code, tc.body)
		}
	}

	// Slowloris: a client that sends half a header and stalls is cut off
	// after -read-timeout (TestSlowlorisDoesNotHoldUpOthers: others are
	// served meanwhile). The read waits for the node to hang up; only a
	// hang runs into the connection's deadline.
	slow := dialRaw(t, n.Addr())
	io.WriteString(slow, "GET / HTTP/1.1\r\nHost: t\r\n")
	rest, err := io.ReadAll(slow.r) // the node answers 408 or just closes
	if err != nil {
		t.Fatalf("the stalled client was not cut off: %v", err)
	}
	if len(rest) > 0 && !strings.HasPrefix(string(rest), "HTTP/1.1 408") {
		t.Errorf("stalled client got %q", rest)
	}
}

// TestSlowlorisDoesNotHoldUpOthers: while clients stall in the middle of
// their request headers, another client on the same listener is served.
// The read timeout is far longer than the test, so the stalled clients
// are certainly still there (and checked to be) when it is.
func TestSlowlorisDoesNotHoldUpOthers(t *testing.T) {
	n := startNode(t, gripOrigin("hi\n"), func(c *Config) { c.ReadTimeout = time.Hour })
	before := n.client.GetOpenConnectionsCount()
	const stalled = 3
	var slow []*rawConn
	for range stalled {
		c := dialRaw(t, n.Addr())
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: t\r\n")
		slow = append(slow, c)
	}
	waitFor(t, "the node to take the stalled connections", func() bool {
		return n.client.GetOpenConnectionsCount() >= before+stalled
	})
	resp := dialRaw(t, n.Addr()).get(t, "/")
	if b, _ := io.ReadAll(resp.Body); resp.StatusCode != 200 || string(b) != "hi\n" {
		t.Fatalf("a client while others stall: %d %q", resp.StatusCode, b)
	}
	for i, c := range slow {
		c.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
		if _, err := c.r.ReadByte(); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("stalled client %d: %v, want it still waiting", i, err)
		}
	}
}
