package fanout

import (
	"fmt"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// discardTransport counts what would be written; it measures the
// user-space cost of fan-out (registry, queues, writer shards) without the
// kernel's per-write cost.
type discardTransport struct{ written *atomic.Int64 }

func (t discardTransport) Frame(m *Message) ([]byte, bool) {
	return m.Frame(0, func(m *Message) ([]byte, bool) { return m.Item.([]byte), false })
}

func (t discardTransport) TryWrite(bufs [][]byte) (int, error) {
	n := 0
	for _, b := range bufs {
		n += len(b)
	}
	t.written.Add(int64(n))
	return n, nil
}

func (t discardTransport) WriteBlocking(b []byte) error { t.written.Add(int64(len(b))); return nil }
func (t discardTransport) Closed(error)                 {}

// BenchmarkPublish10kSubscribers publishes one 64-byte message per op to a
// channel with 10,000 subscribers and waits until every subscriber's copy
// has been handed to its transport.
func BenchmarkPublish10kSubscribers(b *testing.B) {
	const subs = 10000
	pool := NewPool(PoolConfig{})
	pool.Start()
	defer pool.Close()
	hub := NewHub(HubConfig{})
	var written atomic.Int64
	for range subs {
		c, err := pool.Add(discardTransport{&written}, ConnOptions{})
		if err != nil {
			b.Fatal(err)
		}
		hub.Subscribe("bench", c)
	}
	payload := []byte(fmt.Sprintf("%063d\n", 0))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		hub.Publish(NewMessage("bench", payload))
	}
	want := int64(b.N) * subs * int64(len(payload))
	for written.Load() < want {
		time.Sleep(50 * time.Microsecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*subs), "ns/delivery")
}

// BenchmarkPublish2kSockets publishes to 2,000 subscribers on real loopback
// TCP connections (4,000 descriptors in this process), including the
// kernel's write cost, and waits until every client has read every
// message.
func BenchmarkPublish2kSockets(b *testing.B) {
	const subs = 2000
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	pool := NewPool(PoolConfig{})
	pool.Start()
	defer pool.Close()
	hub := NewHub(HubConfig{})
	payload := []byte(fmt.Sprintf("%063d\n", 0))
	var read atomic.Int64
	for range subs {
		tr, client := pair(b, ln)
		c, err := pool.Add(tr, ConnOptions{MaxQueueBytes: 64 << 20})
		if err != nil {
			b.Fatal(err)
		}
		hub.Subscribe("bench", c)
		go func() {
			buf := make([]byte, 4096)
			for {
				n, err := client.Read(buf)
				read.Add(int64(n))
				if err != nil {
					return
				}
			}
		}()
	}
	b.ResetTimer()
	for range b.N {
		hub.Publish(NewMessage("bench", string(payload)))
	}
	want := int64(b.N) * subs * int64(len(payload))
	for read.Load() < want {
		time.Sleep(50 * time.Microsecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*subs), "ns/delivery")
}

// BenchmarkConnMemory adds connections subscribed to a channel and
// reports the heap each one takes (Conn, registry entry, shard slot), the
// per-connection memory of the fan-out layer.
func BenchmarkConnMemory(b *testing.B) {
	const conns = 10000
	var written atomic.Int64
	for range b.N {
		pool := NewPool(PoolConfig{})
		pool.Start()
		hub := NewHub(HubConfig{})
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range conns {
			c, err := pool.Add(discardTransport{&written}, ConnOptions{})
			if err != nil {
				b.Fatal(err)
			}
			hub.Subscribe("bench", c)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/conns, "B/conn")
		runtime.KeepAlive(hub)
		pool.Close()
	}
}

// BenchmarkHubPublish publishes messages without ids to a channel with
// one subscriber that only counts them and a history of 64: the Hub's own
// cost per publish (registry, locks, history), without fan-out.
func BenchmarkHubPublish(b *testing.B) {
	hub := NewHub(HubConfig{HistorySize: 64})
	hub.Subscribe("bench", &countSub{})
	payload := []byte(fmt.Sprintf("%063d\n", 0))
	b.ReportAllocs()
	for b.Loop() {
		hub.Publish(NewMessage("bench", payload))
	}
}
