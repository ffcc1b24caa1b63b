package node

import (
	"sync"
	"time"

	"github.com/edgepush/edgepush/cache"
	"github.com/edgepush/edgepush/grip"
)

// A connection opened from a cached copy is brought up to date by the
// replay of what its channels published since the copy was made; a copy
// older than what history still has is too old for that (tooOld): the
// cache asks the origin again (one request for all waiting clients), and
// while the origin is down the copy is served, the replay brings what
// history has, and edgepush_cache_gaps_total counts the gap.
//
// A long-poll must never receive a message it already received. A cached
// long-poll answer (Grip-Hold: response) is as of the hub position its
// origin request was made at; a newcomer served from it would be answered
// at once with the newest http-response published since (the replay), and
// so would its re-poll, and the next, until the entry expired. So an entry
// older than the newest http-response published to one of its channels
// is outdated: the cache asks the origin again (one request for all
// waiting clients); while the origin is down the entry is served and the
// connection held without a replay.

// responseMarks remembers, per channel, the hub position of the newest
// http-response published to it, for HistoryAge (what replays reach).
type responseMarks struct {
	mu sync.Mutex
	m  map[string]responseMark
}

type responseMark struct {
	pos uint64
	at  time.Time
}

// note records an http-response published to channel at hub position
// pos. Notes of one channel may come out of order (the hub reports
// deliveries from the publishers' goroutines): the highest position
// stays.
func (r *responseMarks) note(channel string, pos uint64, now time.Time) {
	r.mu.Lock()
	if r.m == nil {
		r.m = map[string]responseMark{}
	}
	if m, ok := r.m[channel]; ok && m.pos > pos {
		pos = m.pos
	}
	r.m[channel] = responseMark{pos: pos, at: now}
	r.mu.Unlock()
}

// after reports whether an http-response was published to one of
// channels after hub position since.
func (r *responseMarks) after(channels []grip.Channel, since uint64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range channels {
		if m, ok := r.m[c.Name]; ok && m.pos > since {
			return true
		}
	}
	return false
}

// sweep forgets marks older than age.
func (r *responseMarks) sweep(now time.Time, age time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for ch, m := range r.m {
		if now.Sub(m.at) > age {
			delete(r.m, ch)
		}
	}
}

// outdated is the cache's Outdated test for client requests: a hold
// whose copy can no longer be brought up to date (tooOld), or a long-poll
// answer with an http-response published after it.
func (s *Server) outdated(e *cache.Entry) bool {
	p, ok := e.Value.(*parsed)
	if !ok || p.err != nil || p.in != nil && p.in.Hold == grip.HoldNone {
		return false
	}
	return p.in != nil && p.in.Hold == grip.HoldResponse && s.responses.after(p.in.Channels, p.since) || s.tooOld(p)
}

// tooOld reports whether a hold's copy is older than what the channels'
// history can replay: a message published to one of them after the copy
// was made is gone from history (size, age, memory), so a newcomer served
// from it would silently miss that message.
func (s *Server) tooOld(p *parsed) bool {
	now := time.Now()
	if p.in == nil { // a WebSocket's OPEN answer
		for _, name := range p.wsChannels {
			if s.hub.Missing(name, p.since, now) {
				return true
			}
		}
		return false
	}
	for _, c := range p.in.Channels {
		if s.hub.Missing(c.Name, p.since, now) {
			return true
		}
	}
	return false
}

// notePublished records what outdates cached long-poll answers; called
// for every item delivered, with its hub position.
func (s *Server) notePublished(item *grip.Item, pos uint64) {
	if f := item.HTTPResponse; f != nil && f.Action == grip.ActionSend {
		s.responses.note(item.Channel, pos, time.Now())
	}
}
