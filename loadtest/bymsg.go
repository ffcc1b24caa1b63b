package loadtest

import "sync/atomic"

// maxByMsg bounds the runs whose latency is kept per message.
const maxByMsg = 1000

// msgLatency is one message's latency sum, minimum + 1, maximum
// (microseconds) and delivery count in one shard of connections, updated
// concurrently by the connections' readers.
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

// byMsg is the per-message latencies of a run, spread over connection
// shards as hist is, so that readers of different connections seldom
// update the same counters: the client's own CPU is part of what a run
// measures.
type byMsg [histShards][]msgLatency

// newByMsg returns the per-message latency slots for a run of msgs
// messages; none past maxByMsg.
func newByMsg(msgs int) *byMsg {
	b := &byMsg{}
	if msgs <= 0 || msgs > maxByMsg {
		return b
	}
	for i := range b {
		b[i] = make([]msgLatency, msgs)
	}
	return b
}

// record adds one delivery of message seq, d nanoseconds late, on the
// shard of key (a connection index). A nil byMsg keeps nothing.
func (b *byMsg) record(key int, seq, d int64) {
	if b == nil {
		return
	}
	slots := b[uint(key)%histShards]
	if seq < 0 || seq >= int64(len(slots)) {
		return
	}
	us := max(d/1000, 0)
	m := &slots[seq]
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

// report merges the shards into one entry per message; nil for none.
func (b *byMsg) report() []MessageLatency {
	if b == nil {
		return nil
	}
	var out []MessageLatency
	for seq := range b[0] {
		var sum, n, hi int64
		lo := int64(-1)
		for i := range b {
			m := &b[i][seq]
			sum += m.sum.Load()
			n += m.n.Load()
			hi = max(hi, m.max.Load())
			if v := m.min1.Load(); v != 0 && (lo < 0 || v-1 < lo) {
				lo = v - 1
			}
		}
		ml := MessageLatency{Seq: seq, N: n, MaxMs: round3(float64(hi) / 1000)}
		if n > 0 {
			ml.MinMs = round3(float64(lo) / 1000)
			ml.MeanMs = round3(float64(sum) / float64(n) / 1000)
		}
		out = append(out, ml)
	}
	return out
}
