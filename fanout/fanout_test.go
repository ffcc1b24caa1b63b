package fanout

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// lineTransport writes each message's Item (a string) as is; "END" ends
// the connection.
type lineTransport struct {
	*SocketWriter
	conn   net.Conn
	closed chan error
}

func (t *lineTransport) Frame(m *Message) ([]byte, bool) {
	return m.Frame(0, func(m *Message) ([]byte, bool) {
		s := m.Item.(string)
		return []byte(s), s == "END\n"
	})
}

func (t *lineTransport) Closed(reason error) {
	t.conn.Close()
	t.closed <- reason
}

// pair returns a server-side transport and the client end of a loopback
// TCP connection.
func pair(tb testing.TB, ln net.Listener) (*lineTransport, net.Conn) {
	tb.Helper()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	server, err := ln.Accept()
	if err != nil {
		tb.Fatal(err)
	}
	w, err := NewSocketWriter(server, time.Second)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { client.Close(); server.Close() })
	return &lineTransport{SocketWriter: w, conn: server, closed: make(chan error, 1)}, client
}

func listen(tb testing.TB) net.Listener {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	return ln
}

func startPool(tb testing.TB, cfg PoolConfig) *Pool {
	tb.Helper()
	p := NewPool(cfg)
	p.Start()
	tb.Cleanup(p.Close)
	return p
}

func TestPublishReachesEverySubscriberInOrder(t *testing.T) {
	ln := listen(t)
	pool := startPool(t, PoolConfig{Shards: 2})
	hub := NewHub(HubConfig{})
	const subs, msgs = 50, 200
	clients := make([]net.Conn, subs)
	for i := range clients {
		tr, client := pair(t, ln)
		c, err := pool.Add(tr, ConnOptions{}, []byte("hello\n"))
		if err != nil {
			t.Fatal(err)
		}
		hub.Subscribe("news", c)
		clients[i] = client
	}
	if got := hub.Subscribers("news"); got != subs {
		t.Fatalf("subscribers = %d, want %d", got, subs)
	}
	var wg sync.WaitGroup
	errs := make(chan error, subs)
	for _, client := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- expectLines(client, msgs)
		}()
	}
	for i := range msgs {
		if n := hub.Publish(NewMessage("news", fmt.Sprintf("m%d\n", i))); n != subs {
			t.Fatalf("Publish reached %d, want %d", n, subs)
		}
	}
	hub.Publish(NewMessage("other", "nobody\n"))
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if st := hub.Stats(); st.Published != msgs+1 || st.Delivered != subs*msgs {
		t.Fatalf("stats = %+v", st)
	}
}

// expectLines reads "hello" then m0..m(n-1) in order.
func expectLines(c net.Conn, n int) error {
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	want := []string{"hello"}
	for i := range n {
		want = append(want, fmt.Sprintf("m%d", i))
	}
	for _, w := range want {
		line, err := r.ReadString('\n')
		if err != nil {
			return fmt.Errorf("waiting for %q: %w", w, err)
		}
		if strings.TrimSpace(line) != w {
			return fmt.Errorf("got %q, want %q", line, w)
		}
	}
	return nil
}

func TestSlowConsumerIsClosedOthersKeepUp(t *testing.T) {
	ln := listen(t)
	pool := startPool(t, PoolConfig{Shards: 1, MaxQueueBytes: 64 << 10})
	hub := NewHub(HubConfig{})
	slowT, slowClient := pair(t, ln)
	_ = slowClient // never read
	slow, _ := pool.Add(slowT, ConnOptions{})
	fastT, fastClient := pair(t, ln)
	fast, _ := pool.Add(fastT, ConnOptions{MaxQueueBytes: 64 << 20})
	hub.Subscribe("c", slow)
	hub.Subscribe("c", fast)

	payload := strings.Repeat("x", 16<<10) + "\n"
	const msgs = 2000 // 32 MB: far more than the socket buffers hold
	done := make(chan error, 1)
	go func() {
		r := bufio.NewReaderSize(fastClient, 64<<10)
		fastClient.SetReadDeadline(time.Now().Add(20 * time.Second))
		for i := range msgs {
			line, err := r.ReadString('\n')
			if err != nil || len(line) != len(payload) {
				done <- fmt.Errorf("message %d: len %d err %v", i, len(line), err)
				return
			}
		}
		done <- nil
	}()
	for range msgs {
		hub.Publish(NewMessage("c", payload))
	}
	select {
	case err := <-slowT.closed:
		if !errors.Is(err, ErrSlowConsumer) {
			t.Fatalf("slow conn closed with %v, want ErrSlowConsumer", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("slow consumer was not closed")
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if st := pool.Stats(); st.SlowConsumers != 1 {
		t.Fatalf("slow consumers = %d, want 1", st.SlowConsumers)
	}
}

func TestLastFrameEndsConnection(t *testing.T) {
	ln := listen(t)
	pool := startPool(t, PoolConfig{})
	hub := NewHub(HubConfig{})
	tr, client := pair(t, ln)
	c, _ := pool.Add(tr, ConnOptions{}, []byte("hello\n"))
	hub.Subscribe("c", c)
	hub.Publish(NewMessage("c", "END\n"))
	hub.Publish(NewMessage("c", "after\n"))
	if err := <-tr.closed; err != nil {
		t.Fatalf("closed with %v, want nil", err)
	}
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, _ := io.ReadAll(client)
	if string(got) != "hello\nEND\n" {
		t.Fatalf("client read %q", got)
	}
	if !c.Closed() {
		t.Fatal("Closed() = false")
	}
}

func TestKeepAliveWhenIdleAndTimeoutFrame(t *testing.T) {
	ln := listen(t)
	pool := startPool(t, PoolConfig{Tick: 10 * time.Millisecond})
	tr, client := pair(t, ln)
	_, err := pool.Add(tr, ConnOptions{
		KeepAlive:      []byte("ka\n"),
		KeepAliveEvery: 50 * time.Millisecond,
		Timeout:        400 * time.Millisecond,
		TimeoutFrame:   []byte("bye\n"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := <-tr.closed; err != nil {
		t.Fatalf("closed with %v", err)
	}
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, _ := io.ReadAll(client)
	kas := bytes.Count(got, []byte("ka\n"))
	if kas < 3 || kas > 9 || !bytes.HasSuffix(got, []byte("bye\n")) {
		t.Fatalf("client read %q: want 3-9 keep-alives then bye", got)
	}
}

func TestPoolCloseClosesConnections(t *testing.T) {
	ln := listen(t)
	pool := NewPool(PoolConfig{})
	pool.Start()
	tr, _ := pair(t, ln)
	if _, err := pool.Add(tr, ConnOptions{}); err != nil {
		t.Fatal(err)
	}
	pool.Close()
	if err := <-tr.closed; !errors.Is(err, ErrShutdown) {
		t.Fatalf("closed with %v, want ErrShutdown", err)
	}
	if _, err := pool.Add(tr, ConnOptions{}); !errors.Is(err, ErrPoolClosed) {
		t.Fatalf("Add after Close: %v", err)
	}
	if n := pool.Stats().Conns; n != 0 {
		t.Fatalf("conns = %d after Close", n)
	}
}

func TestUnsubscribeForgetsChannel(t *testing.T) {
	hub := NewHub(HubConfig{})
	var s countSub
	hub.Subscribe("a", &s)
	hub.Subscribe("a", &s)
	hub.Publish(NewMessage("a", nil))
	hub.Unsubscribe("a", &s)
	hub.Publish(NewMessage("a", nil))
	if s.n != 1 {
		t.Fatalf("delivered %d, want 1", s.n)
	}
	if st := hub.Stats(); st.Channels != 0 || st.Subscriptions != 0 {
		t.Fatalf("stats after unsubscribe: %+v", st)
	}
}

type countSub struct{ n int }

func (s *countSub) Deliver(*Message) { s.n++ }

type recSub struct{ got []string }

func (s *recSub) Deliver(m *Message) { s.got = append(s.got, m.Item.(string)) }

func TestSubscribeFromReplaysHistoryAfterPosition(t *testing.T) {
	hub := NewHub(HubConfig{HistorySize: 3, HistoryAge: time.Minute})
	hub.Publish(NewMessage("c", "m1"))
	since := hub.Position()
	for _, s := range []string{"m2", "m3", "m4"} {
		hub.Publish(NewMessage("c", s))
	}
	hub.Publish(NewMessage("other", "x"))
	var late recSub
	hub.SubscribeFrom("c", &late, since)
	hub.Publish(NewMessage("c", "m5"))
	if got := strings.Join(late.got, " "); got != "m2 m3 m4 m5" {
		t.Fatalf("replay + live = %q", got)
	}
	var old recSub // older than the history holds: gets what is kept (size 3)
	hub.SubscribeFrom("c", &old, 0)
	if got := strings.Join(old.got, " "); got != "m3 m4 m5" {
		t.Fatalf("bounded replay = %q", got)
	}
	var fresh recSub
	hub.Subscribe("c", &fresh)
	if len(fresh.got) != 0 {
		t.Fatalf("Subscribe replayed %q", fresh.got)
	}
	if st := hub.Stats(); st.Replayed != 6 {
		t.Fatalf("replayed = %d", st.Replayed)
	}
}

func TestHistoryExpiresAndSweepForgetsChannels(t *testing.T) {
	hub := NewHub(HubConfig{HistorySize: 10, HistoryAge: 50 * time.Millisecond})
	hub.Publish(NewMessage("c", "old"))
	time.Sleep(60 * time.Millisecond)
	var s recSub
	hub.SubscribeFrom("c", &s, 0)
	if len(s.got) != 0 {
		t.Fatalf("expired history replayed: %q", s.got)
	}
	hub.Unsubscribe("c", &s)
	hub.Sweep(time.Now())
	if st := hub.Stats(); st.Channels != 0 {
		t.Fatalf("channels after sweep = %d", st.Channels)
	}
}
