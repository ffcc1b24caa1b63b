package fanout

import (
	"slices"
	"sync"
	"testing"
	"time"
)

// orderTransport records, in a log shared by several connections, which
// connection each write was for.
type orderTransport struct {
	id     int
	mu     *sync.Mutex
	log    *[]int
	closed chan struct{}
}

func (t *orderTransport) Frame(m *Message) ([]byte, bool) { return []byte(m.Item.(string)), false }

func (t *orderTransport) TryWrite(bufs [][]byte) (int, error) {
	t.mu.Lock()
	*t.log = append(*t.log, t.id)
	t.mu.Unlock()
	n := 0
	for _, b := range bufs {
		n += len(b)
	}
	return n, nil
}

func (t *orderTransport) WriteBlocking(b []byte) error { return nil }
func (t *orderTransport) Closed(error)                 { close(t.closed) }

// A shard writes a batch of ready connections in the order they were
// added, not in the order a publish happened to queue them: subscribers
// of a channel are handed messages in the order they subscribed, and this
// test subscribes them in the reverse of the order they were added.
func TestShardWritesInTheOrderConnectionsWereAdded(t *testing.T) {
	const n = 200
	p := NewPool(PoolConfig{Shards: 1}) // started once everything is queued
	defer p.Close()
	var mu sync.Mutex
	var log []int
	conns := make([]*Conn, n)
	for i := range conns {
		c, err := p.Add(&orderTransport{id: i, mu: &mu, log: &log, closed: make(chan struct{})}, ConnOptions{})
		if err != nil {
			t.Fatal(err)
		}
		conns[i] = c
	}
	h := NewHub(HubConfig{})
	for i := n - 1; i >= 0; i-- {
		h.Subscribe("ch", conns[i])
	}
	h.Publish(&Message{Channel: "ch", Item: "x"})
	p.Start()
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		got := slices.Clone(log)
		mu.Unlock()
		if len(got) == n {
			for i, id := range got {
				if id != i {
					t.Fatalf("write %d was for connection %d; want the order they were added: %v", i, id, got)
				}
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d connections written", len(got), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// A channel hands a message to its subscribers in the order they
// subscribed; an unsubscribe moves the newest subscriber into the gap and
// leaves the others in order.
func TestHubDeliversInSubscriptionOrder(t *testing.T) {
	h := NewHub(HubConfig{})
	var mu sync.Mutex
	var log []int
	subs := make([]*orderSub, 6)
	for i := range subs {
		subs[i] = &orderSub{id: i, mu: &mu, log: &log}
		h.Subscribe("ch", subs[i])
	}
	h.Subscribe("ch", subs[2]) // twice: a no-op
	h.Unsubscribe("ch", subs[1])
	h.Unsubscribe("ch", subs[1]) // not there: a no-op
	h.Publish(&Message{Channel: "ch", Item: "x"})
	if want := []int{0, 5, 2, 3, 4}; !slices.Equal(log, want) {
		t.Fatalf("delivered to %v, want %v", log, want)
	}
	if got := h.Subscribers("ch"); got != 5 {
		t.Fatalf("Subscribers = %d, want 5", got)
	}
	for _, s := range subs {
		h.Unsubscribe("ch", s)
	}
	if got := h.Subscribers("ch"); got != 0 {
		t.Fatalf("Subscribers = %d after all left, want 0", got)
	}
}

type orderSub struct {
	id  int
	mu  *sync.Mutex
	log *[]int
}

func (s *orderSub) Deliver(*Message) {
	s.mu.Lock()
	*s.log = append(*s.log, s.id)
	s.mu.Unlock()
}

// A subscriber set that shrinks to a quarter of its capacity is rebuilt
// smaller, and stays consistent through it.
func TestSubscribersShrink(t *testing.T) {
	var ss subscribers
	subs := make([]*orderSub, 1000)
	for i := range subs {
		subs[i] = &orderSub{id: i}
		ss.add(subs[i])
	}
	for _, s := range subs[:990] {
		ss.remove(s)
	}
	if ss.len() != 10 || cap(ss.list) >= 1000 {
		t.Fatalf("len %d cap %d after 990 of 1000 left; want 10 and a smaller array", ss.len(), cap(ss.list))
	}
	for i, s := range ss.list {
		if ss.at[s] != i {
			t.Fatalf("index of %v is %d, want %d", s, ss.at[s], i)
		}
	}
	for _, s := range subs[990:] {
		if ss.add(s) {
			t.Fatalf("%v was not kept", s)
		}
		ss.remove(s)
	}
	if ss.len() != 0 || ss.list != nil || ss.at != nil {
		t.Fatalf("len %d, list %v, map %v when empty; want all released", ss.len(), ss.list, ss.at)
	}
}
