package node

import (
	"context"
	"sync"
)

// bgGroup runs goroutines that Shutdown waits for; once stopped it starts
// no more.
type bgGroup struct {
	mu      sync.Mutex
	wg      sync.WaitGroup
	stopped bool
}

// Go runs f in a goroutine unless the group is stopped; it reports whether
// it did.
func (g *bgGroup) Go(f func()) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stopped {
		return false
	}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		f()
	}()
	return true
}

// StopAndWait stops the group and waits for its goroutines, or until ctx
// is done; it reports whether they all ended. (Goroutines see the stop
// through the context their owner cancels; an origin request in flight
// still runs to its timeout.)
func (g *bgGroup) StopAndWait(ctx context.Context) bool {
	g.mu.Lock()
	g.stopped = true
	g.mu.Unlock()
	done := make(chan struct{})
	go func() {
		g.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-ctx.Done():
		return false
	}
}
