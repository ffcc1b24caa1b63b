package node

import (
	"bytes"
	"net"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/edgepush/edgepush/loadtest"
)

// Benchmarks of WebSocket sessions against the load tool's origin: the
// memory and goroutines an idle session costs, and how fast new sessions
// are set up when the origin's OPEN answer cannot be cached.

// openBareWS opens a WebSocket with a bare client (a socket, no read
// buffer kept) and waits for the origin's welcome, so that the session is
// fully set up.
func openBareWS(addr string) (net.Conn, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(waitTimeout))
	if _, err := c.Write([]byte(wsHandshake("/ws?ch=bench"))); err != nil {
		c.Close()
		return nil, err
	}
	var buf [512]byte
	var got []byte
	for !bytes.Contains(got, []byte("welcome")) {
		n, err := c.Read(buf[:])
		if err != nil {
			c.Close()
			return nil, err
		}
		got = append(got, buf[:n]...)
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

// BenchmarkWSIdleSessionMemory opens 2,000 idle WebSocket sessions per
// iteration and reports the Go heap and stacks they take and their
// goroutines, per session (the bare clients' sockets, ~0.3 KB each, are
// counted too: they live in the same process). Run it with -benchtime=1x.
func BenchmarkWSIdleSessionMemory(b *testing.B) {
	const sessions = 2000
	n := startNode(b, loadtest.NewOrigin())
	addr := n.Addr().String()
	var heap, stacks, goroutines float64
	for range b.N {
		c, err := openBareWS(addr) // warm-up: pools, origin connection
		if err != nil {
			b.Fatal(err)
		}
		c.Close()
		time.Sleep(100 * time.Millisecond)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		g0 := runtime.NumGoroutine()
		conns := make([]net.Conn, 0, sessions)
		for range sessions {
			c, err := openBareWS(addr)
			if err != nil {
				b.Fatal(err)
			}
			conns = append(conns, c)
		}
		time.Sleep(200 * time.Millisecond) // transient goroutines end
		runtime.GC()
		runtime.ReadMemStats(&after)
		heap += float64(after.HeapAlloc) - float64(before.HeapAlloc)
		stacks += float64(after.StackInuse) - float64(before.StackInuse)
		goroutines += float64(runtime.NumGoroutine() - g0)
		for _, c := range conns {
			c.Close()
		}
		for deadline := time.Now().Add(waitTimeout); n.held.Load() > 0 && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
	}
	per := float64(b.N * sessions)
	b.ReportMetric(heap/per, "heap-B/session")
	b.ReportMetric(stacks/per, "stack-B/session")
	b.ReportMetric(goroutines/per, "goroutines/session")
}

// BenchmarkWSSetupUncached sets up and closes WebSocket sessions from
// several clients at once against a fast origin whose OPEN answer is not
// cached (the cache is off): OPEN round trip, handshake, registration,
// the welcome message, and the close (DISCONNECT to the origin).
func BenchmarkWSSetupUncached(b *testing.B) {
	benchWSSetup(b, true)
}

// BenchmarkWSSetupCached is BenchmarkWSSetupUncached with the OPEN answer
// from the cache.
func BenchmarkWSSetupCached(b *testing.B) {
	benchWSSetup(b, false)
}

func benchWSSetup(b *testing.B, cacheOff bool) {
	n := startNode(b, loadtest.NewOrigin(), func(c *Config) { c.CacheOff = cacheOff })
	addr := n.Addr().String()
	var failed atomic.Int64
	b.SetParallelism(4)
	cpu0 := processCPU()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c, err := openBareWS(addr)
			if err != nil {
				failed.Add(1)
				continue
			}
			c.Close()
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sessions/s")
	// CPU time is steadier than the rate on a shared machine: the whole
	// process's (client, node and origin), per session.
	b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(b.N), "cpu-µs/session")
	if f := failed.Load(); f > 0 {
		b.Fatalf("%d of %d sessions failed", f, b.N)
	}
}

// processCPU is the CPU time (user and system) the process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
