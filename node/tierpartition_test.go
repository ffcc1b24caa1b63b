package node

import (
	"bufio"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgepush/edgepush/cluster"
	"github.com/hashicorp/memberlist"
)

// switchedOrigin is an origin that can be taken down: while down, its
// connections are closed unanswered.
type switchedOrigin struct {
	http.Handler
	down atomic.Bool
}

func (o *switchedOrigin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if o.down.Load() {
		panic(http.ErrAbortHandler)
	}
	o.Handler.ServeHTTP(w, r)
}

// partitionTier starts three nodes in front of origin, node 2's tier
// traffic (memberlist and operations, both ways) behind the returned
// faults, with fast push/pull, rejoin and failure detection, memberlist's
// gossip to dead members short (so that only rejoin can end a cut longer
// than failure detection) and window as the retry window.
func partitionTier(t *testing.T, origin http.Handler, window time.Duration) ([]*testNode, *cluster.Faults) {
	t.Helper()
	faults := &cluster.Faults{}
	nodes := startTierTuned(t, 3, origin, func(i int, s *Server) {
		s.tierHook = func(c *cluster.Config) {
			c.Rejoin = 300 * time.Millisecond
			c.Tune = func(mc *memberlist.Config) {
				mc.GossipToTheDeadTime = 500 * time.Millisecond
				mc.SuspicionMaxTimeoutMult = 1 // declared dead 3s after suspected, confirmed or not
			}
			if i == 2 {
				c.Faults = faults
			}
		}
	}, func(i int, c *Config) {
		c.PurgeInterval, c.ClusterPushPull, c.ClusterRetryWindow = 0, 300*time.Millisecond, window
	})
	return nodes, faults
}

// lastingStreams is counterStreams for streams that outlive dialRaw's
// deadline: they are read again after a cut and its heal.
func lastingStreams(t *testing.T, nodes []*testNode) []*bufio.Reader {
	t.Helper()
	var rs []*bufio.Reader
	for i, node := range nodes {
		c := dialRaw(t, node.Addr())
		c.SetDeadline(time.Now().Add(2 * time.Minute))
		r := bufio.NewReader(c.get(t, "/value").Body)
		if got := readLine(t, r); got != "value 0\n" {
			t.Fatalf("node %d: stream opened with %q", i, got)
		}
		rs = append(rs, r)
	}
	for _, node := range nodes {
		node.waitSubscribers(t, "counter", 1)
	}
	return rs
}

// purgeKey purges the counter's key on node, hard.
func purgeKey(t *testing.T, node *testNode) {
	t.Helper()
	resp, err := http.Post(node.ctl+"/purge/", "application/json", strings.NewReader(`{"keys":["counter"],"soft":false}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("purge: %d", resp.StatusCode)
	}
}

// tierDropped is node's edgepush_tier_ops_dropped_total, all reasons.
func tierDropped(t *testing.T, node *testNode) float64 {
	m := scrape(t, node)
	return m[`edgepush_tier_ops_dropped_total{reason="queue_full"}`] + m[`edgepush_tier_ops_dropped_total{reason="retry_window"}`] +
		m[`edgepush_tier_ops_dropped_total{reason="member_gone"}`]
}

// TestTierPartitionShortCut: a node cut off from the tier (memberlist and
// operations, both ways) while the origin is down too keeps serving its
// clients from its cache; publishes made elsewhere during the cut, before
// and after the others declare it dead, reach its held clients after the
// heal, in order, and a purge made during the cut is applied there, so
// its new clients get fresh data; nothing is dropped.
func TestTierPartitionShortCut(t *testing.T) {
	o := &counterOrigin{}
	origin := &switchedOrigin{Handler: o}
	nodes, faults := partitionTier(t, origin, time.Minute)
	streams := lastingStreams(t, nodes) // caches "value 0" everywhere
	cut := nodes[2]

	origin.down.Store(true)
	faults.Cut(true)
	fetches := o.fetches.Load()
	if line := firstLine(t, cut); line != "value 0\n" {
		t.Fatalf("cut node, origin down: a new client got %q, want the cached value", line)
	}
	nodes[0].publish(t, streamItem("counter", "during the cut\n"))
	waitForUpTo(t, 40*time.Second, "nodes 0 and 1 to declare node 2 dead", func() bool {
		return nodes[0].tier.NumMembers() == 2 && nodes[1].tier.NumMembers() == 2
	})
	nodes[0].publish(t, streamItem("counter", "after node 2 was declared dead\n"))
	o.value.Store(5)
	purgeKey(t, nodes[0])
	for i, r := range streams[:2] {
		for _, want := range []string{"during the cut\n", "after node 2 was declared dead\n"} {
			if got := readLine(t, r); got != want {
				t.Fatalf("node %d's held stream got %q, want %q", i, got, want)
			}
		}
	}
	waitForUpTo(t, 20*time.Second, "node 2 to be alone", func() bool { return cut.tier.NumMembers() == 1 })
	if line := firstLine(t, cut); line != "value 0\n" || o.fetches.Load() != fetches {
		t.Fatalf("cut node, alone: a new client got %q after %d origin fetches, want the cached value", line, o.fetches.Load()-fetches)
	}
	if st := cut.tier.Stats(); st.Received != 0 || cut.Status().Purges.Run != 0 {
		t.Fatalf("operations crossed the cut: %+v", st)
	}

	origin.down.Store(false)
	faults.Cut(false)
	r := streams[2]
	for _, want := range []string{"during the cut\n", "after node 2 was declared dead\n"} {
		if got := readLine(t, r); got != want {
			t.Fatalf("node 2's held stream after the heal got %q, want %q", got, want)
		}
	}
	waitFor(t, "node 2 to apply the purge made during the cut", func() bool { return cut.Status().Purges.Run >= 1 })
	if line := firstLine(t, cut); line != "value 5\n" {
		t.Fatalf("node 2 after the heal: a new client got %q, want fresh data", line)
	}
	for i, node := range nodes {
		waitForTier(t, node, 3)
		if d := tierDropped(t, node); d != 0 {
			t.Errorf("node %d dropped %v operations", i, d)
		}
	}
	if m := scrape(t, nodes[0]); m["edgepush_tier_members_failed_total"] < 1 {
		t.Errorf("node 0 counted %v members declared dead", m["edgepush_tier_members_failed_total"])
	}
}

// TestTierPartitionLongerThanTheRetryWindow: what a cut longer than the
// retry window keeps from a node is counted, not lost silently: the
// publish and the purge-carrying operation for it are counted dropped in
// /metrics; the purge still reaches it after the heal through the
// push/pull exchange of recent purges, and new publishes reach its held
// clients again (the dropped one never does).
func TestTierPartitionLongerThanTheRetryWindow(t *testing.T) {
	o := &counterOrigin{}
	nodes, faults := partitionTier(t, o, time.Second)
	streams := lastingStreams(t, nodes)
	cut := nodes[2]

	faults.Cut(true)
	nodes[0].publish(t, streamItem("counter", "lost to node 2\n"))
	o.value.Store(7)
	purgeKey(t, nodes[0])
	for i, r := range streams[:2] {
		if got := readLine(t, r); got != "lost to node 2\n" {
			t.Fatalf("node %d's held stream got %q", i, got)
		}
	}
	waitForUpTo(t, 40*time.Second, "node 0 to count both operations for node 2 dropped", func() bool {
		return tierDropped(t, nodes[0]) == 2
	})
	if line := firstLine(t, cut); line != "value 0\n" {
		t.Fatalf("cut node: a new client got %q, want the cached value", line)
	}

	faults.Cut(false)
	for _, node := range nodes {
		waitForTier(t, node, 3)
	}
	waitFor(t, "node 2 to apply the missed purge", func() bool { return cut.Status().Purges.Run >= 1 })
	if st := cut.tier.Stats(); st.Replayed < 1 {
		t.Fatalf("node 2 tier stats %+v: want the purge from the log", st)
	}
	if line := firstLine(t, cut); line != "value 7\n" {
		t.Fatalf("node 2 after the heal: a new client got %q, want fresh data", line)
	}
	nodes[0].publish(t, streamItem("counter", "after the heal\n"))
	if got := readLine(t, streams[2]); got != "after the heal\n" {
		t.Fatalf("node 2's held stream got %q, want the publish after the heal (the dropped one never comes)", got)
	}
	m := scrape(t, nodes[0])
	if got := m[`edgepush_tier_ops_dropped_total{reason="retry_window"}`] + m[`edgepush_tier_ops_dropped_total{reason="member_gone"}`]; got != 2 {
		t.Fatalf("node 0's drops: %v", m)
	}
}
