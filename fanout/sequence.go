package fanout

import "time"

// Publish ids, as Pushpin's sequencer handles them: a message with an ID
// seen on its channel within IDCacheTTL is a duplicate and dropped; a
// message whose PrevID is not the channel's last id (when that is known)
// waits, parked, until its predecessor is delivered or SequenceWait
// passes. All of it is under the channel's lock, so a channel's messages
// are delivered in one order whoever delivers them (Publish,
// ReleaseExpired).

// DefaultIDCacheTTL is HubConfig.IDCacheTTL when zero: 60s, as Pushpin.
const DefaultIDCacheTTL = 60 * time.Second

// DefaultSequenceWait is HubConfig.SequenceWait when zero: 5s, as
// Pushpin.
const DefaultSequenceWait = 5 * time.Second

// DefaultSequencePendingMax is HubConfig.SequencePendingMax when zero:
// 100, as Pushpin.
const DefaultSequencePendingMax = 100

// IDCacheMax is how many ids a channel remembers for deduplication at
// most: the newest ones. An id pushed out by newer ones before
// IDCacheTTL is over is not a duplicate anymore.
const IDCacheMax = 4096

// order is a channel's publish-id state, guarded by the channel's lock.
type order struct {
	lastID string    // ID of the last message delivered; "": unknown
	idAt   time.Time // when the newest id was recorded

	seen    map[string]time.Time // id → when recorded (IDCacheTTL)
	seenAge []seenID             // the same, oldest first

	parked map[string]*parked // PrevID → the message waiting for it
	queue  []*parked          // parked messages, oldest first; released ones marked
}

type seenID struct {
	id string
	at time.Time
}

// parked is a message waiting for its predecessor.
type parked struct {
	m    *Message
	at   time.Time
	done bool // released (still in queue until it reaches the front)
}

// ids reports whether the Hub keeps id state at all.
func (h *Hub) ids() bool { return h.cfg.IDCacheTTL > 0 || h.cfg.SequenceWait > 0 }

// idKeep is how long a channel's id state is kept after its newest id,
// when nothing else keeps the channel.
func (h *Hub) idKeep() time.Duration {
	if h.cfg.IDCacheTTL > 0 {
		return h.cfg.IDCacheTTL
	}
	return DefaultIDCacheTTL
}

// admit decides what becomes of m, which has an ID or a PrevID, before
// delivery: false when it is dropped (a duplicate, or no room to wait) or
// parked. Called with ch.mu held.
func (h *Hub) admit(ch *channel, m *Message, now time.Time) bool {
	if !h.ids() {
		return true
	}
	o := ch.ids
	if o == nil {
		if m.ID == "" {
			return true // a PrevID, but no last id known
		}
		o = &order{}
		ch.ids = o
	}
	if m.ID != "" {
		if h.cfg.IDCacheTTL > 0 && o.seenBefore(m.ID, now, h.cfg.IDCacheTTL) {
			h.duplicates.Add(1)
			return false
		}
		o.idAt = now
	}
	if m.NoSeq || m.PrevID == "" || o.lastID == "" || o.lastID == m.PrevID || h.cfg.SequenceWait <= 0 {
		return true
	}
	if _, taken := o.parked[m.PrevID]; taken || len(o.parked) >= h.cfg.SequencePendingMax {
		h.seqDropped.Add(1)
		return false
	}
	h.park(ch, o, m, now)
	return false
}

// seenBefore reports whether id was recorded within ttl, and records it
// if not.
func (o *order) seenBefore(id string, now time.Time, ttl time.Duration) bool {
	o.forgetIDs(now, ttl)
	if at, ok := o.seen[id]; ok && now.Sub(at) <= ttl {
		return true
	}
	for len(o.seenAge) >= IDCacheMax {
		o.forgetOldestID()
	}
	if o.seen == nil {
		o.seen = make(map[string]time.Time)
	}
	o.seen[id] = now
	o.seenAge = append(o.seenAge, seenID{id, now})
	return false
}

// forgetIDs drops the ids recorded more than ttl before now.
func (o *order) forgetIDs(now time.Time, ttl time.Duration) {
	for len(o.seenAge) > 0 && now.Sub(o.seenAge[0].at) > ttl {
		o.forgetOldestID()
	}
	if len(o.seenAge) == 0 {
		o.seen, o.seenAge = nil, nil
	}
}

func (o *order) forgetOldestID() {
	e := o.seenAge[0]
	o.seenAge[0] = seenID{}
	o.seenAge = o.seenAge[1:]
	// The id may have been recorded again since (it had expired).
	if at, ok := o.seen[e.id]; ok && at.Equal(e.at) {
		delete(o.seen, e.id)
	}
}

// park keeps m until its predecessor is delivered or SequenceWait passes.
func (h *Hub) park(ch *channel, o *order, m *Message, now time.Time) {
	if o.parked == nil {
		o.parked = make(map[string]*parked)
		h.waitMu.Lock()
		h.waiting[ch] = struct{}{}
		h.waitMu.Unlock()
	}
	p := &parked{m: m, at: now}
	o.parked[m.PrevID] = p
	if len(o.queue) >= 2*h.cfg.SequencePendingMax { // mostly released ones
		q := o.queue[:0]
		for _, k := range o.queue {
			if !k.done {
				q = append(q, k)
			}
		}
		clear(o.queue[len(q):])
		o.queue = q
	}
	o.queue = append(o.queue, p)
	h.parked.Add(1)
}

// unpark takes p out of the channel's parked messages.
func (h *Hub) unpark(ch *channel, o *order, p *parked) {
	delete(o.parked, p.m.PrevID)
	p.done = true
	if len(o.parked) == 0 {
		o.parked, o.queue = nil, nil
		h.waitMu.Lock()
		delete(h.waiting, ch)
		h.waitMu.Unlock()
	}
}

// oldestParked returns the channel's oldest parked message, nil if none.
func (o *order) oldestParked() *parked {
	for len(o.queue) > 0 && o.queue[0].done {
		o.queue[0] = nil
		o.queue = o.queue[1:]
	}
	if len(o.queue) == 0 {
		return nil
	}
	return o.queue[0]
}

// releaseAfter delivers the parked messages that follow id, each after
// its predecessor, and appends them to out. Called with ch.mu held.
func (h *Hub) releaseAfter(ch *channel, id string, now time.Time, out []*Message) []*Message {
	o := ch.ids
	for id != "" && o != nil && len(o.parked) > 0 {
		p := o.parked[id]
		if p == nil {
			break
		}
		h.unpark(ch, o, p)
		h.deliver(ch, p.m, now)
		out = append(out, p.m)
		id = p.m.ID
	}
	return out
}

// ReleaseExpired delivers the parked messages that have waited
// SequenceWait or longer by now, out of order but not lost: each
// channel's oldest first, each followed by those waiting for it. Call it
// now and then (the node does every second, as Pushpin).
func (h *Hub) ReleaseExpired(now time.Time) {
	h.waitMu.Lock()
	chans := make([]*channel, 0, len(h.waiting))
	for ch := range h.waiting {
		chans = append(chans, ch)
	}
	h.waitMu.Unlock()
	for _, ch := range chans {
		var out []*Message
		ch.mu.Lock()
		if o := ch.ids; o != nil {
			for p := o.oldestParked(); p != nil && now.Sub(p.at) >= h.cfg.SequenceWait; p = o.oldestParked() {
				h.unpark(ch, o, p)
				h.releasedLate.Add(1)
				h.deliver(ch, p.m, now)
				out = h.releaseAfter(ch, p.m.ID, now, append(out, p.m))
			}
		}
		ch.mu.Unlock()
		if len(out) > 0 {
			h.trim()
			h.notify(out...)
		}
	}
}

// LastID returns the ID of the last message delivered on channel name
// ("" when it had none, or none is known: the channel's id state is kept
// while it has subscribers, history or parked messages, and for
// IDCacheTTL after its newest id).
func (h *Hub) LastID(name string) string {
	ch := h.lockChannel(name, false)
	if ch == nil {
		return ""
	}
	defer ch.mu.Unlock()
	if ch.ids == nil {
		return ""
	}
	return ch.ids.lastID
}
