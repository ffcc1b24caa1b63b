package node

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"testing"
	"time"
)

func getStatus(tb testing.TB, url string) (int, string) {
	tb.Helper()
	resp, err := http.Get(url)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestDrain: on shutdown /readyz turns 503 while every held connection
// is still open; streams then end cleanly and WebSockets close with
// 1001, spread over the drain period and receiving publishes until their
// turn; afterwards the node accepts nothing.
func TestDrain(t *testing.T) {
	ws := &wsOrigin{}
	stream := gripOrigin("x\n", "Grip-Hold", "stream", "Grip-Channel", "room")
	// The drain delay is the window in which the test checks the node in
	// service and publishes during the drain: long, so that a slow machine
	// still fits its few requests in it.
	rec := &logRecorder{}
	n := startNodeLog(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ws" {
			ws.ServeHTTP(w, r)
			return
		}
		stream.ServeHTTP(w, r)
	}), slog.New(rec), func(c *Config) { c.DrainDelay, c.DrainPeriod = 2*time.Second, 600*time.Millisecond })

	if code, body := getStatus(t, n.ctl+"/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("/healthz: %d %q", code, body)
	}
	if code, body := getStatus(t, n.ctl+"/readyz"); code != 200 || body != "ready\n" {
		t.Fatalf("/readyz: %d %q", code, body)
	}
	const streams = 10
	var bodies []*bufio.Reader
	for range streams {
		b := bufio.NewReader(dialRaw(t, n.Addr()).get(t, "/s").Body)
		readLine(t, b)
		bodies = append(bodies, b)
	}
	wc := dialWS(t, n, "/ws", false)
	readText(t, wc)
	n.waitSubscribers(t, "room", streams+1)

	shutdownDone := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*waitTimeout)
		defer cancel()
		shutdownDone <- n.Shutdown(ctx)
	}()
	waitFor(t, "/readyz to turn 503", func() bool { code, _ := getStatus(t, n.ctl+"/readyz"); return code == 503 })
	// The node logs what it holds as it starts draining, when /readyz
	// turns 503: every connection.
	waitFor(t, "the drain to be logged", func() bool { return rec.count("draining") > 0 })
	if held, ok := rec.attr("draining", "held"); !ok || held.Kind() != slog.KindInt64 || held.Int64() != streams+1 {
		t.Fatalf("readyz turned 503 with %v of %d connections held", held, streams+1)
	}
	if code, _ := getStatus(t, n.ctl+"/healthz"); code != 200 {
		t.Fatalf("/healthz while draining: %d", code)
	}
	// Still in service: a publish reaches every connection not yet told
	// to go (all of them, since the drain delay has not passed).
	n.publish(t, streamItem("room", "during drain\n"))

	ends := make(chan time.Time, streams)
	for _, b := range bodies {
		go func() {
			if line, _ := b.ReadString('\n'); line != "during drain\n" {
				t.Errorf("stream got %q, want the publish", line)
			}
			rest, err := io.ReadAll(b) // chunked: EOF only after the last chunk
			if err != nil || len(rest) != 0 {
				t.Errorf("stream end: %q %v", rest, err)
			}
			ends <- time.Now()
		}()
	}
	expectClose(t, wc, closeGoingAway, "")
	var times []time.Time
	for range streams {
		select {
		case at := <-ends:
			times = append(times, at)
		case <-time.After(waitTimeout):
			t.Fatal("streams did not end")
		}
	}
	sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
	// 11 connections over 600ms in 20ms steps: one every step, so the
	// first and last stream end ≥ 9 steps apart (150ms leaves a margin
	// for observing the ends late).
	if spread := times[len(times)-1].Sub(times[0]); spread < 150*time.Millisecond {
		t.Errorf("streams ended within %v: not spread over the drain period", spread)
	}
	if err := <-shutdownDone; err != nil {
		t.Fatal(err)
	}
	if c, err := net.DialTimeout("tcp", n.Addr().String(), time.Second); err == nil {
		c.Close()
		t.Fatal("the client listener still accepts after shutdown")
	}
}
