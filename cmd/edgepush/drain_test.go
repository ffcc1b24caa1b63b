package main

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
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
