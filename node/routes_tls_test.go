package node

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testCA is a certificate authority made for one test, its files in dir.
type testCA struct {
	dir  string
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string // the CA certificate, PEM
}

func newTestCA(tb testing.TB, name string) *testCA {
	tb.Helper()
	ca := &testCA{dir: tb.TempDir()}
	ca.key = newECKey(tb)
	tmpl := certTemplate(name)
	tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &ca.key.PublicKey, ca.key)
	if err != nil {
		tb.Fatal(err)
	}
	if ca.cert, err = x509.ParseCertificate(der); err != nil {
		tb.Fatal(err)
	}
	ca.file = writePEM(tb, ca.dir, name+".crt", "CERTIFICATE", der)
	return ca
}

// issue makes a certificate signed by the CA, for 127.0.0.1 when server,
// else a client certificate; it returns it loaded and as files.
func (ca *testCA) issue(tb testing.TB, name string, server bool) (pair tls.Certificate, certFile, keyFile string) {
	tb.Helper()
	key := newECKey(tb)
	tmpl := certTemplate(name)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		tb.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	certFile = writePEM(tb, ca.dir, name+".crt", "CERTIFICATE", der)
	keyFile = writePEM(tb, ca.dir, name+".key", "EC PRIVATE KEY", kb)
	if pair, err = tls.LoadX509KeyPair(certFile, keyFile); err != nil {
		tb.Fatal(err)
	}
	return pair, certFile, keyFile
}

func newECKey(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return key
}

func certTemplate(name string) *x509.Certificate {
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	return &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
}

func writePEM(tb testing.TB, dir, name, typ string, der []byte) string {
	tb.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

func TestRoutesHTTPSOriginWithClientCertificate(t *testing.T) {
	ca := newTestCA(t, "edgepush test CA") // spaces in the file names: quoted in routes
	serverCert, _, _ := ca.issue(t, "origin", true)
	_, clientCert, clientKey := ca.issue(t, "edge-client", false)
	// The origin requires a client certificate from the CA.
	origin := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello "+r.TLS.PeerCertificates[0].Subject.CommonName+"\n")
	}))
	origin.TLS = &tls.Config{
		Certificates: []tls.Certificate{serverCert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    x509.NewCertPool(),
	}
	origin.TLS.ClientCAs.AddCert(ca.cert)
	origin.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes
	origin.StartTLS()
	t.Cleanup(origin.Close)
	other := newTestCA(t, "another CA")

	n := startNode(t, http.NotFoundHandler(), func(c *Config) { c.OriginCAFile, c.OriginFailures = ca.file, -1 }, withRoutes(t,
		// The node-wide CA, the route's client certificate.
		"path=/good/ origin="+origin.URL+` client-cert="`+clientCert+`" client-key="`+clientKey+`"`,
		// No client certificate: the origin refuses the handshake.
		"path=/nocert/ origin="+origin.URL,
		// The wrong CA: the node refuses the origin's certificate.
		"path=/wrongca/ origin="+origin.URL+` ca-file="`+other.file+`" client-cert="`+clientCert+`" client-key="`+clientKey+`"`,
	))
	resp, body := getHost(t, n.url+"/good/x", "t")
	if resp.StatusCode != 200 || body != "hello edge-client\n" {
		t.Fatalf("/good/: %d %q", resp.StatusCode, body)
	}
	for _, path := range []string{"/nocert/x", "/wrongca/x"} {
		resp, body := getHost(t, n.url+path, "t")
		if resp.StatusCode != 502 || !strings.Contains(body, "origin unavailable") {
			t.Fatalf("%s: %d %q", path, resp.StatusCode, body)
		}
	}
	st := n.Status().Routes
	if st[1].Origins[0].Errors == 0 || st[2].Origins[0].Errors == 0 || st[0].Origins[0].Errors != 0 {
		t.Fatalf("route status %+v", st)
	}
}
