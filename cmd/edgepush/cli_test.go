package main

import (
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
	"regexp"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgepush/edgepush/internal/testlog"
	"github.com/edgepush/edgepush/node"
)

// edgepushBinary is built once for the tests of this file that only run
// it to completion.
func edgepushBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "edgepush-cli-test")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "edgepush")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// runResult is what one edgepush process that ran to completion did.
type runResult struct {
	code           int
	stdout, stderr string
}

// runEdgepush runs the binary with args and env (added to a clean
// environment: no EDGEPUSH_ variable of the test's own), bounded by
// waitTimeout.
func runEdgepush(t *testing.T, env []string, args ...string) runResult {
	t.Helper()
	cmd := exec.Command(edgepushBinary(t), args...)
	cmd.Env = cleanEnv(env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(waitTimeout):
		cmd.Process.Kill()
		<-done
		t.Fatalf("edgepush %q did not exit; stderr: %s", args, stderr.String())
	}
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return runResult{code, stdout.String(), stderr.String()}
}

// cleanEnv is the test's environment without its EDGEPUSH_ variables,
// plus env.
func cleanEnv(env ...string) []string {
	var clean []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, node.EnvPrefix) {
			clean = append(clean, kv)
		}
	}
	return append(clean, env...)
}

// Usage and configuration errors: plain text on stderr, each line
// starting "edgepush: ", exit status 2; -h, -version and version print to
// stdout and exit 0; -check-config checks everything New checks and exits
// 0 or 2 without listening.
func TestCommandLine(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	busy, err := net.Listen("tcp", "127.0.0.1:0") // -check-config must not try to listen
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	goodConf := filepath.Join(dir, "good.conf")
	os.WriteFile(goodConf, []byte(`# the README's spellings
origin = http://127.0.0.1:8080   # the app
cache-max-bytes = 256MiB
max-queue-bytes = 256 KiB
origin-max-body = 10MB
ws-compression
stale-if-error = 10m
`), 0o600)
	badConf := filepath.Join(dir, "bad.conf")
	os.WriteFile(badConf, []byte("origin = http://127.0.0.1:8080\nmax-conns = -5\nstale-if-error = 5\nnosuch = 1\n"), 0o600)
	validConfBadValue := filepath.Join(dir, "value.conf")
	os.WriteFile(validConfBadValue, []byte("origin = http://127.0.0.1:8080\n\nmax-conns = -5\n"), 0o600)
	origin := "http://127.0.0.1:8080"
	for _, tc := range []struct {
		name   string
		env    []string
		args   []string
		code   int
		stdout string   // contained in stdout ("" : stdout empty)
		stderr []string // each line of stderr contains the one at its index (nil: stderr empty)
	}{
		{"-h", nil, []string{"-h"}, 0, "Usage: edgepush [flags]", nil},
		{"-help", nil, []string{"-help"}, 0, "-max-conns n", nil},
		{"-version", nil, []string{"-version"}, 0, "edgepush " + node.Version + "\n", nil},
		{"version", nil, []string{"version"}, 0, "edgepush " + node.Version + "\n", nil},
		{"unknown flag", nil, []string{"-origin", origin, "-max-conn", "5"}, 2, "",
			[]string{"edgepush: unknown flag -max-conn (did you mean -max-conns?); edgepush -h lists the flags"}},
		{"duration without unit", nil, []string{"-origin", origin, "-stale-if-error", "5"}, 2, "",
			[]string{`edgepush: invalid value "5" for flag -stale-if-error: missing unit, e.g. 5s`}},
		{"positional argument", nil, []string{"-origin", origin, "start"}, 2, "",
			[]string{`edgepush: unexpected argument "start": edgepush takes flags only (and the command version)`}},
		{"value of a boolean flag", nil, []string{"-origin", origin, "-cache-off", "true"}, 2, "",
			[]string{`edgepush: unexpected argument "true": -cache-off is a boolean flag: write -cache-off or -cache-off=true`}},
		{"origin port out of range", nil, []string{"-origin", "http://127.0.0.1:99999"}, 2, "",
			[]string{`edgepush: config: -origin "http://127.0.0.1:99999": port 99999 is out of range (1-65535)`}},
		{"several errors", nil, []string{"-origin", origin, "-max-conns", "-5", "-join", "10.0.0.1:7946"}, 2, "",
			[]string{"edgepush: config: -max-conns -5: must not be negative", "edgepush: config: -join needs -cluster-bind"}},
		{"no origin", nil, nil, 2, "", []string{"edgepush: config: -origin is required (or at least one -route)"}},
		{"gc percent out of range", nil, []string{"-check-config", "-origin", origin, "-gc-percent", "0"}, 2, "",
			[]string{"edgepush: config: -gc-percent 0: want 1…1000"}},
		{"gc percent from the environment", []string{"EDGEPUSH_GC_PERCENT=2000"}, []string{"-check-config", "-origin", origin}, 2, "",
			[]string{"edgepush: config: -gc-percent 2000: want 1…1000 (from EDGEPUSH_GC_PERCENT)"}},
		{"gc percent with other errors", nil, []string{"-origin", origin, "-gc-percent", "-1", "-max-conns", "-5"}, 2, "",
			[]string{"edgepush: config: -gc-percent -1: want 1…1000", "edgepush: config: -max-conns -5: must not be negative"}},
		{"check: gc percent with other errors", nil, []string{"-check-config", "-origin", origin, "-gc-percent", "-1", "-max-conns", "-5"}, 2, "",
			[]string{"edgepush: config: -gc-percent -1: want 1…1000", "edgepush: config: -max-conns -5: must not be negative"}},
		{"check: GOGC wins over gc percent", []string{"GOGC=80"}, []string{"-check-config", "-origin", origin, "-gc-percent", "30"}, 0, "configuration OK",
			[]string{"edgepush: warning: config: -gc-percent does nothing: GOGC is set in the environment, and it wins"}},
		{"check: GOGC and the default gc percent", []string{"GOGC=80"}, []string{"-check-config", "-origin", origin}, 0, "configuration OK", nil},
		{"check: valid", nil, []string{"-check-config", "-origin", origin, "-listen", busy.Addr().String()}, 0, "edgepush: configuration OK\n", nil},
		{"check: the README's spellings", nil, []string{"-check-config", "-config", goodConf}, 0, "configuration OK", nil},
		{"check: New's own checks", nil, []string{"-check-config", "-origin", origin, "-cluster-bind", "127.0.0.1:0", "-cluster-key", "short"}, 2, "",
			[]string{"edgepush: config: -cluster-key: 5 bytes, want 16, 24 or 32"}},
		{"check: warnings", nil, []string{"-check-config", "-origin", origin, "-metrics-auth"}, 0, "configuration OK",
			[]string{"edgepush: warning: config: -metrics-auth does nothing without -publish-key"}},
		{"check: demo", nil, []string{"-check-config", "-demo"}, 0, "configuration OK", nil},
		{"config file errors, with their lines", nil, []string{"-config", badConf}, 2, "", []string{
			badConf + ":3: stale-if-error: missing unit, e.g. 5s", badConf + `:4: unknown setting "nosuch"`,
		}},
		{"where a bad value comes from", nil, []string{"-check-config", "-config", validConfBadValue}, 2, "",
			[]string{"edgepush: config: -max-conns -5: must not be negative (from " + validConfBadValue + ":3)"}},
		{"environment", []string{"EDGEPUSH_ORIGIN=" + origin, "EDGEPUSH_CACHE_OFF=true", "EDGEPUSH_MAX_BODY=2MiB"},
			[]string{"-check-config"}, 0, "configuration OK", nil},
		{"environment: a bad value", []string{"EDGEPUSH_ORIGIN=" + origin, "EDGEPUSH_STALE_IF_ERROR=5"}, []string{"-check-config"}, 2, "",
			[]string{"edgepush: config: EDGEPUSH_STALE_IF_ERROR=5: missing unit, e.g. 5s"}},
		{"environment: where a bad value comes from", []string{"EDGEPUSH_ORIGIN=" + origin, "EDGEPUSH_MAX_CONNS=-1"}, []string{"-check-config"}, 2, "",
			[]string{"edgepush: config: -max-conns -1: must not be negative (from EDGEPUSH_MAX_CONNS)"}},
		{"environment: a typo", []string{"EDGEPUSH_ORIGIN=" + origin, "EDGEPUSH_MAXCONNS=1"}, []string{"-check-config"}, 0, "configuration OK",
			[]string{"edgepush: warning: config: environment variable EDGEPUSH_MAXCONNS is not a setting, ignored (did you mean -max-conns?)"}},
		{"environment: the config file", []string{"EDGEPUSH_CONFIG=" + goodConf}, []string{"-check-config"}, 0, "configuration OK", nil},
		{"flags win over the environment", []string{"EDGEPUSH_ORIGIN=http://127.0.0.1:99999"}, []string{"-check-config", "-origin", origin}, 0, "configuration OK", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := runEdgepush(t, tc.env, tc.args...)
			if r.code != tc.code {
				t.Errorf("exit status %d, want %d", r.code, tc.code)
			}
			if tc.stdout == "" && r.stdout != "" || !strings.Contains(r.stdout, tc.stdout) {
				t.Errorf("stdout %q, want %q", r.stdout, tc.stdout)
			}
			lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
			if r.stderr == "" {
				lines = nil
			}
			if len(lines) != len(tc.stderr) {
				t.Fatalf("stderr has %d lines, want %d:\n%s", len(lines), len(tc.stderr), r.stderr)
			}
			for i, l := range lines {
				if !strings.HasPrefix(l, "edgepush: ") || !strings.Contains(l, tc.stderr[i]) {
					t.Errorf("stderr line %d: %q, want one starting \"edgepush: \" with %q", i+1, l, tc.stderr[i])
				}
			}
		})
	}
}

// A node that cannot start for another reason than its settings (its
// address in use) says so in the same plain format, with status 1.
func TestStartFailureIsPlainText(t *testing.T) {
	t.Parallel()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	r := runEdgepush(t, nil, "-origin", "http://127.0.0.1:8080", "-listen", busy.Addr().String(), "-control", "127.0.0.1:0")
	if r.code != 1 {
		t.Fatalf("exit status %d, want 1; stderr: %s", r.code, r.stderr)
	}
	want := regexp.MustCompile(`(?m)^edgepush: listen ` + regexp.QuoteMeta(busy.Addr().String()) + `: .*address already in use$`)
	if !want.MatchString(r.stderr) || strings.Contains(r.stderr, `"level":"ERROR"`) {
		t.Fatalf("stderr: %q", r.stderr)
	}
}

// -h lists every setting, each documented in the README's table, and each
// settable by its environment variable (TestEveryFlagHasAnEnvironmentVariable
// in node checks the variables).
func TestEveryFlagIsDocumented(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	r := runEdgepush(t, nil, "-h")
	flags := regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`).FindAllStringSubmatch(r.stdout, -1)
	if len(flags) < 60 {
		t.Fatalf("-h lists %d flags:\n%s", len(flags), r.stdout)
	}
	for _, f := range flags {
		if !bytes.Contains(readme, []byte("| `-"+f[1]+"`")) && !bytes.Contains(readme, []byte("`-"+f[1]+"`, `-")) &&
			!bytes.Contains(readme, []byte(", `-"+f[1]+"` |")) {
			t.Errorf("-%s is not in the README's table of flags", f[1])
		}
	}
	// The README's sizes are spelled as the flags take them ("10 MiB")
	// and are their defaults.
	defaults := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^  -([a-z0-9-]+) size\n.*\(default ([^)]+)\)$`).FindAllStringSubmatch(r.stdout, -1) {
		defaults[m[1]] = m[2]
	}
	args := []string{"-check-config", "-origin", "http://127.0.0.1:1"}
	rows := regexp.MustCompile("(?m)^\\| `-([a-z0-9-]+)` \\| `?([0-9]+ ?[KMG]i?B)`? \\|").FindAllStringSubmatch(string(readme), -1)
	for _, row := range rows {
		if strings.ReplaceAll(row[2], " ", "") != defaults[row[1]] {
			t.Errorf("README: -%s defaults to %s; -h says %q", row[1], row[2], defaults[row[1]])
		}
		args = append(args, "-"+row[1], row[2])
	}
	if len(rows) < 8 {
		t.Fatalf("%d sizes found in the README's table", len(rows))
	}
	if res := runEdgepush(t, nil, args...); res.code != 0 {
		t.Fatalf("the README's sizes %q: %s", args, res.stderr)
	}
}

// Every flag given through the environment only, for a real node: the
// node starts with its origin, metrics listener and limits from
// EDGEPUSH_ variables.
func TestEnvironmentConfiguresANode(t *testing.T) {
	t.Parallel()
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Grip-Hold", "stream")
		w.Header().Set("Grip-Channel", "c")
		io.WriteString(w, "open\n")
	}))
	defer origin.Close()
	p := startProcEnv(t, edgepushBinary(t), []string{
		"EDGEPUSH_ORIGIN=" + origin.URL, "EDGEPUSH_METRICS_LISTEN=127.0.0.1:0", "EDGEPUSH_MAX_CHANNELS=3", "EDGEPUSH_CACHE_OFF=1",
		"EDGEPUSH_LISTEN=127.0.0.1:1", // the flag startProc gives wins
		"EDGEPUSH_GC_PERCENT=50",
	})
	if p.metrics == "" {
		t.Fatal("no metrics listener from EDGEPUSH_METRICS_LISTEN")
	}
	lines := subscribe(t, p.listen)
	p.publish(t, "from the environment\n")
	select {
	case l := <-lines:
		if l != "from the environment\n" {
			t.Fatalf("got %q", l)
		}
	case <-time.After(waitTimeout):
		t.Fatal("no publish reached the stream")
	}
	resp, err := http.Get("http://" + p.metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /metrics on the metrics listener: %d", resp.StatusCode)
	}
	// -gc-percent is applied (GOGC is not in the environment).
	if !regexp.MustCompile(`(?m)^go_gc_gogc_percent 50$`).Match(body) {
		t.Errorf("/metrics has no go_gc_gogc_percent 50 (EDGEPUSH_GC_PERCENT=50):\n%s", regexp.MustCompile(`(?m)^go_gc_gogc.*$`).Find(body))
	}
}

// Two nodes whose -cluster-key differ never join; at the default log
// level the one joining warns, the one it asks logs an error naming the
// key, and no line carries a key twice.
func TestClusterKeyMismatchIsLogged(t *testing.T) {
	t.Parallel()
	bin := edgepushBinary(t)
	seed := startProc(t, bin, "-origin", "http://127.0.0.1:1", "-node-name", "seed", "-cluster-bind", "127.0.0.1:0",
		"-cluster-local", "-cluster-key", "0123456789abcdef")
	var seedAddr string
	waitUntil(t, "the seed's tier address", waitTimeout, func() bool {
		seedAddr = seed.tierMembers(t)["seed"]
		return seedAddr != ""
	})
	joiner := startProc(t, bin, "-origin", "http://127.0.0.1:1", "-node-name", "joiner", "-cluster-bind", "127.0.0.1:0",
		"-cluster-local", "-cluster-key", "fedcba9876543210", "-join", seedAddr)
	find := func(p *proc, level, msg string) map[string]any {
		for _, l := range p.logLines() {
			var m map[string]any
			if json.Unmarshal([]byte(l), &m) == nil && m["level"] == level && strings.Contains(fmt.Sprint(m["msg"]), msg) {
				return m
			}
		}
		return nil
	}
	var warned, refused map[string]any
	waitUntil(t, "both nodes to log the failed join", waitTimeout, func() bool {
		warned, refused = find(joiner, "WARN", "cannot join the tier"), find(seed, "ERROR", "")
		return warned != nil && refused != nil
	})
	if warned["component"] != "cluster" || !strings.Contains(fmt.Sprint(refused["hint"]), "-cluster-key") {
		t.Fatalf("logged: %v and %v", warned, refused)
	}
	if n := seed.members(t); n != 1 {
		t.Fatalf("the seed has %d members", n)
	}
	for _, p := range []*proc{seed, joiner} {
		for _, l := range p.logLines() {
			if k := testlog.DuplicateKey(l); k != "" {
				t.Errorf("a log line carries %q twice: %s", k, l)
			}
		}
	}
}

// -gc-percent sets the collector's target unless GOGC is in the
// environment: then the runtime has applied GOGC and it wins.
func TestGCPercent(t *testing.T) {
	prev := debug.SetGCPercent(100)
	defer debug.SetGCPercent(prev)
	if !setGCPercent([]string{"HOME=/root"}, 37) {
		t.Fatal("not applied without GOGC in the environment")
	}
	if got := debug.SetGCPercent(100); got != 37 {
		t.Fatalf("GC percent %d after setGCPercent(37), want 37", got)
	}
	if !setGCPercent([]string{"GOGC="}, 37) {
		t.Fatal("not applied with an empty GOGC, which the runtime ignores")
	}
	debug.SetGCPercent(100)
	if setGCPercent([]string{"GOGC=80"}, 37) {
		t.Fatal("applied although GOGC is in the environment")
	}
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("GC percent %d with GOGC in the environment, want it left at 100", got)
	}
}
