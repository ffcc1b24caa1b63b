package fanout

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
)

// Subscriber receives the messages published to the channels it is
// subscribed to. Deliver is called with the channel's lock held, in publish
// order; it must not block and must not call back into the Hub.
type Subscriber interface {
	Deliver(m *Message)
}

// hubShards is the number of registry shards; a power of two.
const hubShards = 64

// Hub is the channel registry: channel name → subscribers. It is sharded by
// channel so that subscribes and publishes on different channels do not
// contend. Lock order: shard.mu, then channel.mu.
type Hub struct {
	seed   maphash.Seed
	shards [hubShards]hubShard

	published atomic.Uint64
	delivered atomic.Uint64
}

type hubShard struct {
	mu       sync.RWMutex
	channels map[string]*channel
}

type channel struct {
	mu   sync.Mutex
	seq  uint64
	subs map[Subscriber]struct{}
}

// HubStats is a snapshot of the Hub's counters.
type HubStats struct {
	// Channels is the number of channels with at least one subscriber.
	Channels int `json:"channels"`
	// Subscriptions is the number of (channel, subscriber) pairs.
	Subscriptions int `json:"subscriptions"`
	// Published counts messages passed to Publish.
	Published uint64 `json:"published"`
	// Delivered counts messages handed to subscribers.
	Delivered uint64 `json:"delivered"`
}

// NewHub returns an empty Hub.
func NewHub() *Hub {
	h := &Hub{seed: maphash.MakeSeed()}
	for i := range h.shards {
		h.shards[i].channels = make(map[string]*channel)
	}
	return h
}

func (h *Hub) shard(name string) *hubShard {
	return &h.shards[maphash.String(h.seed, name)&(hubShards-1)]
}

// Subscribe adds s to channel name. Subscribing twice is a no-op.
func (h *Hub) Subscribe(name string, s Subscriber) {
	sh := h.shard(name)
	sh.mu.Lock()
	ch := sh.channels[name]
	if ch == nil {
		ch = &channel{subs: make(map[Subscriber]struct{})}
		sh.channels[name] = ch
	}
	ch.mu.Lock()
	ch.subs[s] = struct{}{}
	ch.mu.Unlock()
	sh.mu.Unlock()
}

// Unsubscribe removes s from channel name; a channel left without
// subscribers is forgotten.
func (h *Hub) Unsubscribe(name string, s Subscriber) {
	sh := h.shard(name)
	sh.mu.Lock()
	if ch := sh.channels[name]; ch != nil {
		ch.mu.Lock()
		delete(ch.subs, s)
		if len(ch.subs) == 0 {
			delete(sh.channels, name)
		}
		ch.mu.Unlock()
	}
	sh.mu.Unlock()
}

// Publish delivers m to every subscriber of m.Channel and returns how many
// there were. Messages published to one channel reach each subscriber in
// the order Publish was called; Publish never blocks on a connection.
func (h *Hub) Publish(m *Message) int {
	h.published.Add(1)
	sh := h.shard(m.Channel)
	sh.mu.RLock()
	ch := sh.channels[m.Channel]
	sh.mu.RUnlock()
	if ch == nil {
		return 0
	}
	ch.mu.Lock()
	ch.seq++
	m.Seq = ch.seq
	n := len(ch.subs)
	for s := range ch.subs {
		s.Deliver(m)
	}
	ch.mu.Unlock()
	h.delivered.Add(uint64(n))
	return n
}

// Subscribers returns the number of subscribers of channel name.
func (h *Hub) Subscribers(name string) int {
	sh := h.shard(name)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	ch := sh.channels[name]
	if ch == nil {
		return 0
	}
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return len(ch.subs)
}

// Stats returns a snapshot of the Hub's counters. It walks every channel,
// so it is meant for status pages, not hot paths.
func (h *Hub) Stats() HubStats {
	st := HubStats{Published: h.published.Load(), Delivered: h.delivered.Load()}
	for i := range h.shards {
		sh := &h.shards[i]
		sh.mu.RLock()
		st.Channels += len(sh.channels)
		for _, ch := range sh.channels {
			ch.mu.Lock()
			st.Subscriptions += len(ch.subs)
			ch.mu.Unlock()
		}
		sh.mu.RUnlock()
	}
	return st
}
