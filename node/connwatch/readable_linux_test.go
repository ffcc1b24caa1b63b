//go:build linux

package connwatch

import (
	"errors"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestReadableReportsEveryArrival: a socket added with AddReadable is
// reported each time bytes arrive (not only once), ReadNonblock reads
// them and then says it would block, and a hang-up reads as EOF.
func TestReadableReportsEveryArrival(t *testing.T) {
	w, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	server, client := tcpPair(t)
	got := make(chan string, 16)
	_, err = w.AddReadable(server, func() bool {
		buf := make([]byte, 64)
		for {
			n, err := ReadNonblock(server, buf)
			switch {
			case n > 0:
				got <- string(buf[:n])
			case errors.Is(err, ErrWouldBlock):
				return false
			case errors.Is(err, io.EOF):
				got <- "EOF"
				return false
			default:
				got <- "error: " + err.Error()
				return false
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"one", "two", "three"} {
		client.Write([]byte(want))
		select {
		case s := <-got:
			if s != want {
				t.Fatalf("read %q, want %q", s, want)
			}
		case <-time.After(20 * time.Second): // only catches a hang
			t.Fatalf("%q never reported", want)
		}
	}
	if w.Len() != 1 {
		t.Fatalf("Len = %d: a readable registration stays until Remove", w.Len())
	}
	client.Close()
	select {
	case s := <-got:
		if s != "EOF" {
			t.Fatalf("after hang-up: %q", s)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("hang-up never reported")
	}
}

// TestReadableAlreadyReadable: bytes there before AddReadable are
// reported at once.
func TestReadableAlreadyReadable(t *testing.T) {
	w, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	server, client := tcpPair(t)
	client.Write([]byte("early"))
	buf := make([]byte, 8)
	deadline := time.Now().Add(20 * time.Second)
	for { // until the bytes are there, without reading them
		if n, _, _ := readPeek(server, buf); n > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	ready := make(chan struct{}, 4)
	if _, err := w.AddReadable(server, func() bool { ready <- struct{}{}; return false }); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ready:
	case <-time.After(20 * time.Second):
		t.Fatal("bytes there before AddReadable never reported")
	}
	if n, err := ReadNonblock(server, buf); string(buf[:n]) != "early" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
	if _, err := ReadNonblock(server, buf); !errors.Is(err, ErrWouldBlock) {
		t.Fatalf("empty socket: %v, want ErrWouldBlock", err)
	}
}

// readPeek looks at c's bytes without taking them (MSG_PEEK).
func readPeek(c net.Conn, p []byte) (n int, ok bool, err error) {
	raw, err := rawConn(c)
	if err != nil {
		return 0, false, err
	}
	raw.Read(func(fd uintptr) bool {
		n, _, err = unix.Recvfrom(int(fd), p, unix.MSG_PEEK|unix.MSG_DONTWAIT)
		return true
	})
	return n, n > 0, err
}

// TestReadableTakesTurns: a socket whose callback always has more to
// read (a client sending without pause) does not keep the watcher from
// other sockets: they are called in turn, and its callback is called
// again after them.
func TestReadableTakesTurns(t *testing.T) {
	w, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	floodS, floodC := tcpPair(t)
	var stop atomic.Bool
	var floodCalls atomic.Int64
	if _, err := w.AddReadable(floodS, func() bool {
		floodCalls.Add(1)
		return !stop.Load() // never drained: always more, until the test ends
	}); err != nil {
		t.Fatal(err)
	}
	defer stop.Store(true)
	if _, err := floodC.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); floodCalls.Load() < 2; {
		if time.Now().After(deadline) {
			t.Fatal("a callback that has more was not called again")
		}
		time.Sleep(time.Millisecond)
	}
	otherS, otherC := tcpPair(t)
	ready := make(chan struct{}, 1)
	if _, err := w.AddReadable(otherS, func() bool {
		select {
		case ready <- struct{}{}:
		default:
		}
		return false
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := otherC.Write([]byte("y")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ready:
	case <-time.After(5 * time.Second):
		t.Fatal("another socket's bytes were never reported while one socket always had more")
	}
	before := floodCalls.Load()
	for deadline := time.Now().Add(5 * time.Second); floodCalls.Load() == before; {
		if time.Now().After(deadline) {
			t.Fatal("the busy socket was not called again after the others")
		}
		time.Sleep(time.Millisecond)
	}
}
