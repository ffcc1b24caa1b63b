package fanout

import (
	"testing"
	"time"
)

// TestMissingAfterHistoryDropsByCount: a copy as of a position is too old
// once history dropped a message published after it.
func TestMissingAfterHistoryDropsByCount(t *testing.T) {
	h := NewHub(HubConfig{HistorySize: 3})
	now := time.Now()
	since := h.Position()
	for range 3 {
		h.Publish(NewMessage("c", "x"))
	}
	if h.Missing("c", since, now) {
		t.Fatal("3 messages within a history of 3 reported missing")
	}
	h.Publish(NewMessage("c", "x"))
	if !h.Missing("c", since, now) {
		t.Fatal("a message dropped from history not reported missing")
	}
	if after := h.Position() - 3; h.Missing("c", after, now) {
		t.Fatal("a copy newer than everything dropped reported missing")
	}
	if h.Missing("other", since, now) {
		t.Fatal("a channel nothing was published to reported missing")
	}
}

// TestMissingAfterHistoryAge: expired history counts as lost, swept or
// not, and after Sweep forgets the channel its tombstone still answers.
func TestMissingAfterHistoryAge(t *testing.T) {
	h := NewHub(HubConfig{HistorySize: 8, HistoryAge: time.Minute, IDCacheTTL: -1, SequenceWait: -1})
	since := h.Position()
	h.Publish(NewMessage("c", "x"))
	now := time.Now()
	if h.Missing("c", since, now) {
		t.Fatal("fresh history reported missing")
	}
	later := now.Add(2 * time.Minute)
	if !h.Missing("c", since, later) {
		t.Fatal("expired history not reported missing")
	}
	h.Sweep(later)
	if h.Stats().Channels != 0 {
		t.Fatal("the channel was not forgotten")
	}
	if !h.Missing("c", since, later) || h.Missing("c", h.Position(), later) {
		t.Fatal("the forgotten channel's tombstone does not answer")
	}
	// A tombstone outlives its channel for LostMemory, then the hub
	// falls back to the newest position it forgot: conservative.
	h.Sweep(later.Add(2 * DefaultLostMemory))
	if !h.Missing("c", since, later) || !h.Missing("unrelated", since, later) || h.Missing("unrelated", h.Position(), later) {
		t.Fatal("after the tombstone went, copies older than it must count as too old, newer ones not")
	}
	// The channel comes back: it takes over its tombstone.
	h2 := NewHub(HubConfig{HistorySize: 1, HistoryAge: time.Minute})
	s0 := h2.Position()
	h2.Publish(NewMessage("d", "x"))
	h2.Sweep(time.Now().Add(2 * time.Minute))
	h2.Subscribe("d", &countSub{})
	if !h2.Missing("d", s0, time.Now()) {
		t.Fatal("a channel re-created lost its tombstone")
	}
}

// TestMissingWithoutHistory: with no history, every message published
// after a copy makes it too old, subscribers or not.
func TestMissingWithoutHistory(t *testing.T) {
	h := NewHub(HubConfig{})
	now := time.Now()
	since := h.Position()
	h.Publish(NewMessage("nobody", "x"))
	h.Subscribe("someone", &countSub{})
	h.Publish(NewMessage("someone", "x"))
	if !h.Missing("nobody", since, now) || !h.Missing("someone", since, now) {
		t.Fatal("messages never kept not reported missing")
	}
	if h.Missing("nobody", h.Position(), now) || h.Missing("someone", h.Position(), now) {
		t.Fatal("a copy newer than every publish reported missing")
	}
}

// TestMissingWhenTooLargeToKeep: a message over HistoryMaxBytes is lost.
func TestMissingWhenTooLargeToKeep(t *testing.T) {
	h := NewHub(HubConfig{HistorySize: 8, HistoryMaxBytes: 1024, ItemBytes: func(any) int { return 4096 }})
	since := h.Position()
	h.Publish(NewMessage("c", "big"))
	if !h.Missing("c", since, time.Now()) {
		t.Fatal("a message too large for history not reported missing")
	}
}
