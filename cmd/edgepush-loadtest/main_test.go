package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgepush/edgepush/internal/testnet"
	"github.com/edgepush/edgepush/loadtest"
)

func TestParseRun(t *testing.T) {
	cfg, opts, err := parseRun(strings.Fields(
		"-url http://127.0.0.1:7999/sse?ch=x -transport sse -conns 5000 -concurrency 32 -local-addrs 5 "+
			"-publish http://127.0.0.1:5561/publish/ -publish-key k -channel y -msgs 7 -rate 2.5 -settle 30s "+
			"-timeout 2m -pid 12,34 -json"), io.Discard, false)
	if err != nil {
		t.Fatal(err)
	}
	want := loadtest.Config{
		URL: "http://127.0.0.1:7999/sse?ch=x", Transport: loadtest.TransportSSE, Conns: 5000, Concurrency: 32,
		LocalAddrs: 5, PublishURL: "http://127.0.0.1:5561/publish/", PublishKey: "k", Channel: "y", Msgs: 7,
		Rate: 2.5, Settle: 30 * time.Second, Timeout: 2 * time.Minute, ConnectTimeout: loadtest.DefaultConnectTimeout,
	}
	pids := cfg.PIDs
	cfg.PIDs = nil
	if cfg.URL != want.URL || cfg.Transport != want.Transport || cfg.Conns != want.Conns ||
		cfg.Concurrency != want.Concurrency || cfg.LocalAddrs != want.LocalAddrs || cfg.PublishURL != want.PublishURL ||
		cfg.PublishKey != want.PublishKey || cfg.Channel != want.Channel || cfg.Msgs != want.Msgs || cfg.Rate != want.Rate ||
		cfg.Settle != want.Settle || cfg.Timeout != want.Timeout || len(pids) != 2 || pids[0] != 12 || pids[1] != 34 {
		t.Errorf("config %+v pids %v", cfg, pids)
	}
	if !opts.jsonOnly || opts.progress != progressOff {
		t.Errorf("opts %+v", opts)
	}
	if _, opts, _ = parseRun([]string{"-json", "-progress"}, io.Discard, false); opts.progress != progressDraw {
		t.Errorf("-json -progress: %+v", opts)
	}
	if _, opts, _ = parseRun(nil, io.Discard, true); opts.progress != progressDraw {
		t.Errorf("tty default: %+v", opts)
	}
	if _, opts, _ = parseRun(nil, io.Discard, false); opts.progress != progressLine {
		t.Errorf("non-tty default: %+v", opts)
	}
	for _, bad := range [][]string{{"-pid", "x"}, {"-pid", "-3"}, {"-nope"}, {"extra"}} {
		if _, _, err := parseRun(bad, io.Discard, false); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

func TestRunUsageErrors(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"run", "-transport", "smoke-signals", "-conns", "1"}, &out, &errb, false); code != 2 ||
		!strings.Contains(errb.String(), "unknown transport") {
		t.Errorf("code %d, stderr %q", code, errb.String())
	}
	errb.Reset()
	if code := run(context.Background(), []string{"-url", "http://192.0.2.1/stream"}, &out, &errb, false); code != 2 ||
		!strings.Contains(errb.String(), "loopback") {
		t.Errorf("code %d, stderr %q", code, errb.String())
	}
	errb.Reset()
	if code := run(context.Background(), []string{"help"}, &out, &errb, false); code != 0 || !strings.Contains(errb.String(), "origin") {
		t.Errorf("help: code %d, %q", code, errb.String())
	}
}

// lockedBuffer is a bytes.Buffer safe to write from one goroutine while
// another reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestOriginAndRun serves the origin subcommand (on port 0: it says where
// it listens) and runs the tool against an address where nothing listens
// (no proxy in this package's tests): every connection fails, the table
// and JSON line are still printed.
func TestOriginAndRun(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	var originErr lockedBuffer
	go func() { done <- run(ctx, []string{"origin", "-listen", "127.0.0.1:0"}, io.Discard, &originErr, false) }()
	var originURL string
	deadline := time.Now().Add(20 * time.Second) // only catches a hang
	for originURL == "" {
		if _, rest, ok := strings.Cut(originErr.String(), "listening on "); ok {
			originURL, _, _ = strings.Cut(rest, " ")
			break
		}
		select {
		case code := <-done:
			t.Fatalf("the origin exited with %d: %s", code, originErr.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("the origin never said where it listens")
		}
	}
	resp, err := http.Get(originURL + "/stream?ch=t")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	http.DefaultClient.CloseIdleConnections()
	if resp.Header.Get("Grip-Hold") != "stream" || resp.Header.Get("Grip-Channel") != "t" {
		t.Errorf("origin headers %v", resp.Header)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("origin exit code %d", code)
	}

	addr := testnet.RefusingAddr(t)
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"-url", "http://" + addr + "/stream", "-publish", "http://" + addr + "/publish/",
		"-conns", "3"}, &out, &errb, false)
	if code != 0 {
		t.Fatalf("code %d, stderr %s", code, errb.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var rep loadtest.Report
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &rep); err != nil || rep.ConnsFailed != 3 {
		t.Errorf("json line %q: %v", lines[len(lines)-1], err)
	}
	if !strings.Contains(out.String(), "3 requested, 0 ok, 3 failed") || !strings.Contains(errb.String(), "conns 0/3") {
		t.Errorf("stdout %s\nstderr %s", out.String(), errb.String())
	}
	out.Reset()
	if run(context.Background(), []string{"-url", "http://" + addr + "/stream", "-publish", "http://" + addr + "/publish/",
		"-conns", "1", "-json"}, &out, io.Discard, false) != 0 || strings.Count(out.String(), "\n") != 1 || out.String()[0] != '{' {
		t.Errorf("-json output %q", out.String())
	}
}
