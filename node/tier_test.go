package node

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/edgepush/edgepush/cluster"
	"github.com/edgepush/edgepush/internal/testnet"
)

// startTier starts n nodes joined into one tier on loopback, all in front
// of handler, and waits until every node sees every other.
func startTier(t *testing.T, n int, handler http.Handler, mod ...func(i int, c *Config)) []*testNode {
	t.Helper()
	return startTierTuned(t, n, handler, nil, mod...)
}

// startTierTuned is startTier with tune (when not nil) called on each
// node between New and Start.
func startTierTuned(t testing.TB, n int, handler http.Handler, tune func(i int, s *Server), mod ...func(i int, c *Config)) []*testNode {
	t.Helper()
	var nodes []*testNode
	for i := range n {
		var tuneNode func(*Server)
		if tune != nil {
			tuneNode = func(s *Server) { tune(i, s) }
		}
		node := startNodeTuned(t, handler, testLog(), tuneNode, func(c *Config) {
			c.ClusterBind, c.ClusterLocal, c.NodeName = "127.0.0.1:0", true, fmt.Sprintf("node-%d", i)
			var seeds []string
			for _, prev := range nodes {
				seeds = append(seeds, prev.tier.LocalAddr())
			}
			c.Join = strings.Join(seeds, ",")
			for _, f := range mod {
				f(i, c)
			}
		})
		nodes = append(nodes, node)
	}
	for _, node := range nodes {
		waitForTier(t, node, n)
	}
	return nodes
}

func waitForTier(t testing.TB, node *testNode, n int) {
	t.Helper()
	deadline := time.Now().Add(2 * waitTimeout)
	for node.tier.NumMembers() != n || len(node.tier.Stats().Peers) != n-1 {
		if time.Now().After(deadline) {
			t.Fatalf("%s sees %d members, %d peers; want %d", node.cfg.NodeName, node.tier.NumMembers(), len(node.tier.Stats().Peers), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func streamOrigin() http.Handler {
	return gripOrigin("open\n", "Grip-Hold", "stream", "Grip-Channel", "tier")
}

func openStreams(t *testing.T, nodes []*testNode) []*bufio.Reader {
	t.Helper()
	var rs []*bufio.Reader
	for _, node := range nodes {
		r := bufio.NewReader(dialRaw(t, node.Addr()).get(t, "/").Body)
		readLine(t, r)
		node.waitSubscribers(t, "tier", 1)
		rs = append(rs, r)
	}
	return rs
}

func TestTierPublishAtAnyNodeReachesAll(t *testing.T) {
	for _, size := range []int{3, 5} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			nodes := startTier(t, size, streamOrigin())
			streams := openStreams(t, nodes)
			for k, node := range nodes {
				node.publish(t, streamItem("tier", fmt.Sprintf("from %d\n", k)))
			}
			// Each source's order is kept; sources interleave freely.
			for i, r := range streams {
				got := map[string]bool{}
				for range nodes {
					got[readLine(t, r)] = true
				}
				for k := range nodes {
					if !got[fmt.Sprintf("from %d\n", k)] {
						t.Fatalf("node %d missed the publish from node %d: %v", i, k, got)
					}
				}
			}
			st := nodes[0].tier.Stats()
			if st.Received != uint64(size-1) || len(st.Members) != size {
				t.Fatalf("node 0 tier stats %+v", st)
			}
		})
	}
}

func TestTierPurgeAtAnyNodeInvalidatesAll(t *testing.T) {
	o := &counterOrigin{}
	nodes := startTier(t, 3, o, func(i int, c *Config) { c.PurgeInterval = 0 })
	get := func(node *testNode) (string, string) {
		resp := dialRaw(t, node.Addr()).get(t, "/value")
		line, _ := bufio.NewReader(resp.Body).ReadString('\n')
		return line, resp.Header.Get("X-Cache")
	}
	// Cache the value on every node (the counter origin holds streams;
	// read the first line and hang up).
	for _, node := range nodes {
		if v, _ := get(node); v != "value 0\n" {
			t.Fatalf("warm: %q", v)
		}
	}
	fetches := o.fetches.Load()
	for _, node := range nodes {
		get(node)
	}
	if o.fetches.Load() != fetches {
		t.Fatal("cached value was not served from cache")
	}
	o.value.Store(7)
	resp, err := http.Post(nodes[1].ctl+"/purge/", "application/json", strings.NewReader(`{"keys":["counter"],"soft":false}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for i, node := range nodes {
		waitFor(t, fmt.Sprintf("node %d to apply the purge", i), func() bool { return node.Status().Purges.Run >= 1 })
		if v, _ := get(node); v != "value 7\n" {
			t.Fatalf("node %d after the purge: %q", i, v)
		}
	}
}

// TestTierSurvivesAKilledNodeAndItsRejoin: a member that takes no
// operations holds up no one, a killed one leaves the member list, and it
// comes back under its name and address.
func TestTierSurvivesAKilledNodeAndItsRejoin(t *testing.T) {
	nodes := startTier(t, 3, streamOrigin())
	streams := openStreams(t, nodes[:2])
	dead := nodes[2]
	deadAddr := dead.tier.LocalAddr()
	publish := func(i int) {
		t.Helper()
		nodes[i%2].publish(t, streamItem("tier", fmt.Sprintf("m%d\n", i)))
		for j, r := range streams {
			if got := readLine(t, r); got != fmt.Sprintf("m%d\n", i) {
				t.Fatalf("survivor %d: %q, want m%d", j, got, i)
			}
		}
	}
	// First node 2 stops taking operations (its control API is gone)
	// while its memberlist still answers, so the others count it as a
	// member for as long as this takes: every operation for it waits in
	// their queues, and publishes reach the survivors all the same.
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := dead.control.ShutdownWithContext(ctx); err != nil {
		t.Fatal(err)
	}
	const msgs = 20
	for i := range msgs {
		publish(i)
	}
	for i, node := range nodes[:2] {
		if m := node.tier.NumMembers(); m != 3 {
			t.Fatalf("node %d counts %d members, want the unreachable one still among them", i, m)
		}
		waitFor(t, fmt.Sprintf("node %d to fail delivering to node 2", i), func() bool {
			p, ok := peerStats(node, "node-2")
			return ok && p.Failures > 0
		})
		if p, _ := peerStats(node, "node-2"); p.Queued != msgs/2 || p.Sent != 0 {
			t.Fatalf("node %d's queue for node 2: %+v, want its %d publishes waiting", i, p, msgs/2)
		}
	}
	// Then it is killed: its tier stops without a graceful leave. Its
	// address is held (TCP and UDP, as memberlist binds them) from the
	// moment it is free until node 2 comes back on it, so that nothing
	// else on this host can take it meanwhile; the survivors' probes to
	// it go unanswered as they would to a dead process.
	dead.tier.Shutdown()
	release := testnet.ReserveAddr(t, deadAddr, 20*time.Second)
	dead.Shutdown(ctx)
	for i := msgs; i < msgs+4; i++ {
		publish(i) // the survivors go on as before
	}
	// Failure detection takes a few probe rounds (~5s with local
	// timings), longer on a loaded machine.
	// memberlist counts it out before its leave event reaches the
	// tier's watcher, which stops delivering to it: both are waited for.
	waitForUpTo(t, 30*time.Second, "the dead node to leave the member list and the survivors to stop delivering to it", func() bool {
		for _, node := range nodes[:2] {
			if _, ok := peerStats(node, "node-2"); ok || node.tier.NumMembers() != 2 {
				return false
			}
		}
		return true
	})
	// It restarts with the same name and address and receives publishes
	// again.
	release()
	back := startNode(t, streamOrigin(), func(c *Config) {
		c.ClusterBind, c.ClusterLocal, c.NodeName, c.Join = deadAddr, true, "node-2", nodes[0].tier.LocalAddr()
	})
	waitForTier(t, nodes[0], 3)
	r := openStreams(t, []*testNode{back})[0]
	nodes[0].publish(t, streamItem("tier", "welcome back\n"))
	if got := readLine(t, r); got != "welcome back\n" {
		t.Fatalf("rejoined node got %q", got)
	}
}

// peerStats returns node's delivery counters for the member named name.
func peerStats(node *testNode, name string) (cluster.PeerStats, bool) {
	for _, p := range node.tier.Stats().Peers {
		if p.Name == name {
			return p, true
		}
	}
	return cluster.PeerStats{}, false
}

func TestTierEncryption(t *testing.T) {
	key := "0123456789abcdef"
	nodes := startTier(t, 2, streamOrigin(), func(i int, c *Config) { c.ClusterKey = key })
	rec := &logRecorder{}
	intruder := startNodeLog(t, streamOrigin(), slog.New(rec), func(c *Config) {
		c.ClusterBind, c.ClusterLocal, c.NodeName, c.Join = "127.0.0.1:0", true, "intruder", nodes[0].tier.LocalAddr()
		c.ClusterKey = "fedcba9876543210"
	})
	// The intruder retries joining until it succeeds: two failed
	// attempts, and the membership is looked at only then.
	waitFor(t, "two join attempts to fail", func() bool { return rec.count("cannot join the tier, retrying every second") >= 2 })
	if n := nodes[0].tier.NumMembers(); n != 2 {
		t.Fatalf("a node with the wrong key joined: %d members", n)
	}
	if n := intruder.tier.NumMembers(); n != 1 {
		t.Fatalf("intruder sees %d members", n)
	}
	// Forwarded operations need the tier token too.
	resp, err := http.Post(nodes[0].ctl+"/_cluster/ops", "application/json", strings.NewReader(`[]`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("ops without the token: %d %s", resp.StatusCode, b)
	}
}

func TestTierPartitionedNodeCatchesUpOnPurges(t *testing.T) {
	o := &counterOrigin{}
	nodes := startTier(t, 3, o, func(i int, c *Config) {
		c.PurgeInterval, c.ClusterPushPull = 0, 300*time.Millisecond
	})
	c := nodes[2]
	read := func(node *testNode) string {
		line, _ := bufio.NewReader(dialRaw(t, node.Addr()).get(t, "/value").Body).ReadString('\n')
		return line
	}
	for _, node := range nodes {
		read(node) // cache "value 0" everywhere
	}
	c.tier.DropIncoming(true) // from now on c loses every forwarded operation
	o.value.Store(9)
	resp, err := http.Post(nodes[0].ctl+"/purge/", "application/json", strings.NewReader(`{"keys":["counter"],"soft":false}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// Forwarding is asynchronous: node 1 gets the purge shortly.
	waitFor(t, "node 1 to apply the purge", func() bool { return read(nodes[1]) == "value 9\n" })
	// c missed the operation; the push/pull exchange of recent purges
	// brings it.
	waitFor(t, "the partitioned node to apply the missed purge", func() bool { return c.Status().Purges.Run >= 1 })
	if got := read(c); got != "value 9\n" {
		t.Fatalf("partitioned node after catching up: %q", got)
	}
	if c.tier.Stats().Received != 0 {
		t.Fatal("the operation reached the partitioned node directly")
	}
}
