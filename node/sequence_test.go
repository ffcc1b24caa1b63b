package node

import (
	"bufio"
	"testing"
	"time"
)

// seqItem is an http-stream item on channel "tier" (streamOrigin's) with
// an id and, when prev is not empty, a prev-id.
func seqItem(content, id, prev string) map[string]any {
	it := streamItem("tier", content)
	it["id"] = id
	if prev != "" {
		it["prev-id"] = prev
	}
	return it
}

// openStream opens a held stream of streamOrigin on n and reads its
// first line.
func openStream(t *testing.T, n *testNode) *bufio.Reader {
	t.Helper()
	return openStreams(t, []*testNode{n})[0]
}

// readLines reads want's number of lines of r and compares them.
func readLines(t *testing.T, r *bufio.Reader, want ...string) {
	t.Helper()
	for i, w := range want {
		if got := readLine(t, r); got != w {
			t.Fatalf("line %d of the stream: %q, want %q", i, got, w)
		}
	}
}

// publishDuplicate publishes "one" with id a at first, then the same id
// again and "two" at second; r, a stream on node reader, must get "one"
// then "two", and reader count one duplicate.
func publishDuplicate(t *testing.T, r *bufio.Reader, reader, first, second *testNode) {
	t.Helper()
	first.publish(t, seqItem("one\n", "a", ""))
	readLines(t, r, "one\n")
	// second's publishes reach reader in the order second sent them: the
	// duplicate before "two".
	second.publish(t, seqItem("one again\n", "a", ""))
	second.publish(t, seqItem("two\n", "b", ""))
	readLines(t, r, "two\n")
	if st := reader.Status().Hub; st.Duplicates != 1 {
		t.Fatalf("hub stats %+v: want 1 duplicate", st)
	}
}

// TestPublishIDDuplicateDropped: an item published twice with the same id
// reaches a held stream once.
func TestPublishIDDuplicateDropped(t *testing.T) {
	n := startNode(t, streamOrigin())
	publishDuplicate(t, openStream(t, n), n, n, n)
	if got := scrape(t, n)["edgepush_publish_duplicates_total"]; got != 1 {
		t.Fatalf("edgepush_publish_duplicates_total %v, want 1", got)
	}
}

// TestTierPublishIDDuplicateDropped: the same id published at one member
// and then at another reaches a client on a third once.
func TestTierPublishIDDuplicateDropped(t *testing.T) {
	nodes := startTier(t, 3, streamOrigin())
	publishDuplicate(t, openStream(t, nodes[2]), nodes[2], nodes[0], nodes[1])
}

// TestPublishOutOfOrderReordered: items published 1, 2, 4, 3 (each
// naming its predecessor) reach a held stream as 1, 2, 3, 4.
func TestPublishOutOfOrderReordered(t *testing.T) {
	n := startNode(t, streamOrigin())
	r := openStream(t, n)
	n.publish(t, seqItem("1\n", "1", ""))
	n.publish(t, seqItem("2\n", "2", "1"))
	n.publish(t, seqItem("4\n", "4", "3"))
	n.publish(t, seqItem("3\n", "3", "2"))
	readLines(t, r, "1\n", "2\n", "3\n", "4\n")
	if st := n.Status().Hub; st.Parked != 1 || st.ReleasedLate != 0 || st.Pending != 0 {
		t.Fatalf("hub stats %+v: want 1 parked, released by its predecessor", st)
	}
}

// TestPublishMissingPredecessorDeliveredAfterWait: an item whose
// predecessor never comes is held, then delivered anyway after
// -sequence-wait.
func TestPublishMissingPredecessorDeliveredAfterWait(t *testing.T) {
	n := startNode(t, streamOrigin(), func(c *Config) { c.SequenceWait = 300 * time.Millisecond })
	r := openStream(t, n)
	n.publish(t, seqItem("1\n", "1", ""))
	n.publish(t, seqItem("3\n", "3", "2"))
	readLines(t, r, "1\n", "3\n")
	if st := n.Status().Hub; st.Parked != 1 || st.ReleasedLate != 1 {
		t.Fatalf("hub stats %+v: want 1 parked, released late", st)
	}
	m := scrape(t, n)
	if m["edgepush_publish_parked_total"] != 1 || m["edgepush_publish_released_late_total"] != 1 || m["edgepush_publish_pending"] != 0 {
		t.Fatalf("metrics: parked %v, released late %v, pending %v; want 1, 1, 0", m["edgepush_publish_parked_total"],
			m["edgepush_publish_released_late_total"], m["edgepush_publish_pending"])
	}
}

// TestHeldResponseNotedWhenDelivered: an http-response held for its
// predecessor outdates cached long-poll answers from when it is
// delivered, at its delivery's hub position (not when it was published).
func TestHeldResponseNotedWhenDelivered(t *testing.T) {
	n := startNode(t, &longPollOrigin{})
	item := func(body, id, prev string) map[string]any {
		it := lpItem(body)
		it["id"], it["prev-id"] = id, prev
		return it
	}
	mark := func() uint64 {
		n.responses.mu.Lock()
		defer n.responses.mu.Unlock()
		return n.responses.m["lp"].pos
	}
	n.publish(t, item("1\n", "1", ""))
	first := mark()
	if first == 0 || first != n.hub.Position() {
		t.Fatalf("mark %d after the first response, want the hub position %d", first, n.hub.Position())
	}
	n.publish(t, item("3\n", "3", "2")) // held
	if got := mark(); got != first {
		t.Fatalf("mark %d after a held response, want %d still", got, first)
	}
	n.publish(t, item("2\n", "2", "1")) // delivered, and 3 after it
	if got, pos := mark(), n.hub.Position(); got != pos || pos != first+2 {
		t.Fatalf("mark %d, hub position %d: want both %d (the held response's delivery)", got, pos, first+2)
	}
}

func TestConfigPublishIDsValidation(t *testing.T) {
	for _, mod := range []func(*Config){
		func(c *Config) { c.PublishIDTTL = -time.Second },
		func(c *Config) { c.SequenceWait = -time.Second },
	} {
		cfg := DefaultConfig()
		cfg.Origin = "http://127.0.0.1:1"
		mod(&cfg)
		if _, err := New(cfg, nil); err == nil {
			t.Fatalf("negative -publish-id-ttl or -sequence-wait accepted: %+v", cfg)
		}
	}
}

// TestPublishIDsOff: -publish-id-ttl 0 and -sequence-wait 0 deliver
// every item at once, in publish order.
func TestPublishIDsOff(t *testing.T) {
	n := startNode(t, streamOrigin(), func(c *Config) { c.PublishIDTTL, c.SequenceWait = 0, 0 })
	r := openStream(t, n)
	n.publish(t, seqItem("1\n", "1", ""))
	n.publish(t, seqItem("1 again\n", "1", ""))
	n.publish(t, seqItem("3\n", "3", "2"))
	readLines(t, r, "1\n", "1 again\n", "3\n")
}
