package node

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"go.uber.org/goleak"
)

// TestShutdownWithShortContextWhileHeld shuts a node holding many
// connections down with a context that expires long before its drain
// would end: Shutdown returns, every held connection is closed (its
// client reads to EOF), none is left counted, and no goroutine of the
// node outlives it.
//
// "Long before" without a clock: an hour's drain delay is an hour; a
// drain period spreads the closes one per 20ms step (fanout.Pool.Drain),
// so 2000 streams would take 40s, twice the bound on Shutdown here, which
// only catches a drain that runs its course.
func TestShutdownWithShortContextWhileHeld(t *testing.T) {
	for _, tc := range []struct {
		name          string
		delay, period time.Duration
		streams       int
	}{
		{"cut in the drain delay", time.Hour, time.Hour, 100},
		{"cut in the drain period", 0, time.Hour, 2000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			testShutdownWithShortContext(t, tc.delay, tc.period, tc.streams)
		})
	}
}

func testShutdownWithShortContext(t *testing.T, delay, period time.Duration, streams int) {
	// Registered first, so it runs last: after the origin's and the
	// clients' clean-ups.
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		goleak.VerifyNone(t, before,
			goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
			goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*HostClient).connsCleaner"),
			goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*TCPDialer).tcpAddrsClean"),
			goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
			goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
			goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"))
	})

	ws := &wsOrigin{}
	// Cached, so that the streams cost the origin one request.
	stream := gripOrigin("open\n", "Grip-Hold", "stream", "Grip-Channel", "room", "Cache-Control", "max-age=600")
	poll := gripOrigin("timeout\n", "Grip-Hold", "response", "Grip-Channel", "room", "Grip-Timeout", "3600")
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ws":
			ws.ServeHTTP(w, r)
		case "/poll":
			poll.ServeHTTP(w, r)
		default:
			stream.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(origin.Close)
	// Not startNode: its clean-up would call Shutdown again, which waits
	// for a hung first call.
	cfg := DefaultConfig()
	cfg.Listen, cfg.Control, cfg.Origin = "127.0.0.1:0", "127.0.0.1:0", origin.URL
	cfg.DrainDelay, cfg.DrainPeriod = delay, period
	s, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	n := &testNode{Server: s, origin: origin, url: "http://" + s.Addr().String()}

	const polls, sockets = 5, 5
	var raws []*rawConn
	var bodies []io.Reader
	for i := range streams {
		c := dialRaw(t, n.Addr())
		r := bufio.NewReader(c.get(t, "/stream").Body)
		if got := readLine(t, r); got != "open\n" {
			t.Fatalf("stream %d: %q", i, got)
		}
		raws, bodies = append(raws, c), append(bodies, r)
	}
	for range polls {
		c := dialRaw(t, n.Addr())
		if _, err := io.WriteString(c, "GET /poll HTTP/1.1\r\nHost: test\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		raws, bodies = append(raws, c), append(bodies, nil) // the answer comes at the end
	}
	wsEnded := make(chan error, sockets)
	for i := range sockets {
		c := dialWS(t, n, "/ws", false)
		readText(t, c)
		go func() {
			for {
				if _, _, err := c.ReadMessage(); err != nil {
					var ce *websocket.CloseError
					if !errors.As(err, &ce) || (ce.Code != closeGoingAway && ce.Code != websocket.CloseAbnormalClosure) {
						wsEnded <- fmt.Errorf("websocket %d: %w", i, err)
						return
					}
					wsEnded <- nil
					return
				}
			}
		}()
	}
	n.waitSubscribers(t, "room", streams+polls+sockets)

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- n.Shutdown(ctx) }()
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Shutdown did not return: the drain was not cut short")
	}

	// Every held connection is closed: its client reads what is left
	// (streams end with their last chunk, long-polls get their timeout
	// answer, at best) and then EOF.
	for i, c := range raws {
		c.SetDeadline(time.Now().Add(20 * time.Second))
		body := bodies[i]
		if body == nil {
			resp, err := http.ReadResponse(c.r, nil)
			if err != nil {
				t.Fatalf("connection %d: %v", i, err)
			}
			body = resp.Body
		}
		if _, err := io.ReadAll(body); err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("connection %d: body: %v", i, err)
		}
		if b, err := c.r.ReadByte(); err != io.EOF {
			t.Fatalf("connection %d after the body: %q %v, want EOF", i, b, err)
		}
	}
	for range sockets {
		select {
		case err := <-wsEnded:
			if err != nil {
				t.Error(err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("a WebSocket was left open after Shutdown")
		}
	}
	if h := n.held.Load(); h != 0 {
		t.Fatalf("%d connections still counted as held", h)
	}
}
