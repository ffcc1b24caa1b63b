package fanout

import (
	"slices"
	"sync"
	"testing"
	"time"
)

// Connections added with equal options share one copy of them (a held
// connection's largest part otherwise), and only equal ones do.
func TestEqualOptionsAreShared(t *testing.T) {
	p := NewPool(PoolConfig{Shards: 1})
	defer p.Close()
	add := func(o ConnOptions) *Conn {
		t.Helper()
		var mu sync.Mutex
		var log []int
		c, err := p.Add(&orderTransport{mu: &mu, log: &log, closed: make(chan struct{})}, o)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	ka := func() ConnOptions { // frames in buffers of their own, as each request builds them
		return ConnOptions{KeepAlive: []byte(":\n"), KeepAliveEvery: time.Second, Ping: []byte("ping")}
	}
	a, b := add(ka()), add(ka())
	if a.opts != b.opts {
		t.Error("equal options are not shared")
	}
	if a.opts.MaxQueueBytes != p.cfg.MaxQueueBytes {
		t.Errorf("MaxQueueBytes %d, want the pool's default %d", a.opts.MaxQueueBytes, p.cfg.MaxQueueBytes)
	}
	differ := []ConnOptions{
		{KeepAlive: []byte(":\r\n"), KeepAliveEvery: time.Second, Ping: []byte("ping")},
		{KeepAlive: []byte(":\n"), KeepAliveEvery: 2 * time.Second, Ping: []byte("ping")},
		{KeepAlive: []byte(":\n"), KeepAliveEvery: time.Second, KeepAliveInterval: true, Ping: []byte("ping")},
		{KeepAlive: []byte(":\n"), KeepAliveEvery: time.Second, Ping: []byte("ping"), Timeout: time.Minute},
		{KeepAlive: []byte(":\n"), KeepAliveEvery: time.Second, Ping: []byte("ping"), TimeoutFrame: []byte{}},
		{KeepAlive: []byte(":\n"), KeepAliveEvery: time.Second, Ping: []byte("ping"), PingEvery: time.Second},
		{KeepAlive: []byte(":\n"), KeepAliveEvery: time.Second, Ping: []byte("ping"), MaxQueueBytes: 1},
		{KeepAlive: []byte(":\n"), KeepAliveEvery: time.Second},
	}
	for i, o := range differ {
		same := add(ka()) // among the shard's latest options
		if c := add(o); c.opts == same.opts {
			t.Errorf("options %d differ from the first ones but share them", i)
		}
	}
}

// SetKeepAlive on one connection changes its own keep-alives only, not
// those of the connections it shares its options with.
func TestSetKeepAliveLeavesOthersAlone(t *testing.T) {
	p := NewPool(PoolConfig{Shards: 1, Tick: 5 * time.Millisecond})
	defer p.Close()
	var mu sync.Mutex
	var log []int
	conns := make([]*Conn, 2)
	for i := range conns {
		c, err := p.Add(&orderTransport{id: i, mu: &mu, log: &log, closed: make(chan struct{})},
			ConnOptions{KeepAlive: []byte("ka"), KeepAliveEvery: 20 * time.Millisecond, KeepAliveInterval: true})
		if err != nil {
			t.Fatal(err)
		}
		conns[i] = c
	}
	if conns[0].opts != conns[1].opts {
		t.Fatal("equal options are not shared: the test proves nothing")
	}
	conns[0].SetKeepAlive(nil, 0, false)
	p.Start()
	count := func(id int) int {
		mu.Lock()
		defer mu.Unlock()
		return len(slices.DeleteFunc(slices.Clone(log), func(x int) bool { return x != id }))
	}
	for deadline := time.Now().Add(10 * time.Second); count(1) < 3; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the other connection got %d keep-alives", count(1))
		}
	}
	if n := count(0); n != 0 {
		t.Errorf("the connection whose keep-alive was turned off got %d", n)
	}
}

// Options with large frames (a long-poll's held response as its
// TimeoutFrame) are not remembered for sharing: they would outlive their
// connection.
func TestLargeFramesAreNotKept(t *testing.T) {
	p := NewPool(PoolConfig{Shards: 1})
	defer p.Close()
	var mu sync.Mutex
	var log []int
	big := ConnOptions{Timeout: time.Minute, TimeoutFrame: make([]byte, maxInternedFrames+1)}
	c, err := p.Add(&orderTransport{mu: &mu, log: &log, closed: make(chan struct{})}, big)
	if err != nil {
		t.Fatal(err)
	}
	s := p.shards[0]
	s.connsMu.Lock()
	defer s.connsMu.Unlock()
	for _, o := range s.opts {
		if o != nil && len(o.TimeoutFrame) > maxInternedFrames {
			t.Fatal("options with a large frame are kept by the shard")
		}
	}
	if c.opts.Timeout != time.Minute || len(c.opts.TimeoutFrame) != maxInternedFrames+1 {
		t.Errorf("the connection's own options: %+v", c.opts)
	}
}
