package fanout

import (
	"testing"
	"time"
)

// PositionAt: a moment before anything was published is position 0; a
// moment after the last message is the current position; a moment
// between two messages is never past the first message published after
// it (replaying from there loses nothing).
func TestPositionAt(t *testing.T) {
	h := NewHub(HubConfig{HistorySize: 8})
	before := time.Now()
	if p := h.PositionAt(before); p != 0 {
		t.Fatalf("PositionAt before any publish = %d, want 0", p)
	}
	var between []time.Time
	var msgs []*Message
	for i := range 50 {
		m := &Message{Channel: "c", Item: i}
		h.Publish(m)
		msgs = append(msgs, m)
		between = append(between, time.Now())
	}
	if p := h.PositionAt(before); p != 0 {
		t.Fatalf("PositionAt before the first publish = %d, want 0", p)
	}
	if p := h.PositionAt(time.Now()); p != h.Position() {
		t.Fatalf("PositionAt now = %d, want the current position %d", p, h.Position())
	}
	for i, at := range between[:len(between)-1] {
		next := msgs[i+1] // published after at
		if p := h.PositionAt(at); p >= next.Pos || p > msgs[i].Pos {
			t.Fatalf("PositionAt(after message %d) = %d: message %d (position %d) would not be replayed", i, p, i+1, next.Pos)
		}
	}
}

// posRing.find returns the newest sample at or before a moment, across
// the ring's wrap, and nothing for a moment older than every sample.
func TestPosRingFind(t *testing.T) {
	r := posRing{every: 10}
	for i := range ringSize + 100 { // wraps: the first 100 samples are gone
		r.note(posSample{at: int64(i) * 10, pos: uint64(i)})
		r.note(posSample{at: int64(i)*10 + 5, pos: uint64(i) + 1000000}) // too close: not kept
	}
	for _, tc := range []struct {
		at   int64
		want uint64
		ok   bool
	}{
		{at: 99 * 10, ok: false},
		{at: 100 * 10, want: 100, ok: true},
		{at: 100*10 + 9, want: 100, ok: true},
		{at: 2000 * 10, want: 2000, ok: true},
		{at: (ringSize + 99) * 10, want: ringSize + 99, ok: true},
		{at: 1 << 60, want: ringSize + 99, ok: true},
	} {
		got, ok := r.find(tc.at)
		if ok != tc.ok || got != tc.want {
			t.Errorf("find(%d) = %d, %v; want %d, %v", tc.at, got, ok, tc.want, tc.ok)
		}
	}
}

// A message whose publish started later than another's but took its
// position first still counts from its own start: PositionAt of a moment
// between the two starts replays it.
func TestPositionAtOutOfOrder(t *testing.T) {
	h := NewHub(HubConfig{HistorySize: 8})
	t0 := time.Now()
	late := &Message{Channel: "c", Item: 1}
	h.publish(late, t0.Add(10*time.Millisecond)) // started at +10ms, position 1
	early := &Message{Channel: "c", Item: 2}
	h.publish(early, t0.Add(5*time.Millisecond)) // started at +5ms, position 2
	if p := h.PositionAt(t0.Add(8 * time.Millisecond)); p >= late.Pos {
		t.Fatalf("PositionAt(+8ms) = %d: the message started at +10ms (position %d) would not be replayed", p, late.Pos)
	}
	if p := h.PositionAt(t0.Add(20 * time.Millisecond)); p != early.Pos {
		t.Fatalf("PositionAt(+20ms) = %d, want %d", p, early.Pos)
	}
}
