package node

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgepush/edgepush/internal/browsertest"
	"github.com/fasthttp/websocket"
)

// The interop tests run real third-party GRIP software against the node:
// an origin built with Fanout's @fanoutio/serve-grip, publishes with
// @fanoutio/grip's Publisher, and Pushpin's own pushpin-publish. They are
// skipped when the tools are missing, unless EDGEPUSH_REQUIRE_INTEROP is
// set (CI sets it), in which case a missing tool is a failure.

func requireTool(t *testing.T, what string, ok bool) {
	t.Helper()
	browsertest.Require(t, what, ok)
}

const interopDir = "testdata/interop"

// requireNodePackages skips (or fails) unless node and the named npm
// packages of testdata/interop are installed.
func requireNodePackages(t *testing.T, pkgs ...string) {
	t.Helper()
	_, err := exec.LookPath("node")
	requireTool(t, "node", err == nil)
	for _, pkg := range pkgs {
		_, err = os.Stat(filepath.Join(interopDir, "node_modules", pkg))
		requireTool(t, "npm package "+pkg+" (make interop-deps)", err == nil)
	}
}

// startScript runs a script of testdata/interop with node and hands each
// line of its stdout to line, on a goroutine of its own until the process
// ends. The process is killed (by its PID) when the test ends; its stderr
// is logged if the test failed.
func startScript(t *testing.T, env []string, line func(string), args ...string) {
	t.Helper()
	cmd := exec.Command("node", args...)
	cmd.Dir = interopDir
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr // read only after Wait
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			line(sc.Text())
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done // the pipe is at EOF once the process is gone
		cmd.Wait()
		if t.Failed() {
			t.Logf("node %s stderr:\n%s", strings.Join(args, " "), stderr.Bytes())
		}
	})
}

// jsOrigin is origin.js running: its base URL and what its /wsx route
// reported.
type jsOrigin struct {
	url     string
	mu      sync.Mutex
	seen    []wsSeen
	bad     []string      // report lines that did not parse
	changed chan struct{} // closed and replaced at each report
}

// wsSeen is origin.js's report of one WebSocket-over-HTTP request to /wsx,
// as serve-grip's WebSocketContext decoded it.
type wsSeen struct {
	Tag    string            `json:"tag"`
	ID     string            `json:"id"` // Connection-Id
	Meta   map[string]string `json:"meta"`
	Events []string          `json:"events"` // "OPEN", "TEXT <text>", "CLOSE <code>", "DISCONNECT", ...
}

func (r wsSeen) has(event string) bool { return slices.Contains(r.Events, event) }

// startServeGripOrigin runs origin.js and returns it once it listens.
func startServeGripOrigin(t *testing.T, sigKey string) *jsOrigin {
	t.Helper()
	requireNodePackages(t, "@fanoutio/serve-grip", "@fanoutio/grip")
	o := &jsOrigin{changed: make(chan struct{})}
	ready := make(chan string, 1)
	startScript(t, []string{"PORT=0", "GRIP_KEY=" + sigKey, "GRIP_ISS=edgepush", "GRIP_REQUIRED=1"}, func(line string) {
		if port, ok := strings.CutPrefix(line, "listening "); ok {
			ready <- port
			return
		}
		report, ok := strings.CutPrefix(line, "seen ")
		var r wsSeen
		o.mu.Lock()
		defer o.mu.Unlock()
		if err := json.Unmarshal([]byte(report), &r); !ok || err != nil {
			o.bad = append(o.bad, line)
		} else {
			o.seen = append(o.seen, r)
		}
		close(o.changed)
		o.changed = make(chan struct{})
	}, "origin.js")
	select {
	case port := <-ready:
		o.url = "http://127.0.0.1:" + port
		return o
	case <-time.After(20 * time.Second):
		t.Fatal("origin.js did not start")
	}
	return nil
}

// reports returns what origin.js reported for tag so far.
func (o *jsOrigin) reports(tag string) []wsSeen {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []wsSeen
	for _, r := range o.seen {
		if r.Tag == tag {
			out = append(out, r)
		}
	}
	return out
}

// awaitSeen waits until origin.js reports a request for tag that has
// event, and returns that report; the bound only catches hangs.
func (o *jsOrigin) awaitSeen(t *testing.T, tag, event string) wsSeen {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		o.mu.Lock()
		bad, changed := o.bad, o.changed
		o.mu.Unlock()
		if len(bad) > 0 {
			t.Fatalf("origin.js printed unexpected lines: %q", bad)
		}
		for _, r := range o.reports(tag) {
			if r.has(event) {
				return r
			}
		}
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("origin.js never saw %q on %s; it saw %+v", event, tag, o.reports(tag))
		}
	}
}

// runPublishJS publishes with @fanoutio/grip's Publisher through
// publish.js and returns its stdout and exit code.
func runPublishJS(t *testing.T, env []string, args ...string) (stdout string, code int) {
	t.Helper()
	cmd := exec.Command("node", append([]string{"publish.js"}, args...)...)
	cmd.Dir = interopDir
	cmd.Env = append(os.Environ(), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("publish.js: %v", err)
	}
	if errOut.Len() > 0 {
		t.Logf("publish.js stderr: %s", errOut.Bytes())
	}
	return out.String(), cmd.ProcessState.ExitCode()
}

// publishJS publishes through publish.js and fails the test unless it
// succeeded.
func publishJS(t *testing.T, env []string, args ...string) {
	t.Helper()
	if out, code := runPublishJS(t, env, args...); code != 0 || out != "published\n" {
		t.Fatalf("publish.js %q: exit %d, stdout %q", args, code, out)
	}
}

func TestInteropServeGripOriginAndGripPublisher(t *testing.T) {
	o := startServeGripOrigin(t, "interop-sig")
	n := startNode(t, http.NotFoundHandler(), func(c *Config) {
		c.Origin, c.SigKey, c.PublishKey = o.url, "interop-sig", "interop-pub"
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
		publishJS(t, jwtEnv, n.ctl+"/", "js-stream", "http-stream", "one\n")
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
		publishJS(t, []string{"PUBLISH_BASIC=app:interop-pub"}, n.ctl, "js-sse", "http-stream", "event: tick\ndata: 2\n\n")
		if ev := <-events; ev != "tick:2" {
			t.Fatalf("event %q", ev)
		}
	})
	t.Run("long-poll", func(t *testing.T) {
		done := dialRaw(t, n.Addr()).getAsync("/poll?ch=js-poll")
		n.waitSubscribers(t, "js-poll", 1)
		publishJS(t, jwtEnv, n.ctl+"/", "js-poll", "http-response", `{"msg":"hi"}`)
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
		publishJS(t, jwtEnv, n.ctl+"/", "js-ws", "ws-message", "pushed to ws")
		if got := readText(t, c); got != "pushed to ws" {
			t.Fatalf("publish %q", got)
		}
		c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(1000, ""))
		expectClose(t, c, 1000, "")
	})
	t.Run("wrong publish key is refused with 401", func(t *testing.T) {
		out, code := runPublishJS(t, []string{"PUBLISH_KEY=wrong", "PUBLISH_ISS=edgepush"}, n.ctl+"/", "x", "http-stream", "x")
		var failed struct {
			Status int     `json:"status"`
			Body   *string `json:"body"`
		}
		line, ok := strings.CutPrefix(out, "failed ")
		if code != 1 || !ok || json.Unmarshal([]byte(line), &failed) != nil {
			t.Fatalf("publish.js with a wrong key: exit %d, stdout %q", code, out)
		}
		if failed.Body == nil || failed.Status != http.StatusUnauthorized || !strings.Contains(*failed.Body, "missing or invalid publish key") {
			t.Fatalf("publish.js with a wrong key: the node answered %s, want 401 missing or invalid publish key", line)
		}
	})
}

// TestInteropServeGripWebSocketContext drives every WebSocket-over-HTTP
// feature through @fanoutio/serve-grip's WebSocketContext (origin.js /wsx),
// with a real WebSocket client: what the origin decoded is what it reports.
// TestInteropGripReliableStream: a sequenced stream as @fanoutio/grip
// builds it (Channel with prevId, setNextLink, meta), publishes with ids
// from its Publisher: in order delivered; a gap recovered through the
// next link with Grip-Last.
func TestInteropGripReliableStream(t *testing.T) {
	o := startServeGripOrigin(t, "interop-sig")
	n := startNode(t, http.NotFoundHandler(), func(c *Config) {
		c.Origin, c.SigKey, c.PublishKey = o.url, "interop-sig", "interop-pub"
	})
	jwtEnv := []string{"PUBLISH_KEY=interop-pub", "PUBLISH_ISS=edgepush"}
	c := dialRaw(t, n.Addr())
	body := bufio.NewReader(c.get(t, "/reliable?ch=rel&prev=1&upto=4").Body)
	if got := readLine(t, body); got != "reliable open\n" {
		t.Fatalf("initial %q", got)
	}
	// The channel's first subscriber fetches its next link a second later.
	if got := readLine(t, body); got != "recovered after rel; last-id=1\n" {
		t.Fatalf("first-subscription update %q", got)
	}
	n.waitSubscribers(t, "rel", 1)
	publishJS(t, append(jwtEnv, "PUBLISH_ID=2", "PUBLISH_PREV_ID=1"), n.ctl+"/", "rel", "http-stream", "two\n")
	if got := readLine(t, body); got != "two\n" {
		t.Fatalf("in order: %q", got)
	}
	publishJS(t, append(jwtEnv, "PUBLISH_ID=4", "PUBLISH_PREV_ID=3"), n.ctl+"/", "rel", "http-stream", "four\n")
	if got := readLine(t, body); got != "recovered after rel; last-id=2\n" {
		t.Fatalf("after a gap: %q", got)
	}
	publishJS(t, append(jwtEnv, "PUBLISH_ID=5", "PUBLISH_PREV_ID=4"), n.ctl+"/", "rel", "http-stream", "five\n")
	if got := readLine(t, body); got != "five\n" {
		t.Fatalf("after recovery: %q", got)
	}
}

func TestInteropServeGripWebSocketContext(t *testing.T) {
	o := startServeGripOrigin(t, "interop-sig")
	n := startNode(t, http.NotFoundHandler(), func(c *Config) {
		c.Origin, c.SigKey, c.PublishKey = o.url, "interop-sig", "interop-pub"
	})
	jwtEnv := []string{"PUBLISH_KEY=interop-pub", "PUBLISH_ISS=edgepush"}
	// dial opens a WebSocket on /wsx, whose OPEN subscribes it to ch.
	dial := func(t *testing.T, tag, ch string) *websocket.Conn {
		t.Helper()
		d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
		c, _, err := d.Dial("ws://"+n.Addr().String()+"/wsx?tag="+tag+"&ch="+ch, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		if got := readText(t, c); got != "welcome" {
			t.Fatalf("first message %q", got)
		}
		return c
	}
	// say sends a text message and checks the origin's answer.
	say := func(t *testing.T, c *websocket.Conn, msg, answer string) {
		t.Helper()
		if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		if got := readText(t, c); got != answer {
			t.Fatalf("sent %q, got %q, want %q", msg, got, answer)
		}
	}

	t.Run("set-meta comes back as Meta-*", func(t *testing.T) {
		c := dial(t, "meta", "js-meta")
		say(t, c, "meta user alice", "meta user set")
		say(t, c, "who", "echo: who")
		if r := o.awaitSeen(t, "meta", "TEXT who"); r.Meta["user"] != "alice" {
			t.Fatalf("the request after Set-Meta-user carried meta %v", r.Meta)
		}
		say(t, c, "unmeta user", "meta user unset")
		say(t, c, "who now", "echo: who now")
		if r := o.awaitSeen(t, "meta", "TEXT who now"); len(r.Meta) != 0 {
			t.Fatalf("the request after an empty Set-Meta-user carried meta %v", r.Meta)
		}
		reports := o.reports("meta")
		if len(reports) == 0 || reports[0].ID == "" || !reports[0].has("OPEN") || len(reports[0].Meta) != 0 {
			t.Fatalf("first report %+v", reports)
		}
		for _, r := range reports {
			if r.ID != reports[0].ID {
				t.Fatalf("Connection-Id changed within a connection: %+v", reports)
			}
		}
	})
	t.Run("detach closes the origin, not the client", func(t *testing.T) {
		c := dial(t, "detach", "js-detach")
		say(t, c, "detach", "detached")   // the answer follows c:detach
		o.awaitSeen(t, "detach", "CLOSE") // at once, without a code, as Pushpin
		if err := c.WriteMessage(websocket.TextMessage, []byte("after detach")); err != nil {
			t.Fatal(err)
		}
		n.waitSubscribers(t, "js-detach", 1)
		publishJS(t, jwtEnv, n.ctl+"/", "js-detach", "ws-message", "still subscribed")
		if got := readText(t, c); got != "still subscribed" {
			t.Fatalf("publish after detach: %q", got)
		}
		// The node answers the client's close; the origin is not told.
		c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(4000, ""))
		expectClose(t, c, 4000, "")
		n.waitSubscribers(t, "js-detach", 0)
		for _, r := range o.reports("detach") {
			if r.has("TEXT after detach") || r.has("CLOSE 4000") {
				t.Fatalf("the origin got client events after the detach: %+v", r)
			}
		}
	})
	t.Run("keep-alive", func(t *testing.T) {
		c := dial(t, "ka", "js-ka")
		say(t, c, "keep-alive ka 1", "keep-alive set")
		for range 2 { // sent after each second without other messages
			if got := readText(t, c); got != "ka" {
				t.Fatalf("got %q, want the keep-alive", got)
			}
		}
	})
	t.Run("binary", func(t *testing.T) {
		c := dial(t, "bin", "js-bin")
		if err := c.WriteMessage(websocket.BinaryMessage, []byte{0, 1, 0xfe, 0xff}); err != nil {
			t.Fatal(err)
		}
		if mt, p, err := c.ReadMessage(); err != nil || mt != websocket.BinaryMessage || string(p) != "\x00\x01\xfe\xff" {
			t.Fatalf("binary echo: %d %q %v", mt, p, err)
		}
		o.awaitSeen(t, "bin", "BINARY 0001feff")
	})
	t.Run("client drops TCP: origin gets DISCONNECT", func(t *testing.T) {
		c := dial(t, "drop", "js-drop")
		n.waitSubscribers(t, "js-drop", 1)
		c.NetConn().Close() // no close frame
		o.awaitSeen(t, "drop", "DISCONNECT")
		n.waitSubscribers(t, "js-drop", 0)
	})
	t.Run("origin disconnects: client dropped", func(t *testing.T) {
		c := dial(t, "odrop", "js-odrop")
		if err := c.WriteMessage(websocket.TextMessage, []byte("disconnect")); err != nil {
			t.Fatal(err)
		}
		expectClose(t, c, websocket.CloseAbnormalClosure, "") // TCP closed, no close frame
	})
	t.Run("origin closes with a code", func(t *testing.T) {
		c := dial(t, "oclose", "js-oclose")
		if err := c.WriteMessage(websocket.TextMessage, []byte("close 4001")); err != nil {
			t.Fatal(err)
		}
		expectClose(t, c, 4001, "")
	})
	t.Run("client closes with a code", func(t *testing.T) {
		c := dial(t, "cclose", "js-cclose")
		// serve-grip reads the code only from a CLOSE without a reason.
		if err := c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(4002, "")); err != nil {
			t.Fatal(err)
		}
		expectClose(t, c, 4002, "")
		o.awaitSeen(t, "cclose", "CLOSE 4002")
	})
}

// sseLine is one line of sse.js's output.
type sseLine struct {
	Open  bool    `json:"open"`
	Type  string  `json:"type"`
	ID    string  `json:"id"`
	Data  string  `json:"data"`
	Error *string `json:"error"`
	Code  *int    `json:"code"`
}

// TestInteropEventSource reads an SSE stream with the npm eventsource
// package (a WHATWG EventSource): the stream is held by origin.js's /sse
// (serve-grip, Content-Type text/event-stream) and fed by publishes.
func TestInteropEventSource(t *testing.T) {
	requireNodePackages(t, "eventsource")
	o := startServeGripOrigin(t, "interop-sig")
	n := startNode(t, http.NotFoundHandler(), func(c *Config) {
		c.Origin, c.SigKey, c.PublishKey = o.url, "interop-sig", "interop-pub"
	})
	var (
		mu      sync.Mutex
		lines   []string
		changed = make(chan struct{})
	)
	startScript(t, nil, func(line string) {
		mu.Lock()
		defer mu.Unlock()
		lines = append(lines, line)
		close(changed)
		changed = make(chan struct{})
	}, "sse.js", n.url+"/sse?ch=js-es", "tick")
	read := 0
	expect := func(want sseLine) {
		t.Helper()
		timeout := time.After(20 * time.Second)
		for {
			mu.Lock()
			all, wait := lines, changed
			mu.Unlock()
			if read < len(all) {
				line := all[read]
				read++
				var got sseLine
				if err := json.Unmarshal([]byte(line), &got); err != nil || !reflect.DeepEqual(got, want) {
					t.Fatalf("sse.js printed %s, want %+v", line, want)
				}
				return
			}
			select {
			case <-wait:
			case <-timeout:
				t.Fatalf("sse.js printed nothing more; want %+v", want)
			}
		}
	}
	expect(sseLine{Open: true})
	expect(sseLine{Type: "message", Data: "hello"}) // the origin's initial event
	n.waitSubscribers(t, "js-es", 1)
	jwtEnv := []string{"PUBLISH_KEY=interop-pub", "PUBLISH_ISS=edgepush"}
	publishJS(t, jwtEnv, n.ctl+"/", "js-es", "http-stream", "event: tick\nid: 7\ndata: 2\n\n")
	expect(sseLine{Type: "tick", ID: "7", Data: "2"})
	publishJS(t, jwtEnv, n.ctl+"/", "js-es", "http-stream", "id: 8\ndata: line one\ndata: line two\n\n")
	expect(sseLine{Type: "message", ID: "8", Data: "line one\nline two"})
	// This EventSource reports each event's own id (none here).
	publishJS(t, jwtEnv, n.ctl+"/", "js-es", "http-stream", ": a comment\ndata: after a comment\n\n")
	expect(sseLine{Type: "message", Data: "after a comment"})
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
