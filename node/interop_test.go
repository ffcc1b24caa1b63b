package node

import (
	"bufio"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
)

// The interop tests run real third-party GRIP software against the node:
// an origin built with Fanout's @fanoutio/serve-grip, publishes with
// @fanoutio/grip's Publisher, and Pushpin's own pushpin-publish. They are
// skipped when the tools are missing, unless EDGEPUSH_REQUIRE_INTEROP is
// set (CI sets it), in which case a missing tool is a failure.

func requireTool(t *testing.T, what string, ok bool) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("EDGEPUSH_REQUIRE_INTEROP") != "" {
		t.Fatalf("%s is required (EDGEPUSH_REQUIRE_INTEROP is set)", what)
	}
	t.Skipf("%s not available", what)
}

const interopDir = "testdata/interop"

// startServeGripOrigin runs origin.js and returns its base URL.
func startServeGripOrigin(t *testing.T, sigKey string) string {
	t.Helper()
	_, err := exec.LookPath("node")
	requireTool(t, "node", err == nil)
	_, err = os.Stat(filepath.Join(interopDir, "node_modules", "@fanoutio", "serve-grip"))
	requireTool(t, "npm packages (make interop-deps)", err == nil)
	cmd := exec.Command("node", "origin.js")
	cmd.Dir = interopDir
	cmd.Env = append(os.Environ(), "PORT=0", "GRIP_KEY="+sigKey, "GRIP_ISS=edgepush", "GRIP_REQUIRED=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if port, ok := strings.CutPrefix(sc.Text(), "listening "); ok {
				ready <- port
			}
		}
	}()
	select {
	case port := <-ready:
		return "http://127.0.0.1:" + port
	case <-time.After(20 * time.Second):
		t.Fatal("origin.js did not start")
	}
	return ""
}

// publishJS publishes with @fanoutio/grip's Publisher through publish.js.
func publishJS(t *testing.T, env []string, args ...string) error {
	t.Helper()
	cmd := exec.Command("node", append([]string{"publish.js"}, args...)...)
	cmd.Dir = interopDir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return &exec.ExitError{ProcessState: cmd.ProcessState, Stderr: out}
	}
	return nil
}

func TestInteropServeGripOriginAndGripPublisher(t *testing.T) {
	originURL := startServeGripOrigin(t, "interop-sig")
	n := startNode(t, http.NotFoundHandler(), func(c *Config) {
		c.Origin, c.SigKey, c.PublishKey = originURL, "interop-sig", "interop-pub"
	})
	jwtEnv := []string{"PUBLISH_KEY=interop-pub", "PUBLISH_ISS=edgepush"}

	// The origin verifies Grip-Sig itself (GRIP_REQUIRED answers 501 otherwise).
	resp, err := http.Get(n.url + "/sig")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.TrimSpace(string(b)) != `{"signed":true,"proxied":true}` {
		t.Fatalf("/sig through the node: %d %q", resp.StatusCode, b)
	}

	t.Run("stream", func(t *testing.T) {
		c := dialRaw(t, n.Addr())
		body := bufio.NewReader(c.get(t, "/stream?ch=js-stream").Body)
		if got := readLine(t, body); got != "stream open\n" {
			t.Fatalf("initial %q", got)
		}
		n.waitSubscribers(t, "js-stream", 1)
		if err := publishJS(t, jwtEnv, n.ctl+"/", "js-stream", "http-stream", "one\n"); err != nil {
			t.Fatal(err)
		}
		if got := readLine(t, body); got != "one\n" {
			t.Fatalf("got %q", got)
		}
	})
	t.Run("sse with basic auth", func(t *testing.T) {
		c := dialRaw(t, n.Addr())
		resp := c.get(t, "/sse?ch=js-sse")
		if resp.Header.Get("Content-Type") != "text/event-stream" {
			t.Fatalf("content type %q", resp.Header.Get("Content-Type"))
		}
		events := sseEvents(resp.Body)
		if ev := <-events; ev != "message:hello" {
			t.Fatalf("first event %q", ev)
		}
		n.waitSubscribers(t, "js-sse", 1)
		if err := publishJS(t, []string{"PUBLISH_BASIC=app:interop-pub"}, n.ctl, "js-sse", "http-stream", "event: tick\ndata: 2\n\n"); err != nil {
			t.Fatal(err)
		}
		if ev := <-events; ev != "tick:2" {
			t.Fatalf("event %q", ev)
		}
	})
	t.Run("long-poll", func(t *testing.T) {
		done := dialRaw(t, n.Addr()).getAsync("/poll?ch=js-poll")
		n.waitSubscribers(t, "js-poll", 1)
		if err := publishJS(t, jwtEnv, n.ctl+"/", "js-poll", "http-response", `{"msg":"hi"}`); err != nil {
			t.Fatal(err)
		}
		a := await(t, done)
		if got := a.resp.Header.Get("Content-Type") + " " + a.body; got != `application/json {"msg":"hi"}` {
			t.Fatalf("got %q", got)
		}
	})
	t.Run("websocket with wsContext", func(t *testing.T) {
		d := websocket.Dialer{HandshakeTimeout: waitTimeout}
		c, _, err := d.Dial("ws://"+n.Addr().String()+"/ws?ch=js-ws", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		if got := readText(t, c); got != "welcome" {
			t.Fatalf("first message %q", got)
		}
		c.WriteMessage(websocket.TextMessage, []byte("hello"))
		if got := readText(t, c); got != "echo: hello" {
			t.Fatalf("echo %q", got)
		}
		n.waitSubscribers(t, "js-ws", 1)
		if err := publishJS(t, jwtEnv, n.ctl+"/", "js-ws", "ws-message", "pushed to ws"); err != nil {
			t.Fatal(err)
		}
		if got := readText(t, c); got != "pushed to ws" {
			t.Fatalf("publish %q", got)
		}
		c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(1000, ""))
		expectClose(t, c, 1000, "")
	})
	t.Run("wrong publish key is refused", func(t *testing.T) {
		if err := publishJS(t, []string{"PUBLISH_KEY=wrong", "PUBLISH_ISS=edgepush"}, n.ctl+"/", "x", "http-stream", "x"); err == nil {
			t.Fatal("publish with a wrong key succeeded")
		}
	})
}

func TestInteropPushpinPublish(t *testing.T) {
	_, err := exec.LookPath("pushpin-publish")
	requireTool(t, "pushpin-publish (Debian package pushpin)", err == nil)
	n := startNode(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/poll" {
			w.Header().Set("Grip-Hold", "response")
		} else {
			w.Header().Set("Grip-Hold", "stream")
		}
		w.Header().Set("Grip-Channel", "pp")
		io.WriteString(w, "open\n")
	}))
	pub := func(args ...string) {
		t.Helper()
		out, err := exec.Command("pushpin-publish", append([]string{"--spec", n.ctl}, args...)...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "Published") {
			t.Fatalf("pushpin-publish %v: %v %s", args, err, out)
		}
	}
	c := dialRaw(t, n.Addr())
	body := bufio.NewReader(c.get(t, "/stream").Body)
	readLine(t, body)
	n.waitSubscribers(t, "pp", 1)
	pub("pp", "hello")
	if got := readLine(t, body); got != "hello\n" {
		t.Fatalf("got %q", got)
	}
	pub("--close", "pp")
	if rest, err := io.ReadAll(body); err != nil || len(rest) != 0 {
		t.Fatalf("after --close: %q %v", rest, err)
	}

	done := dialRaw(t, n.Addr()).getAsync("/poll")
	n.waitSubscribers(t, "pp", 1)
	pub("pp", "answer", "--code", "404", "-H", "X-A: 1")
	a := await(t, done)
	if got := a.resp.Status + " " + a.resp.Header.Get("X-A") + " " + a.body; got != "404 Not Found 1 answer\n" {
		t.Fatalf("got %q", got)
	}
}
