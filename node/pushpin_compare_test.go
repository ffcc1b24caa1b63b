//go:build linux

package node

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Side-by-side tests: each scenario runs once through a real Pushpin and
// once through an edgepush node, each in front of its own instance of the
// same Go test origin and fed the same publishes, and what the client saw
// on each (its transcript) must be the same. Every scenario also asserts
// what Pushpin does, so a failure on the Pushpin side means the scenario
// misreads Pushpin, and one on the edgepush side a difference to fix.
//
// What is compared is what a client sees: status, Content-Type and the
// body (SSE events, stream lines). Not compared, as they legitimately
// differ: the other response headers (Server, Date, Connection), chunked
// framing versus Content-Length on held streams, keep-alives (sseEvent
// skips them; none is due within these short scenarios anyway) and timing
// (Pushpin's sequencer waits message_wait for a missing message, edgepush
// waits recoverDelay). Where a scenario also records what the origin saw
// (the Grip-Last of recovery requests, the requests made for paging),
// that is said in its transcript. The node runs its default config.
//
// Differences found are scenarios that assert Pushpin's behaviour and
// skip the edgepush side, saying why. The next-link fetch both make a
// second after a channel's first subscription shows in other scenarios'
// origin requests: those wait for it (awaitFirstSubscriptionUpdate) or
// do not count it.
//
// Pushpin is Debian 12's pushpin package, 1.36, which CI installs: the
// tests skip without it, or fail under EDGEPUSH_REQUIRE_INTEROP.

// pushpinProxy is a Pushpin run by a test: its runner (pushpin) and the
// condure, zurl, pushpin-proxy and pushpin-handler it starts, in a temp
// dir of their own, on loopback ports and ipc sockets.
type pushpinProxy struct {
	addr       *net.TCPAddr // client HTTP port (condure)
	publishURL string       // the handler's HTTP /publish/
	logDir     string
}

func (p *pushpinProxy) Addr() net.Addr { return p.addr }

func (p *pushpinProxy) publish(tb testing.TB, items ...map[string]any) {
	tb.Helper()
	postPublish(tb, p.publishURL, items...)
}

// subscribers counts the subscriptions to channel that pushpin-handler
// logged ("subscribe <uri> channel=<name>", at its default info level):
// Pushpin tells subscriptions only on a ZeroMQ stats socket, and whether
// a client has its first bytes before or after the handler subscribes it
// differs between Pushpin versions. The count only
// grows, where edgepush's is current; the scenarios wait for counts only
// while nobody has left, where the two are the same.
func (p *pushpinProxy) subscribers(channel string) int {
	b, _ := os.ReadFile(filepath.Join(p.logDir, "pushpin-handler.log"))
	k := 0
	for line := range strings.Lines(string(b)) {
		// [INFO] date time subscribe uri channel=name [retry]
		if f := strings.Fields(line); len(f) >= 6 && f[0] == "[INFO]" && f[3] == "subscribe" && f[5] == "channel="+channel {
			k++
		}
	}
	return k
}

const (
	// pushpinReadyPath is answered by every origin Pushpin fronts (before
	// the scenario's handler) with a stream hold on pushpinReadyChannel:
	// the startup probe, which goes through every one of Pushpin's parts.
	pushpinReadyPath    = "/.pushpin-ready"
	pushpinReadyChannel = "pushpin-ready"
	// pushpinStartTimeout bounds a start attempt; it only catches a hang.
	pushpinStartTimeout = 20 * time.Second
	// pushpinProbeTimeout bounds the first startup probe, and is doubled
	// for each next one: a probe can be lost for good while Pushpin's
	// parts connect (the handler's first answer to condure goes over
	// PUB/SUB, which drops what is sent before the subscriber has
	// joined), so it is given up and made again.
	pushpinProbeTimeout = 500 * time.Millisecond
	// pushpinReadyProbes is how many probes in a row must succeed: each
	// is a new connection, which condure hands to its next worker thread
	// (2 of them), and a worker's first connection handed to the handler
	// can lose a message (seen as a probe that never gets its answer, or
	// the handler cancelling the connection as "received message out of
	// sequence"), so each worker must have had a good one.
	pushpinReadyProbes = 4
	// pushpinStopTimeout bounds Pushpin's orderly stop.
	pushpinStopTimeout = 10 * time.Second
)

// requirePushpin skips (or fails, under EDGEPUSH_REQUIRE_INTEROP) unless
// Pushpin's runner and the programs it starts are installed.
func requirePushpin(t *testing.T) {
	t.Helper()
	for _, bin := range []string{"pushpin", "pushpin-proxy", "pushpin-handler", "condure", "zurl"} {
		_, err := exec.LookPath(bin)
		requireTool(t, bin+" (Debian package pushpin)", err == nil)
	}
}

// startPushpin starts an origin with handler and a Pushpin in front of it,
// and stops both when the test ends. A start that fails (a port taken
// between choosing it and Pushpin binding it, a part that did not come
// up) is tried again, twice, on new ports.
func startPushpin(tb testing.TB, handler http.Handler) *pushpinProxy {
	tb.Helper()
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == pushpinReadyPath {
			w.Header().Set("Grip-Hold", "stream")
			w.Header().Set("Grip-Channel", pushpinReadyChannel)
			io.WriteString(w, "ready\n")
			return
		}
		handler.ServeHTTP(w, r)
	}))
	tb.Cleanup(origin.Close) // after Pushpin's stop: cleanups run last first
	var errs []error
	for attempt := 1; attempt <= 3; attempt++ {
		p, err := launchPushpin(tb, origin.Listener.Addr().String())
		if err == nil {
			return p
		}
		errs = append(errs, fmt.Errorf("attempt %d: %w", attempt, err))
	}
	tb.Fatalf("pushpin did not start: %v", errors.Join(errs...))
	return nil
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// pushpinConf is a pushpin.conf for a test: Debian's, with every port on
// loopback and every ZeroMQ socket an ipc socket in the test's run dir,
// zurl started by the runner (Debian's config expects a system zurl), and
// a 1 s message_wait (Pushpin's sequencer holds a message that does not
// follow its channel's last id that long before passing it on; the 5 s
// default only makes the gap scenario slower).
const pushpinConf = `[global]
include={libdir}/internal.conf
rundir=%[1]s
ipc_prefix=pp-
port_offset=0

[runner]
services=condure,zurl,pushpin-proxy,pushpin-handler
http_port=127.0.0.1:%[3]d
logdir=%[2]s
log_level=2
client_buffer_size=8192
client_maxconn=1000

[proxy]
routesfile=routes
zurl_out_specs=ipc://{rundir}/{ipc_prefix}zurl-in
zurl_out_stream_specs=ipc://{rundir}/{ipc_prefix}zurl-in-stream
zurl_in_specs=ipc://{rundir}/{ipc_prefix}zurl-out
sig_iss=pushpin
sig_key=changeme
updates_check=off

[handler]
push_in_spec=ipc://{rundir}/{ipc_prefix}push-in
push_in_sub_specs=ipc://{rundir}/{ipc_prefix}push-in-sub
push_in_http_addr=127.0.0.1
push_in_http_port=%[4]d
stats_spec=ipc://{rundir}/{ipc_prefix}stats
command_spec=ipc://{rundir}/{ipc_prefix}command
message_wait=1000
id_cache_ttl=60
`

// pushpinProcess is a running Pushpin runner.
type pushpinProcess struct {
	cmd      *exec.Cmd
	exited   chan struct{} // closed once the runner is reaped
	stopOnce sync.Once
}

// launchPushpin makes one attempt at starting Pushpin in front of the
// origin at originAddr and waits until it answers. Its logs stay in its
// temp dir and are printed if the test fails.
func launchPushpin(tb testing.TB, originAddr string) (*pushpinProxy, error) {
	tb.Helper()
	dir := tb.TempDir()
	// ipc socket paths must fit in sun_path (108 bytes): a long test name
	// makes a long temp dir, so the run dir may have to live elsewhere.
	runDir := filepath.Join(dir, "run")
	if len(runDir) > 70 {
		d, err := os.MkdirTemp("/tmp", "pp")
		if err != nil {
			return nil, err
		}
		tb.Cleanup(func() { os.RemoveAll(d) })
		runDir = d
	}
	logDir := filepath.Join(dir, "log")
	httpPort, publishPort := freePort(tb), freePort(tb)
	conf := filepath.Join(dir, "pushpin.conf")
	if err := errors.Join(
		os.WriteFile(conf, fmt.Appendf(nil, pushpinConf, runDir, logDir, httpPort, publishPort), 0o644),
		os.WriteFile(filepath.Join(dir, "routes"), []byte("* "+originAddr+"\n"), 0o644),
	); err != nil {
		return nil, err
	}
	out, err := os.Create(filepath.Join(dir, "runner.log"))
	if err != nil {
		return nil, err
	}
	defer out.Close() // the runner has its own copy
	cmd := exec.Command("pushpin", "--config", conf)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = out, out
	// Its own session (and process group): the runner's services start in
	// process groups of their own but stay in its session, which is how
	// stop finds any that outlive it. If the test binary dies, the runner
	// is told to stop.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	pp := &pushpinProcess{cmd: cmd, exited: make(chan struct{})}
	go func() {
		cmd.Wait()
		close(pp.exited)
	}()
	p := &pushpinProxy{
		addr:       &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: httpPort},
		publishURL: fmt.Sprintf("http://127.0.0.1:%d/publish/", publishPort),
		logDir:     logDir,
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			dumpPushpinLogs(tb, dir)
		}
	})
	tb.Cleanup(func() { pp.stop(tb) }) // before the logs are printed
	if err := p.waitReady(pp.exited); err != nil {
		pp.stop(tb)
		tb.Logf("pushpin in %s did not start: %v", dir, err) // its logs follow if the test fails
		return nil, err
	}
	return p, nil
}

// waitReady waits, bounded, until Pushpin takes publishes and streams
// held through all of it (condure, pushpin-proxy, zurl to the origin,
// pushpin-handler) get publishes, pushpinReadyProbes times in a row.
func (p *pushpinProxy) waitReady(exited <-chan struct{}) error {
	deadline := time.Now().Add(pushpinStartTimeout)
	timeout, good := pushpinProbeTimeout, 0
	for {
		probeDeadline := time.Now().Add(timeout)
		if probeDeadline.After(deadline) {
			probeDeadline = deadline
		}
		err := p.probe(probeDeadline)
		if err == nil {
			if good++; good == pushpinReadyProbes {
				return nil
			}
			continue
		}
		good, timeout = 0, min(2*timeout, 4*time.Second)
		select {
		case <-exited:
			return fmt.Errorf("the runner exited (%v)", err)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %v: %w", pushpinStartTimeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// probe makes one readiness check, given up at deadline.
func (p *pushpinProxy) probe(deadline time.Time) error {
	client := &http.Client{Timeout: time.Until(deadline)}
	resp, err := client.Post(p.publishURL, "application/json", strings.NewReader(`{"items":[]}`))
	if err != nil {
		return err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("publish: %d %q", resp.StatusCode, b)
	}
	c, err := net.Dial("tcp", p.addr.String())
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(deadline)
	subs := p.subscribers(pushpinReadyChannel)
	if _, err := io.WriteString(c, "GET "+pushpinReadyPath+" HTTP/1.1\r\nHost: test\r\n\r\n"); err != nil {
		return err
	}
	r := bufio.NewReader(c)
	if resp, err = http.ReadResponse(r, nil); err != nil {
		return err
	}
	body := bufio.NewReader(resp.Body)
	if line, err := body.ReadString('\n'); line != "ready\n" {
		return fmt.Errorf("probe stream: %d %q %v", resp.StatusCode, line, err)
	}
	for p.subscribers(pushpinReadyChannel) == subs {
		if time.Now().After(deadline) {
			return errors.New("the probe stream was never subscribed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	item, _ := json.Marshal(map[string]any{"items": []any{streamItem(pushpinReadyChannel, "published\n")}})
	if resp, err = client.Post(p.publishURL, "application/json", bytes.NewReader(item)); err != nil {
		return err
	}
	resp.Body.Close()
	if line, err := body.ReadString('\n'); line != "published\n" {
		return fmt.Errorf("probe publish: %q %v", line, err)
	}
	return nil
}

// stop ends the runner with SIGTERM to its process group (it stops its
// services, then exits), SIGKILL after pushpinStopTimeout, then kills by
// PID whatever of its session is still alive, so that nothing is left.
func (pp *pushpinProcess) stop(tb testing.TB) {
	pp.stopOnce.Do(func() {
		pid := pp.cmd.Process.Pid
		syscall.Kill(-pid, syscall.SIGTERM)
		select {
		case <-pp.exited:
		case <-time.After(pushpinStopTimeout):
			tb.Errorf("pushpin (pid %d) did not stop within %v: killed", pid, pushpinStopTimeout)
			syscall.Kill(-pid, syscall.SIGKILL)
			<-pp.exited
		}
		deadline, killed := time.Now().Add(pushpinStopTimeout), false
		for left := sessionProcesses(pid); len(left) > 0; left = sessionProcesses(pid) {
			switch {
			case time.Now().Before(deadline):
			case killed:
				tb.Errorf("pushpin's processes %v are still alive after SIGKILL", left)
				return
			default:
				tb.Errorf("pushpin's processes %v outlived it: killed", left)
				for _, p := range left {
					syscall.Kill(p, syscall.SIGKILL)
				}
				deadline, killed = time.Now().Add(pushpinStopTimeout), true
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// sessionProcesses lists the live (not zombie) processes of session sid.
func sessionProcesses(sid int) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid pgrp session ...; comm may hold spaces.
		i := strings.LastIndexByte(string(stat), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) >= 4 && f[0] != "Z" && f[3] == strconv.Itoa(sid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// dumpPushpinLogs logs the runner's output and every service's log.
func dumpPushpinLogs(tb testing.TB, dir string) {
	files, _ := filepath.Glob(filepath.Join(dir, "log", "*.log"))
	for _, f := range append([]string{filepath.Join(dir, "runner.log")}, files...) {
		b, _ := os.ReadFile(f)
		tb.Logf("%s:\n%s", f, b)
	}
}

// proxyStarter starts a GRIP proxy in front of an origin with handler.
type proxyStarter func(tb testing.TB, handler http.Handler) gripProxy

// compareWithPushpin runs scenario on Pushpin, then on edgepush (unless
// skipEdgepush says why not), and checks that the two transcripts are
// the same.
func compareWithPushpin(t *testing.T, skipEdgepush string, scenario func(t *testing.T, start proxyStarter) []string) {
	requirePushpin(t)
	var pushpin, edgepush []string
	t.Run("pushpin", func(t *testing.T) {
		pushpin = scenario(t, func(tb testing.TB, h http.Handler) gripProxy { return startPushpin(tb, h) })
	})
	t.Run("edgepush", func(t *testing.T) {
		if skipEdgepush != "" {
			t.Skip(skipEdgepush)
		}
		edgepush = scenario(t, func(tb testing.TB, h http.Handler) gripProxy { return startNode(tb, h) })
	})
	t.Logf("pushpin:  %q\nedgepush: %q", pushpin, edgepush)
	if pushpin != nil && edgepush != nil && !slices.Equal(pushpin, edgepush) {
		t.Errorf("transcripts differ:\npushpin:  %q\nedgepush: %q", pushpin, edgepush)
	}
}

// readUntil reads lines of a streamed body up to and including end.
func readUntil(tb testing.TB, r *bufio.Reader, end string) []string {
	tb.Helper()
	var lines []string
	for len(lines) < 100 {
		line := readLine(tb, r)
		lines = append(lines, line)
		if line == end {
			return lines
		}
	}
	tb.Fatalf("no %q in %q", end, lines)
	return nil
}

// prefixed returns lines, each after prefix.
func prefixed(prefix string, lines []string) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = prefix + l
	}
	return out
}

// recoveries returns the Grip-Last of the recovery requests o answered.
func (o *eventStore) recoveries() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.gripLasts)
}

// awaitFirstSubscriptionUpdate waits for the next-link request a proxy
// makes a second after a channel's first subscription (see
// TestPushpinUpdateOnFirstSubscription), so that a scenario goes on from
// the same state on both, and returns how many of the origin's recovery
// requests it accounts for.
func awaitFirstSubscriptionUpdate(tb testing.TB, p gripProxy, o *eventStore) int {
	tb.Helper()
	waitFor(tb, "the first-subscription update", func() bool { return len(o.recoveries()) > 0 })
	return 1
}

// openTimeEvents starts a proxy in front of a new eventStore of channel
// "time" and opens a subscribed event stream through it.
func openTimeEvents(t *testing.T, start proxyStarter) (*eventStore, gripProxy, *bufio.Reader) {
	t.Helper()
	o := &eventStore{channel: "time"}
	p := start(t, o)
	r := openEvents(t, p)
	waitSubscribed(t, p, "events-time", 1)
	return o, p, r
}

// store stores an event and publishes it as django-eventstream does; it
// returns its id.
func (o *eventStore) store(tb testing.TB, p gripProxy, data string) int {
	tb.Helper()
	id := o.add(data)
	p.publish(tb, o.publishItem(id, data))
	return id
}

// (a) django-eventstream's ids: build-id renders "id: time:N" from the
// meta id_format and unescapes "%%"; a client reconnecting with
// Last-Event-ID gets the next event.
func TestPushpinDjangoIDs(t *testing.T) {
	compareWithPushpin(t, "", func(t *testing.T, start proxyStarter) []string {
		o, p, r := openTimeEvents(t, start)
		var tr []string
		for _, data := range []string{`{"value": 1}`, `50% off`} {
			tr = append(tr, "first: "+wantEvent(t, r, o.store(t, p, data), data))
		}
		r2 := openEvents(t, p, "Last-Event-ID: time:2\r\n")
		waitSubscribed(t, p, "events-time", 2)
		o.store(t, p, "three")
		return append(tr, "first: "+wantEvent(t, r, 3, "three"), "second: "+wantEvent(t, r2, 3, "three"))
	})
}

// (b) a gap: event 2 is stored but its publish lost, 3 is published. The
// connection recovers through the next link with Grip-Last and gets 2 and
// 3 once, in order, then 4 live. (Pushpin's sequencer first holds 3 for
// message_wait, waiting for 2; then the connection sees 3 does not follow
// 1 and fetches its next link.)
func TestPushpinGapRecovery(t *testing.T) {
	compareWithPushpin(t, "", func(t *testing.T, start proxyStarter) []string {
		o, p, r := openTimeEvents(t, start)
		settled := awaitFirstSubscriptionUpdate(t, p, o)
		o.store(t, p, "one")
		tr := []string{wantEvent(t, r, 1, "one")}
		o.add("two (publish lost)")
		o.store(t, p, "three")
		tr = append(tr, wantEvent(t, r, 2, "two (publish lost)"), wantEvent(t, r, 3, "three"))
		o.store(t, p, "four")
		tr = append(tr, wantEvent(t, r, 4, "four"))
		all := o.recoveries()
		t.Logf("every recovery request's Grip-Last: %q", all)
		if gap := all[settled:]; !slices.Equal(gap, []string{"events-time; last-id=1"}) {
			t.Errorf("the gap's recovery requests' Grip-Last: %q", gap)
		}
		return append(tr, fmt.Sprintf("the gap's recovery Grip-Last %q", all[settled:]))
	})
}

// (c) paging: a client 5 events behind, with pages of 2, gets the three
// pages on its one connection (the first two without a hold, each with a
// next link to the next page), then a live event.
func TestPushpinPaging(t *testing.T) {
	compareWithPushpin(t, "", func(t *testing.T, start proxyStarter) []string {
		o := &eventStore{channel: "time", pageSize: 2}
		for i := 1; i <= 5; i++ {
			o.add("e" + strconv.Itoa(i))
		}
		p := start(t, o)
		r := openEvents(t, p, "Last-Event-ID: time:0\r\n")
		var tr []string
		for i := 1; i <= 5; i++ {
			tr = append(tr, wantEvent(t, r, i, "e"+strconv.Itoa(i)))
		}
		waitSubscribed(t, p, "events-time", 1)
		o.store(t, p, "live")
		tr = append(tr, wantEvent(t, r, 6, "live"))
		// (Pushpin's first-subscription update, if it came by now, is a
		// recovery request, not a page.)
		pages := o.pages.Load()
		if pages != 3 {
			t.Errorf("%d page requests, want 3", pages)
		}
		return append(tr, fmt.Sprintf("%d page requests", pages))
	})
}

// filteredItem is a publish on channel c with meta and content-filters.
func filteredItem(content string, meta map[string]any, filters ...string) map[string]any {
	item := streamItem("c", content)
	if meta != nil {
		item["meta"] = meta
	}
	if filters != nil {
		item["formats"].(map[string]any)["http-stream"].(map[string]any)["content-filters"] = filters
	}
	return item
}

// (d) filters on streams, with meta from Grip-Set-Meta: alice's stream
// (user=alice; skip-self, skip-users, require-sub, var-subst on c, and a
// subscription to "also") and a plain stream on c get the same publishes;
// a last plain publish ("end") shows that nothing else came. No publish
// names content-filters here: see TestPushpinContentFilterMismatch.
func TestPushpinFilters(t *testing.T) {
	compareWithPushpin(t, "", func(t *testing.T, start proxyStarter) []string {
		o := &linkOrigin{paths: map[string]http.HandlerFunc{
			"/stream": answerWith("", "Grip-Hold", "stream", "Grip-Set-Meta", `user="alice"`,
				"Grip-Channel", "c; filter=skip-self; filter=skip-users; filter=require-sub; filter=var-subst", "Grip-Channel", "also"),
			"/plain": answerWith("", "Grip-Hold", "stream", "Grip-Channel", "c"),
		}}
		p := start(t, o)
		_, alice := openPath(t, p, "/stream")
		_, plain := openPath(t, p, "/plain")
		waitSubscribed(t, p, "c", 2)
		waitSubscribed(t, p, "also", 1)
		p.publish(t,
			filteredItem("from alice\n", map[string]any{"sender": "alice"}),
			filteredItem("skipping alice\n", map[string]any{"skip_users": "bob,alice"}),
			filteredItem("needs sub x\n", map[string]any{"require_sub": "x"}),
			filteredItem("needs sub also\n", map[string]any{"require_sub": "also"}),
			filteredItem("hi %(user)s\n", map[string]any{"sender": "bob"}),
			streamItem("c", "end\n"),
		)
		a, pl := readUntil(t, alice, "end\n"), readUntil(t, plain, "end\n")
		if want := []string{"needs sub also\n", "hi alice\n", "end\n"}; !slices.Equal(a, want) {
			t.Errorf("alice got %q, want %q", a, want)
		}
		if want := []string{"from alice\n", "skipping alice\n", "needs sub x\n", "needs sub also\n", "hi %(user)s\n", "end\n"}; !slices.Equal(pl, want) {
			t.Errorf("plain stream got %q, want %q", pl, want)
		}
		return append(prefixed("alice: ", a), prefixed("plain: ", pl)...)
	})
}

// (d') a publish whose content-filters the subscription does not have:
// Pushpin 1.36 ends the stream ("content filter mismatch"), after what
// came before it. Pushpin 1.41 (fastly/pushpin 3167ddb1) drops the
// message instead and keeps the stream, unless the route has debug on;
// edgepush drops it.
func TestPushpinContentFilterMismatch(t *testing.T) {
	compareWithPushpin(t, "edgepush drops a publish whose content-filters the subscription lacks and keeps the stream "+
		"(as Pushpin 1.41+ without debug); Pushpin 1.36 ends the stream", func(t *testing.T, start proxyStarter) []string {
		p := start(t, gripOrigin("open\n", "Grip-Hold", "stream", "Grip-Channel", "c"))
		_, r := openPath(t, p, "/")
		tr := []string{readLine(t, r)}
		waitSubscribed(t, p, "c", 1)
		p.publish(t, streamItem("c", "before\n"), filteredItem("hi %(user)s\n", nil, "var-subst"), streamItem("c", "after\n"))
		rest, err := io.ReadAll(r)
		if err != nil || string(rest) != "before\n" {
			t.Errorf("after the publishes: %q, %v; want %q and the end of the response", rest, err, "before\n")
		}
		return append(tr, fmt.Sprintf("then %q and the end (%v)", rest, err))
	})
}

// (e) the same publish (channel and id) twice, as a publisher retrying
// does: delivered once.
func TestPushpinPublishIDTwice(t *testing.T) {
	compareWithPushpin(t, "", func(t *testing.T, start proxyStarter) []string {
		p := start(t, gripOrigin("open\n", "Grip-Hold", "stream", "Grip-Channel", "d"))
		_, r := openPath(t, p, "/")
		readLine(t, r)
		waitSubscribed(t, p, "d", 1)
		once := streamItem("d", "once\n")
		once["id"] = "x1"
		p.publish(t, once)
		p.publish(t, once)
		p.publish(t, streamItem("d", "end\n"))
		got := readUntil(t, r, "end\n")
		if want := []string{"once\n", "end\n"}; !slices.Equal(got, want) {
			t.Errorf("got %q, want %q", got, want)
		}
		return got
	})
}

// (f) a stream hold whose channel has a prev-id but that gives no next
// link (nothing to recover through) is not held: the client gets the
// body and the response ends.
func TestPushpinSequencedWithoutNextLink(t *testing.T) {
	compareWithPushpin(t, "", func(t *testing.T, start proxyStarter) []string {
		p := start(t, gripOrigin("data\n", "Grip-Hold", "stream", "Grip-Channel", "c; prev-id=1"))
		resp, r := openPath(t, p, "/")
		body, err := io.ReadAll(r)
		if err != nil || resp.StatusCode != 200 || string(body) != "data\n" || p.subscribers("c") != 0 {
			t.Errorf("got %d %q (%v), subscribers %d", resp.StatusCode, body, err, p.subscribers("c"))
		}
		return []string{
			fmt.Sprintf("%d %s", resp.StatusCode, resp.Header.Get("Content-Type")),
			fmt.Sprintf("length %d body %q", resp.ContentLength, body),
			fmt.Sprintf("subscribers %d", p.subscribers("c")),
		}
	})
}

// (g) a second after a channel's first subscription, Pushpin fetches the
// next link of every connection on it (with Grip-Last for sequenced
// channels), for what was published while the subscription was being
// set up (SUBSCRIBED_DELAY in 1.36; update_on_first_subscription, on by
// default, from 1.41). The answer's body reaches the client.
func TestPushpinUpdateOnFirstSubscription(t *testing.T) {
	compareWithPushpin(t, "", func(t *testing.T, start proxyStarter) []string {
		hold := []string{"Grip-Hold", "stream", "Grip-Channel", "u; prev-id=7", "Grip-Link", "</next>; rel=next"}
		o := &linkOrigin{paths: map[string]http.HandlerFunc{
			"/s":    answerWith("start\n", hold...),
			"/next": answerWith("next\n", hold...),
		}}
		p := start(t, o)
		_, r := openPath(t, p, "/s")
		tr := []string{readLine(t, r), readLine(t, r)}
		p.publish(t, map[string]any{"channel": "u", "id": "8", "prev-id": "7",
			"formats": map[string]any{"http-stream": map[string]any{"content": "end\n"}}})
		tr = append(tr, readLine(t, r))
		if want := []string{"start\n", "next\n", "end\n"}; !slices.Equal(tr, want) {
			t.Errorf("got %q, want %q", tr, want)
		}
		o.mu.Lock()
		defer o.mu.Unlock()
		if want := []string{"GET /s", "GET /next u; last-id=7"}; !slices.Equal(o.log, want) {
			t.Errorf("origin requests %q, want %q", o.log, want)
		}
		return append(tr, prefixed("origin: ", o.log)...)
	})
}
