package node

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
)

// writeCert writes a fresh self-signed certificate for name and its key
// into dir and returns the two paths.
func writeCert(tb testing.TB, dir, name string) (certFile, keyFile string) {
	tb.Helper()
	key := newECKey(tb)
	tmpl := certTemplate(name)
	tmpl.DNSNames = []string{name}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	return writePEM(tb, dir, name+".crt", "CERTIFICATE", der), writePEM(tb, dir, name+".key", "EC PRIVATE KEY", kb)
}

// served is the certificate the node presents for server name sni.
func served(tb testing.TB, n *testNode, sni string) *x509.Certificate {
	tb.Helper()
	c, err := tls.Dial("tcp", n.TLSAddr().String(), &tls.Config{ServerName: sni, InsecureSkipVerify: true})
	if err != nil {
		tb.Fatalf("handshake for %q: %v", sni, err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0]
}

func startTLSNode(t *testing.T, h http.Handler, configure func(*Config), names ...string) (*testNode, []string, []string) {
	dir := t.TempDir()
	var certs, keys []string
	for _, name := range names {
		c, k := writeCert(t, dir, name)
		certs, keys = append(certs, c), append(keys, k)
	}
	n := startNode(t, h, func(c *Config) {
		c.TLSListen, c.TLSCert, c.TLSKey = "127.0.0.1:0", certs, keys
		if configure != nil {
			configure(c)
		}
	})
	return n, certs, keys
}

func TestTLSCertificateChosenBySNI(t *testing.T) {
	n, _, _ := startTLSNode(t, gripOrigin("plain\n"), nil, "a.test", "b.test")
	for sni, want := range map[string]string{"a.test": "a.test", "b.test": "b.test", "other.test": "a.test", "": "a.test"} {
		if got := served(t, n, sni).Subject.CommonName; got != want {
			t.Errorf("SNI %q: certificate for %q, want %q", sni, got, want)
		}
	}
}

// TestTLSHeldStreamAndReload: a stream held over HTTPS gets publishes,
// small and large (the large ones go through the connection's blocking
// writer), across a certificate reload; new handshakes see the new
// certificate, and a broken reload keeps it.
func TestTLSHeldStreamAndReload(t *testing.T) {
	var proto atomic.Value
	origin := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proto.Store(r.Header.Get("X-Forwarded-Proto"))
		w.Header().Set("Grip-Hold", "stream")
		w.Header().Set("Grip-Channel", "secure")
		io.WriteString(w, "hello\n")
	})
	// Room for every large message below in the connection's queue, so
	// that the slow reader is never dropped as a slow consumer.
	const maxBig = 64
	big := strings.Repeat("x", 512<<10) + "\n"
	n, certs, keys := startTLSNode(t, origin, func(c *Config) { c.MaxQueueBytes = (maxBig + 4) * len(big) }, "a.test")
	before := served(t, n, "a.test")

	// A small receive buffer: the client's window cannot absorb much.
	d := net.Dialer{Control: setRcvBuf(32 << 10)}
	tc, err := d.Dial("tcp", n.TLSAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := tls.Client(tc, &tls.Config{ServerName: "a.test", InsecureSkipVerify: true})
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	io.WriteString(c, "GET /s HTTP/1.1\r\nHost: a.test\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body := bufio.NewReader(resp.Body)
	if got := readLine(t, body); got != "hello\n" {
		t.Fatalf("initial data %q", got)
	}
	if p, _ := proto.Load().(string); p != "https" {
		t.Fatalf("origin saw X-Forwarded-Proto %q", p)
	}
	n.waitSubscribers(t, "secure", 1)
	n.publish(t, streamItem("secure", "one\n"))
	if got := readLine(t, body); got != "one\n" {
		t.Fatalf("got %q", got)
	}
	// A client that stops reading makes the socket fill up: the rest goes
	// through the blocking writer. Large messages are published until the
	// node reports a blocked write, so this works whatever the host's
	// socket buffers can take.
	sent := 0
	for ; sent < maxBig && n.pool.Stats().BlockedWrites == 0; sent++ {
		n.publish(t, streamItem("secure", big))
	}
	waitFor(t, fmt.Sprintf("a blocked write after %d large messages to a client not reading", sent), func() bool {
		return n.pool.Stats().BlockedWrites > 0
	})
	t.Logf("a write blocked after %d large messages", sent)
	for range 3 { // queued behind the blocked write
		n.publish(t, streamItem("secure", big))
		sent++
	}
	n.publish(t, streamItem("secure", "after\n"))
	for i := range sent {
		got, err := body.ReadString('\n')
		if err != nil || got != big {
			t.Fatalf("large message %d: %d bytes, want %d (%v; %+v)", i, len(got), len(big), err, n.pool.Stats())
		}
	}
	if got := readLine(t, body); got != "after\n" {
		t.Fatalf("got %q", got)
	}
	if st := n.pool.Stats(); st.SlowConsumers != 0 || st.WriteErrors != 0 {
		t.Fatalf("pool %+v", st)
	}

	// Reload: a new certificate for the same name.
	writeCert(t, filepath.Dir(certs[0]), "a.test")
	if err := n.ReloadTLS(); err != nil {
		t.Fatal(err)
	}
	after := served(t, n, "a.test")
	if bytes.Equal(before.Raw, after.Raw) {
		t.Fatal("reload kept the old certificate")
	}
	n.publish(t, streamItem("secure", "still here\n"))
	if got := readLine(t, body); got != "still here\n" {
		t.Fatalf("held stream after reload: %q", got)
	}

	// A broken key file: the reload fails and the certificate stays.
	if err := os.WriteFile(keys[0], []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := n.ReloadTLS(); err == nil {
		t.Fatal("reload of a broken key succeeded")
	}
	if !bytes.Equal(served(t, n, "a.test").Raw, after.Raw) {
		t.Fatal("a failed reload changed the certificate")
	}
}

func TestTLSConfigErrors(t *testing.T) {
	dir := t.TempDir()
	c, k := writeCert(t, dir, "a.test")
	for _, tc := range []struct {
		name        string
		certs, keys []string
		want        string
	}{
		{"no certificate", nil, nil, "needs -tls-cert"},
		{"unpaired", []string{c, c}, []string{k}, "2 -tls-cert files but 1 -tls-key"},
		{"missing file", []string{c}, []string{filepath.Join(dir, "nope.key")}, "nope.key"},
		{"key of another cert", []string{c}, []string{c}, "a.test.crt"},
	} {
		cfg := DefaultConfig()
		cfg.Origin, cfg.TLSListen, cfg.TLSCert, cfg.TLSKey = "http://127.0.0.1:1", "127.0.0.1:0", tc.certs, tc.keys
		if _, err := New(cfg, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to mention %q", tc.name, err, tc.want)
		}
	}
}

// TestTLSWebSocket: a WebSocket over HTTPS (wss://) opens through the
// origin, gets publishes, and closes 1001 on shutdown.
func TestTLSWebSocket(t *testing.T) {
	n, _, _ := startTLSNode(t, &wsOrigin{}, nil, "a.test")
	d := websocket.Dialer{HandshakeTimeout: waitTimeout, TLSClientConfig: &tls.Config{ServerName: "a.test", InsecureSkipVerify: true}}
	c, _, err := d.Dial("wss://"+n.TLSAddr().String()+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	if got := readText(t, c); got != "welcome" {
		t.Fatalf("got %q", got)
	}
	n.waitSubscribers(t, "room", 1)
	n.publish(t, wsPublish(map[string]any{"content": "over tls"}))
	if got := readText(t, c); got != "over tls" {
		t.Fatalf("got %q", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := n.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	expectClose(t, c, closeGoingAway, "")
}
