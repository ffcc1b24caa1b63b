package fanout

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// idMsg is a message with publish ids; its item is its id.
func idMsg(channel, id, prev string) *Message {
	m := NewMessage(channel, []byte(id))
	m.ID, m.PrevID = id, prev
	return m
}

// gotIDs lists the IDs of what s was handed, checking that Seq and Pos
// grow along with the order of delivery.
func gotIDs(t *testing.T, s *msgSub) string {
	t.Helper()
	var ids []string
	for i, m := range s.got {
		if i > 0 && (m.Seq <= s.got[i-1].Seq || m.Pos <= s.got[i-1].Pos) {
			t.Fatalf("message %s delivered after %s with seq %d, pos %d (after %d, %d)",
				m.ID, s.got[i-1].ID, m.Seq, m.Pos, s.got[i-1].Seq, s.got[i-1].Pos)
		}
		ids = append(ids, m.ID)
	}
	return strings.Join(ids, ",")
}

// wantDelivered checks the IDs of what s was handed, in order, and of
// the messages OnDeliver was called for (noted, from seqHub).
func wantDelivered(t *testing.T, s *msgSub, noted *[]string, want string) {
	t.Helper()
	if got := gotIDs(t, s); got != want {
		t.Fatalf("delivered %q, want %s", got, want)
	}
	if got := strings.Join(*noted, ","); got != want {
		t.Fatalf("OnDeliver for %q, want %s", got, want)
	}
}

// seqHub is a Hub whose OnDeliver records the IDs it is called for
// (calling back into the Hub, as it may), and a subscriber of channel
// "c".
func seqHub(cfg HubConfig) (*Hub, *msgSub, *[]string) {
	var mu sync.Mutex
	var noted []string
	var h *Hub
	cfg.OnDeliver = func(m *Message) {
		if m.Pos == 0 {
			panic("OnDeliver before Pos is set")
		}
		h.LastID(m.Channel) // no Hub lock is held: this does not deadlock
		mu.Lock()
		noted = append(noted, m.ID)
		mu.Unlock()
	}
	h = NewHub(cfg)
	s := &msgSub{kind: -1}
	h.Subscribe("c", s)
	return h, s, &noted
}

func TestDuplicateIDDroppedWithinTTL(t *testing.T) {
	h, s, noted := seqHub(HubConfig{HistorySize: 8, IDCacheTTL: time.Minute})
	t0 := time.Now()
	if n := h.publish(idMsg("c", "a", ""), t0); n != 1 {
		t.Fatalf("first publish reached %d, want 1", n)
	}
	if n := h.publish(idMsg("c", "a", ""), t0.Add(30*time.Second)); n != 0 {
		t.Fatalf("duplicate reached %d, want 0", n)
	}
	h.publish(idMsg("other", "a", ""), t0.Add(30*time.Second)) // another channel: not a duplicate
	if got := gotIDs(t, s); got != "a" {
		t.Fatalf("delivered %q, want a once", got)
	}
	if r := replayOf(h, "c"); len(r) != 1 {
		t.Fatalf("history keeps %d messages, want 1 (not the duplicate)", len(r))
	}
	h.publish(idMsg("c", "a", ""), t0.Add(61*time.Second)) // the TTL is over
	if got := gotIDs(t, s); got != "a,a" {
		t.Fatalf("delivered %q, want a again after the TTL", got)
	}
	if st := h.Stats(); st.Duplicates != 1 || st.Published != 4 || st.Delivered != 2 {
		t.Fatalf("stats %+v: want 1 duplicate, 4 published, 2 delivered", st)
	}
	if got := strings.Join(*noted, ","); got != "a,a,a" { // c, other, c
		t.Fatalf("OnDeliver for %q, want a,a,a", got)
	}
}

// TestIDsRememberedWithoutSubscribers: a channel with neither
// subscribers nor history still remembers its ids and last id.
func TestIDsRememberedWithoutSubscribers(t *testing.T) {
	h := NewHub(HubConfig{})
	h.Publish(idMsg("c", "a", ""))
	if id := h.LastID("c"); id != "a" {
		t.Fatalf("last id %q, want a", id)
	}
	s := &msgSub{kind: -1}
	h.Subscribe("c", s)
	h.Publish(idMsg("c", "a", ""))
	h.Publish(idMsg("c", "b", ""))
	if got := gotIDs(t, s); got != "b" {
		t.Fatalf("delivered %q, want b only", got)
	}
	// Unsubscribing does not forget them either.
	h.Unsubscribe("c", s)
	if id := h.LastID("c"); id != "b" {
		t.Fatalf("last id %q after the unsubscribe, want b", id)
	}
	if st := h.Stats(); st.Channels != 1 || st.Duplicates != 1 {
		t.Fatalf("stats %+v: want 1 channel, 1 duplicate", st)
	}
}

func TestIDCacheBoundedPerChannel(t *testing.T) {
	h, s, _ := seqHub(HubConfig{SequenceWait: -1})
	now := time.Now()
	for i := range IDCacheMax + 1 {
		h.publish(idMsg("c", fmt.Sprint(i), ""), now)
	}
	h.publish(idMsg("c", "0", ""), now)                    // pushed out by newer ids
	h.publish(idMsg("c", fmt.Sprint(IDCacheMax), ""), now) // still remembered
	if n, st := len(s.got), h.Stats(); n != IDCacheMax+2 || st.Duplicates != 1 {
		t.Fatalf("%d delivered, %d duplicates; want %d, 1", n, st.Duplicates, IDCacheMax+2)
	}
}

func TestIDCacheTTLNegativeKeepsDuplicates(t *testing.T) {
	h, s, _ := seqHub(HubConfig{IDCacheTTL: -1})
	h.Publish(idMsg("c", "a", ""))
	h.Publish(idMsg("c", "a", ""))
	if got := gotIDs(t, s); got != "a,a" {
		t.Fatalf("delivered %q, want a twice", got)
	}
}

func TestParkedReleasedWhenPredecessorArrives(t *testing.T) {
	h, s, noted := seqHub(HubConfig{HistorySize: 8})
	for _, m := range []*Message{idMsg("c", "1", ""), idMsg("c", "2", "1"), idMsg("c", "4", "3")} {
		h.Publish(m)
	}
	wantDelivered(t, s, noted, "1,2")
	if r := replayOf(h, "c"); len(r) != 2 {
		t.Fatalf("history keeps %d messages, want 2 (not the parked one)", len(r))
	}
	if st := h.Stats(); st.Parked != 1 || st.Pending != 1 {
		t.Fatalf("stats %+v: want 1 parked, 1 pending", st)
	}
	if n := h.Publish(idMsg("c", "3", "2")); n != 1 {
		t.Fatalf("publish of 3 reached %d, want 1", n)
	}
	wantDelivered(t, s, noted, "1,2,3,4")
	if id := h.LastID("c"); id != "4" {
		t.Fatalf("last id %q, want 4", id)
	}
	// History replays them in delivery order.
	var ids []string
	for _, m := range replayOf(h, "c") {
		ids = append(ids, m.ID)
	}
	if got := strings.Join(ids, ","); got != "1,2,3,4" {
		t.Fatalf("history replays %q, want 1,2,3,4", got)
	}
	if st := h.Stats(); st.Pending != 0 || st.ReleasedLate != 0 || st.Delivered != 4 {
		t.Fatalf("stats %+v: want nothing pending, none late, 4 delivered", st)
	}
}

func TestParkedReleasedInAChain(t *testing.T) {
	h, s, noted := seqHub(HubConfig{})
	h.Publish(idMsg("c", "1", ""))
	for _, id := range []string{"5", "3", "4"} {
		prev := fmt.Sprint(id[0] - '0' - 1)
		h.Publish(idMsg("c", id, prev))
	}
	if got := gotIDs(t, s); got != "1" {
		t.Fatalf("delivered %q, want 1", got)
	}
	h.Publish(idMsg("c", "2", "1"))
	wantDelivered(t, s, noted, "1,2,3,4,5")
	if st := h.Stats(); st.Parked != 3 || st.Pending != 0 {
		t.Fatalf("stats %+v: want 3 parked, none pending", st)
	}
}

// TestParkedReleasedAfterTheWait: a message whose predecessor never comes
// is delivered once it has waited SequenceWait, each channel's oldest
// first, followed by those waiting for it.
func TestParkedReleasedAfterTheWait(t *testing.T) {
	const wait = 5 * time.Second
	h, s, noted := seqHub(HubConfig{})
	t0 := time.Now()
	h.publish(idMsg("c", "1", ""), t0)
	h.publish(idMsg("c", "3", "2"), t0)
	h.publish(idMsg("c", "7", "6"), t0.Add(time.Second))
	h.publish(idMsg("c", "4", "3"), t0.Add(2*time.Second))
	h.ReleaseExpired(t0.Add(wait - time.Millisecond))
	if got := gotIDs(t, s); got != "1" {
		t.Fatalf("delivered %q before the wait is over, want 1", got)
	}
	h.ReleaseExpired(t0.Add(wait))
	if got := gotIDs(t, s); got != "1,3,4" {
		t.Fatalf("delivered %q, want 1,3,4 (3 waited long enough, 4 follows it)", got)
	}
	if id := h.LastID("c"); id != "4" {
		t.Fatalf("last id %q, want 4", id)
	}
	h.ReleaseExpired(t0.Add(time.Second + wait))
	wantDelivered(t, s, noted, "1,3,4,7")
	if st := h.Stats(); st.Parked != 3 || st.ReleasedLate != 2 || st.Pending != 0 {
		t.Fatalf("stats %+v: want 3 parked, 2 released late, none pending", st)
	}
}

func TestSecondWaitingForSamePrevIDDropped(t *testing.T) {
	h, s, _ := seqHub(HubConfig{})
	h.Publish(idMsg("c", "1", ""))
	h.Publish(idMsg("c", "3", "2"))
	h.Publish(idMsg("c", "3b", "2"))
	h.Publish(idMsg("c", "2", "1"))
	if got := gotIDs(t, s); got != "1,2,3" {
		t.Fatalf("delivered %q, want 1,2,3", got)
	}
	if st := h.Stats(); st.SequenceDropped != 1 || st.Parked != 1 {
		t.Fatalf("stats %+v: want 1 dropped, 1 parked", st)
	}
}

func TestSequencePendingMax(t *testing.T) {
	h, s, _ := seqHub(HubConfig{SequencePendingMax: 3})
	h.Publish(idMsg("c", "0", ""))
	for i := range 4 { // i+1 waits for 100+i: never comes
		h.Publish(idMsg("c", fmt.Sprint(i+1), fmt.Sprint(100+i)))
	}
	if st := h.Stats(); st.Parked != 3 || st.Pending != 3 || st.SequenceDropped != 1 {
		t.Fatalf("stats %+v: want 3 parked and pending, 1 dropped", st)
	}
	h.ReleaseExpired(time.Now().Add(time.Hour))
	if got := gotIDs(t, s); got != "0,1,2,3" {
		t.Fatalf("delivered %q, want 0,1,2,3", got)
	}
	// Another channel has room of its own.
	h.Publish(idMsg("d", "0", ""))
	h.Publish(idMsg("d", "2", "1"))
	if st := h.Stats(); st.Pending != 1 {
		t.Fatalf("stats %+v: want 1 pending", st)
	}
}

func TestNoSeqDeliveredAtOnce(t *testing.T) {
	h, s, _ := seqHub(HubConfig{})
	h.Publish(idMsg("c", "1", ""))
	m := idMsg("c", "3", "2")
	m.NoSeq = true
	h.Publish(m)
	if got := gotIDs(t, s); got != "1,3" {
		t.Fatalf("delivered %q, want 1,3", got)
	}
	if id := h.LastID("c"); id != "3" {
		t.Fatalf("last id %q, want 3", id)
	}
	// A duplicate is a duplicate, sequenced or not.
	m = idMsg("c", "3", "")
	m.NoSeq = true
	h.Publish(m)
	if st := h.Stats(); st.Duplicates != 1 || st.Parked != 0 {
		t.Fatalf("stats %+v: want 1 duplicate, none parked", st)
	}
}

func TestSequenceWaitNegativeNeverParks(t *testing.T) {
	h, s, _ := seqHub(HubConfig{SequenceWait: -1})
	h.Publish(idMsg("c", "1", ""))
	h.Publish(idMsg("c", "3", "2"))
	h.Publish(idMsg("c", "2", "1"))
	if got := gotIDs(t, s); got != "1,3,2" {
		t.Fatalf("delivered %q, want 1,3,2 (publish order)", got)
	}
}

// TestLastID: the id of the last message delivered, cleared by one
// without an id (after which nothing waits: the last id is unknown).
func TestLastID(t *testing.T) {
	h, s, _ := seqHub(HubConfig{})
	if id := h.LastID("nowhere"); id != "" {
		t.Fatalf("unknown channel's last id %q", id)
	}
	h.Publish(idMsg("c", "1", ""))
	h.Publish(idMsg("c", "2", "1"))
	if id := h.LastID("c"); id != "2" {
		t.Fatalf("last id %q, want 2", id)
	}
	h.Publish(NewMessage("c", []byte("no id")))
	if id := h.LastID("c"); id != "" {
		t.Fatalf("last id %q after a message without one, want none", id)
	}
	h.Publish(idMsg("c", "9", "8"))
	if n := len(s.got); n != 4 {
		t.Fatalf("%d delivered, want 4 (9 does not wait: no last id)", n)
	}
	if id := h.LastID("c"); id != "9" {
		t.Fatalf("last id %q, want 9", id)
	}
}

// TestSweepKeepsChannelsWithIDs: Sweep forgets a channel without
// subscribers or history only once nothing waits on it and its newest id
// is older than the id TTL.
func TestSweepKeepsChannelsWithIDs(t *testing.T) {
	h := NewHub(HubConfig{IDCacheTTL: time.Minute, SequenceWait: time.Hour})
	t0 := time.Now()
	h.publish(idMsg("c", "1", ""), t0)
	h.publish(idMsg("c", "3", "2"), t0)
	h.Sweep(t0.Add(2 * time.Minute))
	if st := h.Stats(); st.Channels != 1 || st.Pending != 1 {
		t.Fatalf("stats %+v after a sweep: want the channel and its parked message kept", st)
	}
	h.ReleaseExpired(t0.Add(time.Hour))
	if id := h.LastID("c"); id != "3" {
		t.Fatalf("last id %q, want 3", id)
	}
	h.Sweep(t0.Add(2 * time.Minute))
	if st := h.Stats(); st.Channels != 0 {
		t.Fatalf("stats %+v: want the channel forgotten", st)
	}

	h.publish(idMsg("d", "1", ""), t0)
	h.Sweep(t0.Add(30 * time.Second))
	if id := h.LastID("d"); id != "1" {
		t.Fatalf("last id %q within the TTL, want 1", id)
	}
	h.Sweep(t0.Add(61 * time.Second))
	if st := h.Stats(); st.Channels != 0 {
		t.Fatalf("stats %+v: want the channel forgotten after the TTL", st)
	}
	h.publish(idMsg("d", "1", ""), t0.Add(62*time.Second))
	if st := h.Stats(); st.Duplicates != 0 {
		t.Fatalf("stats %+v: want no duplicate after the TTL", st)
	}
}

// TestSequencingConcurrentPublishAndRelease: one publisher sends a chain
// of ids with neighbours swapped while another goroutine releases
// whatever waits; every message is delivered once, Seq and Pos in
// delivery order, and OnDeliver sees each.
func TestSequencingConcurrentPublishAndRelease(t *testing.T) {
	const n = 2000
	// Once the releases break the order, every message waits (for a
	// predecessor delivered already): room for all of them.
	h, s, noted := seqHub(HubConfig{SequencePendingMax: n})
	h.Publish(idMsg("c", "0", ""))
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
				h.ReleaseExpired(time.Now().Add(DefaultSequenceWait))
			}
		}
	}()
	for i := 1; i < n; i += 2 { // i+1 before i
		h.Publish(idMsg("c", fmt.Sprint(i+1), fmt.Sprint(i)))
		h.Publish(idMsg("c", fmt.Sprint(i), fmt.Sprint(i-1)))
	}
	close(done)
	wg.Wait()
	h.ReleaseExpired(time.Now().Add(time.Hour))
	gotIDs(t, s)
	var got []string
	for _, m := range s.got {
		got = append(got, m.ID)
	}
	slices.Sort(got)
	if got = slices.Compact(got); len(got) != n+1 || len(s.got) != n+1 {
		t.Fatalf("%d delivered, %d distinct; want %d once each (%+v)", len(s.got), len(got), n+1, h.Stats())
	}
	if len(*noted) != n+1 {
		t.Fatalf("OnDeliver called %d times, want %d", len(*noted), n+1)
	}
}
