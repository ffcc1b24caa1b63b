package node

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

func responseItem(channel, body string) map[string]any {
	return map[string]any{"channel": channel, "formats": map[string]any{"http-response": map[string]any{"body": body}}}
}

func TestHasDotSegment(t *testing.T) {
	for path, want := range map[string]bool{
		"/": false, "/a/b": false, "/a/..b/": false, "/...": false, "/a.b": false, "/.well-known/x": false,
		"/a/../b": true, "/a/./b": true, "/..": true, "/a/.": true, "/a/%2e%2e/b": true, "/a/%2E./b": true, "/%2e": true,
		"/a/%2e%2e%2e": false, "/a%2fb": false,
	} {
		if got := hasDotSegment([]byte(path)); got != want {
			t.Errorf("%q: %v, want %v", path, got, want)
		}
	}
}

// TestDotSegmentsRefused: a path that names one route's resource through
// another route's prefix is refused, so it can neither reach the wrong
// origin nor poison another route's cache entry.
func TestDotSegmentsRefused(t *testing.T) {
	n := startNode(t, gripOrigin("ok\n", "Cache-Control", "s-maxage=600"))
	for _, target := range []string{"/public/../admin", "/public/%2e%2e/admin", "/./x"} {
		c := dialRaw(t, n.Addr())
		resp := c.get(t, target)
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 400 || !strings.Contains(string(b), "dot-segments") {
			t.Errorf("%s: %d %q", target, resp.StatusCode, b)
		}
	}
	if resp := dialRaw(t, n.Addr()).get(t, "/admin"); resp.StatusCode != 200 || resp.Header.Get("X-Cache") != "MISS" {
		t.Fatalf("/admin: %d %s", resp.StatusCode, resp.Header.Get("X-Cache"))
	}
}

// TestControlRefusesCrossSitePosts: a browser holding the key cannot be
// made to publish by another site's page; server-side publishers and
// same-origin pages can.
func TestControlRefusesCrossSitePosts(t *testing.T) {
	n := startNode(t, gripOrigin("x\n"), func(c *Config) { c.PublishKey = "k" })
	host := strings.TrimPrefix(n.ctl, "http://")
	body := `{"items":[{"channel":"c","formats":{"http-stream":{"content":"x"}}}]}`
	for _, tc := range []struct {
		header, value string
		code          int
	}{
		{"", "", 200},
		{"Sec-Fetch-Site", "cross-site", 403},
		{"Sec-Fetch-Site", "same-site", 403},
		{"Sec-Fetch-Site", "same-origin", 200},
		{"Origin", "http://evil.example", 403},
		{"Origin", "null", 403},
		{"Origin", "http://" + host, 200},
	} {
		req, _ := http.NewRequest("POST", n.ctl+"/publish/", strings.NewReader(body))
		req.SetBasicAuth("", "k")
		if tc.header != "" {
			req.Header.Set(tc.header, tc.value)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.code {
			t.Errorf("%s: %q: %d, want %d", tc.header, tc.value, resp.StatusCode, tc.code)
		}
	}
}

// TestShutdownWithKeepAliveLongPollsIsBounded: long-polls answered while
// the node drains are closed, not served again, so idle keep-alive
// clients cannot hold the shutdown open until their read timeout.
func TestShutdownWithKeepAliveLongPollsIsBounded(t *testing.T) {
	n := startNode(t, gripOrigin("timeout\n", "Grip-Hold", "response", "Grip-Channel", "lp"), func(c *Config) {
		c.DrainPeriod, c.ReadTimeout, c.IdleTimeout = 2*time.Second, time.Hour, time.Hour
	})
	const polls = 20
	var conns []*rawConn
	for range polls {
		c := dialRaw(t, n.Addr())
		io.WriteString(c, "GET /poll HTTP/1.1\r\nHost: t\r\n\r\n")
		conns = append(conns, c)
	}
	n.waitSubscribers(t, "lp", polls)
	// The shutdown's context only catches a hang; a shutdown held open by
	// the keep-alive clients would run into it (their read and idle
	// timeouts are far longer), so it must end before its context does.
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- n.Shutdown(ctx) }()
	waitFor(t, "the drain", func() bool { return n.draining.Load() })
	n.publish(t, responseItem("lp", "answered\n"))
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Go(func() {
			resp, err := http.ReadResponse(c.r, nil)
			if err != nil {
				t.Errorf("long-poll: %v", err)
				return
			}
			io.ReadAll(resp.Body)
			if _, err := c.r.ReadByte(); err != io.EOF { // then the node hangs up
				t.Errorf("after the answer: %v, want EOF", err)
			}
		})
	}
	wg.Wait()
	if err := <-done; err != nil || ctx.Err() != nil {
		t.Fatalf("shutdown: %v, its context: %v (held open until cut short)", err, ctx.Err())
	}
}

// TestTLSKeepAliveAfterLongPoll: a request on an HTTPS connection whose
// long-poll was answered is still seen as HTTPS.
func TestTLSKeepAliveAfterLongPoll(t *testing.T) {
	var mu sync.Mutex
	var protos []string
	origin := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		protos = append(protos, r.URL.Path+" "+r.Header.Get("X-Forwarded-Proto"))
		mu.Unlock()
		if r.URL.Path == "/poll" {
			w.Header().Set("Grip-Hold", "response")
			w.Header().Set("Grip-Channel", "tlp")
		}
		io.WriteString(w, "x\n")
	})
	n, _, _ := startTLSNode(t, origin, nil, "a.test")
	c, err := tls.Dial("tcp", n.TLSAddr().String(), &tls.Config{ServerName: "a.test", InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	r := bufio.NewReader(c)
	io.WriteString(c, "GET /poll HTTP/1.1\r\nHost: a.test\r\n\r\n")
	n.waitSubscribers(t, "tlp", 1)
	n.publish(t, responseItem("tlp", "pub\n"))
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	io.WriteString(c, "GET /after HTTP/1.1\r\nHost: a.test\r\n\r\n")
	if resp, err = http.ReadResponse(r, nil); err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	mu.Lock()
	defer mu.Unlock()
	if len(protos) != 2 || protos[1] != "/after https" {
		t.Fatalf("origin saw %q", protos)
	}
}

// TestConnectionLimitWithTLSListener: the HTTPS listener does not take a
// slot of -max-conns (two connections are served with -max-conns 2), and
// the limit still holds: a third connection, plain or HTTPS, gets 503 and
// is closed.
func TestConnectionLimitWithTLSListener(t *testing.T) {
	n, _, _ := startTLSNode(t, gripOrigin("x\n"), func(c *Config) { c.MaxConns = 2 }, "a.test")
	a, b := dialRaw(t, n.Addr()), dialRaw(t, n.Addr())
	for i, c := range []*rawConn{a, b} {
		resp := c.get(t, "/")
		io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("connection %d of 2: %d", i+1, resp.StatusCode)
		}
	}
	// a and b stay open (kept alive): both slots are taken.
	tc, err := tls.Dial("tcp", n.TLSAddr().String(), &tls.Config{ServerName: "a.test", InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tc.Close() })
	tc.SetDeadline(time.Now().Add(20 * time.Second))
	for name, c := range map[string]*rawConn{"plain": dialRaw(t, n.Addr()), "https": {Conn: tc, r: bufio.NewReader(tc)}} {
		resp := c.get(t, "/")
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 503 || string(body) != "edgepush: too many connections\n" || !resp.Close {
			t.Errorf("third connection (%s): %d %q close=%v", name, resp.StatusCode, body, resp.Close)
		}
		if _, err := c.r.ReadByte(); err != io.EOF {
			t.Errorf("third connection (%s) after the 503: %v, want EOF", name, err)
		}
	}
}
