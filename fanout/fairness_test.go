package fanout

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// dialPair is pair with socket options: the client's SO_RCVBUF (set before
// connecting, so the advertised window is small from the start) and the
// server side's SO_SNDBUF (0: leave the kernel's autotuning), and the
// writer's blocking-write timeout.
func dialPair(tb testing.TB, ln net.Listener, rcvbuf, sndbuf int, writeTimeout time.Duration) (*lineTransport, net.Conn) {
	tb.Helper()
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var err error
		if rcvbuf > 0 {
			rc.Control(func(fd uintptr) { err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, rcvbuf) })
		}
		return err
	}}
	client, err := d.Dial("tcp", ln.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	server, err := ln.Accept()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { client.Close(); server.Close() })
	if sndbuf > 0 {
		if err := server.(*net.TCPConn).SetWriteBuffer(sndbuf); err != nil {
			tb.Fatal(err)
		}
	}
	w, err := NewSocketWriter(server, writeTimeout)
	if err != nil {
		tb.Fatal(err)
	}
	return &lineTransport{SocketWriter: w, conn: server, closed: make(chan error, 1)}, client
}

// bigLine is message i: its number, padded with x to size bytes, newline
// included.
func bigLine(i, size int) string {
	head := fmt.Sprintf("m%07d ", i)
	return head + strings.Repeat("x", size-len(head)-1) + "\n"
}

// TestStalledReadersDoNotCostHealthyOnes is the fairness attack: clients
// that never read (tiny receive buffers) and healthy readers on one pool,
// large messages published in bursts. Writing into the stalled sockets
// keeps the writer shards busy, so every burst waits in the healthy
// connections' queues for a while; that wait is the pool's, not theirs,
// and must not count against their slow-consumer budget. Every healthy
// reader gets every message, in order; every stalled one is closed as a
// slow consumer (not by the write timeout, which is out of reach here).
func TestStalledReadersDoNotCostHealthyOnes(t *testing.T) {
	const (
		stalledN = 24
		healthyN = 4
		size     = 64 << 10
		burst    = 8   // 512 KiB at once: twice the budget
		maxMsgs  = 800 // 50 MiB per healthy reader at most
	)
	ln := listen(t)
	pool := startPool(t, PoolConfig{MaxQueueBytes: 256 << 10})
	hub := NewHub(HubConfig{})

	var stalled []*lineTransport
	for range stalledN {
		tr, _ := dialPair(t, ln, 1024, 0, time.Minute) // never read
		c, err := pool.Add(tr, ConnOptions{})
		if err != nil {
			t.Fatal(err)
		}
		hub.Subscribe("big", c)
		stalled = append(stalled, tr)
	}
	var healthy []*lineTransport
	got := make([]atomic.Int64, healthyN)
	readErrs := make(chan error, healthyN)
	for i := range healthyN {
		tr, client := dialPair(t, ln, 0, 0, time.Minute)
		c, err := pool.Add(tr, ConnOptions{})
		if err != nil {
			t.Fatal(err)
		}
		hub.Subscribe("big", c)
		healthy = append(healthy, tr)
		go func() {
			r := bufio.NewReaderSize(client, 64<<10)
			for n := 0; ; n++ {
				line, err := r.ReadString('\n')
				if err != nil {
					readErrs <- fmt.Errorf("healthy reader %d: after %d messages: %w", i, n, err)
					return
				}
				if line != bigLine(n, size) {
					readErrs <- fmt.Errorf("healthy reader %d: message %d is %.9q…", i, n, line)
					return
				}
				got[i].Add(1)
			}
		}()
	}

	stalledLeft := func() int {
		n := 0
		for _, tr := range stalled {
			if len(tr.closed) == 0 {
				n++
			}
		}
		return n
	}
	published := 0
	for published < maxMsgs && stalledLeft() > 0 {
		for range burst {
			hub.Publish(NewMessage("big", bigLine(published, size)))
			published++
		}
		// Counts, not timings: wait (generously) until every healthy
		// reader has everything, failing at once if one is closed.
		deadline := time.Now().Add(30 * time.Second)
		for i := range healthy {
			for got[i].Load() < int64(published) {
				select {
				case err := <-healthy[i].closed:
					t.Fatalf("healthy reader %d closed (%v) after %d of %d messages; pool %+v",
						i, err, got[i].Load(), published, pool.Stats())
				case err := <-readErrs:
					t.Fatal(err)
				case <-time.After(time.Millisecond):
				}
				if time.Now().After(deadline) {
					t.Fatalf("healthy reader %d has %d of %d messages after 30s", i, got[i].Load(), published)
				}
			}
		}
	}
	if n := stalledLeft(); n > 0 {
		t.Fatalf("%d of %d stalled readers still open after %d messages; pool %+v", n, stalledN, published, pool.Stats())
	}
	for i, tr := range stalled {
		if err := <-tr.closed; !errors.Is(err, ErrSlowConsumer) {
			t.Errorf("stalled reader %d closed with %v, want ErrSlowConsumer", i, err)
		}
	}
	st := pool.Stats()
	if st.SlowConsumers != stalledN || st.Lagging != 0 || st.Conns != healthyN {
		t.Errorf("pool stats %+v: want %d slow consumers, none lagging, %d conns left", st, stalledN, healthyN)
	}
	t.Logf("%d messages of %d KiB; pool %+v", published, size>>10, st)
}

// TestBudgetChargesOnlyWhatTheSocketRefused: what is queued while a
// connection waits for its writer shard (here: a pool not started yet)
// is bounded by MaxPendingBytes only; once the connection's own socket
// refuses data, what was queued before is its grace, and what arrives
// after is charged to MaxQueueBytes.
func TestBudgetChargesOnlyWhatTheSocketRefused(t *testing.T) {
	const size = 16 << 10
	ln := listen(t)
	pool := NewPool(PoolConfig{Shards: 1, MaxQueueBytes: 2 * size, MaxPendingBytes: 8 * size})
	t.Cleanup(pool.Close)
	// Small socket buffers on both sides, nobody reading yet: the first
	// flush writes a few KiB at most and the socket refuses the rest.
	// waiting: 6 messages queued before the shard runs, over MaxQueueBytes
	// but under MaxPendingBytes. lagging: 9, over MaxPendingBytes.
	// late, budget: like waiting, then 2 (within budget) and 3 (over)
	// more after the socket refused.
	var trs [4]*lineTransport
	var conns [4]*Conn
	var clients [4]net.Conn
	for i := range trs {
		trs[i], clients[i] = dialPair(t, ln, 4096, 4096, time.Minute)
		c, err := pool.Add(trs[i], ConnOptions{})
		if err != nil {
			t.Fatal(err)
		}
		conns[i] = c
	}
	waiting, lagging, late, budget := 0, 1, 2, 3
	send := func(c *Conn, from, n int) {
		for i := from; i < from+n; i++ {
			c.Send([]byte(bigLine(i, size)), false)
		}
	}
	send(conns[waiting], 0, 6)
	send(conns[lagging], 0, 9)
	send(conns[late], 0, 6)
	send(conns[budget], 0, 6)
	if st := pool.Stats(); st.SlowConsumers != 1 || st.Lagging != 1 {
		t.Fatalf("before the shard ran: %+v, want 1 slow consumer, lagging", st)
	}
	pool.Start()
	if err := <-trs[lagging].closed; !errors.Is(err, ErrSlowConsumer) {
		t.Fatalf("lagging connection closed with %v", err)
	}
	// The shard offers each the 6 messages; the sockets refuse most.
	deadline := time.Now().Add(10 * time.Second)
	for pool.Stats().BlockedWrites < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("sockets did not refuse: %+v", pool.Stats())
		}
		time.Sleep(time.Millisecond)
	}
	send(conns[late], 6, 2)   // 2 × size charged: within the budget
	send(conns[budget], 6, 3) // 3 × size charged: over it
	if err := <-trs[budget].closed; !errors.Is(err, ErrSlowConsumer) {
		t.Fatalf("connection over its budget closed with %v", err)
	}
	for _, tc := range []struct {
		i, msgs int
	}{{waiting, 6}, {late, 8}} {
		r := bufio.NewReader(clients[tc.i])
		clients[tc.i].SetReadDeadline(time.Now().Add(10 * time.Second))
		for n := range tc.msgs {
			line, err := r.ReadString('\n')
			if err != nil || line != bigLine(n, size) {
				t.Fatalf("connection %d, message %d: %.9q %v", tc.i, n, line, err)
			}
		}
		if conns[tc.i].Closed() {
			t.Fatalf("connection %d closed", tc.i)
		}
	}
	if st := pool.Stats(); st.SlowConsumers != 2 || st.Lagging != 1 || st.Conns != 2 {
		t.Fatalf("pool %+v: want 2 slow consumers, 1 lagging, 2 conns", st)
	}
}
