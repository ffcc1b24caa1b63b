package fanout

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// tlsPair returns the two ends of a TLS connection on loopback, the
// handshake done.
func tlsPair(t *testing.T) (server, client *tls.Conn) {
	t.Helper()
	ts := httptest.NewTLSServer(http.NotFoundHandler()) // for its certificate
	cert := ts.TLS.Certificates[0]
	ts.Close()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan *tls.Conn, 1)
	go func() { // the server's half of the handshake runs beside the client's
		c, err := ln.Accept()
		if err != nil {
			accepted <- nil
			return
		}
		tc := c.(*tls.Conn)
		if tc.Handshake() != nil {
			tc.Close()
			tc = nil
		}
		accepted <- tc
	}()
	client, err = tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	server = <-accepted
	if server == nil {
		t.Fatal("accept or handshake failed")
	}
	t.Cleanup(func() { server.Close() })
	return server, client
}

// TestTLSWriterNeverBlocks: while the client reads nothing, TryWrite
// takes data until the socket is nearly full and then writes nothing
// (it would fail with a timeout if it blocked); WriteBlocking finishes
// once the client reads, and everything arrives in order.
func TestTLSWriterNeverBlocks(t *testing.T) {
	server, client := tlsPair(t)
	w, err := NewTLSWriter(server, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	sent := 0
	for i := 0; ; i++ {
		if i == 1000 {
			t.Fatalf("TryWrite took %d bytes and never refused", sent)
		}
		for j := range chunk {
			chunk[j] = byte(sent + j)
		}
		n, err := w.TryWrite([][]byte{chunk[:32<<10], chunk[32<<10:]})
		if err != nil {
			t.Fatalf("TryWrite after %d bytes: %v", sent, err)
		}
		if n == 0 {
			break
		}
		if n != len(chunk) {
			t.Fatalf("TryWrite wrote %d of %d", n, len(chunk))
		}
		sent += n
	}
	if sent == 0 {
		t.Fatal("TryWrite wrote nothing to an empty socket")
	}
	read := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(client)
		read <- b
	}()
	if err := w.WriteBlocking(chunk); err != nil {
		t.Fatal(err)
	}
	sent += len(chunk)
	server.Close()
	got := <-read
	if len(got) != sent {
		t.Fatalf("client read %d bytes, want %d", len(got), sent)
	}
	for i, b := range got {
		if b != byte(i%len(chunk)) && i < sent-len(chunk) {
			t.Fatalf("byte %d is %d", i, b)
		}
	}
}

func TestTLSWriterNeedsASocket(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if _, err := NewTLSWriter(tls.Server(a, &tls.Config{}), 0); err != ErrNotSocket {
		t.Fatalf("got %v, want ErrNotSocket", err)
	}
}
