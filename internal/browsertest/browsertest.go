// Package browsertest runs the browser checks of node/testdata/browser
// (Node.js scripts that drive Debian's Chromium with playwright-core) from
// Go tests: it skips the test when a tool is missing (fails instead with
// EDGEPUSH_REQUIRE_INTEROP set), lets the test wait for the lines a script
// prints and answer on its standard input, and ends the script with the
// test. It is for tests only; nothing else imports it.
package browsertest

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Chromium is where Debian's chromium package installs the browser.
const Chromium = "/usr/bin/chromium"

// Script is one running check script.
type Script struct {
	tb     testing.TB
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string // the script's standard output, line by line; closed at its end
	stderr strings.Builder
	waited bool
}

// Start runs "node script args..." in dir, the folder holding the scripts
// and their node_modules (make browser-deps), with CHROMIUM set. The
// script is stopped after timeout, and when the test ends.
func Start(tb testing.TB, dir, script string, timeout time.Duration, args ...string) *Script {
	tb.Helper()
	_, err := exec.LookPath("node")
	Require(tb, "node", err == nil)
	_, err = os.Stat(Chromium)
	Require(tb, "Chromium ("+Chromium+", Debian package chromium)", err == nil)
	_, err = os.Stat(filepath.Join(dir, "node_modules", "playwright-core"))
	Require(tb, "npm packages (make browser-deps)", err == nil)

	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	s := &Script{tb: tb, lines: make(chan string)}
	s.cmd = exec.CommandContext(ctx, "node", append([]string{script}, args...)...)
	s.cmd.Dir = dir
	s.cmd.Env = append(os.Environ(), "CHROMIUM="+Chromium)
	s.cmd.Stderr = &s.stderr
	// SIGTERM lets playwright close the browser it started; a script
	// still running WaitDelay later is killed.
	s.cmd.Cancel = func() error { return s.cmd.Process.Signal(syscall.SIGTERM) }
	s.cmd.WaitDelay = 5 * time.Second
	if s.stdin, err = s.cmd.StdinPipe(); err != nil {
		cancel()
		tb.Fatal(err)
	}
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		cancel()
		tb.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		cancel()
		tb.Fatal(err)
	}
	go func() { // ends with the script's output
		defer close(s.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
	}()
	tb.Cleanup(func() {
		cancel() // kills the script if it still runs
		s.drain()
		s.wait()
	})
	return s
}

// Require skips the test unless ok (what, a tool the test needs, is
// there), or fails it when EDGEPUSH_REQUIRE_INTEROP is set (CI, where the
// tools must be installed).
func Require(tb testing.TB, what string, ok bool) {
	tb.Helper()
	if ok {
		return
	}
	if os.Getenv("EDGEPUSH_REQUIRE_INTEROP") != "" {
		tb.Fatalf("%s is required (EDGEPUSH_REQUIRE_INTEROP is set)", what)
	}
	tb.Skipf("%s not available", what)
}

// Expect reads the script's output, logging each line, up to a line equal
// to want; the test fails if the script ends first.
func (s *Script) Expect(want string) {
	s.tb.Helper()
	for line := range s.lines {
		s.tb.Logf("%s: %s", filepath.Base(s.cmd.Args[1]), line)
		if line == want {
			return
		}
	}
	err := s.wait()
	s.tb.Fatalf("%s ended before %q: %v\n%s", s.cmd.Args[1], want, err, s.stderr.String())
}

// Send writes line to the script's standard input.
func (s *Script) Send(line string) {
	s.tb.Helper()
	if _, err := io.WriteString(s.stdin, line+"\n"); err != nil {
		s.tb.Fatalf("to %s: %v", s.cmd.Args[1], err)
	}
}

// End reads the rest of the script's output and fails the test unless
// the script exits cleanly.
func (s *Script) End() {
	s.tb.Helper()
	s.stdin.Close() // nothing more to say
	s.drain()
	if err := s.wait(); err != nil {
		s.tb.Fatalf("%s: %v\n%s", s.cmd.Args[1], err, s.stderr.String())
	}
}

func (s *Script) drain() {
	for line := range s.lines {
		s.tb.Logf("%s: %s", filepath.Base(s.cmd.Args[1]), line)
	}
}

// wait waits for the script's exit once; later calls return nil.
func (s *Script) wait() error {
	if s.waited {
		return nil
	}
	s.waited = true
	s.stdin.Close()
	return s.cmd.Wait()
}
