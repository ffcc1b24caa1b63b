package fanout

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"
)

// Subscriber receives the messages published to the channels it is
// subscribed to. Deliver is called with the channel's lock held, in publish
// order; it must not block and must not call back into the Hub.
type Subscriber interface {
	Deliver(m *Message)
}

// Replayer is a Subscriber that chooses what it gets of a channel's
// history when it subscribes (a long-poll wants only the newest message).
// Replay is called under the same rules as Deliver.
type Replayer interface {
	Replay(msgs []*Message)
}

// hubShards is the number of registry shards; a power of two.
const hubShards = 64

// HubConfig configures a Hub's per-channel history.
type HubConfig struct {
	// HistorySize is how many recent messages each channel keeps for
	// replay to late subscribers. Zero: none.
	HistorySize int
	// HistoryAge drops history older than this. Zero: 2 minutes.
	HistoryAge time.Duration
}

// Hub is the channel registry: channel name → subscribers and recent
// history. It is sharded by channel so that subscribes and publishes on
// different channels do not contend. Lock order: shard.mu, then
// channel.mu.
type Hub struct {
	cfg    HubConfig
	seed   maphash.Seed
	shards [hubShards]hubShard
	pos    atomic.Uint64

	published atomic.Uint64
	delivered atomic.Uint64
	replayed  atomic.Uint64
}

type hubShard struct {
	mu       sync.RWMutex
	channels map[string]*channel
}

type channel struct {
	mu      sync.Mutex
	seq     uint64
	subs    map[Subscriber]struct{}
	history []*Message // oldest first
}

// HubStats is a snapshot of the Hub's counters.
type HubStats struct {
	// Channels is the number of channels with subscribers or history.
	Channels int `json:"channels"`
	// Subscriptions is the number of (channel, subscriber) pairs.
	Subscriptions int `json:"subscriptions"`
	// Published counts messages passed to Publish.
	Published uint64 `json:"published"`
	// Delivered counts messages handed to subscribers.
	Delivered uint64 `json:"delivered"`
	// Replayed counts history messages handed to new subscribers.
	Replayed uint64 `json:"replayed"`
}

// NewHub returns an empty Hub.
func NewHub(cfg HubConfig) *Hub {
	if cfg.HistoryAge <= 0 {
		cfg.HistoryAge = 2 * time.Minute
	}
	h := &Hub{cfg: cfg, seed: maphash.MakeSeed()}
	for i := range h.shards {
		h.shards[i].channels = make(map[string]*channel)
	}
	return h
}

func (h *Hub) shard(name string) *hubShard {
	return &h.shards[maphash.String(h.seed, name)&(hubShards-1)]
}

// Position is the position of the last message published on this node.
// A subscriber that saw everything up to Position subscribes with
// SubscribeFrom(…, Position) to miss nothing after it.
func (h *Hub) Position() uint64 { return h.pos.Load() }

// channelFor returns the channel, creating it; called with sh.mu held.
func (sh *hubShard) channelFor(name string) *channel {
	ch := sh.channels[name]
	if ch == nil {
		ch = &channel{subs: make(map[Subscriber]struct{})}
		sh.channels[name] = ch
	}
	return ch
}

// Subscribe adds s to channel name. Subscribing twice is a no-op.
func (h *Hub) Subscribe(name string, s Subscriber) {
	h.SubscribeFrom(name, s, ^uint64(0))
}

// SubscribeFrom adds s to channel name and first hands it the messages in
// the channel's history published after position since (through Replay
// if s is a Replayer), so that a subscriber whose data is as of since
// misses nothing. Subscribing twice is a no-op.
func (h *Hub) SubscribeFrom(name string, s Subscriber, since uint64) {
	sh := h.shard(name)
	sh.mu.Lock()
	ch := sh.channelFor(name)
	ch.mu.Lock()
	sh.mu.Unlock()
	defer ch.mu.Unlock()
	if _, ok := ch.subs[s]; ok {
		return
	}
	ch.subs[s] = struct{}{}
	var replay []*Message
	for _, m := range ch.history {
		if m.Pos > since && time.Since(m.at) <= h.cfg.HistoryAge {
			replay = append(replay, m)
		}
	}
	if len(replay) == 0 {
		return
	}
	h.replayed.Add(uint64(len(replay)))
	if r, ok := s.(Replayer); ok {
		r.Replay(replay)
		return
	}
	for _, m := range replay {
		s.Deliver(m)
	}
}

// Unsubscribe removes s from channel name; a channel left without
// subscribers or history is forgotten.
func (h *Hub) Unsubscribe(name string, s Subscriber) {
	sh := h.shard(name)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	ch := sh.channels[name]
	if ch == nil {
		return
	}
	ch.mu.Lock()
	delete(ch.subs, s)
	if len(ch.subs) == 0 && len(ch.history) == 0 {
		delete(sh.channels, name)
	}
	ch.mu.Unlock()
}

// Publish delivers m to every subscriber of m.Channel, keeps it in the
// channel's history, and returns how many subscribers there were.
// Messages published to one channel reach each subscriber in the order
// Publish was called; Publish never blocks on a connection.
func (h *Hub) Publish(m *Message) int {
	h.published.Add(1)
	ch := h.lookup(m.Channel, h.cfg.HistorySize > 0)
	if ch == nil {
		h.pos.Add(1)
		return 0
	}
	ch.mu.Lock()
	ch.seq++
	m.Seq, m.Pos, m.at = ch.seq, h.pos.Add(1), time.Now()
	h.remember(ch, m)
	n := len(ch.subs)
	for s := range ch.subs {
		s.Deliver(m)
	}
	ch.mu.Unlock()
	h.delivered.Add(uint64(n))
	return n
}

// lookup returns the channel, creating it when create is set.
func (h *Hub) lookup(name string, create bool) *channel {
	sh := h.shard(name)
	sh.mu.RLock()
	ch := sh.channels[name]
	sh.mu.RUnlock()
	if ch != nil || !create {
		return ch
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.channelFor(name)
}

// remember appends m to the channel's history, dropping what is too old
// or beyond the size; called with ch.mu held.
func (h *Hub) remember(ch *channel, m *Message) {
	if h.cfg.HistorySize <= 0 {
		return
	}
	if len(ch.history) >= h.cfg.HistorySize {
		copy(ch.history, ch.history[1:])
		ch.history[len(ch.history)-1] = nil
		ch.history = ch.history[:len(ch.history)-1]
	}
	ch.history = append(ch.history, m)
	h.expire(ch, m.at)
}

// expire drops history older than HistoryAge; called with ch.mu held.
func (h *Hub) expire(ch *channel, now time.Time) {
	i := 0
	for i < len(ch.history) && now.Sub(ch.history[i].at) > h.cfg.HistoryAge {
		i++
	}
	if i > 0 {
		n := copy(ch.history, ch.history[i:])
		clear(ch.history[n:])
		ch.history = ch.history[:n]
	}
}

// Sweep drops expired history and forgets channels left with neither
// subscribers nor history. Call it now and then (the node does every
// minute).
func (h *Hub) Sweep(now time.Time) {
	for i := range h.shards {
		sh := &h.shards[i]
		sh.mu.Lock()
		for name, ch := range sh.channels {
			ch.mu.Lock()
			h.expire(ch, now)
			if len(ch.subs) == 0 && len(ch.history) == 0 {
				delete(sh.channels, name)
			}
			ch.mu.Unlock()
		}
		sh.mu.Unlock()
	}
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
	st := HubStats{Published: h.published.Load(), Delivered: h.delivered.Load(), Replayed: h.replayed.Load()}
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
