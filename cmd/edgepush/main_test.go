package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edgepush/edgepush/internal/testnet"
)

// These tests run real edgepush processes.

func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "edgepush")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// waitTimeout bounds every wait for an event: generous, so that it only
// catches a hang, never a slow (loaded, -race) machine.
const waitTimeout = 20 * time.Second

// proc is one running edgepush process.
type proc struct {
	cmd                           *exec.Cmd
	listen, tls, control, metrics string

	mu   sync.Mutex
	logs []string // its stderr, line by line
}

// logLines returns what the process wrote to stderr so far, by line.
func (p *proc) logLines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.logs)
}

// startProc starts edgepush with args on loopback ports of its own
// choosing and waits until it has started.
func startProc(t *testing.T, bin string, args ...string) *proc {
	t.Helper()
	return startProcEnv(t, bin, nil, args...)
}

// startProcEnv is startProc with env added to the process's environment.
func startProcEnv(t *testing.T, bin string, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"-listen", "127.0.0.1:0", "-control", "127.0.0.1:0"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	return startCmd(t, cmd)
}

// startCmd starts cmd, an edgepush process (or a shell that execs one),
// and waits until the node says it has started; the process is killed
// when the test ends.
func startCmd(t *testing.T, cmd *exec.Cmd) *proc {
	t.Helper()
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	started := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		once := sync.Once{}
		for sc.Scan() {
			p.mu.Lock()
			p.logs = append(p.logs, sc.Text())
			p.mu.Unlock()
			var line struct{ Msg, Listen, TLS, Control, Metrics string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "edgepush node started" {
				p.listen, p.tls, p.control, p.metrics = line.Listen, line.TLS, line.Control, line.Metrics
				once.Do(func() { close(started) })
			}
		}
	}()
	select {
	case <-started:
	case <-time.After(waitTimeout):
		t.Fatalf("edgepush did not start: %s", strings.Join(p.logLines(), "\n"))
	}
	return p
}

func (p *proc) status(t *testing.T) map[string]any {
	t.Helper()
	resp, err := http.Get("http://" + p.control + "/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st map[string]any
	json.NewDecoder(resp.Body).Decode(&st)
	return st
}

// tierMembers returns the tier's members as p sees them, by name: their
// memberlist addresses.
func (p *proc) tierMembers(t *testing.T) map[string]string {
	tier, _ := p.status(t)["tier"].(map[string]any)
	ms, _ := tier["members"].([]any)
	addrs := map[string]string{}
	for _, m := range ms {
		m, _ := m.(map[string]any)
		name, _ := m["name"].(string)
		addrs[name], _ = m["addr"].(string)
	}
	return addrs
}

func (p *proc) members(t *testing.T) int { return len(p.tierMembers(t)) }

func (p *proc) publish(t *testing.T, content string) {
	t.Helper()
	body := fmt.Sprintf(`{"items":[{"channel":"c","formats":{"http-stream":{"content":%q}}}]}`, content)
	resp, err := http.Post("http://"+p.control+"/publish/", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

// subscribe opens an HTTP stream and returns its lines.
func subscribe(t *testing.T, addr string) <-chan string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	io.WriteString(c, "GET /s HTTP/1.1\r\nHost: t\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1024)
	go func() {
		defer close(lines)
		r := bufio.NewReader(resp.Body)
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				return
			}
			lines <- l
		}
	}()
	if l := <-lines; l != "open\n" {
		t.Fatalf("initial %q", l)
	}
	return lines
}

// missing lists the numbers below n not in seen.
func missing(seen map[int]bool, n int) []int {
	var m []int
	for i := range n {
		if !seen[i] {
			m = append(m, i)
		}
	}
	return m
}

// waitUntil polls cond until it holds, failing the test after d.
func waitUntil(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestTierOfProcessesSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs processes")
	}
	bin := buildBinary(t)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Grip-Hold", "stream")
		w.Header().Set("Grip-Channel", "c")
		io.WriteString(w, "open\n")
	}))
	defer origin.Close()
	// Each node binds its tier address on port 0 (memberlist takes the
	// same port for TCP and UDP); the others learn it from the node's
	// /status. seed is n0's.
	seed := ""
	start := func(i int, bind string) *proc {
		args := []string{"-origin", origin.URL, "-cluster-local", "-node-name", fmt.Sprintf("n%d", i),
			"-cluster-bind", bind, "-cluster-key", "sixteen-byte-key", "-log-level", "info"}
		if seed != "" {
			args = append(args, "-join", seed)
		}
		return startProc(t, bin, args...)
	}
	tierAddr := func(p *proc, name string) string {
		var addr string
		waitUntil(t, name+"'s tier address", waitTimeout, func() bool {
			addr = p.tierMembers(t)[name]
			return addr != ""
		})
		return addr
	}
	procs := []*proc{start(0, "127.0.0.1:0")}
	seed = tierAddr(procs[0], "n0")
	procs = append(procs, start(1, "127.0.0.1:0"), start(2, "127.0.0.1:0"))
	for i, p := range procs {
		waitUntil(t, fmt.Sprintf("n%d to see 3 members", i), waitTimeout, func() bool { return p.members(t) == 3 })
	}
	n2Addr := tierAddr(procs[2], "n2")
	const subsPerNode = 20
	var subs [][]<-chan string
	for _, p := range procs[:2] {
		var s []<-chan string
		for range subsPerNode {
			s = append(s, subscribe(t, p.listen))
		}
		subs = append(subs, s)
	}
	// Publish at n0 and n1 alternately; SIGKILL n2 a third of the way in.
	const msgs = 60
	var release func()
	for i := range msgs {
		if i == msgs/3 {
			procs[2].cmd.Process.Signal(syscall.SIGKILL)
			// n2 comes back on its address below: hold it from the
			// moment the process is gone.
			release = testnet.ReserveAddr(t, n2Addr, waitTimeout)
		}
		procs[i%2].publish(t, fmt.Sprintf("m%d\n", i))
		time.Sleep(20 * time.Millisecond) // the pace of publishes, not a wait
	}
	// Every subscriber gets every message once. Each node's publishes
	// arrive in the order it made them; the two nodes' interleave freely
	// (a message forwarded from the other node may arrive after a later
	// local one).
	for n, s := range subs {
		for j, lines := range s {
			seen := map[int]bool{}
			last := [2]int{-1, -1} // by publishing node
			for range msgs {
				var l string
				select {
				case l = <-lines:
				case <-time.After(waitTimeout):
					t.Fatalf("n%d subscriber %d: after %d messages, nothing more (lost: %v)", n, j, len(seen), missing(seen, msgs))
				}
				var i int
				if _, err := fmt.Sscanf(l, "m%d\n", &i); err != nil || i < 0 || i >= msgs || seen[i] || i < last[i%2] {
					t.Fatalf("n%d subscriber %d: got %q; before it, %d messages, the last ones from n0 and n1: m%d, m%d",
						n, j, l, len(seen), last[0], last[1])
				}
				seen[i], last[i%2] = true, i
			}
		}
	}
	// n2 comes back under its name and address and receives publishes.
	restarted := time.Now()
	release()
	procs[2] = start(2, n2Addr)
	lines := subscribe(t, procs[2].listen)
	got := false
	for !got && time.Since(restarted) < waitTimeout {
		procs[0].publish(t, "again\n")
		select {
		case l := <-lines:
			got = l == "again\n"
		case <-time.After(200 * time.Millisecond): // publish again: n0 may not know n2 is back yet
		}
	}
	if !got {
		t.Fatalf("the restarted node received nothing within %v", waitTimeout)
	}
	t.Logf("restarted node received publishes after %v", time.Since(restarted).Round(time.Millisecond))
}
