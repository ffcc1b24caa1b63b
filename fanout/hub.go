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

// DefaultHistoryMaxBytes is HubConfig.HistoryMaxBytes when zero: 64 MiB.
const DefaultHistoryMaxBytes = 64 << 20

// HubConfig configures a Hub's per-channel history.
type HubConfig struct {
	// HistorySize is how many recent messages each channel keeps for
	// replay to late subscribers. Zero: none.
	HistorySize int
	// HistoryAge drops history older than this. Zero: 2 minutes.
	HistoryAge time.Duration
	// HistoryMaxBytes caps the memory, in bytes, that all channels'
	// history holds together. Over it the oldest messages are dropped
	// first, whichever channel they were published to, so every channel
	// keeps the newest part of what was published to it and a replay
	// never skips a message in the middle; a message that alone exceeds
	// the cap is not kept, and neither is its channel's older history.
	// A message counts for its Item (ItemBytes), every encoding of it
	// made so far (Message.Frame) and a fixed overhead of a few hundred
	// bytes. Zero (or negative): DefaultHistoryMaxBytes.
	HistoryMaxBytes int64
	// ItemBytes returns how many bytes a message's Item holds, for
	// HistoryMaxBytes. Nil: items count for nothing, only the encodings
	// and the overhead.
	ItemBytes func(item any) int
}

// Hub is the channel registry: channel name → subscribers and recent
// history. It is sharded by channel so that subscribes and publishes on
// different channels do not contend. Lock order: shard.mu, then
// channel.mu, then histMu.
type Hub struct {
	cfg    HubConfig
	seed   maphash.Seed
	shards [hubShards]hubShard
	pos    atomic.Uint64

	// histMu guards the list of every message kept in some channel's
	// history, oldest first (each channel's in its own order), and the
	// bytes they are charged; histBytes is read without it.
	histMu         sync.Mutex
	oldest, newest *Message
	histMsgs       int
	histBytes      atomic.Int64

	published atomic.Uint64
	delivered atomic.Uint64
	replayed  atomic.Uint64
	evicted   atomic.Uint64
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
	// HistoryMessages is the number of messages kept in history now.
	HistoryMessages int `json:"history_messages"`
	// HistoryBytes is what they are counted for (see
	// HubConfig.HistoryMaxBytes).
	HistoryBytes int64 `json:"history_bytes"`
	// HistoryEvicted counts messages dropped from history, or not kept,
	// to stay within HubConfig.HistoryMaxBytes.
	HistoryEvicted uint64 `json:"history_evicted"`
}

// NewHub returns an empty Hub.
func NewHub(cfg HubConfig) *Hub {
	if cfg.HistoryAge <= 0 {
		cfg.HistoryAge = 2 * time.Minute
	}
	if cfg.HistoryMaxBytes <= 0 {
		cfg.HistoryMaxBytes = DefaultHistoryMaxBytes
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
	if h.subscribe(name, s, since) {
		h.trim()
	}
}

// subscribe is SubscribeFrom under the channel's lock. It reports whether
// the replay took the history over HistoryMaxBytes (by encoding messages
// in a new way).
func (h *Hub) subscribe(name string, s Subscriber, since uint64) bool {
	sh := h.shard(name)
	sh.mu.Lock()
	ch := sh.channelFor(name)
	ch.mu.Lock()
	sh.mu.Unlock()
	defer ch.mu.Unlock()
	if _, ok := ch.subs[s]; ok {
		return false
	}
	ch.subs[s] = struct{}{}
	var replay []*Message
	for _, m := range ch.history {
		if m.Pos > since && time.Since(m.at) <= h.cfg.HistoryAge {
			replay = append(replay, m)
		}
	}
	if len(replay) == 0 {
		return false
	}
	h.replayed.Add(uint64(len(replay)))
	if r, ok := s.(Replayer); ok {
		r.Replay(replay)
	} else {
		for _, m := range replay {
			s.Deliver(m)
		}
	}
	return h.recharge(replay)
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
// channel's history, and returns how many subscribers there were. A
// Message is published once.
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
	n := len(ch.subs)
	for s := range ch.subs {
		s.Deliver(m)
	}
	// Kept after delivery, so that the encodings just made are counted.
	h.remember(ch, m)
	ch.mu.Unlock()
	h.delivered.Add(uint64(n))
	h.trim()
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
// or beyond the size; called with ch.mu held. The caller calls trim once
// it has let go of ch.mu, to bring all history back under
// HistoryMaxBytes.
func (h *Hub) remember(ch *channel, m *Message) {
	if h.cfg.HistorySize <= 0 {
		return
	}
	framed := m.encoded.Load()
	charge := messageOverhead + framed
	if h.cfg.ItemBytes != nil {
		charge += int64(h.cfg.ItemBytes(m.Item))
	}
	if charge > h.cfg.HistoryMaxBytes {
		// Not kept, and neither is anything older on this channel: a
		// replay must not skip m and go on after it.
		h.evicted.Add(uint64(len(ch.history)) + 1)
		h.drop(ch, len(ch.history))
		return
	}
	if len(ch.history) >= h.cfg.HistorySize {
		h.drop(ch, len(ch.history)-h.cfg.HistorySize+1)
	}
	ch.history = append(ch.history, m)
	h.histMu.Lock()
	m.hist, m.charged, m.framed = ch, charge, framed
	m.older, m.newer = h.newest, nil
	if h.newest != nil {
		h.newest.newer = m
	} else {
		h.oldest = m
	}
	h.newest = m
	h.histMsgs++
	h.histBytes.Add(charge)
	h.histMu.Unlock()
	h.expire(ch, m.at)
}

// drop removes the n oldest messages of ch's history; called with ch.mu
// held.
func (h *Hub) drop(ch *channel, n int) {
	if n <= 0 {
		return
	}
	h.histMu.Lock()
	for _, m := range ch.history[:n] {
		if m.older != nil {
			m.older.newer = m.newer
		} else {
			h.oldest = m.newer
		}
		if m.newer != nil {
			m.newer.older = m.older
		} else {
			h.newest = m.older
		}
		h.histMsgs--
		h.histBytes.Add(-m.charged)
		m.hist, m.older, m.newer, m.charged, m.framed = nil, nil, nil, 0, 0
	}
	h.histMu.Unlock()
	k := copy(ch.history, ch.history[n:])
	clear(ch.history[k:])
	ch.history = ch.history[:k]
}

// recharge counts the encodings made since msgs were kept; called with
// their channel's lock held. It reports whether history is now over
// HistoryMaxBytes.
func (h *Hub) recharge(msgs []*Message) bool {
	h.histMu.Lock()
	defer h.histMu.Unlock()
	for _, m := range msgs {
		if d := m.encoded.Load() - m.framed; m.hist != nil && d > 0 {
			m.framed += d
			m.charged += d
			h.histBytes.Add(d)
		}
	}
	return h.histBytes.Load() > h.cfg.HistoryMaxBytes
}

// trim drops the oldest kept messages, whatever their channel, until
// history is within HistoryMaxBytes. It is called with no lock held.
// The oldest kept message is the oldest of its channel's history (each
// channel's messages are listed in its order), so dropping it leaves
// that channel the newest part of its history; if it went meanwhile,
// the next oldest is tried.
func (h *Hub) trim() {
	for h.histBytes.Load() > h.cfg.HistoryMaxBytes {
		h.histMu.Lock()
		m := h.oldest
		if m == nil || h.histBytes.Load() <= h.cfg.HistoryMaxBytes {
			h.histMu.Unlock()
			return
		}
		ch := m.hist
		h.histMu.Unlock()
		ch.mu.Lock()
		// Up to m (m is first unless another trim got there first).
		for i, k := range ch.history {
			if k == m {
				h.evicted.Add(uint64(i + 1))
				h.drop(ch, i+1)
				break
			}
		}
		ch.mu.Unlock()
	}
}

// expire drops history older than HistoryAge; called with ch.mu held.
func (h *Hub) expire(ch *channel, now time.Time) {
	i := 0
	for i < len(ch.history) && now.Sub(ch.history[i].at) > h.cfg.HistoryAge {
		i++
	}
	h.drop(ch, i)
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
	st := HubStats{Published: h.published.Load(), Delivered: h.delivered.Load(), Replayed: h.replayed.Load(),
		HistoryEvicted: h.evicted.Load()}
	h.histMu.Lock()
	st.HistoryMessages, st.HistoryBytes = h.histMsgs, h.histBytes.Load()
	h.histMu.Unlock()
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
