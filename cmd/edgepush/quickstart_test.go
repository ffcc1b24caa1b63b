package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgepush/edgepush/grip"
	"github.com/edgepush/edgepush/node"
)

// readmeSections are the sections of README.md whose ```sh blocks
// TestReadmeCommands runs, by the start of their titles, in the README's
// order.
var readmeSections = []string{"Set up", "Quick start with curl", "Purge and publish", tierSection}

// tierSection is the section whose edgepush commands start a tier.
const tierSection = "Tier: several nodes, one publish"

// TestReadmeCommands runs the commands of the README's sections "Set up",
// "Quick start with curl", "Purge and publish" and "Tier", in the
// README's order, as a new user would on a fresh clone: against a real
// edgepush binary built from the tree, started as `make run` starts it
// (the Makefile's run recipe is read, not copied), with real curl
// processes. The commands are read from README.md's ```sh blocks, not
// copied here: a command that changes in the README is the command that
// runs, and one the test does not know how to check fails it.
//
// What each command must do, as the README says:
//   - `make run`: the node and its demo start; the URLs in its comment
//     (the demo page, the status page), opened as a browser does, answer
//     with HTML. `make test` is skipped:
//     it is what runs this test.
//   - `bin/edgepush -h`: exits 0 and prints the usage with the flags.
//   - `curl -N …/stream`, `curl -N …/events`, `curl …/counters/NAME` (a
//     long-poll): run in the background, each a terminal of its own, until
//     the test ends. A stream must print its initial value, and every
//     later update; the SSE stream likewise, as events; the long-poll must
//     stay held, then exit 0 having printed exactly the next update. One
//     opened while the demo origin is down must open (from the cache).
//   - `curl -X POST … /demo/origin` (the origin switch): exits 0 and
//     answers the state asked for; down, the demo origin's port refuses
//     connections; up, it accepts them again.
//   - `curl -X POST …/increment`: exits 0, prints the counter's new value,
//     which every open terminal of that counter then gets.
//   - `curl -d … /publish/` and `curl … /purge-publish/`: exit 0; every
//     open terminal gets what the items publish in its format on its
//     channel (the stream and the long-poll are on counter-NAME, the SSE
//     stream on counter-NAME-sse, as the README says), and the publish
//     reaches every one of them, as the README says; the purge-publish
//     prints the answer the README's comment line after it shows ("…"
//     stands for any string). As the README says before the publish, a
//     long-poll the increment answered is run again first.
//   - `edgepush …` (your own origin, the tier's members): start and run
//     until the test ends. In front of your own origin, the node holds a
//     stream from it, signs with -sig-key, and refuses a publish without
//     -publish-key and takes one with it; the tier's members see each other
//     and a publish at the first reaches a stream at each.
//
// What is rewritten in the commands before they run (nothing else is):
//   - `localhost:7999` and `127.0.0.1:7999` become the demo node's client
//     address, `127.0.0.1:5561` and `localhost:5561` its control address:
//     both on 127.0.0.1, ports chosen by the node (it is started with
//     EDGEPUSH_LISTEN and EDGEPUSH_CONTROL set to 127.0.0.1:0). localhost
//     becomes 127.0.0.1 because the node listens on 127.0.0.1 only and
//     localhost may resolve to ::1 first; every command uses the same
//     host, so the cache entries the origin-down sequence relies on (the
//     host is part of the key) are the same, as they are for the README's.
//   - `bin/edgepush`, `./bin/edgepush` and a leading `edgepush` become the
//     binary the test built (what `make build` builds).
//   - Every edgepush process gets EDGEPUSH_LISTEN=127.0.0.1:0 and
//     EDGEPUSH_CONTROL=127.0.0.1:0 in its environment (and none of the
//     test's own EDGEPUSH_ variables), so that a command that leaves them
//     at their defaults (:7999, 127.0.0.1:5561) takes free ports; flags in
//     the command win over them.
//   - `http://127.0.0.1:8080` (your own origin) and `http://app:8080` (the
//     tier's) become GRIP origins the test runs on 127.0.0.1.
//   - The tier's `10.0.0.N:PORT` addresses become `127.0.0.1:0` where a
//     member binds them, and the address that member got where a later
//     command names them (`-join`). The key placeholder `base64:…` ("same
//     key on every node") becomes the key the first command's
//     `$(head -c16 /dev/urandom | base64)` made: the test evaluates that
//     expression once, with bash, and puts its value in both commands.
//
// Commands run with bash -c "exec COMMAND", so that the process the test
// starts (and kills at the end, by its PID) is curl or edgepush itself.
func TestReadmeCommands(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"curl", "bash"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("EDGEPUSH_REQUIRE_INTEROP") != "" {
				t.Fatalf("%s is required to run the README's commands (EDGEPUSH_REQUIRE_INTEROP is set)", tool)
			}
			t.Skipf("%s not found: the README's commands are not run", tool)
		}
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	cmds := readmeCommands(t, readme)
	q := &quickstart{t: t, bin: edgepushBinary(t), originUp: true, addrs: map[string]string{}}
	// Both hold streams on "c", the channel proc.publish publishes to.
	q.own = httptest.NewServer(gripOrigin(&q.ownSigKey, "c"))
	t.Cleanup(q.own.Close)
	q.app = httptest.NewServer(gripOrigin(new(atomic.Value), "c"))
	t.Cleanup(q.app.Close)
	q.addrs["http://127.0.0.1:8080"], q.addrs["http://app:8080"] = q.own.URL, q.app.URL
	for _, c := range cmds {
		t.Logf("README.md:%d: %s", c.line, c.text)
		q.run(c)
	}
	q.checkTier()
}

// shellCommand is one command of a ```sh block of the README.
type shellCommand struct {
	section string
	line    int      // README line of its first line
	text    string   // as written, its continuation lines included, without its comment
	comment string   // its trailing comment, "" if none
	after   []string // the comment lines after it in its block, up to the next command
}

// readmeCommands returns the commands of readmeSections' ```sh blocks, in
// order; the test fails if a section is missing or has none.
func readmeCommands(t *testing.T, readme []byte) []shellCommand {
	t.Helper()
	var cmds []shellCommand
	found := map[string]int{}
	section := ""
	var block []string
	blockLine := 0
	inBlock := false
	for i, l := range strings.Split(string(readme), "\n") {
		switch {
		case inBlock && l == "```":
			inBlock = false
			if section != "" {
				sc, err := splitShell(section, block, blockLine)
				if err != nil {
					t.Fatal(err)
				}
				cmds = append(cmds, sc...)
				found[section] += len(sc)
			}
		case inBlock:
			block = append(block, l)
		case l == "```sh":
			inBlock, block, blockLine = true, nil, i+2
		case strings.HasPrefix(l, "## "):
			section = ""
			for _, s := range readmeSections {
				if strings.HasPrefix(l[3:], s) {
					section = s
				}
			}
		}
	}
	for _, s := range readmeSections {
		if found[s] == 0 {
			t.Fatalf("README.md: no ```sh commands in the section %q", s)
		}
	}
	return cmds
}

// splitShell splits a ```sh block (its lines; the first is README line
// first) into commands as the shell reads them: a command goes on while
// a quote is open or its line ends with a backslash; a # at the start of
// a word, outside quotes, starts a comment. A comment line after a
// command is one of its after lines.
func splitShell(section string, lines []string, first int) ([]shellCommand, error) {
	var cmds []shellCommand
	var cur []string
	start := 0
	var single, double bool
	for i, l := range lines {
		if len(cur) == 0 {
			start = first + i
		}
		end := len(l)      // where the comment starts
		continued := false // the line ends with a backslash (outside quotes)
		for j := 0; j < len(l); j++ {
			c := l[j]
			switch {
			case single:
				single = c != '\''
			case double && c == '\\':
				j++
			case double:
				double = c != '"'
			case c == '\'':
				single = true
			case c == '"':
				double = true
			case c == '\\':
				continued = j == len(l)-1
				j++
			case c == '#' && (j == 0 || l[j-1] == ' ' || l[j-1] == '\t'):
				end = j
			}
			if end == j {
				break
			}
		}
		body := strings.TrimRight(l[:end], " \t")
		comment := strings.TrimSpace(strings.TrimPrefix(l[end:], "#"))
		cur = append(cur, body)
		if single || double || continued {
			continue
		}
		text := strings.TrimSpace(strings.Join(cur, "\n"))
		cur = nil
		switch {
		case text != "":
			cmds = append(cmds, shellCommand{section: section, line: start, text: text, comment: comment})
		case comment != "" && len(cmds) > 0:
			cmds[len(cmds)-1].after = append(cmds[len(cmds)-1].after, comment)
		}
	}
	if len(cur) > 0 {
		return nil, fmt.Errorf("README.md:%d: a command with an open quote or a trailing backslash", start)
	}
	return cmds, nil
}

// quickstart is the state of TestReadmeCommands: what the commands run so
// far started.
type quickstart struct {
	t         *testing.T
	bin       string            // the edgepush binary
	addrs     map[string]string // an address as the README writes it → the test's
	demo      *proc             // the node `make run` started
	demoAddr  string            // its demo origin's address
	originUp  bool              // the demo origin's switch
	terms     []*terminal       // the background curls, on the demo node
	lastPurge time.Time         // when the last command that purges a counter's key returned
	own, app  *httptest.Server  // "your own origin", the tier's origin
	ownSigKey atomic.Value      // the -sig-key own checks Grip-Sig with (a string; none: no check)
	tierKey   string            // the tier's -cluster-key, once made
	tier      []*proc           // the tier's members, in the README's order
}

// gripOrigin answers every request with an HTTP stream held on channel,
// "open\n" first, after checking its Grip-Sig with the key sigKey holds
// (a string), when it holds one.
func gripOrigin(sigKey *atomic.Value, channel string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if key, _ := sigKey.Load().(string); key != "" {
			if _, err := grip.VerifyHS256(r.Header.Get("Grip-Sig"), []byte(key), time.Now()); err != nil {
				http.Error(w, "bad Grip-Sig: "+err.Error(), http.StatusForbidden)
				return
			}
		}
		w.Header().Set("Grip-Hold", "stream")
		w.Header().Set("Grip-Channel", channel)
		io.WriteString(w, "open\n")
	})
}

var (
	urlRe         = regexp.MustCompile(`https?://[^\s'"()]+`)
	dataRe        = regexp.MustCompile(`(?s)-d '([^']*)'`)
	tierAddrRe    = regexp.MustCompile(`\b10\.0\.0\.[0-9]+:[0-9]+\b`)
	keyExprRe     = regexp.MustCompile(`base64:\$\([^)]*\)`)
	counterPathRe = regexp.MustCompile(`^/counters/([a-z0-9-]+)(/stream|/events)?$`)
	incrementRe   = regexp.MustCompile(`^(?:/demo)?/counters/([a-z0-9-]+)/increment$`)
	makeRunRe     = regexp.MustCompile(`(?m)^run:.*\n\t\./\$\(BIN\)/edgepush((?: [^\n]*)?)$`)
)

// run runs one README command and checks what it did.
func (q *quickstart) run(c shellCommand) {
	t := q.t
	t.Helper()
	fields := strings.Fields(c.text)
	switch {
	case c.text == "make run":
		q.makeRun(c)
	case c.text == "make test":
		// It is what runs this test (vet, then every test).
	case isEdgepush(c.text) && fields[len(fields)-1] == "-h":
		out := q.oneShot(c)
		if !strings.HasPrefix(out, "Usage: edgepush") || !strings.Contains(out, "\n  -listen ") {
			t.Fatalf("README.md:%d: %s printed:\n%s", c.line, c.text, out)
		}
	case isEdgepush(c.text):
		q.startNode(c)
	case fields[0] == "curl":
		q.curl(c)
	default:
		t.Fatalf("README.md:%d: a command TestReadmeCommands does not know how to check: %s", c.line, c.text)
	}
}

func isEdgepush(text string) bool {
	for _, p := range []string{"./bin/edgepush ", "bin/edgepush ", "edgepush "} {
		if strings.HasPrefix(text, p) {
			return true
		}
	}
	return false
}

// rewrite rewrites a command's addresses, binary and key placeholder as
// TestReadmeCommands' comment says.
func (q *quickstart) rewrite(c shellCommand) string {
	t := q.t
	t.Helper()
	text := c.text
	for _, p := range []string{"./bin/edgepush ", "bin/edgepush ", "edgepush "} {
		if rest, ok := strings.CutPrefix(text, p); ok {
			text = shellQuote(q.bin) + " " + rest
			break
		}
	}
	var pairs []string
	for from, to := range q.addrs {
		pairs = append(pairs, from, to)
	}
	text = strings.NewReplacer(pairs...).Replace(text)
	text = tierAddrRe.ReplaceAllStringFunc(text, func(a string) string {
		if to, ok := q.addrs[a]; ok {
			return to
		}
		return "127.0.0.1:0"
	})
	if expr := keyExprRe.FindString(text); expr != "" {
		if q.tierKey == "" {
			out, err := exec.Command("bash", "-c", "printf %s "+expr).Output()
			if err != nil || len(out) <= len("base64:") {
				t.Fatalf("README.md:%d: %s: %q %v", c.line, expr, out, err)
			}
			q.tierKey = string(out)
		}
		text = strings.ReplaceAll(text, expr, q.tierKey)
	}
	if strings.Contains(text, "base64:…") {
		if q.tierKey == "" {
			t.Fatalf("README.md:%d: base64:… stands for a key no command before it made", c.line)
		}
		text = strings.ReplaceAll(text, "base64:…", q.tierKey)
	}
	return text
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// command returns the exec.Cmd that runs c, rewritten, with env added to
// a clean environment.
func (q *quickstart) command(ctx context.Context, c shellCommand, env ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "bash", "-c", "exec "+q.rewrite(c))
	cmd.Env = cleanEnv(env...)
	return cmd
}

// nodeEnv is what every edgepush process of the README's gets: free
// loopback ports for what its command leaves at the default.
var nodeEnv = []string{node.EnvVar("listen") + "=127.0.0.1:0", node.EnvVar("control") + "=127.0.0.1:0"}

// oneShot runs c to completion (bounded by waitTimeout); it must exit 0.
// It returns c's stdout.
func (q *quickstart) oneShot(c shellCommand) string {
	t := q.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	cmd := q.command(ctx, c, nodeEnv...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("README.md:%d: %s: %v\nstdout: %s\nstderr: %s", c.line, c.text, err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// makeRun starts the node as the Makefile's run recipe does, and checks
// the URLs the README names in the command's comment.
func (q *quickstart) makeRun(c shellCommand) {
	t := q.t
	t.Helper()
	mk, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	m := makeRunRe.FindSubmatch(mk)
	if m == nil {
		t.Fatal("Makefile: no run target whose recipe runs ./$(BIN)/edgepush")
	}
	cmd := exec.Command("bash", "-c", "exec "+shellQuote(q.bin)+string(m[1]))
	cmd.Env = cleanEnv(nodeEnv...)
	q.demo = startCmd(t, cmd)
	waitUntil(t, "the demo origin", waitTimeout, func() bool {
		for _, l := range q.demo.logLines() {
			var line struct{ Msg, Origin string }
			if json.Unmarshal([]byte(l), &line) == nil && line.Msg == "demo origin started" {
				q.demoAddr = line.Origin
			}
		}
		return q.demoAddr != ""
	})
	for _, host := range []string{"localhost", "127.0.0.1"} {
		q.addrs[host+":7999"], q.addrs[host+":5561"] = q.demo.listen, q.demo.control
	}
	urls := urlRe.FindAllString(q.rewrite(shellCommand{line: c.line, text: c.comment}), -1)
	if len(urls) == 0 {
		t.Fatalf("README.md:%d: no URL to open in the comment of make run", c.line)
	}
	for _, u := range urls {
		// "open": in a browser, which asks for HTML (the status page
		// answers anything else in plain text).
		req, _ := http.NewRequest("GET", u, nil)
		req.Header.Set("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("README.md:%d: %s: %v", c.line, u, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			t.Fatalf("README.md:%d: %s: %d %s", c.line, u, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}
}

// flagValue returns the value of -name in a command, "" if not there.
func flagValue(text, name string) string {
	m := regexp.MustCompile(`(?:^|\s)-` + name + `[ =](\S+)`).FindStringSubmatch(text)
	if m == nil {
		return ""
	}
	return m[1]
}

// startNode starts an edgepush node of the README's, in the background:
// in front of your own origin, or a member of the tier.
func (q *quickstart) startNode(c shellCommand) {
	t := q.t
	t.Helper()
	if c.section != tierSection {
		q.ownSigKey.Store(flagValue(c.text, "sig-key"))
	}
	p := startCmd(t, q.command(context.Background(), c, nodeEnv...))
	if c.section == tierSection {
		name := flagValue(c.text, "node-name")
		var addr string
		waitUntil(t, name+"'s tier address", waitTimeout, func() bool {
			addr = p.tierMembers(t)[name]
			return addr != ""
		})
		q.addrs[flagValue(c.text, "cluster-bind")] = addr
		if control := flagValue(c.text, "control"); control != "" {
			q.addrs[control] = p.control
		}
		q.tier = append(q.tier, p)
		return
	}
	// In front of your own origin: the origin checks Grip-Sig with the
	// command's -sig-key; a publish needs its -publish-key.
	lines := subscribe(t, p.listen)
	key := flagValue(c.text, "publish-key")
	if key != "" {
		if code := publishWithKey(t, p.control, "", "c", "no key\n"); code != http.StatusUnauthorized {
			t.Fatalf("README.md:%d: a publish without the key: %d, want 401", c.line, code)
		}
	}
	if code := publishWithKey(t, p.control, key, "c", "with the key\n"); code != 200 {
		t.Fatalf("README.md:%d: a publish with -publish-key: %d", c.line, code)
	}
	select {
	case l := <-lines:
		if l != "with the key\n" {
			t.Fatalf("README.md:%d: the stream got %q", c.line, l)
		}
	case <-time.After(waitTimeout):
		t.Fatalf("README.md:%d: the publish did not reach the stream", c.line)
	}
}

// publishWithKey publishes content on channel at a control address, with
// "Authorization: Bearer key" unless key is empty, and returns the status.
func publishWithKey(t *testing.T, control, key, channel, content string) int {
	t.Helper()
	body := fmt.Sprintf(`{"items":[{"channel":%q,"formats":{"http-stream":{"content":%q}}}]}`, channel, content)
	req, _ := http.NewRequest("POST", "http://"+control+"/publish/", strings.NewReader(body))
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// checkTier checks the members the Tier section started: each sees all
// of them, and a publish at the first reaches a stream held at each.
func (q *quickstart) checkTier() {
	t := q.t
	t.Helper()
	if len(q.tier) < 2 {
		t.Fatalf("the Tier section started %d nodes", len(q.tier))
	}
	var streams []<-chan string
	for i, p := range q.tier {
		waitUntil(t, fmt.Sprintf("tier member %d to see %d members", i+1, len(q.tier)), waitTimeout,
			func() bool { return p.members(t) == len(q.tier) })
		streams = append(streams, subscribe(t, p.listen))
	}
	q.tier[0].publish(t, "across the tier\n")
	for i, lines := range streams {
		select {
		case l := <-lines:
			if l != "across the tier\n" {
				t.Fatalf("tier member %d's stream got %q", i+1, l)
			}
		case <-time.After(waitTimeout):
			t.Fatalf("a publish at the first tier member did not reach a stream at member %d", i+1)
		}
	}
}

// curl runs a curl command of the quick start against the demo node.
func (q *quickstart) curl(c shellCommand) {
	t := q.t
	t.Helper()
	if q.demo == nil {
		t.Fatalf("README.md:%d: a curl command before make run", c.line)
	}
	urls := urlRe.FindAllString(c.text, -1)
	if len(urls) == 0 {
		t.Fatalf("README.md:%d: no URL in %s", c.line, c.text)
	}
	u, err := url.Parse(urls[len(urls)-1])
	if err != nil {
		t.Fatal(err)
	}
	post := strings.Contains(c.text, "-X POST") || dataRe.MatchString(c.text)
	fields := strings.Fields(c.text)
	switch m, inc := counterPathRe.FindStringSubmatch(u.Path), incrementRe.FindStringSubmatch(u.Path); {
	case !post && m != nil && (m[2] == "") != (fields[1] == "-N"):
		q.openTerminal(c, m[1], m[2])
	case post && u.Path == "/demo/origin":
		q.originSwitch(c)
	case post && inc != nil:
		q.increment(c, inc[1])
	case post && (u.Path == "/publish/" || u.Path == "/purge-publish/"):
		q.publish(c, u.Path == "/purge-publish/")
	default:
		t.Fatalf("README.md:%d: a curl command TestReadmeCommands does not know how to check: %s", c.line, c.text)
	}
}

// terminal is a curl running in the background: a stream, an SSE stream
// or a long-poll, on a demo counter.
type terminal struct {
	c       shellCommand
	kind    string // "stream", "events", "longpoll"
	counter string
	cmd     *exec.Cmd
	stderr  bytes.Buffer
	done    chan struct{} // closed once curl has exited
	err     error         // its exit, once done

	mu     sync.Mutex
	out    []byte // its stdout so far
	cursor int    // how much of out the test has checked
}

// channel is what the terminal is subscribed to, as the README says.
func (term *terminal) channel() string {
	if term.kind == "events" {
		return "counter-" + term.counter + "-sse"
	}
	return "counter-" + term.counter
}

func (term *terminal) ended() bool {
	select {
	case <-term.done:
		return true
	default:
		return false
	}
}

// next waits until find finds an end in the output not yet checked, and
// returns the output up to it (the test fails after waitTimeout, or if
// curl exits first).
func (term *terminal) next(t *testing.T, what string, find func(string) int) string {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		ended := term.ended()
		term.mu.Lock()
		rest := string(term.out[term.cursor:])
		if end := find(rest); end >= 0 {
			term.cursor += end
			term.mu.Unlock()
			return rest[:end]
		}
		term.mu.Unlock()
		if ended || time.Now().After(deadline) {
			state := "is still running"
			if ended {
				state = fmt.Sprintf("exited (%v; stderr: %s)", term.err, term.stderr.String())
			}
			t.Fatalf("README.md:%d: %s: no %s; it printed %q since and %s", term.c.line, term.c.text, what, rest, state)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// expect waits until the terminal prints want.
func (term *terminal) expect(t *testing.T, want string) {
	t.Helper()
	term.next(t, fmt.Sprintf("%q", want), through(want))
}

// answer waits for a long-poll to exit: with status 0, having printed
// exactly want.
func (term *terminal) answer(t *testing.T, want string) {
	t.Helper()
	select {
	case <-term.done:
	case <-time.After(waitTimeout):
		t.Fatalf("README.md:%d: %s: no answer; want %q", term.c.line, term.c.text, want)
	}
	term.mu.Lock()
	out := string(term.out)
	term.mu.Unlock()
	if term.err != nil || out != want {
		t.Fatalf("README.md:%d: %s: %v, printed %q, want %q (stderr: %s)", term.c.line, term.c.text, term.err, out, want, term.stderr.String())
	}
}

var valueRe = regexp.MustCompile(`^\{"name":"([a-z0-9-]+)","value":[0-9]+\}$`)

// openTerminal starts a stream (suffix "/stream"), an SSE stream
// ("/events") or a long-poll ("") on counter, and waits until it is
// open: its initial value printed, or the long-poll held.
func (q *quickstart) openTerminal(c shellCommand, counter, suffix string) {
	t := q.t
	t.Helper()
	kind := map[string]string{"/stream": "stream", "/events": "events", "": "longpoll"}[suffix]
	fromCache := q.cacheServed()
	term := &terminal{c: c, kind: kind, counter: counter, done: make(chan struct{})}
	term.cmd = q.command(context.Background(), c)
	stdout, err := term.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	term.cmd.Stderr = &term.stderr
	if err := term.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { term.cmd.Process.Kill(); <-term.done })
	go func() {
		defer close(term.done)
		buf := make([]byte, 4096)
		for {
			n, err := stdout.Read(buf)
			term.mu.Lock()
			term.out = append(term.out, buf[:n]...)
			term.mu.Unlock()
			if err != nil {
				break
			}
		}
		term.err = term.cmd.Wait()
	}()
	q.terms = append(q.terms, term)
	switch kind {
	case "stream":
		first := term.next(t, "initial value", through("\n"))
		if m := valueRe.FindStringSubmatch(strings.TrimSuffix(first, "\n")); m == nil || m[1] != counter {
			t.Fatalf("README.md:%d: %s: the stream began with %q", c.line, c.text, first)
		}
	case "events":
		first := term.next(t, "initial event", through("\n\n"))
		if !strings.Contains(first, `data: {"name":"`+counter+`","value":`) {
			t.Fatalf("README.md:%d: %s: the SSE stream began with %q", c.line, c.text, first)
		}
	case "longpoll":
		q.waitLongPolls()
	}
	if !q.originUp && q.cacheServed() <= fromCache {
		t.Fatalf("README.md:%d: %s opened while the origin was down, but not from the cache", c.line, c.text)
	}
}

// through finds the end of the first sep, for terminal.next.
func through(sep string) func(string) int {
	return func(s string) int {
		if i := strings.Index(s, sep); i >= 0 {
			return i + len(sep)
		}
		return -1
	}
}

// waitLongPolls waits until the demo node holds as many long-polls as
// there are long-poll terminals running.
func (q *quickstart) waitLongPolls() {
	t := q.t
	t.Helper()
	want := 0
	for _, term := range q.terms {
		if term.kind == "longpoll" && !term.ended() {
			want++
		}
	}
	waitUntil(t, fmt.Sprintf("%d long-polls held", want), waitTimeout, func() bool {
		return statusNumber(q.demo.status(t), "connections", "longpoll", "held") == float64(want)
	})
}

// cacheServed is how many requests the demo node answered from its cache.
func (q *quickstart) cacheServed() float64 {
	st := q.demo.status(q.t)
	return statusNumber(st, "cache", "hits") + statusNumber(st, "cache", "stale_on_error")
}

// statusNumber returns the number at path in a /status answer (0 if none).
func statusNumber(st map[string]any, path ...string) float64 {
	var v any = st
	for _, k := range path {
		m, _ := v.(map[string]any)
		v = m[k]
	}
	f, _ := v.(float64)
	return f
}

// originSwitch runs a POST /demo/origin: it answers the state asked for,
// and the demo origin's port then refuses connections (down) or takes
// them (up).
func (q *quickstart) originSwitch(c shellCommand) {
	t := q.t
	t.Helper()
	var want, got struct{ Up *bool }
	m := dataRe.FindStringSubmatch(c.text)
	if m == nil || json.Unmarshal([]byte(m[1]), &want) != nil || want.Up == nil {
		t.Fatalf(`README.md:%d: the origin switch without {"up":…}: %s`, c.line, c.text)
	}
	out := q.oneShot(c)
	if json.Unmarshal([]byte(out), &got) != nil || got.Up == nil || *got.Up != *want.Up {
		t.Fatalf("README.md:%d: the origin switch answered %q", c.line, out)
	}
	q.originUp = *want.Up
	conn, err := net.DialTimeout("tcp", q.demoAddr, waitTimeout)
	if err == nil {
		conn.Close()
	}
	if q.originUp != (err == nil) {
		t.Fatalf("README.md:%d: the demo origin is up: %v, but connecting to it: %v", c.line, q.originUp, err)
	}
}

// increment runs a +1: it prints the counter's new value, which every
// open terminal of the counter gets (a long-poll as its answer).
func (q *quickstart) increment(c shellCommand, counter string) {
	t := q.t
	t.Helper()
	value := strings.TrimSpace(q.oneShot(c))
	q.lastPurge = time.Now()
	if m := valueRe.FindStringSubmatch(value); m == nil || m[1] != counter {
		t.Fatalf("README.md:%d: the increment printed %q", c.line, value)
	}
	for _, term := range q.terms {
		if term.counter != counter || term.ended() {
			continue
		}
		switch term.kind {
		case "stream":
			term.expect(t, value+"\n")
		case "events":
			term.expect(t, "data: "+value+"\n\n")
		case "longpoll":
			term.answer(t, value)
		}
	}
}

// publishBody is a /publish/ or /purge-publish/ body, what the test reads
// of it.
type publishBody struct {
	Items []struct {
		Channel string
		Formats struct {
			HTTPStream *struct {
				Content string
			} `json:"http-stream"`
			HTTPResponse *struct {
				Body string
			} `json:"http-response"`
		}
	}
}

// publish runs a publish or purge-publish: every open terminal gets what
// the items publish on its channel in its format; a purge-publish prints
// what the README's comment after it says.
func (q *quickstart) publish(c shellCommand, purge bool) {
	t := q.t
	t.Helper()
	m := dataRe.FindStringSubmatch(c.text)
	var body publishBody
	if m == nil {
		t.Fatalf("README.md:%d: no -d '…' body: %s", c.line, c.text)
	}
	if err := json.Unmarshal([]byte(m[1]), &body); err != nil || len(body.Items) == 0 {
		t.Fatalf("README.md:%d: the body is not a publish: %v", c.line, err)
	}
	if !purge {
		// "run the long-poll again first: the increment answered it"
		for _, term := range q.terms {
			if term.kind == "longpoll" && term.ended() {
				q.openTerminal(term.c, term.counter, "")
			}
		}
	}
	var answer string
	if purge {
		// -purge-interval: a key's purge runs at once only if none ran
		// (or was deferred) within the interval; a deferred one runs at
		// the end of the interval, which starts another. The README's
		// answer is that of a purge that runs.
		interval := node.DefaultConfig().PurgeInterval
		time.Sleep(time.Until(q.lastPurge.Add(2*interval + 100*time.Millisecond)))
		q.lastPurge = time.Now()
		for _, a := range c.after {
			if strings.HasPrefix(a, "{") {
				answer = a
			}
		}
		if answer == "" {
			t.Fatalf("README.md:%d: no answer in a comment after the purge-publish", c.line)
		}
	}
	out := q.oneShot(c)
	if purge {
		var got, want any
		if err := json.Unmarshal([]byte(answer), &want); err != nil {
			t.Fatalf("README.md:%d: the answer in the comment: %v", c.line, err)
		}
		if err := json.Unmarshal([]byte(out), &got); err != nil || !sameShape(got, want) {
			t.Fatalf("README.md:%d: the purge-publish answered %s\nthe README says: %s", c.line, out, answer)
		}
	}
	for _, term := range q.terms {
		if term.ended() {
			continue
		}
		reached := false
		for _, it := range body.Items {
			if it.Channel != term.channel() {
				continue
			}
			switch f := it.Formats; {
			case term.kind == "longpoll" && f.HTTPResponse != nil:
				term.answer(t, f.HTTPResponse.Body)
				reached = true
			case term.kind != "longpoll" && f.HTTPStream != nil:
				term.expect(t, f.HTTPStream.Content)
				reached = true
			}
		}
		// "this one call reaches all three terminals"
		if !purge && !reached {
			t.Fatalf("README.md:%d: the publish has nothing for %s (%s, channel %s)", c.line, term.c.text, term.kind, term.channel())
		}
	}
}

// sameShape reports whether got matches want, a JSON value in which the
// string "…" stands for any string.
func sameShape(got, want any) bool {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok || len(g) != len(w) {
			return false
		}
		for k, wv := range w {
			if gv, ok := g[k]; !ok || !sameShape(gv, wv) {
				return false
			}
		}
		return true
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return false
		}
		for i := range w {
			if !sameShape(g[i], w[i]) {
				return false
			}
		}
		return true
	case string:
		g, ok := got.(string)
		return ok && (w == "…" || g == w)
	}
	return got == want
}
