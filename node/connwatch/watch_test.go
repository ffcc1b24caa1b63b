package connwatch

import (
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func tcpPair(t *testing.T) (server, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close(); client.Close() })
	return server, client
}

func TestPeerCloseIsNoticedDataIsNot(t *testing.T) {
	w, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	server, client := tcpPair(t)
	gone := make(chan struct{})
	if _, err := w.Add(server, func() { close(gone) }); err != nil {
		t.Fatal(err)
	}
	// Data from the client is not a hang-up, and stays readable.
	client.Write([]byte("x"))
	select {
	case <-gone:
		t.Fatal("data reported as hang-up")
	case <-time.After(100 * time.Millisecond):
	}
	client.Close()
	select {
	case <-gone:
	case <-time.After(20 * time.Second): // only catches a hang
		t.Fatal("peer close not noticed")
	}
	buf := make([]byte, 1)
	if n, _ := server.Read(buf); n != 1 || buf[0] != 'x' {
		t.Fatalf("client's byte was consumed: n=%d", n)
	}
	if w.Len() != 0 {
		t.Fatalf("Len = %d after callback", w.Len())
	}
}

func TestRemovedConnIsNotReported(t *testing.T) {
	w, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	server, client := tcpPair(t)
	called := make(chan struct{}, 1)
	tok, err := w.Add(server, func() { called <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	w.Remove(server, tok)
	client.Close()
	select {
	case <-called:
		t.Fatal("callback ran after Remove")
	case <-time.After(200 * time.Millisecond):
	}
}

func TestAlreadyClosedPeerIsReported(t *testing.T) {
	w, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	server, client := tcpPair(t)
	client.Close()
	time.Sleep(20 * time.Millisecond) // let the FIN arrive before Add
	gone := make(chan struct{})
	if _, err := w.Add(server, func() { close(gone) }); err != nil {
		t.Fatal(err)
	}
	select {
	case <-gone:
	case <-time.After(20 * time.Second): // only catches a hang
		t.Fatal("hang-up before Add not reported")
	}
}

func TestAddAfterClose(t *testing.T) {
	w, err := New()
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	server, _ := tcpPair(t)
	if _, err := w.Add(server, func() {}); err != ErrClosed {
		t.Fatalf("Add after Close: %v", err)
	}
}
