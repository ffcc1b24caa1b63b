package fanout

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// msgSub records what it is handed; with kind ≥ 0 it encodes each
// message (a copy of its payload) as a transport would.
type msgSub struct {
	kind int
	got  []*Message
}

func (s *msgSub) Deliver(m *Message) {
	if s.kind >= 0 {
		m.Frame(s.kind, func(m *Message) ([]byte, bool) { return append([]byte(nil), m.Item.([]byte)...), false })
	}
	s.got = append(s.got, m)
}

func byteItems(item any) int { return len(item.([]byte)) }

// replayOf is what a new subscriber of channel name gets from history.
func replayOf(h *Hub, name string) []*Message {
	s := &msgSub{kind: -1}
	h.SubscribeFrom(name, s, 0)
	h.Unsubscribe(name, s)
	return s.got
}

// checkSuffix fails unless msgs are consecutive in their channel and end
// with its last message (seq last): the newest part of its history, with
// nothing skipped.
func checkSuffix(t *testing.T, name string, msgs []*Message, last uint64) {
	t.Helper()
	for i, m := range msgs {
		if want := last - uint64(len(msgs)-1-i); m.Seq != want {
			t.Fatalf("channel %s replays seq %d at %d of %d, want %d (a gap)", name, m.Seq, i, len(msgs), want)
		}
	}
}

// TestHistoryMaxBytesDropsOldestAcrossChannels: with 1 KB messages and
// room for 10, publishing 30 round-robin on 3 channels keeps exactly the
// 10 newest, whatever their channel, and each channel replays the newest
// part of its history.
func TestHistoryMaxBytesDropsOldestAcrossChannels(t *testing.T) {
	const size, room = 1000, 10
	per := messageOverhead + size
	hub := NewHub(HubConfig{HistorySize: 64, HistoryMaxBytes: room * per, ItemBytes: byteItems})
	chans := []string{"a", "b", "c"}
	for i := range 30 {
		hub.Publish(NewMessage(chans[i%3], make([]byte, size)))
	}
	st := hub.Stats()
	if st.HistoryMessages != room || st.HistoryBytes != room*per || st.HistoryEvicted != 20 {
		t.Fatalf("stats %+v: want %d messages, %d bytes, 20 evicted", st, room, room*per)
	}
	kept := 0
	for i, name := range chans {
		msgs := replayOf(hub, name)
		checkSuffix(t, name, msgs, 10)
		// Messages 20..29 are the newest: a and b have 3 of them, c 4
		// (message i is seq i/3+1 of channel i%3).
		if want := []int{3, 3, 4}[i]; len(msgs) != want {
			t.Fatalf("channel %s keeps %d, want %d", name, len(msgs), want)
		}
		kept += len(msgs)
	}
	if kept != room {
		t.Fatalf("replays hold %d messages, want %d", kept, room)
	}

	// A quiet channel's old messages go before a busy channel's new ones.
	hub.Publish(NewMessage("quiet", make([]byte, size)))
	for range room - 1 {
		hub.Publish(NewMessage("busy", make([]byte, size)))
	}
	if msgs := replayOf(hub, "quiet"); len(msgs) != 1 {
		t.Fatalf("quiet channel keeps %d, want 1 (newer than the rest)", len(msgs))
	}
	hub.Publish(NewMessage("busy", make([]byte, size)))
	if msgs := replayOf(hub, "quiet"); len(msgs) != 0 {
		t.Fatalf("quiet channel keeps %d, want 0 (now the oldest)", len(msgs))
	}
	checkSuffix(t, "busy", replayOf(hub, "busy"), room)
	for _, name := range chans {
		if msgs := replayOf(hub, name); len(msgs) != 0 {
			t.Fatalf("channel %s keeps %d, want 0", name, len(msgs))
		}
	}
	if st := hub.Stats(); st.HistoryMessages != room || st.HistoryEvicted != 31 {
		t.Fatalf("stats %+v: want %d messages, 31 evicted", st, room)
	}
}

// TestHistoryMaxBytesMessageTooBig: a message over the cap by itself is
// not kept, nor is anything older on its channel (a replay would skip
// it); other channels keep theirs.
func TestHistoryMaxBytesMessageTooBig(t *testing.T) {
	const size = 1000
	per := messageOverhead + size
	hub := NewHub(HubConfig{HistorySize: 64, HistoryMaxBytes: 4 * per, ItemBytes: byteItems})
	hub.Subscribe("big", &msgSub{kind: -1}) // so that the channel is not forgotten
	hub.Publish(NewMessage("big", make([]byte, size)))
	hub.Publish(NewMessage("big", make([]byte, size)))
	hub.Publish(NewMessage("other", make([]byte, size)))
	hub.Publish(NewMessage("big", make([]byte, 10*size)))
	if msgs := replayOf(hub, "big"); len(msgs) != 0 {
		t.Fatalf("channel big replays %d messages, want none", len(msgs))
	}
	hub.Publish(NewMessage("big", make([]byte, size)))
	checkSuffix(t, "big", replayOf(hub, "big"), 4)
	if msgs := replayOf(hub, "big"); len(msgs) != 1 {
		t.Fatalf("channel big replays %d messages, want 1", len(msgs))
	}
	checkSuffix(t, "other", replayOf(hub, "other"), 1)
	if st := hub.Stats(); st.HistoryMessages != 2 || st.HistoryBytes != 2*per || st.HistoryEvicted != 3 {
		t.Fatalf("stats %+v: want 2 messages, %d bytes, 3 evicted", st, 2*per)
	}
}

// TestHistoryCountsEncodings: a kept message counts for its encodings
// too, those made when it was published and those a replay makes later
// (which can push older messages out).
func TestHistoryCountsEncodings(t *testing.T) {
	const size = 1000
	hub := NewHub(HubConfig{HistorySize: 64, HistoryMaxBytes: 5 * (messageOverhead + 2*size), ItemBytes: byteItems})
	hub.Subscribe("c", &msgSub{kind: 0})
	for range 3 {
		hub.Publish(NewMessage("c", make([]byte, size)))
	}
	if st := hub.Stats(); st.HistoryBytes != 3*(messageOverhead+2*size) {
		t.Fatalf("history bytes %d, want %d (item and one encoding each)", st.HistoryBytes, 3*(messageOverhead+2*size))
	}
	hub.Publish(NewMessage("d", make([]byte, size))) // no subscriber: no encoding
	hub.Publish(NewMessage("d", make([]byte, size)))
	if st := hub.Stats(); st.HistoryMessages != 5 || st.HistoryEvicted != 0 {
		t.Fatalf("stats %+v: want 5 messages, none evicted", st)
	}
	// A subscriber of c that encodes differently: 3 more encodings, over
	// the cap, so the oldest message (c's first) goes.
	late := &msgSub{kind: 1}
	hub.SubscribeFrom("c", late, 0)
	if len(late.got) != 3 {
		t.Fatalf("replayed %d, want 3", len(late.got))
	}
	want := 2*(messageOverhead+3*size) + 2*(messageOverhead+size)
	if st := hub.Stats(); st.HistoryMessages != 4 || st.HistoryEvicted != 1 || st.HistoryBytes != want {
		t.Fatalf("stats %+v: want 4 messages, 1 evicted, %d bytes", st, want)
	}
	checkSuffix(t, "c", replayOf(hub, "c"), 3)
	if n := len(replayOf(hub, "c")); n != 2 {
		t.Fatalf("c keeps %d, want 2", n)
	}
}

// TestHistoryMaxBytesUnderConcurrentPublishes: publishers on many
// channels and late subscribers at once; every replay is the newest part
// of its channel's history, and in the end history is within the cap and
// its count matches what the channels replay.
func TestHistoryMaxBytesUnderConcurrentPublishes(t *testing.T) {
	const publishers, channels, each, size = 4, 16, 300, 4 << 10
	limit := 40 * (messageOverhead + 2*size)
	hub := NewHub(HubConfig{HistorySize: 32, HistoryAge: time.Hour, HistoryMaxBytes: limit, ItemBytes: byteItems})
	errs := make(chan error, publishers*2)
	var wg sync.WaitGroup
	for p := range publishers {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := range each {
				hub.Publish(NewMessage(fmt.Sprintf("c%d", (p*each+i)%channels), make([]byte, size)))
			}
		}()
		go func() { // subscribes late, checks its replay, leaves
			defer wg.Done()
			for i := range each {
				name := fmt.Sprintf("c%d", i%channels)
				s := &msgSub{kind: p % 2}
				hub.SubscribeFrom(name, s, 0)
				hub.Unsubscribe(name, s)
				for j := 1; j < len(s.got); j++ {
					if s.got[j].Seq != s.got[j-1].Seq+1 {
						errs <- fmt.Errorf("channel %s replayed seq %d after %d", name, s.got[j].Seq, s.got[j-1].Seq)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	st := hub.Stats()
	if st.HistoryBytes > limit || st.HistoryEvicted == 0 {
		t.Fatalf("stats %+v: want within %d bytes, some evicted", st, limit)
	}
	kept := 0
	for c := range channels {
		name := fmt.Sprintf("c%d", c)
		msgs := replayOf(hub, name)
		if len(msgs) > 0 {
			checkSuffix(t, name, msgs, msgs[len(msgs)-1].Seq)
		}
		kept += len(msgs)
	}
	if kept != st.HistoryMessages {
		t.Fatalf("channels replay %d messages, stats say %d kept", kept, st.HistoryMessages)
	}
	hub.Sweep(time.Now().Add(2 * time.Hour))
	if st := hub.Stats(); st.HistoryMessages != 0 || st.HistoryBytes != 0 || st.Channels != 0 {
		t.Fatalf("after expiry: %+v", st)
	}
}
