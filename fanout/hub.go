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

// HubConfig configures a Hub's per-channel history and the handling of
// publish ids.
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

	// LostMemory is how long a channel the registry forgot remembers
	// that history lost some of its messages, for Missing. Zero:
	// DefaultLostMemory.
	LostMemory time.Duration
	// IDCacheTTL is how long a channel remembers the IDs of the messages
	// published to it: a message whose ID was seen on its channel within
	// it is a duplicate, dropped (neither delivered nor kept in
	// history). A channel remembers at most IDCacheMax ids, the newest.
	// Zero: DefaultIDCacheTTL; negative: no deduplication.
	IDCacheTTL time.Duration
	// SequenceWait is how long a message waits for its predecessor: one
	// whose PrevID is not its channel's last id (when that is known and
	// NoSeq is not set) is parked until the message with that ID is
	// delivered, then delivered right after it, or until it has waited
	// this long (see ReleaseExpired), then delivered anyway. Zero:
	// DefaultSequenceWait; negative: messages never wait.
	SequenceWait time.Duration
	// SequencePendingMax caps the messages parked per channel; more are
	// dropped, as is one waiting for the same PrevID as a parked one.
	// Zero (or negative): DefaultSequencePendingMax.
	SequencePendingMax int

	// OnDeliver, when set, is called for every message delivered to its
	// channel (subscribers handed it, Seq and Pos set), whether at once
	// by Publish or later, released from waiting (by the Publish of its
	// predecessor or by ReleaseExpired); not for a message dropped or
	// still parked. It runs on the goroutine that delivered the message,
	// with no Hub lock held (it may call the Hub), after the subscribers
	// had it; concurrent publishers may call it concurrently and, for one
	// channel, out of Pos order.
	OnDeliver func(m *Message)
}

// Hub is the channel registry: channel name → subscribers and recent
// history. It is sharded by channel so that subscribes and publishes on
// different channels do not contend. Lock order: shard.mu, then
// channel.mu, then histMu or waitMu.
type Hub struct {
	cfg    HubConfig
	seed   maphash.Seed
	shards [hubShards]hubShard
	pos    atomic.Uint64 // assigned by advance (position.go)

	positions positionLog

	// histMu guards the list of every message kept in some channel's
	// history, oldest first (each channel's in its own order), and the
	// bytes they are charged; histBytes is read without it.
	histMu         sync.Mutex
	oldest, newest *Message
	histMsgs       int
	histBytes      atomic.Int64

	// waitMu guards waiting, the channels with parked messages.
	waitMu  sync.Mutex
	waiting map[*channel]struct{}

	// forgotten is the newest position lost on a channel of which no
	// tombstone is left (gaps.go).
	forgotten atomic.Uint64

	published    atomic.Uint64
	delivered    atomic.Uint64
	replayed     atomic.Uint64
	evicted      atomic.Uint64
	duplicates   atomic.Uint64
	parked       atomic.Uint64
	releasedLate atomic.Uint64
	seqDropped   atomic.Uint64
}

type hubShard struct {
	mu       sync.RWMutex
	channels map[string]*channel
	lost     map[string]lostMark // tombstones of forgotten channels (gaps.go)
}

type channel struct {
	mu      sync.Mutex
	seq     uint64
	subs    subscribers
	history []*Message // oldest first
	lost    lostMark   // the newest message history no longer has (gaps.go)
	ids     *order     // publish ids (sequence.go); nil until a message has one
	gone    bool       // forgotten by the registry: look it up again
}

// HubStats is a snapshot of the Hub's counters.
type HubStats struct {
	// Channels is the number of channels the Hub knows: with
	// subscribers, history, parked messages or recent ids.
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
	// Duplicates counts messages dropped because their ID was seen on
	// their channel within HubConfig.IDCacheTTL.
	Duplicates uint64 `json:"duplicates"`
	// Parked counts messages that waited for their predecessor.
	Parked uint64 `json:"parked"`
	// ReleasedLate counts parked messages delivered after
	// HubConfig.SequenceWait without their predecessor.
	ReleasedLate uint64 `json:"released_late"`
	// SequenceDropped counts messages dropped instead of parked: another
	// one waited for the same PrevID, or HubConfig.SequencePendingMax
	// were parked on the channel.
	SequenceDropped uint64 `json:"sequence_dropped"`
	// Pending is the number of messages parked now.
	Pending int `json:"pending"`
}

// NewHub returns an empty Hub.
func NewHub(cfg HubConfig) *Hub {
	if cfg.HistoryAge <= 0 {
		cfg.HistoryAge = 2 * time.Minute
	}
	if cfg.HistoryMaxBytes <= 0 {
		cfg.HistoryMaxBytes = DefaultHistoryMaxBytes
	}
	if cfg.LostMemory <= 0 {
		cfg.LostMemory = DefaultLostMemory
	}
	if cfg.IDCacheTTL == 0 {
		cfg.IDCacheTTL = DefaultIDCacheTTL
	}
	if cfg.SequenceWait == 0 {
		cfg.SequenceWait = DefaultSequenceWait
	}
	if cfg.SequencePendingMax <= 0 {
		cfg.SequencePendingMax = DefaultSequencePendingMax
	}
	h := &Hub{cfg: cfg, seed: maphash.MakeSeed(), waiting: make(map[*channel]struct{})}
	h.positions.base = time.Now()
	h.positions.fine.every, h.positions.coarse.every = fineEvery, coarseEvery
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

// channelFor returns the channel, creating it (with what its tombstone
// remembers); called with sh.mu held.
func (sh *hubShard) channelFor(name string) *channel {
	ch := sh.channels[name]
	if ch == nil {
		ch = &channel{}
		if m, ok := sh.lost[name]; ok {
			ch.lost = m
			delete(sh.lost, name)
		}
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
	if !ch.subs.add(s) {
		return false
	}
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

// Unsubscribe removes s from channel name; a channel left unused (see
// Sweep) is forgotten.
func (h *Hub) Unsubscribe(name string, s Subscriber) {
	sh := h.shard(name)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	ch := sh.channels[name]
	if ch == nil {
		return
	}
	ch.mu.Lock()
	ch.subs.remove(s)
	if ch.subs.len() == 0 && h.unused(ch, time.Now()) {
		h.forget(sh, name, ch)
	}
	ch.mu.Unlock()
}

// unused reports whether ch has neither subscribers nor history nor
// parked messages, nor an id recent enough to keep; called with ch.mu
// held.
func (h *Hub) unused(ch *channel, now time.Time) bool {
	o := ch.ids
	return ch.subs.len() == 0 && len(ch.history) == 0 &&
		(o == nil || len(o.parked) == 0 && now.Sub(o.idAt) > h.idKeep())
}

// forget removes ch from the registry; called with sh.mu and ch.mu held.
func (h *Hub) forget(sh *hubShard, name string, ch *channel) {
	delete(sh.channels, name)
	ch.gone = true
	h.bury(sh, name, ch.lost)
}

// Publish delivers m to every subscriber of m.Channel, keeps it in the
// channel's history, and returns how many subscribers it was handed to.
// A Message is published once.
//
// A message with an ID or PrevID may be dropped as a duplicate, or wait
// for its predecessor (see HubConfig.IDCacheTTL and SequenceWait); then
// Publish returns 0, and a parked message is delivered later, with the
// Seq and Pos of that moment. Messages delivered to one channel reach
// each subscriber in the order they were delivered (for messages without
// ids, the order Publish was called); Publish never blocks on a
// connection.
func (h *Hub) Publish(m *Message) int {
	return h.publish(m, time.Now())
}

// publish is Publish at time now.
func (h *Hub) publish(m *Message, now time.Time) int {
	h.published.Add(1)
	ch := h.lockChannel(m.Channel, h.cfg.HistorySize > 0 || m.ID != "" && h.ids())
	if ch == nil {
		// Kept nowhere: a cached copy of this channel's data is too old
		// from now on.
		m.Pos, m.at = h.advance(now), now
		sh := h.shard(m.Channel)
		sh.mu.Lock()
		h.bury(sh, m.Channel, lostMark{pos: m.Pos, at: now})
		sh.mu.Unlock()
		h.notify(m)
		return 0
	}
	if (m.ID != "" || m.PrevID != "") && !h.admit(ch, m, now) {
		ch.mu.Unlock()
		return 0
	}
	n := h.deliver(ch, m, now)
	var released []*Message
	if m.ID != "" && ch.ids != nil && len(ch.ids.parked) > 0 {
		released = h.releaseAfter(ch, m.ID, now, nil)
	}
	ch.mu.Unlock()
	h.trim()
	h.notify(m)
	h.notify(released...)
	return n
}

// deliver hands m to the channel's subscribers and keeps it in history;
// called with ch.mu held. It returns how many subscribers had it.
func (h *Hub) deliver(ch *channel, m *Message, now time.Time) int {
	ch.seq++
	m.Seq, m.Pos, m.at = ch.seq, h.advance(now), now
	n := ch.subs.len()
	for _, s := range ch.subs.list {
		s.Deliver(m)
	}
	// Kept after delivery, so that the encodings just made are counted.
	h.remember(ch, m)
	if ch.ids != nil {
		ch.ids.lastID = m.ID
	}
	h.delivered.Add(uint64(n))
	return n
}

// notify calls OnDeliver for msgs; called with no lock held.
func (h *Hub) notify(msgs ...*Message) {
	if f := h.cfg.OnDeliver; f != nil {
		for _, m := range msgs {
			f(m)
		}
	}
}

// lockChannel returns the channel, locked, creating it when create is
// set; nil when it does not exist and create is not set. A channel that
// Sweep or Unsubscribe forgot between the lookup and the lock is looked
// up again, so nothing is published to a channel no one can see.
func (h *Hub) lockChannel(name string, create bool) *channel {
	for {
		ch := h.lookup(name, create)
		if ch == nil {
			return nil
		}
		ch.mu.Lock()
		if !ch.gone {
			return ch
		}
		ch.mu.Unlock()
	}
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
		ch.lose(m)
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
		ch.lose(m)
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
	ch.lose(ch.history[n-1])
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

// Sweep drops expired history and ids, and forgets channels left with
// neither subscribers nor history nor parked messages, whose newest ID
// (if any) is older than IDCacheTTL (DefaultIDCacheTTL when
// deduplication is off): a channel's last id and the ids it remembers go
// with it. Call it now and then (the node does every minute).
func (h *Hub) Sweep(now time.Time) {
	for i := range h.shards {
		sh := &h.shards[i]
		sh.mu.Lock()
		h.sweepLost(sh, now)
		for name, ch := range sh.channels {
			ch.mu.Lock()
			h.expire(ch, now)
			if ch.ids != nil {
				ch.ids.forgetIDs(now, h.cfg.IDCacheTTL)
			}
			if h.unused(ch, now) {
				h.forget(sh, name, ch)
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
	return ch.subs.len()
}

// Stats returns a snapshot of the Hub's counters. It walks every channel,
// so it is meant for status pages, not hot paths.
func (h *Hub) Stats() HubStats {
	st := HubStats{Published: h.published.Load(), Delivered: h.delivered.Load(), Replayed: h.replayed.Load(),
		HistoryEvicted: h.evicted.Load(), Duplicates: h.duplicates.Load(), Parked: h.parked.Load(),
		ReleasedLate: h.releasedLate.Load(), SequenceDropped: h.seqDropped.Load()}
	h.histMu.Lock()
	st.HistoryMessages, st.HistoryBytes = h.histMsgs, h.histBytes.Load()
	h.histMu.Unlock()
	for i := range h.shards {
		sh := &h.shards[i]
		sh.mu.RLock()
		st.Channels += len(sh.channels)
		for _, ch := range sh.channels {
			ch.mu.Lock()
			st.Subscriptions += ch.subs.len()
			if ch.ids != nil {
				st.Pending += len(ch.ids.parked)
			}
			ch.mu.Unlock()
		}
		sh.mu.RUnlock()
	}
	return st
}
