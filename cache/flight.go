package cache

import (
	"sync"
	"sync/atomic"
)

// flightGroup coalesces concurrent loads of one key: the first caller
// runs the load, the others wait for its result. (The idea is
// groupcache's singleflight; the bad order it avoids is "check cache, miss,
// fetch" run by N callers at once, which sends N requests to a struggling
// origin.)
type flightGroup struct {
	mu      sync.Mutex
	calls   map[string]*flight
	waiting atomic.Int64 // callers waiting for another's load now
}

type flight struct {
	done chan struct{}
	res  loadResult
}

// do runs load once for concurrent callers with the same key; shared is
// false for the caller that ran it.
func (g *flightGroup) do(key string, load func() loadResult) (res loadResult, shared bool) {
	g.mu.Lock()
	if g.calls == nil {
		g.calls = map[string]*flight{}
	}
	if f, ok := g.calls[key]; ok {
		g.waiting.Add(1)
		g.mu.Unlock()
		<-f.done
		g.waiting.Add(-1)
		return f.res, true
	}
	f := &flight{done: make(chan struct{})}
	g.calls[key] = f
	g.mu.Unlock()

	defer func() {
		g.mu.Lock()
		delete(g.calls, key)
		g.mu.Unlock()
		close(f.done)
	}()
	f.res = load()
	return f.res, false
}

// busy reports whether a load of key is in flight.
func (g *flightGroup) busy(key string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	_, ok := g.calls[key]
	return ok
}
