package fanout

import "time"

// Gaps: what a late subscriber can no longer be brought up to date with.
// A subscriber whose data is as of position since (a cached copy of an
// origin answer) is brought up to date by the replay of what the channel
// published after since (SubscribeFrom). That works only while history
// still has all of it: each channel remembers the position of the newest
// of its messages that history no longer has (dropped for size, age or
// memory, or never kept), and a channel forgotten by the registry leaves
// that position behind in a small tombstone for LostMemory, so that
// Missing can answer for it too.

// DefaultLostMemory is HubConfig.LostMemory when zero: an hour.
const DefaultLostMemory = time.Hour

// lostMaxPerShard bounds the tombstones of one registry shard; over it
// they are all dropped, and Missing answers "yes" for every channel it no
// longer knows that was as of a position before the newest of them:
// conservative (a cached copy is refetched once more than needed), never
// wrong.
const lostMaxPerShard = 1 << 14

// lostMark is a forgotten channel's newest lost position and when it was
// lost.
type lostMark struct {
	pos uint64
	at  time.Time
}

// lose records that m, published to ch, is not (or no longer) in its
// history; called with ch.mu held.
func (ch *channel) lose(m *Message) {
	if m.Pos > ch.lost.pos {
		ch.lost = lostMark{pos: m.Pos, at: m.at}
	}
}

// bury keeps a tombstone of a channel being forgotten; called with sh.mu
// held.
func (h *Hub) bury(sh *hubShard, name string, mark lostMark) {
	if mark.pos == 0 {
		return
	}
	if old, ok := sh.lost[name]; ok && old.pos >= mark.pos {
		return
	}
	if sh.lost == nil {
		sh.lost = make(map[string]lostMark)
	}
	sh.lost[name] = mark
	if len(sh.lost) > lostMaxPerShard {
		for _, m := range sh.lost {
			h.raiseForgotten(m.pos)
		}
		clear(sh.lost)
	}
}

// raiseForgotten records that a message at pos was lost on a channel
// nothing remembers any more.
func (h *Hub) raiseForgotten(pos uint64) {
	for {
		cur := h.forgotten.Load()
		if pos <= cur || h.forgotten.CompareAndSwap(cur, pos) {
			return
		}
	}
}

// sweepLost drops tombstones older than LostMemory; called with sh.mu
// held.
func (h *Hub) sweepLost(sh *hubShard, now time.Time) {
	for name, m := range sh.lost {
		if now.Sub(m.at) > h.cfg.LostMemory {
			h.raiseForgotten(m.pos)
			delete(sh.lost, name)
		}
	}
}

// Missing reports whether a message published to channel name after
// position since can no longer be replayed: history dropped it (size,
// age, HistoryMaxBytes) or never kept it. A subscriber whose data is as
// of since cannot be brought up to date then: its data is too old.
func (h *Hub) Missing(name string, since uint64, now time.Time) bool {
	sh := h.shard(name)
	sh.mu.RLock()
	ch := sh.channels[name]
	mark, buried := sh.lost[name]
	sh.mu.RUnlock()
	if ch == nil {
		return buried && mark.pos > since || h.forgotten.Load() > since
	}
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.gone {
		return h.Missing(name, since, now)
	}
	lost := ch.lost.pos
	for _, m := range ch.history {
		if now.Sub(m.at) <= h.cfg.HistoryAge {
			break
		}
		lost = max(lost, m.Pos) // expired, not yet swept
	}
	return lost > since
}
