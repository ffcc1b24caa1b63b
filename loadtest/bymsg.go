package loadtest

import "sync/atomic"

// maxByMsg bounds the runs whose latency is kept per message.
const maxByMsg = 1000

// msgLatency is one message's latency sum, minimum + 1, maximum
// (microseconds) and delivery count, updated concurrently by the
// connections' readers.
type msgLatency struct {
	sum, min1, max atomic.Int64
	n              atomic.Int64
}

// MessageLatency is one message's delivery latency over its deliveries.
type MessageLatency struct {
	Seq    int     `json:"seq"`
	N      int64   `json:"n"`
	MinMs  float64 `json:"min_ms"`
	MeanMs float64 `json:"mean_ms"`
	MaxMs  float64 `json:"max_ms"`
}

// newByMsg returns the per-message latency slots for a run of msgs
// messages; none past maxByMsg.
func newByMsg(msgs int) []msgLatency {
	if msgs <= 0 || msgs > maxByMsg {
		return nil
	}
	return make([]msgLatency, msgs)
}

// recordByMsg adds one delivery of message seq, d nanoseconds late.
func (r *runState) recordByMsg(seq, d int64) {
	if seq < 0 || seq >= int64(len(r.byMsg)) {
		return
	}
	us := max(d/1000, 0)
	m := &r.byMsg[seq]
	m.sum.Add(us)
	m.n.Add(1)
	for {
		cur := m.max.Load()
		if us <= cur || m.max.CompareAndSwap(cur, us) {
			break
		}
	}
	for { // min1 is the minimum + 1, so that 0 means none yet
		cur := m.min1.Load()
		if cur != 0 && us+1 >= cur || m.min1.CompareAndSwap(cur, us+1) {
			return
		}
	}
}

// latencyByMessage is the report's view of byMsg.
func (r *runState) latencyByMessage() []MessageLatency {
	var out []MessageLatency
	for i := range r.byMsg {
		m := &r.byMsg[i]
		n := m.n.Load()
		ml := MessageLatency{Seq: i, N: n, MaxMs: round3(float64(m.max.Load()) / 1000)}
		if n > 0 {
			ml.MinMs = round3(float64(m.min1.Load()-1) / 1000)
			ml.MeanMs = round3(float64(m.sum.Load()) / float64(n) / 1000)
		}
		out = append(out, ml)
	}
	return out
}
