package cluster

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// lostStats returns c's delivery counters for the member named name
// among the members declared dead whose queues are kept.
func lostStats(c *Cluster, name string) (PeerStats, bool) {
	for _, p := range c.Stats().Lost {
		if p.Name == name {
			return p, true
		}
	}
	return PeerStats{}, false
}

// dropped sums the operations c dropped, whatever the reason.
func dropped(c *Cluster) uint64 {
	d := c.Stats().Dropped
	return d.QueueFull + d.RetryWindow + d.MemberGone
}

// suspicions is a slog.Handler counting memberlist's "Suspect …" lines:
// a member suspected of having failed, after its probe, the indirect
// probes and the TCP fallback all went unanswered.
type suspicions struct{ n *atomic.Int64 }

func (h suspicions) Enabled(context.Context, slog.Level) bool { return true }
func (h suspicions) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h suspicions) WithGroup(string) slog.Handler            { return h }
func (h suspicions) Handle(_ context.Context, r slog.Record) error {
	if strings.HasPrefix(r.Message, "Suspect ") {
		h.n.Add(1)
	}
	return nil
}

// A tier on the WAN profile whose every packet, stream write and
// operations request takes 100ms one way converges, delivers operations
// in order and declares no member dead while it runs for more than two
// WAN probe rounds; at 700ms one way (1.4s round trips, past the local
// and LAN profiles' probe intervals: a local tier suspects members every
// few seconds then), no member is even suspected.
func TestWANProfileUnderInjectedLatency(t *testing.T) {
	t.Parallel()
	faults := []*Faults{{}, {}, {}}
	for _, f := range faults {
		f.Delay(100 * time.Millisecond)
	}
	var suspected atomic.Int64
	ms := startTier(t, 3, func(i int, c *Config) {
		c.Local, c.Profile, c.Faults = false, ProfileWAN, faults[i]
		c.Log = slog.New(suspicions{&suspected})
	})
	const n = 20
	for i := 1; i <= n; i++ {
		ms[0].Broadcast("publish", opData(i))
	}
	waitFor(t, "m0 to deliver every operation", func() bool { return delivered(ms[0].Cluster, n) })
	for _, m := range ms[1:] {
		checkInOrder(t, m.name, m.got.snapshot(), "m0", n, false)
	}
	// Two probe rounds of every member (5s each on the WAN profile) at
	// each delay: no member is declared dead, none leaves the member list.
	for _, delay := range []time.Duration{100 * time.Millisecond, 700 * time.Millisecond} {
		for _, f := range faults {
			f.Delay(delay)
		}
		deadline := time.Now().Add(11 * time.Second)
		for time.Now().Before(deadline) {
			for _, m := range ms {
				if st := m.Stats(); st.Failed != 0 || m.NumMembers() != 3 || len(st.Peers) != 2 {
					t.Fatalf("%s flapped under %v of latency: %d members, %d declared dead", m.name, delay, m.NumMembers(), st.Failed)
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
		if k := suspected.Load(); k != 0 {
			t.Fatalf("%d suspicions under %v of latency", k, delay)
		}
	}
	ms[1].Broadcast("publish", opData(1))
	waitFor(t, "m1's operation to reach m2 at 700ms", func() bool { return ms[2].got.len() == n+1 })
	for i, f := range faults {
		if f.Delayed() == 0 {
			t.Fatalf("m%d: no traffic was delayed", i)
		}
		if st := ms[i].Stats(); st.Profile != ProfileWAN {
			t.Fatalf("m%d runs the %q profile", i, st.Profile)
		}
	}
}

// partitionTier starts three local-profile members with fast failure
// detection (not waiting for confirmations) and push/pull, m2's traffic behind faults, memberlist's
// gossip to dead members short (so that a heal needs rejoin) and window
// as the retry window.
func partitionTier(t *testing.T, window time.Duration) ([]*member, *Faults) {
	faults := &Faults{}
	ms := startTier(t, 3, func(i int, c *Config) {
		c.RetryWindow, c.Rejoin, c.PushPull = window, 300*time.Millisecond, 500*time.Millisecond
		c.Tune = func(mc *memberlist.Config) {
			mc.GossipToTheDeadTime = 500 * time.Millisecond
			mc.SuspicionMaxTimeoutMult = 1 // declared dead 3s after suspected, confirmed or not
		}
		if i == 2 {
			c.Faults = faults
		}
	})
	return ms, faults
}

// A member cut off from the others longer than it takes to declare it
// dead (and longer than memberlist gossips to the dead) gets, once the
// cut heals, every operation broadcast meanwhile, before and after it was
// declared dead, in order: its queue was kept, the tier found it again
// (rejoin), and nothing was dropped. What its side broadcast during the
// cut reaches the others likewise.
func TestPartitionHealsAndDeliversQueuedOperations(t *testing.T) {
	t.Parallel()
	ms, faults := partitionTier(t, time.Minute)
	faults.Cut(true)
	const before, after = 5, 5
	for i := 1; i <= before; i++ {
		ms[0].Broadcast("publish", opData(i))
	}
	waitFor(t, "m1 to receive the operations", func() bool { return ms[1].got.len() == before })
	ms[2].Broadcast("publish", opData(1)) // from the cut side
	waitFor(t, "m0 and m1 to declare m2 dead", func() bool {
		_, lost0 := lostStats(ms[0].Cluster, "m2")
		_, lost1 := lostStats(ms[1].Cluster, "m2")
		return lost0 && lost1 && ms[0].NumMembers() == 2 && ms[1].NumMembers() == 2
	})
	waitFor(t, "m2 to be alone", func() bool { return ms[2].NumMembers() == 1 })
	for i := before + 1; i <= before+after; i++ {
		ms[0].Broadcast("publish", opData(i))
	}
	waitFor(t, "m1 to receive the later operations", func() bool { return ms[1].got.len() == before+after })
	// Longer than memberlist gossips to the dead (500ms here), a few
	// rejoin rounds: only rejoin can end the split now.
	time.Sleep(2 * time.Second)
	if ms[2].got.len() != 0 || faults.Lost() == 0 {
		t.Fatalf("the cut let %d operations through, failed %d exchanges", ms[2].got.len(), faults.Lost())
	}
	p, _ := lostStats(ms[0].Cluster, "m2")
	if p.Queued != before+after || p.Failures == 0 {
		t.Fatalf("m0's kept queue for m2: %+v, want all %d operations", p, before+after)
	}

	faults.Cut(false)
	for _, m := range ms {
		waitFor(t, m.name+" to see the whole tier again", func() bool {
			return m.NumMembers() == 3 && len(m.Stats().Peers) == 2 && len(m.Stats().Lost) == 0
		})
	}
	waitFor(t, "m0 to deliver everything to m2", func() bool { return delivered(ms[0].Cluster, before+after) })
	checkInOrder(t, "m2", ms[2].got.snapshot(), "m0", before+after, false)
	waitFor(t, "m2's own operation to reach m0", func() bool {
		return slices.ContainsFunc(ms[0].got.snapshot(), func(op Op) bool { return op.Source == "m2" })
	})
	var rejoins uint64
	for _, m := range ms {
		if d := dropped(m.Cluster); d != 0 {
			t.Errorf("%s dropped %d operations: %+v", m.name, d, m.Stats().Dropped)
		}
		rejoins += m.Stats().Rejoins
	}
	if rejoins == 0 {
		t.Error("the tier healed without a rejoin")
	}
	if ms[0].Stats().Failed == 0 || ms[2].Stats().Failed == 0 {
		t.Error("no member counted the others declared dead")
	}
}

// A cut longer than the retry window loses operations, but never
// silently: each one broadcast during it is either delivered or counted
// as dropped, those queued too long as retry_window and those still kept
// for the member declared dead when its window ends as member_gone. After
// the heal, new operations reach it again.
func TestPartitionLongerThanRetryWindowCountsDrops(t *testing.T) {
	t.Parallel()
	const window = time.Second
	ms, faults := partitionTier(t, window)
	faults.Cut(true)
	const early, late = 4, 3
	for i := 1; i <= early; i++ {
		ms[0].Broadcast("publish", opData(i))
	}
	waitFor(t, "m0's early operations to pass their retry window", func() bool {
		return ms[0].Stats().Dropped.RetryWindow == early
	})
	waitFor(t, "m0 to declare m2 dead", func() bool {
		_, lost := lostStats(ms[0].Cluster, "m2")
		return lost && ms[0].NumMembers() == 2
	})
	for i := early + 1; i <= early+late; i++ {
		ms[0].Broadcast("publish", opData(i))
	}
	waitFor(t, "m0 to drop the kept queue for m2", func() bool {
		_, lost := lostStats(ms[0].Cluster, "m2")
		return !lost && dropped(ms[0].Cluster) == early+late
	})
	if d := ms[0].Stats().Dropped; d.QueueFull != 0 || d.RetryWindow+d.MemberGone != early+late {
		t.Fatalf("m0's drops: %+v", d)
	}
	if ms[2].got.len() != 0 {
		t.Fatalf("m2 received %d operations through the cut", ms[2].got.len())
	}
	faults.Cut(false)
	waitFor(t, "m0 to see m2 again", func() bool {
		_, ok := peerStats(ms[0].Cluster, "m2")
		return ok && ms[0].NumMembers() == 3
	})
	ms[0].Broadcast("publish", opData(early+late+1))
	waitFor(t, "m2 to receive the operation after the heal", func() bool { return ms[2].got.len() == 1 })
	if op := ms[2].got.snapshot()[0]; op.Seq != early+late+1 {
		t.Fatalf("m2 got op %d, want only the one after the heal", op.Seq)
	}
}
