package node

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestStreamHoldReceivesPublishesUntilClose(t *testing.T) {
	n := startNode(t, gripOrigin("stream open\n",
		"Content-Type", "text/plain", "Grip-Hold", "stream", "Grip-Channel", "news, other",
		"Cache-Control", "max-age=60"))
	c := dialRaw(t, n.Addr())
	resp := c.get(t, "/stream")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/plain" || resp.Header.Get("Cache-Control") != "max-age=60" {
		t.Fatalf("head: %d %v", resp.StatusCode, resp.Header)
	}
	if len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" || resp.Header.Get("Grip-Hold") != "" {
		t.Fatalf("head: %v %v", resp.TransferEncoding, resp.Header)
	}
	body := bufio.NewReader(resp.Body)
	if got := readLine(t, body); got != "stream open\n" {
		t.Fatalf("initial body %q", got)
	}
	n.waitSubscribers(t, "news", 1)
	n.waitSubscribers(t, "other", 1)
	n.publish(t, streamItem("news", "one\n"))
	n.publish(t, streamItem("other", "two\n"), streamItem("unrelated", "nope\n"))
	n.publish(t, map[string]any{"channel": "news", "formats": map[string]any{
		"http-stream": map[string]any{"content-bin": base64.StdEncoding.EncodeToString([]byte("three\n"))}}})
	for _, want := range []string{"one\n", "two\n", "three\n"} {
		if got := readLine(t, body); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	n.publish(t, map[string]any{"channel": "news", "formats": map[string]any{"http-stream": map[string]any{"action": "close"}}})
	rest, err := io.ReadAll(body)
	if err != nil || len(rest) != 0 {
		t.Fatalf("after close action: %q %v", rest, err)
	}
	n.waitSubscribers(t, "news", 0)
	n.waitSubscribers(t, "other", 0)
	waitFor(t, "held connections to reach 0", func() bool { return n.held.Load() == 0 })
}

func TestSSEThroughNetHTTPClient(t *testing.T) {
	n := startNode(t, gripOrigin("event: message\ndata: hello\n\n",
		"Content-Type", "text/event-stream", "Grip-Hold", "stream", "Grip-Channel", "sse"))
	client := &http.Client{}
	defer client.CloseIdleConnections()
	resp, err := client.Get(n.url + "/sse")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("content type %q", resp.Header.Get("Content-Type"))
	}
	events := sseEvents(resp.Body)
	if ev := <-events; ev != "message:hello" {
		t.Fatalf("first event %q", ev)
	}
	n.waitSubscribers(t, "sse", 1)
	for i := range 3 {
		n.publish(t, streamItem("sse", fmt.Sprintf("event: update\ndata: {\"value\": %d}\n\n", i)))
	}
	for i := range 3 {
		select {
		case ev := <-events:
			if want := fmt.Sprintf("update:{\"value\": %d}", i); ev != want {
				t.Fatalf("event %q, want %q", ev, want)
			}
		case <-time.After(waitTimeout):
			t.Fatal("no event")
		}
	}
}

// sseEvents parses an SSE stream into "event:data" strings.
func sseEvents(r io.Reader) <-chan string {
	out := make(chan string, 16)
	go func() {
		defer close(out)
		sc := bufio.NewScanner(r)
		event, data := "message", ""
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if data != "" {
					out <- event + ":" + data
				}
				event, data = "message", ""
			case strings.HasPrefix(line, "event: "):
				event = line[len("event: "):]
			case strings.HasPrefix(line, "data: "):
				data = line[len("data: "):]
			}
		}
	}()
	return out
}

// TestStreamKeepAlive: an idle stream gets its keep-alive each time it has
// been idle for the timeout. Two keep-alives of a 1s timeout cannot both
// arrive before 2s have passed since the request (a lower bound: a slow
// machine only makes them later); no upper bound, the reads wait for them.
func TestStreamKeepAlive(t *testing.T) {
	n := startNode(t, gripOrigin("open\n", "Grip-Hold", "stream", "Grip-Channel", "ka",
		"Grip-Keep-Alive", `ping\n; format=cstring; timeout=1`))
	c := dialRaw(t, n.Addr())
	requested := time.Now()
	body := bufio.NewReader(c.get(t, "/").Body)
	if got := readLine(t, body); got != "open\n" {
		t.Fatalf("initial %q", got)
	}
	for range 2 {
		if got := readLine(t, body); got != "ping\n" {
			t.Fatalf("got %q, want keep-alive", got)
		}
	}
	if d := time.Since(requested); d < 2*time.Second {
		t.Fatalf("two keep-alives of a 1s idle timeout came %v after the request", d)
	}
	// Published data goes out between keep-alives, which go on after it.
	n.publish(t, streamItem("ka", "data\n"))
	got := readLine(t, body)
	for got == "ping\n" {
		got = readLine(t, body)
	}
	if got != "data\n" {
		t.Fatalf("got %q, want the publish", got)
	}
	if got := readLine(t, body); got != "ping\n" {
		t.Fatalf("got %q after the publish, want keep-alive", got)
	}
}

func TestHTTP10StreamIsRawAndEndsWithClose(t *testing.T) {
	n := startNode(t, gripOrigin("hi\n", "Grip-Hold", "stream", "Grip-Channel", "old"))
	c := dialRaw(t, n.Addr())
	io.WriteString(c, "GET / HTTP/1.0\r\n\r\n")
	n.waitSubscribers(t, "old", 1)
	n.publish(t, streamItem("old", "pushed\n"))
	n.publish(t, map[string]any{"channel": "old", "formats": map[string]any{"http-stream": map[string]any{"action": "close"}}})
	all, err := io.ReadAll(c.r)
	if err != nil {
		t.Fatal(err)
	}
	s := string(all)
	if !strings.Contains(s, "Connection: close\r\n") || strings.Contains(s, "chunked") || !strings.HasSuffix(s, "\r\n\r\nhi\npushed\n") {
		t.Fatalf("response %q", s)
	}
}

func TestLongPollAnsweredByPublishWithMergedHeaders(t *testing.T) {
	hold := gripOrigin(`{"timeout":true}`, "Content-Type", "application/json",
		"X-Held", "kept", "X-Replaced", "old", "Grip-Hold", "response", "Grip-Channel", "poll")
	n := startNode(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/poll" {
			hold.ServeHTTP(w, r)
			return
		}
		io.WriteString(w, "plain")
	}))
	c := dialRaw(t, n.Addr())
	resCh := make(chan *http.Response, 1)
	go func() {
		io.WriteString(c, "GET /poll HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(c.r, nil)
		if err == nil {
			resCh <- resp
		}
		close(resCh)
	}()
	n.waitSubscribers(t, "poll", 1)
	n.publish(t, map[string]any{"channel": "poll", "formats": map[string]any{"http-response": map[string]any{
		"code": 409, "headers": map[string]string{"X-Replaced": "new", "Grip-Secret": "no"}, "body": "conflict\n"}}})
	resp := <-resCh
	if resp == nil {
		t.Fatal("no response")
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 409 || resp.Status != "409 Conflict" || string(b) != "conflict\n" {
		t.Fatalf("got %q %q", resp.Status, b)
	}
	if resp.Header.Get("X-Held") != "kept" || resp.Header.Get("X-Replaced") != "new" ||
		resp.Header.Get("Content-Type") != "application/json" || resp.Header.Get("Grip-Secret") != "" {
		t.Fatalf("headers %v", resp.Header)
	}
	n.waitSubscribers(t, "poll", 0)
	// The connection goes back to serving requests.
	resp2 := c.get(t, "/again")
	if b, _ := io.ReadAll(resp2.Body); resp2.StatusCode != 200 || string(b) != "plain" {
		t.Fatalf("second request on the connection: %d %q", resp2.StatusCode, b)
	}
}

// TestLongPollTimeoutAnswersWithOriginBody: a long-poll nothing is
// published to is answered with the origin's own response when its
// Grip-Timeout expires, and never before the 5s minimum a smaller
// Grip-Timeout is raised to (a lower bound, measured from before the
// request: a slow machine only makes the answer later).
func TestLongPollTimeoutAnswersWithOriginBody(t *testing.T) {
	t.Parallel()
	n := startNode(t, gripOrigin(`{"timeout":true}`, "Content-Type", "application/json",
		"Grip-Hold", "response", "Grip-Channel", "slow", "Grip-Timeout", "1", "Grip-Status", "202 Waited"))
	c := dialRaw(t, n.Addr())
	start := time.Now()
	resp := c.get(t, "/poll")
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 100))
	if d := time.Since(start); d < 5*time.Second {
		t.Fatalf("timeout after %v: Grip-Timeout 1 must be raised to the 5s minimum", d)
	}
	if resp.Status != "202 Waited" || string(b) != `{"timeout":true}` {
		t.Fatalf("got %q %q, want the origin's timeout response", resp.Status, b)
	}
}

func TestGripInstructBody(t *testing.T) {
	n := startNode(t, gripOrigin(`{"hold":{"mode":"stream","channels":[{"name":"gi"}]},
		"response":{"code":200,"headers":{"Content-Type":"text/plain","X-From":"instruct"},"body":"instructed\n"}}`,
		"Content-Type", "application/grip-instruct", "X-Dropped", "yes"))
	c := dialRaw(t, n.Addr())
	resp := c.get(t, "/")
	body := bufio.NewReader(resp.Body)
	if got := readLine(t, body); got != "instructed\n" || resp.Header.Get("X-From") != "instruct" || resp.Header.Get("X-Dropped") != "" {
		t.Fatalf("got %q %v", got, resp.Header)
	}
	n.waitSubscribers(t, "gi", 1)
	n.publish(t, streamItem("gi", "pushed\n"))
	if got := readLine(t, body); got != "pushed\n" {
		t.Fatalf("got %q", got)
	}
}

// TestClientDisconnectUnsubscribesPromptly: a held connection whose client
// hangs up is noticed by the hang-up watch alone: nothing is written to it
// (no publishes, no keep-alives) and every timeout that could end it
// otherwise is set far beyond the wait.
func TestClientDisconnectUnsubscribesPromptly(t *testing.T) {
	n := startNode(t, gripOrigin("x\n", "Grip-Hold", "stream", "Grip-Channel", "bye"), func(c *Config) {
		c.ReadTimeout, c.IdleTimeout, c.WriteTimeout = time.Hour, time.Hour, time.Hour
	})
	var conns []*rawConn
	for range 5 {
		c := dialRaw(t, n.Addr())
		c.get(t, "/")
		conns = append(conns, c)
	}
	n.waitSubscribers(t, "bye", 5)
	for _, c := range conns {
		c.Close()
	}
	n.waitSubscribers(t, "bye", 0)
	waitFor(t, "held connections to reach 0", func() bool { return n.held.Load() == 0 })
}

func TestSlowConsumerIsDisconnected(t *testing.T) {
	n := startNode(t, gripOrigin("x\n", "Grip-Hold", "stream", "Grip-Channel", "firehose"),
		func(c *Config) { c.MaxQueueBytes = 1 << 20 })
	slow := dialRaw(t, n.Addr())
	slow.get(t, "/") // and never read again
	fast := dialRaw(t, n.Addr())
	fastBody := bufio.NewReaderSize(fast.get(t, "/").Body, 64<<10)
	readLine(t, fastBody)
	n.waitSubscribers(t, "firehose", 2)
	chunk := strings.Repeat("z", 8<<10) + "\n"
	const msgs = 2000 // 16 MB: more than socket buffers and the queue hold
	done := make(chan error, 1)
	go func() {
		for i := range msgs {
			line, err := fastBody.ReadString('\n')
			if err != nil || len(line) != len(chunk) {
				done <- fmt.Errorf("fast reader message %d: %d bytes, %v", i, len(line), err)
				return
			}
		}
		done <- nil
	}()
	for range msgs / 10 {
		items := make([]map[string]any, 10)
		for i := range items {
			items[i] = streamItem("firehose", chunk)
		}
		n.publish(t, items...)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	waitFor(t, "slow consumer to be dropped", func() bool { return n.Status().Pool.SlowConsumers == 1 })
	n.waitSubscribers(t, "firehose", 1)
}

func TestShutdownEndsHeldStreamsCleanly(t *testing.T) {
	n := startNode(t, gripOrigin("x\n", "Grip-Hold", "stream", "Grip-Channel", "end"))
	c := dialRaw(t, n.Addr())
	body := bufio.NewReader(c.get(t, "/").Body)
	readLine(t, body)
	n.waitSubscribers(t, "end", 1)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := n.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(body) // chunked reader: EOF only after the last chunk
	if err != nil || len(rest) != 0 {
		t.Fatalf("after shutdown: %q %v", rest, err)
	}
}
