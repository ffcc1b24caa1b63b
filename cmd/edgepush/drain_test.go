package main

import (
	"bufio"
	"flag"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/edgepush/edgepush/node"
)

func httpStatus(addr, path string) int {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get("http://" + addr + path)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestSignals: SIGHUP leaves a node serving; SIGTERM turns /readyz to 503
// first, ends the held stream cleanly (last chunk), and the process exits
// with status 0.
func TestSignals(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Grip-Hold", "stream")
		w.Header().Set("Grip-Channel", "c")
		io.WriteString(w, "open\n")
	}))
	defer origin.Close()
	p := startProc(t, buildBinary(t), "-origin", origin.URL, "-drain-delay", "500ms", "-drain-period", "200ms")

	p.cmd.Process.Signal(syscall.SIGHUP)
	time.Sleep(200 * time.Millisecond)
	if code := httpStatus(p.control, "/healthz"); code != 200 {
		t.Fatalf("/healthz after SIGHUP: %d", code)
	}
	if code := httpStatus(p.control, "/readyz"); code != 200 {
		t.Fatalf("/readyz: %d", code)
	}

	c, err := net.Dial("tcp", p.listen)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	io.WriteString(c, "GET /s HTTP/1.1\r\nHost: t\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body := bufio.NewReader(resp.Body)
	if l, _ := body.ReadString('\n'); l != "open\n" {
		t.Fatalf("initial %q", l)
	}

	exited := make(chan error, 1)
	p.cmd.Process.Signal(syscall.SIGTERM)
	go func() { exited <- p.cmd.Wait() }()
	waitUntil(t, "/readyz to turn 503", 5*time.Second, func() bool { return httpStatus(p.control, "/readyz") == 503 })
	rest, err := io.ReadAll(body) // chunked: EOF only after the last chunk
	if err != nil || len(rest) != 0 {
		t.Fatalf("stream end: %q %v", rest, err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the node did not exit")
	}
}

// TestDeployExampleConfigs: the example tier configuration in deploy/
// uses only real settings with valid values.
func TestDeployExampleConfigs(t *testing.T) {
	files, err := filepath.Glob("../../deploy/tier/*.conf")
	if err != nil || len(files) != 3 {
		t.Fatalf("example configs: %v %v", files, err)
	}
	for _, f := range files {
		cfg := node.DefaultConfig()
		fs := flag.NewFlagSet("edgepush", flag.ContinueOnError)
		cfg.RegisterFlags(fs)
		if err := node.LoadConfigFile(fs, f); err != nil {
			t.Fatal(err)
		}
		if cfg.NodeName == "" || cfg.ClusterBind == "" || cfg.Join == "" || cfg.TLSListen == "" || len(cfg.TLSCert) != 1 {
			t.Errorf("%s: %+v", f, cfg)
		}
		// The certificate files do not exist here; everything else must
		// be accepted.
		cfg.TLSListen, cfg.TLSCert, cfg.TLSKey = "", nil, nil
		if _, err := node.New(cfg, nil); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}
