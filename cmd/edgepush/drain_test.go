package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/edgepush/edgepush/node"
)

func httpStatus(addr, path string) int {
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + addr + path)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// writeCert writes a fresh self-signed certificate for name and its key
// to certFile and keyFile, each replaced at once (written aside, then
// renamed), and returns the certificate.
func writeCert(t *testing.T, name, certFile, keyFile string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		path, typ string
		der       []byte
	}{{keyFile, "EC PRIVATE KEY", kb}, {certFile, "CERTIFICATE", der}} {
		tmp := f.path + ".new"
		if err := os.WriteFile(tmp, pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.der}), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, f.path); err != nil {
			t.Fatal(err)
		}
	}
	return der
}

// servedCert returns the certificate a TLS handshake with addr gets.
func servedCert(addr, name string) ([]byte, error) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{ServerName: name, InsecureSkipVerify: true})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].Raw, nil
}

// TestSignals: SIGHUP makes the node load its certificate files again (new
// handshakes get the new certificate) and leaves it serving; SIGTERM
// turns /readyz to 503 first, ends the held stream cleanly (last chunk),
// and the process exits with status 0.
func TestSignals(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Grip-Hold", "stream")
		w.Header().Set("Grip-Channel", "c")
		io.WriteString(w, "open\n")
	}))
	defer origin.Close()
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "node.crt"), filepath.Join(dir, "node.key")
	first := writeCert(t, "edge.test", certFile, keyFile)
	p := startProc(t, buildBinary(t), "-origin", origin.URL, "-drain-delay", "500ms", "-drain-period", "200ms",
		"-tls-listen", "127.0.0.1:0", "-tls-cert", certFile, "-tls-key", keyFile)
	if got, err := servedCert(p.tls, "edge.test"); err != nil || !bytes.Equal(got, first) {
		t.Fatalf("served certificate before SIGHUP: %v (the one in the files: %v)", err, bytes.Equal(got, first))
	}

	// A new certificate in the files, then SIGHUP to that process: new
	// handshakes get it once the signal is handled.
	second := writeCert(t, "edge.test", certFile, keyFile)
	p.cmd.Process.Signal(syscall.SIGHUP)
	var served []byte
	waitUntil(t, "the new certificate to be served after SIGHUP", waitTimeout, func() bool {
		served, _ = servedCert(p.tls, "edge.test")
		return !bytes.Equal(served, first)
	})
	if !bytes.Equal(served, second) {
		t.Fatal("after SIGHUP the node serves a certificate that is neither the old one nor the new one")
	}
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
	c.SetDeadline(time.Now().Add(waitTimeout))
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
	waitUntil(t, "/readyz to turn 503", waitTimeout, func() bool { return httpStatus(p.control, "/readyz") == 503 })
	rest, err := io.ReadAll(body) // chunked: EOF only after the last chunk
	if err != nil || len(rest) != 0 {
		t.Fatalf("stream end: %q %v", rest, err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit: %v", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("the node did not exit")
	}
}

// TestDeployExampleConfigs starts the three example tier configs of
// deploy/tier as a real tier: every setting as written except the
// addresses (the 10.0.0.N and origin addresses become loopback ones, the
// listeners port 0, the join lists point at the members already started)
// and the certificate files (generated here). A publish with the
// configured publish key at one member reaches a stream held at another,
// and the origin sees Grip-Sig signed with the configured sig key.
func TestDeployExampleConfigs(t *testing.T) {
	files, err := filepath.Glob("../../deploy/tier/*.conf")
	if err != nil || len(files) != 3 {
		t.Fatalf("example configs: %v %v", files, err)
	}
	var sigKey atomic.Value
	origin := httptest.NewServer(gripOrigin(&sigKey, "deploy"))
	defer origin.Close()
	dir := t.TempDir()
	tierAddr := map[string]string{} // 10.0.0.N → the started member's memberlist address
	var nodes []*node.Server
	var publishKey string
	for i, f := range files {
		cfg := node.DefaultConfig()
		fs := flag.NewFlagSet("edgepush", flag.ContinueOnError)
		cfg.RegisterFlags(fs)
		if err := node.LoadConfigFile(fs, f); err != nil {
			t.Fatal(err)
		}
		if cfg.NodeName == "" || cfg.ClusterBind == "" || cfg.Join == "" || cfg.TLSListen == "" || len(cfg.TLSCert) != 1 ||
			cfg.PublishKey == "" || cfg.SigKey == "" || cfg.ClusterKey == "" {
			t.Fatalf("%s lacks a setting of a tier member: %+v", f, cfg)
		}
		sigKey.Store(cfg.SigKey)
		publishKey = cfg.PublishKey
		bindHost, _, _ := net.SplitHostPort(cfg.ClusterBind)
		var join []string
		for _, j := range strings.Split(cfg.Join, ",") {
			h, _, _ := net.SplitHostPort(strings.TrimSpace(j))
			if a, ok := tierAddr[h]; ok {
				join = append(join, a)
			}
		}
		cert, key := filepath.Join(dir, fmt.Sprintf("%d.crt", i)), filepath.Join(dir, fmt.Sprintf("%d.key", i))
		writeCert(t, "example.com", cert, key)
		cfg.Listen, cfg.TLSListen, cfg.Control = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
		cfg.TLSCert, cfg.TLSKey = node.StringList{cert}, node.StringList{key}
		cfg.Origin = origin.URL
		cfg.ClusterBind, cfg.Join, cfg.ClusterLocal = "127.0.0.1:0", strings.Join(join, ","), true
		s, err := node.New(cfg, nil)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if err := s.Start(); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second) // cuts the configured drain short
			defer cancel()
			s.Shutdown(ctx)
		}()
		nodes = append(nodes, s)
		tierAddr[bindHost] = s.TierAddr()
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, s := range nodes {
		for s.Status().Tier == nil || len(s.Status().Tier.Peers) != 2 {
			if time.Now().After(deadline) {
				t.Fatalf("%s does not see the two others: %+v", s.Status().Node, s.Status().Tier)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// A stream held over TLS at the last member; a publish at the first.
	c, err := tls.Dial("tcp", nodes[2].TLSAddr().String(), &tls.Config{ServerName: "example.com", InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	io.WriteString(c, "GET /stream HTTP/1.1\r\nHost: example.com\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body := bufio.NewReader(resp.Body)
	if line, err := body.ReadString('\n'); err != nil || line != "open\n" {
		t.Fatalf("stream at %s: %d %q %v", nodes[2].Status().Node, resp.StatusCode, line, err)
	}
	req, _ := http.NewRequest("POST", "http://"+nodes[0].ControlAddr().String()+"/publish/",
		strings.NewReader(`{"items":[{"channel":"deploy","formats":{"http-stream":{"content":"across the tier\n"}}}]}`))
	req.Header.Set("Authorization", "Bearer "+publishKey)
	presp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	presp.Body.Close()
	if presp.StatusCode != 200 {
		t.Fatalf("publish with the configured key: %d", presp.StatusCode)
	}
	if line, err := body.ReadString('\n'); err != nil || line != "across the tier\n" {
		t.Fatalf("stream after the publish: %q %v", line, err)
	}
}
