package cache

import (
	"sync"
	"sync/atomic"
)

// flightGroup coalesces concurrent loads of one key: the first caller
// runs the load, the others wait for its result. (The idea is
// groupcache's singleflight; the bad order it avoids is "check cache, miss,
// fetch" run by N callers at once, which sends N requests to a struggling
// origin. The load checks the cache again before it fetches: see
// Cache.fill.)
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
	f, leader := g.join(key)
	if !leader {
		g.waiting.Add(1)
		<-f.done
		g.waiting.Add(-1)
		return f.res, true
	}
	defer g.finish(key, f)
	f.res = load()
	return f.res, false
}

// join returns the flight of key in progress, or registers a new one
// that the caller leads (leader true): it must set its res and call
// finish.
func (g *flightGroup) join(key string) (f *flight, leader bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if f, ok := g.calls[key]; ok {
		return f, false
	}
	if g.calls == nil {
		g.calls = map[string]*flight{}
	}
	f = &flight{done: make(chan struct{})}
	g.calls[key] = f
	return f, true
}

// finish ends a flight its leader has set the result of, waking the
// callers waiting for it.
func (g *flightGroup) finish(key string, f *flight) {
	g.mu.Lock()
	delete(g.calls, key)
	g.mu.Unlock()
	close(f.done)
}
