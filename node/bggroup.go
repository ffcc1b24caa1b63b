package node

import "sync"

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

// StopAndWait stops the group and waits for its goroutines.
func (g *bgGroup) StopAndWait() {
	g.mu.Lock()
	g.stopped = true
	g.mu.Unlock()
	g.wg.Wait()
}
