package node

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fasthttp/websocket"
)

// accessLine is one access-log line.
type accessLine map[string]any

func (l accessLine) str(key string) string { s, _ := l[key].(string); return s }
func (l accessLine) num(key string) float64 {
	f, _ := l[key].(float64)
	return f
}

// accessLines waits until the log at path holds want lines and parses
// them.
func accessLines(tb testing.TB, path string, want int) []accessLine {
	tb.Helper()
	var lines []accessLine
	waitFor(tb, fmt.Sprintf("%d access-log lines", want), func() bool {
		b, err := os.ReadFile(path)
		if err != nil {
			tb.Fatal(err)
		}
		lines = lines[:0]
		for _, raw := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
			if len(raw) == 0 {
				continue
			}
			var l accessLine
			if err := json.Unmarshal(raw, &l); err != nil {
				tb.Fatalf("access log line is not JSON: %q: %v", raw, err)
			}
			lines = append(lines, l)
		}
		return len(lines) >= want
	})
	if len(lines) != want {
		tb.Fatalf("%d access-log lines, want %d: %v", len(lines), want, lines)
	}
	return lines
}

// checkAccess checks a line's fields; channels are compared joined by
// commas.
func checkAccess(tb testing.TB, l accessLine, transport, path string, status int, cache, channels string) {
	tb.Helper()
	var chans []string
	if cs, ok := l["channels"].([]any); ok {
		for _, c := range cs {
			chans = append(chans, fmt.Sprint(c))
		}
	}
	if l.str("msg") != "access" || l.str("time") == "" || l.str("method") != "GET" || l.str("id") == "" ||
		l.str("transport") != transport || l.str("path") != path || int(l.num("status")) != status ||
		l.str("cache") != cache || strings.Join(chans, ",") != channels ||
		!strings.HasPrefix(l.str("client"), "127.0.0.1:") || l.num("bytes") <= 0 {
		tb.Errorf("access line %v, want transport %s path %s status %d cache %q channels %q",
			l, transport, path, status, cache, channels)
	}
	if _, ok := l["duration_ms"].(float64); !ok {
		tb.Errorf("access line without duration_ms: %v", l)
	}
}

func TestAccessLogPlainStreamLongPoll(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	n := startNode(t, metricsOrigin(), func(c *Config) { c.AccessLog = path })

	// Plain: a miss, then a hit, with the client's request id.
	for _, want := range []string{"MISS", "HIT"} {
		req, _ := http.NewRequest("GET", n.url+"/plain", nil)
		req.Header.Set("X-Request-Id", "req-"+want)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	lines := accessLines(t, path, 2)
	checkAccess(t, lines[0], "plain", "/plain", 200, "MISS", "")
	checkAccess(t, lines[1], "plain", "/plain", 200, "HIT", "")
	if lines[1].num("bytes") != float64(len("plain body\n")) || lines[1].str("request_id") != "req-HIT" {
		t.Errorf("plain line: %v", lines[1])
	}

	// A stream ended by a close action.
	c := dialRaw(t, n.Addr())
	body := bufio.NewReader(c.get(t, "/stream").Body)
	readLine(t, body)
	n.waitSubscribers(t, "m", 1)
	n.publish(t, streamItem("m", "one\n"))
	readLine(t, body)
	n.publish(t, map[string]any{"channel": "m", "formats": map[string]any{"http-stream": map[string]any{"action": "close"}}})
	lines = accessLines(t, path, 3)
	checkAccess(t, lines[2], "stream", "/stream", 200, "MISS", "m")
	if lines[2].str("end") != "done" || lines[2].num("bytes") < float64(len("hello\none\n")) {
		t.Errorf("stream line: %v", lines[2])
	}

	// A stream whose client hangs up (another URL: a connection opened
	// from the cached entry would replay the close).
	c2 := dialRaw(t, n.Addr())
	readLine(t, bufio.NewReader(c2.get(t, "/stream?again").Body))
	n.waitSubscribers(t, "m", 1)
	c2.Close()
	lines = accessLines(t, path, 4)
	checkAccess(t, lines[3], "stream", "/stream", 200, "MISS", "m")
	if lines[3].str("end") != errClientGone.Error() {
		t.Errorf("hung-up stream line: %v", lines[3])
	}

	// A long-poll answered by a publish with another status; the
	// connection then serves another request, logged on its own.
	p := dialRaw(t, n.Addr())
	io.WriteString(p, "GET /poll HTTP/1.1\r\nHost: x\r\n\r\n")
	n.waitSubscribers(t, "p", 1)
	n.publish(t, map[string]any{"channel": "p", "formats": map[string]any{"http-response": map[string]any{"code": 201, "body": "made\n"}}})
	resp, err := http.ReadResponse(p.r, nil)
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("long-poll answer: %v %v", resp, err)
	}
	io.Copy(io.Discard, resp.Body)
	lines = accessLines(t, path, 5)
	checkAccess(t, lines[4], "longpoll", "/poll", 201, "MISS", "p")
	p.get(t, "/plain")
	lines = accessLines(t, path, 6)
	checkAccess(t, lines[5], "plain", "/plain", 200, "MISS", "") // another Host
	if lines[5].str("client") != lines[4].str("client") {
		t.Errorf("the second request on the connection has client %s, the first %s", lines[5].str("client"), lines[4].str("client"))
	}
}

func TestAccessLogWebSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	n := startNode(t, &wsOrigin{}, func(c *Config) { c.AccessLog = path })
	c := dialWS(t, n, "/ws", false)
	if got := readText(t, c); got != "welcome" {
		t.Fatalf("first message %q", got)
	}
	n.waitSubscribers(t, "room", 1)
	n.publish(t, wsPublish(map[string]any{"content": "pushed"}))
	readText(t, c)
	c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"))
	expectClose(t, c, websocket.CloseNormalClosure, "")
	lines := accessLines(t, path, 1)
	checkAccess(t, lines[0], "ws", "/ws", 101, "MISS", "room")
	if lines[0].num("bytes") < float64(len("welcome")+len("pushed")) {
		t.Errorf("ws line: %v", lines[0])
	}
}

func TestAccessLogOffAndBadPath(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Origin, cfg.AccessLog = "http://127.0.0.1:1", filepath.Join(t.TempDir(), "no", "such", "dir", "log")
	if _, err := New(cfg, nil); err == nil || !strings.Contains(err.Error(), "-access-log") {
		t.Fatalf("New with an unwritable access log: %v", err)
	}
	n := startNode(t, metricsOrigin())
	if n.access != nil {
		t.Fatal("access log on without -access-log")
	}
	resp, err := http.Get(n.url + "/plain")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
}

func TestAccessLogLongPollTimeout(t *testing.T) {
	t.Parallel() // Grip-Timeout is at least 5s
	path := filepath.Join(t.TempDir(), "access.log")
	n := startNode(t, gripOrigin("waited\n", "Grip-Hold", "response", "Grip-Channel", "slow",
		"Grip-Timeout", "5", "Grip-Status", "202 Waited"), func(c *Config) { c.AccessLog = path })
	c := dialRaw(t, n.Addr())
	resp := c.get(t, "/poll")
	b, _ := io.ReadAll(io.LimitReader(resp.Body, int64(len("waited\n"))))
	if resp.StatusCode != 202 || string(b) != "waited\n" {
		t.Fatalf("timeout answer %d %q", resp.StatusCode, b)
	}
	lines := accessLines(t, path, 1)
	checkAccess(t, lines[0], "longpoll", "/poll", 202, "MISS", "slow")
	if lines[0].str("end") != "done" || lines[0].num("duration_ms") < 5000 || lines[0].num("bytes") < float64(len("waited\n")) {
		t.Errorf("timed-out long-poll line: %v", lines[0])
	}
}
