package node

import (
	"encoding/json"
	"sync"
	"time"

	"github.com/edgepush/edgepush/purge"
)

// purgeLog remembers the tier's recent purges by operation ID; members
// exchange it at memberlist push/pull, so a member that missed a purge
// (partitioned, its queue dropped) applies it when it is back rather than
// serving pre-purge data.
type purgeLog struct {
	s   *Server
	max int
	age time.Duration

	mu      sync.Mutex
	entries []purgeLogEntry // oldest first
	seen    map[string]bool
}

type purgeLogEntry struct {
	ID  string        `json:"id"`
	Req purge.Request `json:"req"`
	At  time.Time     `json:"at"`
}

func newPurgeLog(s *Server, max int, age time.Duration) *purgeLog {
	return &purgeLog{s: s, max: max, age: age, seen: map[string]bool{}}
}

// add records a purge this node applied; it reports false if the ID was
// already known.
func (l *purgeLog) add(id string, req purge.Request, at time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen[id] {
		return false
	}
	l.seen[id] = true
	l.entries = append(l.entries, purgeLogEntry{ID: id, Req: req, At: at})
	for len(l.entries) > l.max || (len(l.entries) > 0 && time.Since(l.entries[0].At) > l.age) {
		delete(l.seen, l.entries[0].ID)
		l.entries = l.entries[1:]
	}
	return true
}

// LocalState is the recent purges, for push/pull.
func (l *purgeLog) LocalState() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, _ := json.Marshal(l.entries)
	return b
}

// MergeRemoteState applies the purges another member knows and this one
// has not seen.
func (l *purgeLog) MergeRemoteState(buf []byte) {
	var remote []purgeLogEntry
	if err := json.Unmarshal(buf, &remote); err != nil {
		l.s.log.Warn("tier: bad purge state", "err", err)
		return
	}
	for _, e := range remote {
		if time.Since(e.At) > l.age || !l.add(e.ID, e.Req, e.At) {
			continue
		}
		l.s.log.Info("tier: applying a purge missed earlier", "id", e.ID, "keys", e.Req.Keys, "urls", e.Req.URLs)
		l.s.purgeLocal(&e.Req)
	}
}
