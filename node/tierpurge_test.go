package node

import (
	"bufio"
	"testing"
	"time"
)

// counterStreams opens a held stream of /value (counterOrigin) on each
// node and checks its first line.
func counterStreams(t *testing.T, nodes []*testNode, want string) []*bufio.Reader {
	t.Helper()
	var rs []*bufio.Reader
	for i, node := range nodes {
		r := bufio.NewReader(dialRaw(t, node.Addr()).get(t, "/value").Body)
		if got := readLine(t, r); got != want {
			t.Fatalf("node %d: stream opened with %q, want %q", i, got, want)
		}
		rs = append(rs, r)
	}
	for _, node := range nodes {
		node.waitSubscribers(t, "counter", 1)
	}
	return rs
}

// firstLine opens a new stream of /value on node and returns its first
// line: the origin's answer, fresh or cached.
func firstLine(t testing.TB, node *testNode) string {
	t.Helper()
	c := dialRaw(t, node.Addr())
	defer c.Close()
	return readLine(t, bufio.NewReader(c.get(t, "/value").Body))
}

// TestTierPurgePublishReachesEveryNode: a purge-and-publish sent to one
// node of a three-node tier delivers its item to the clients held on
// every node and purges every node's cached copy, so a client that comes
// to the third node afterwards gets fresh data, not the pre-purge copy.
func TestTierPurgePublishReachesEveryNode(t *testing.T) {
	o := &counterOrigin{}
	nodes := startTier(t, 3, o)
	streams := counterStreams(t, nodes, "value 0\n") // also caches "value 0" on every node
	fetches := o.fetches.Load()
	if line := firstLine(t, nodes[2]); line != "value 0\n" || o.fetches.Load() != fetches {
		t.Fatalf("node 2 before the update: %q after %d origin fetches, want the cached value", line, o.fetches.Load()-fetches)
	}

	o.value.Store(1)
	out := nodes[0].purgePublish(t, 1)
	if len(out["purged"].([]any)) != 1 || out["published"].(float64) != 1 {
		t.Fatalf("purge-publish answered %v", out)
	}
	for i, r := range streams {
		if got := readLine(t, r); got != "value 1\n" {
			t.Fatalf("held stream on node %d got %q, want the published update", i, got)
		}
	}
	// A peer applies the purges before the items: the update reached node
	// 2's client, so node 2's cache is purged already.
	if line := firstLine(t, nodes[2]); line != "value 1\n" {
		t.Fatalf("new client on node 2 after the update: %q, want fresh data", line)
	}
	if got := o.fetches.Load() - fetches; got != 1 {
		t.Fatalf("%d origin fetches for node 2's new client, want 1", got)
	}
	for i, node := range nodes {
		if st := node.Status().Purges; st.Run != 1 {
			t.Fatalf("node %d ran %d purges, want 1", i, st.Run)
		}
	}
}

// TestTierPurgePublishCatchUpAppliesOnlyThePurge: a node that loses the
// forwarded purge-and-publish gets its purge part from the tier's log at
// the next push/pull, so its new clients get fresh data; the published
// item is not replayed to its held clients (it is long delivered
// elsewhere; a late copy would arrive out of order).
func TestTierPurgePublishCatchUpAppliesOnlyThePurge(t *testing.T) {
	o := &counterOrigin{}
	nodes := startTier(t, 3, o, func(i int, c *Config) { c.ClusterPushPull = 300 * time.Millisecond })
	streams := counterStreams(t, nodes, "value 0\n")
	missed := nodes[2]
	missed.tier.DropIncoming(true) // from now on it loses every forwarded operation

	o.value.Store(1)
	nodes[0].purgePublish(t, 1)
	for i, r := range streams[:2] {
		if got := readLine(t, r); got != "value 1\n" {
			t.Fatalf("held stream on node %d got %q, want the published update", i, got)
		}
	}
	// The purge comes with a push/pull; until then node 2 serves its
	// cached copy.
	waitForUpTo(t, 20*time.Second, "node 2 to apply the missed purge", func() bool {
		return firstLine(t, missed) == "value 1\n"
	})
	st := missed.tier.Stats()
	if st.Received != 0 || st.Replayed < 1 {
		t.Fatalf("node 2 tier stats %+v: want the operation from the log only", st)
	}
	if run := missed.Status().Purges.Run; run != 1 {
		t.Fatalf("node 2 ran %d purges, want 1", run)
	}
	// A publish from node 2 reaches every node (its outgoing operations
	// are not dropped): it must be the next line everywhere, with no late
	// copy of "value 1" before it on node 2 (nor a second one elsewhere).
	missed.publish(t, streamItem("counter", "marker\n"))
	for i, r := range streams {
		if got := readLine(t, r); got != "marker\n" {
			t.Fatalf("held stream on node %d got %q, want the marker: the published item was replayed", i, got)
		}
	}
	if p := missed.publishes.Load(); p != 1 {
		t.Fatalf("node 2 published %d items, want 1 (the marker)", p)
	}
}
