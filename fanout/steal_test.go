package fanout

import (
	"bufio"
	"net"
	"testing"
	"time"
)

// heldTransport is a lineTransport whose first write waits until release
// is closed, after telling entered: its shard's goroutine is held there,
// as when the system leaves a writer thread waiting for a core.
type heldTransport struct {
	*lineTransport
	entered chan struct{}
	release chan struct{}
	first   bool
}

func (t *heldTransport) TryWrite(bufs [][]byte) (int, error) {
	if !t.first {
		t.first = true
		close(t.entered)
		<-t.release
	}
	return t.lineTransport.TryWrite(bufs)
}

// TestHeldShardsConnectionsWrittenByAnother holds one writer shard's
// goroutine inside a write and queues frames for ten more connections of
// that shard: the other shard writes them meanwhile, whether it has
// connections of its own to write (it is awake anyway, as in a fan-out)
// or not (the held shard's growing list wakes it; the pool's tick, an
// hour here, does not).
func TestHeldShardsConnectionsWrittenByAnother(t *testing.T) {
	for _, tc := range []struct {
		name string
		own  bool // the other shard has a connection of its own to write
	}{{"other shard busy too", true}, {"other shard idle", false}} {
		t.Run(tc.name, func(t *testing.T) {
			const queued = 2*drainChunk + 10
			ln := listen(t)
			pool := startPool(t, PoolConfig{Shards: 2, Tick: time.Hour})
			held := pool.shards[0]
			var (
				gate    *heldTransport
				gateC   *Conn
				gateCli net.Conn
				behind  []*Conn
				clis    []net.Conn
				own     *Conn
				ownCli  net.Conn
			)
			for len(behind) < queued || own == nil || gateC == nil {
				tr, cli := pair(t, ln)
				ht := &heldTransport{lineTransport: tr, entered: make(chan struct{}), release: make(chan struct{})}
				c, err := pool.Add(ht, ConnOptions{})
				if err != nil {
					t.Fatal(err)
				}
				switch {
				case c.shard != held && own == nil:
					own, ownCli = c, cli
					ht.first = true // never held
				case c.shard != held:
					ht.first = true
				case gateC == nil:
					gate, gateC, gateCli = ht, c, cli
				case len(behind) < queued:
					ht.first = true
					behind = append(behind, c)
					clis = append(clis, cli)
				default:
					ht.first = true
				}
			}
			defer func() {
				select {
				case <-gate.release:
				default:
					close(gate.release)
				}
			}()

			gateC.Send([]byte("gate\n"), false)
			select {
			case <-gate.entered:
			case <-time.After(10 * time.Second):
				t.Fatal("the held shard never wrote")
			}
			for _, c := range behind {
				c.Send([]byte("behind\n"), false)
			}
			if tc.own {
				own.Send([]byte("own\n"), false)
				ownCli.SetReadDeadline(time.Now().Add(10 * time.Second))
				if line, err := bufio.NewReader(ownCli).ReadString('\n'); err != nil || line != "own\n" {
					t.Fatalf("the other shard's own connection: %q %v", line, err)
				}
			}
			for i, cli := range clis {
				cli.SetReadDeadline(time.Now().Add(10 * time.Second))
				if line, err := bufio.NewReader(cli).ReadString('\n'); err != nil || line != "behind\n" {
					t.Fatalf("connection %d behind the held write: %q %v (stolen so far: %d)", i, line, err,
						pool.Stats().Stolen)
				}
			}
			if st := pool.Stats().Stolen; st < queued {
				t.Errorf("stolen %d, want at least %d", st, queued)
			}
			close(gate.release)
			gateCli.SetReadDeadline(time.Now().Add(10 * time.Second))
			if line, err := bufio.NewReader(gateCli).ReadString('\n'); err != nil || line != "gate\n" {
				t.Fatalf("the held write: %q %v", line, err)
			}
		})
	}
}

// TestReadyListDoesNotGrowWhileNeverEmpty keeps a shard's ready list from
// emptying (a chunk added per chunk taken, a backlog of ten chunks
// throughout): the list is compacted as its head moves on, so its length
// stays within a few chunks of the backlog instead of growing with every
// connection ever queued.
func TestReadyListDoesNotGrowWhileNeverEmpty(t *testing.T) {
	s := &writerShard{}
	c := &Conn{}
	for range 10 * drainChunk {
		s.readyQ = append(s.readyQ, c)
	}
	for i := range 10000 {
		for range drainChunk {
			s.readyQ = append(s.readyQ, c)
		}
		if got := len(s.takeHead()); got != drainChunk {
			t.Fatalf("take %d: %d connections, want %d", i, got, drainChunk)
		}
		if len(s.readyQ) > 20*drainChunk {
			t.Fatalf("take %d: ready list of %d for a backlog of %d", i, len(s.readyQ), len(s.readyQ)-s.readyHead)
		}
	}
}
