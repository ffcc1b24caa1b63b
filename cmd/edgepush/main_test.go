package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
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

// freePort returns a port free for both TCP and UDP on 127.0.0.1
// (memberlist needs both).
func freePort(t *testing.T) int {
	t.Helper()
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		l.Close()
		if err == nil {
			u.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

// proc is one running edgepush process.
type proc struct {
	cmd             *exec.Cmd
	listen, control string
}

func startProc(t *testing.T, bin string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"-listen", "127.0.0.1:0", "-control", "127.0.0.1:0"}, args...)...)
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
			var line struct{ Msg, Listen, Control string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "edgepush node started" {
				p.listen, p.control = line.Listen, line.Control
				once.Do(func() { close(started) })
			}
		}
	}()
	select {
	case <-started:
	case <-time.After(20 * time.Second):
		t.Fatal("edgepush did not start")
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

func (p *proc) members(t *testing.T) int {
	tier, _ := p.status(t)["tier"].(map[string]any)
	ms, _ := tier["members"].([]any)
	return len(ms)
}

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
	ports := []int{freePort(t), freePort(t), freePort(t)}
	seed := fmt.Sprintf("127.0.0.1:%d", ports[0])
	start := func(i int) *proc {
		return startProc(t, bin, "-origin", origin.URL, "-cluster-local", "-node-name", fmt.Sprintf("n%d", i),
			"-cluster-bind", fmt.Sprintf("127.0.0.1:%d", ports[i]), "-join", seed, "-cluster-key", "sixteen-byte-key", "-log-level", "info")
	}
	procs := []*proc{start(0), start(1), start(2)}
	for i, p := range procs {
		waitUntil(t, fmt.Sprintf("n%d to see 3 members", i), 15*time.Second, func() bool { return p.members(t) == 3 })
	}
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
	for i := range msgs {
		if i == msgs/3 {
			procs[2].cmd.Process.Signal(syscall.SIGKILL)
		}
		procs[i%2].publish(t, fmt.Sprintf("m%d\n", i))
		time.Sleep(20 * time.Millisecond)
	}
	for n, s := range subs {
		for j, lines := range s {
			for i := range msgs {
				select {
				case l := <-lines:
					if l != fmt.Sprintf("m%d\n", i) {
						t.Fatalf("n%d subscriber %d: got %q, want m%d", n, j, l, i)
					}
				case <-time.After(5 * time.Second):
					t.Fatalf("n%d subscriber %d lost m%d", n, j, i)
				}
			}
		}
	}
	// n2 comes back under its name and receives publishes within 10s.
	restarted := time.Now()
	procs[2] = start(2)
	lines := subscribe(t, procs[2].listen)
	got := false
	for !got && time.Since(restarted) < 10*time.Second {
		procs[0].publish(t, "again\n")
		select {
		case l := <-lines:
			got = l == "again\n"
		case <-time.After(200 * time.Millisecond):
		}
	}
	if !got {
		t.Fatal("the restarted node received nothing within 10s")
	}
	t.Logf("restarted node received publishes after %v", time.Since(restarted).Round(time.Millisecond))
}
