package node

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/edgepush/edgepush/fanout"
	"golang.org/x/sys/unix"
)

// TestStalledClientsDoNotCutHealthyStreams is the fairness attack on a
// node: HTTP-stream clients that never read (tiny receive buffers), and
// healthy ones, on one channel; 64 KiB messages published 8 to a call.
// The node's writers spend a while on the stalled sockets, so each call's
// messages wait in the healthy connections' queues: that must not count
// as their falling behind. Every healthy client gets every message; every
// stalled one is dropped as a slow consumer (its budget, not the write
// timeout, which is out of reach).
func TestStalledClientsDoNotCutHealthyStreams(t *testing.T) {
	const (
		stalledN = 24
		healthyN = 4
		size     = 64 << 10
		perCall  = 8
		maxMsgs  = 640
	)
	n := startNode(t, gripOrigin("open\n", "Grip-Hold", "stream", "Grip-Channel", "attack"),
		func(c *Config) { c.WriteTimeout = time.Minute })
	for range stalledN {
		d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
			var err error
			rc.Control(func(fd uintptr) { err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 1024) })
			return err
		}}
		c, err := d.Dial("tcp", n.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: test\r\n\r\n") // and never read
	}
	got := make([]atomic.Int64, healthyN)
	readErrs := make(chan error, healthyN)
	for i := range healthyN {
		c := dialRaw(t, n.Addr())
		c.SetDeadline(time.Time{})
		body := bufio.NewReaderSize(c.get(t, "/").Body, 64<<10)
		readLine(t, body) // "open"
		go func() {
			for k := 0; ; k++ {
				line, err := body.ReadString('\n')
				if err != nil {
					readErrs <- fmt.Errorf("healthy client %d: after %d messages: %w", i, k, err)
					return
				}
				if want := msgLine(k, size); line != want {
					readErrs <- fmt.Errorf("healthy client %d: message %d is %.9q…", i, k, line)
					return
				}
				got[i].Add(1)
			}
		}()
	}
	n.waitSubscribers(t, "attack", stalledN+healthyN)

	published := 0
	for published < maxMsgs && n.Status().Pool.SlowConsumers < stalledN {
		items := make([]map[string]any, perCall)
		for i := range items {
			items[i] = streamItem("attack", msgLine(published+i, size))
		}
		n.publish(t, items...)
		published += perCall
		deadline := time.Now().Add(30 * time.Second)
		for i := range got {
			for got[i].Load() < int64(published) {
				select {
				case err := <-readErrs:
					t.Fatalf("%v (%d published; delivery %+v)", err, published, n.Status().Pool)
				case <-time.After(time.Millisecond):
				}
				if time.Now().After(deadline) {
					t.Fatalf("healthy client %d has %d of %d messages after 30s", i, got[i].Load(), published)
				}
			}
		}
	}
	st := n.Status().Pool
	if st.SlowConsumers != stalledN || st.Lagging != 0 {
		t.Fatalf("after %d messages: delivery %+v, want %d slow consumers, none lagging", published, st, stalledN)
	}
	n.waitSubscribers(t, "attack", healthyN)
	t.Logf("%d messages of %d KiB; delivery %+v", published, size>>10, st)
}

// countDeliveries is a hub subscriber that counts what it is handed.
type countDeliveries struct{ n int }

func (c *countDeliveries) Deliver(*fanout.Message) { c.n++ }

// msgLine is message k: its number, padded to size bytes with a newline.
func msgLine(k, size int) string {
	head := fmt.Sprintf("m%07d ", k)
	return head + strings.Repeat("x", size-len(head)-1) + "\n"
}

// TestHistoryMaxBytesBoundsHistory: 100 kB messages on 10 channels keep at
// most -history-max-bytes in history, counted by their payloads at least,
// the oldest dropped first.
func TestHistoryMaxBytesBoundsHistory(t *testing.T) {
	const size, channels, each, limit = 100_000, 10, 4, 800_000
	n := startNode(t, gripOrigin("x\n"), func(c *Config) { c.HistoryMaxBytes = limit })
	content := strings.Repeat("h", size)
	for range each {
		for c := range channels {
			n.publish(t, streamItem(fmt.Sprintf("ch%d", c), content))
		}
	}
	st := n.Status().Hub
	// Room for 7 messages: 8 with their overhead would be over 800,000.
	if st.HistoryBytes > limit || st.HistoryMessages != 7 || st.HistoryBytes < int64(st.HistoryMessages)*size ||
		st.HistoryEvicted != uint64(channels*each-st.HistoryMessages) {
		t.Fatalf("hub %+v: want within %d bytes, at least %d per message, the rest evicted", st, limit, size)
	}
	// The newest are kept: the last round's messages of the last
	// channels published to, one each.
	for c := range channels {
		var r countDeliveries
		name := fmt.Sprintf("ch%d", c)
		n.hub.SubscribeFrom(name, &r, 0)
		n.hub.Unsubscribe(name, &r)
		if want := min(max(c-(channels-st.HistoryMessages)+1, 0), 1); r.n != want {
			t.Errorf("%s replays %d messages, want %d", name, r.n, want)
		}
	}
	for _, bad := range []func(*Config){
		func(c *Config) { c.HistoryMaxBytes = -1 },
		func(c *Config) { c.MaxPendingBytes = -1 },
	} {
		cfg := DefaultConfig()
		cfg.Origin = "http://127.0.0.1:1"
		bad(&cfg)
		if _, err := New(cfg, nil); err == nil || !strings.Contains(err.Error(), "must not be negative") {
			t.Errorf("negative limit: err = %v", err)
		}
	}
}
