package cluster

import (
	"encoding/json"
	"sync"
)

// Op is one operation forwarded to every other member.
type Op struct {
	// Source is the name of the node the operation was sent to first.
	Source string `json:"src"`
	// Incarnation identifies one run of the source node; Seq restarts
	// with it.
	Incarnation int64 `json:"inc"`
	// Seq orders the source's operations (1, 2, 3…).
	Seq uint64 `json:"seq"`
	// Kind says what Data is ("publish", "purge"); opaque here.
	Kind string `json:"kind"`
	// Data is the operation, opaque here.
	Data json.RawMessage `json:"data"`
}

// Handler applies operations received from peers, each operation ID at
// most once. HandleOp must not forward them again. It may be called
// concurrently: batches from several peers, and replays from the op log at
// memberlist push/pull.
type Handler interface {
	HandleOp(op Op)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(Op)

// HandleOp calls f(op).
func (f HandlerFunc) HandleOp(op Op) { f(op) }

// dedup remembers, per source incarnation, the highest sequence applied,
// so a batch sent twice (a retry after a lost answer) is applied once.
type dedup struct {
	mu   sync.Mutex
	seen map[string]seenState
}

type seenState struct {
	inc int64
	seq uint64
}

// fresh reports whether op is new, and records it.
func (d *dedup) fresh(op Op) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.seen == nil {
		d.seen = map[string]seenState{}
	}
	st, ok := d.seen[op.Source]
	switch {
	case !ok || op.Incarnation > st.inc:
		d.seen[op.Source] = seenState{op.Incarnation, op.Seq}
		return true
	case op.Incarnation < st.inc || op.Seq <= st.seq:
		return false
	}
	st.seq = op.Seq
	d.seen[op.Source] = st
	return true
}
