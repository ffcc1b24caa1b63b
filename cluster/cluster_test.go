package cluster

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/valyala/fasthttp"
)

// waitTimeout bounds every wait for the tier to converge.
const waitTimeout = 20 * time.Second

// member is one tier member under test: a real Cluster on loopback and
// a real fasthttp server on its control address whose handler is the
// Cluster's own ServeOps.
type member struct {
	*Cluster
	name string
	tb   testing.TB
	srv  *fasthttp.Server
	ln   net.Listener            // the receiver's
	url  string                  // of the receiver, http://host:port
	done chan struct{}           // closed when the receiver stops serving
	live atomic.Pointer[Cluster] // set once New returns
	fail atomic.Bool             // while set, the receiver answers 503
	got  recorder
}

// recorder is a Handler that records what it applies.
type recorder struct {
	mu  sync.Mutex
	ops []Op
}

func (r *recorder) HandleOp(op Op) {
	r.mu.Lock()
	r.ops = append(r.ops, op)
	r.mu.Unlock()
}

func (r *recorder) snapshot() []Op {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.ops)
}

func (r *recorder) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.ops)
}

// serveControl routes the member's control listener the way node's does:
// OpsPath to ServeOps.
func (m *member) serveControl(ctx *fasthttp.RequestCtx) {
	c := m.live.Load()
	switch {
	case c == nil || m.fail.Load():
		ctx.Error("unavailable\n", fasthttp.StatusServiceUnavailable)
	case string(ctx.Path()) != OpsPath:
		ctx.Error("no such endpoint\n", fasthttp.StatusNotFound)
	default:
		c.ServeOps(ctx)
	}
}

// startMember starts a member named name on loopback; mod adjusts its
// configuration. It is shut down (without leaving) when the test ends.
func startMember(tb testing.TB, name string, mod func(*Config)) *member {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	m := &member{name: name, tb: tb, ln: ln, url: "http://" + ln.Addr().String(), done: make(chan struct{})}
	m.srv = &fasthttp.Server{
		Handler:         m.serveControl,
		ReadTimeout:     5 * time.Second,
		CloseOnShutdown: true,
		// The worker pool's cleaner notices the server stopped only
		// after sleeping this long (10s by default): short, so that
		// goleak finds it gone.
		MaxIdleWorkerDuration: 100 * time.Millisecond,
	}
	go func() {
		defer close(m.done)
		m.srv.Serve(ln)
	}()
	cfg := Config{
		Name:        name,
		Bind:        "127.0.0.1:0",
		ControlAddr: ln.Addr().String(),
		Version:     "test",
		Handler:     &m.got,
		Local:       true,
		// Tests run in parallel and loopback ports are reused: a member
		// of one test still probing, or retrying operations to, an
		// address now held by another test's member must be ignored.
		Label: tb.Name(),
		Token: TokenFor(testKey(tb)),
	}
	if mod != nil {
		mod(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		m.stopReceiver()
		tb.Fatal(err)
	}
	m.Cluster = c
	m.live.Store(c)
	tb.Cleanup(m.kill)
	c.Start()
	return m
}

// kill stops the member without a graceful leave: its cluster and its
// receiver go away at once, as in a crash.
func (m *member) kill() {
	m.Shutdown()
	m.stopReceiver()
}

// stopReceiver closes the receiver's listener and its connections (idle
// ones at once: the handler never blocks) and waits for it to stop.
func (m *member) stopReceiver() {
	// Closed here first: Shutdown closes only a listener Serve has
	// registered, and the goroutine calling Serve may not have run yet.
	m.ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := m.srv.ShutdownWithContext(ctx); err != nil && !errors.Is(err, net.ErrClosed) {
		m.tb.Errorf("%s: stopping the receiver: %v", m.name, err)
	}
	<-m.done
}

// post sends a request to m's receiver on a connection of its own and
// returns the answer.
func (m *member) post(tb testing.TB, method, authorization string, body []byte) (int, string, http.Header) {
	tb.Helper()
	req, err := http.NewRequest(method, m.url+OpsPath, bytes.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: waitTimeout}
	resp, err := client.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return resp.StatusCode, string(b), resp.Header
}

// testKey is a secret key (16 bytes) of the test's own.
func testKey(tb testing.TB) []byte {
	sum := sha256.Sum256([]byte(tb.Name()))
	return []byte(hex.EncodeToString(sum[:8]))
}

// startTier starts n members, each joining the ones before it, and waits
// until every member sees every other.
func startTier(tb testing.TB, n int, mod func(i int, c *Config)) []*member {
	tb.Helper()
	var ms []*member
	for i := range n {
		var seeds []string
		for _, prev := range ms {
			seeds = append(seeds, prev.LocalAddr())
		}
		ms = append(ms, startMember(tb, fmt.Sprintf("m%d", i), func(c *Config) {
			c.Join = seeds
			if mod != nil {
				mod(i, c)
			}
		}))
	}
	for _, m := range ms {
		waitFor(tb, m.name+" to see the whole tier", func() bool {
			return m.NumMembers() == n && len(m.Stats().Peers) == n-1
		})
	}
	return ms
}

// waitFor polls cond until it holds, failing the test after waitTimeout.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", waitTimeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// peerStats returns c's delivery counters for the member named name.
func peerStats(c *Cluster, name string) (PeerStats, bool) {
	for _, p := range c.Stats().Peers {
		if p.Name == name {
			return p, true
		}
	}
	return PeerStats{}, false
}

// delivered reports whether c has handed all of its n operations to every
// peer.
func delivered(c *Cluster, n uint64) bool {
	for _, p := range c.Stats().Peers {
		if p.Queued != 0 || p.Sent != n {
			return false
		}
	}
	return true
}

func opData(i int) []byte { return fmt.Appendf(nil, `{"n":%d}`, i) }

// checkInOrder checks that ops holds exactly the operations 1..n of src,
// once each and in order, with the data opData(seq) unless anyData.
func checkInOrder(tb testing.TB, who string, ops []Op, src string, n int, anyData bool) {
	tb.Helper()
	var seqs []uint64
	for _, op := range ops {
		if op.Source != src {
			continue
		}
		seqs = append(seqs, op.Seq)
		if !anyData && !bytes.Equal(op.Data, opData(int(op.Seq))) {
			tb.Fatalf("%s: op %s carries %s", who, op.ID(), op.Data)
		}
	}
	if len(seqs) != n {
		tb.Fatalf("%s applied %d operations from %s, want %d", who, len(seqs), src, n)
	}
	for i, s := range seqs {
		if s != uint64(i+1) {
			tb.Fatalf("%s: operation %d from %s has seq %d: %v", who, i, src, s, seqs)
		}
	}
}

func TestJoinThreeMembers(t *testing.T) {
	t.Parallel()
	ms := startTier(t, 3, nil)
	for _, m := range ms {
		st := m.Stats()
		if st.Node != m.name {
			t.Errorf("%s: Stats.Node = %q", m.name, st.Node)
		}
		if len(st.Members) != 3 {
			t.Fatalf("%s: members %+v", m.name, st.Members)
		}
		for _, other := range ms {
			i := slices.IndexFunc(st.Members, func(x Member) bool { return x.Name == other.name })
			if i < 0 {
				t.Fatalf("%s does not list %s: %+v", m.name, other.name, st.Members)
			}
			want := Member{Name: other.name, Addr: other.LocalAddr(), Control: strings.TrimPrefix(other.url, "http://"), Version: "test", State: "alive"}
			if st.Members[i] != want {
				t.Errorf("%s lists %+v, want %+v", m.name, st.Members[i], want)
			}
			if other == m {
				continue
			}
			p, ok := peerStats(m.Cluster, other.name)
			if !ok || p.Addr != want.Control || p.Queued != 0 || p.Sent != 0 {
				t.Errorf("%s's peer %s: %+v (found %v)", m.name, other.name, p, ok)
			}
		}
		if host, _, _ := net.SplitHostPort(m.LocalAddr()); host != "127.0.0.1" {
			t.Errorf("%s advertises %s", m.name, m.LocalAddr())
		}
	}
}

func TestBroadcastReachesEveryOtherMemberOnceInOrder(t *testing.T) {
	t.Parallel()
	const n = 200
	ms := startTier(t, 3, nil)
	for i := 1; i <= n; i++ {
		op := ms[0].Broadcast("publish", opData(i))
		if op.Source != "m0" || op.Seq != uint64(i) || op.Kind != "publish" {
			t.Fatalf("Broadcast returned %+v", op)
		}
		if want := "m0/" + strconv.FormatInt(op.Incarnation, 36) + "/" + strconv.FormatUint(uint64(i), 36); op.ID() != want {
			t.Fatalf("ID %q, want %q", op.ID(), want)
		}
	}
	// Sent counts batches the receiver answered 200 to, after applying
	// them: once it reaches n, nothing more is on its way.
	waitFor(t, "m0 to deliver every operation", func() bool { return delivered(ms[0].Cluster, n) })
	for _, m := range ms[1:] {
		checkInOrder(t, m.name, m.got.snapshot(), "m0", n, false)
		if st := m.Stats(); st.Received != n || st.Duplicates != 0 {
			t.Errorf("%s: received %d, duplicates %d", m.name, st.Received, st.Duplicates)
		}
	}
	if k := ms[0].got.len(); k != 0 {
		t.Errorf("the source applied %d of its own operations", k)
	}
}

func TestBroadcastFromEveryMemberKeepsEachSourcesOrder(t *testing.T) {
	t.Parallel()
	const n = 200
	ms := startTier(t, 3, nil)
	var wg sync.WaitGroup
	for _, m := range ms {
		wg.Go(func() {
			for i := 1; i <= n; i++ {
				m.Broadcast("publish", opData(i))
			}
		})
	}
	wg.Wait()
	for _, m := range ms {
		waitFor(t, m.name+" to deliver every operation", func() bool { return delivered(m.Cluster, n) })
	}
	for _, m := range ms {
		ops := m.got.snapshot()
		if len(ops) != 2*n {
			t.Fatalf("%s applied %d operations, want %d", m.name, len(ops), 2*n)
		}
		for _, src := range ms {
			if src != m {
				checkInOrder(t, m.name, ops, src.name, n, false)
			}
		}
	}
}

// Broadcast is called from many request handlers at once: every
// operation must still arrive, once, in Seq order.
func TestConcurrentBroadcastsAtOneMemberAllArrive(t *testing.T) {
	t.Parallel()
	const writers, each = 8, 100
	ms := startTier(t, 2, nil)
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for i := range each {
				ms[0].Broadcast("publish", opData(i))
			}
		})
	}
	wg.Wait()
	waitFor(t, "m0 to deliver every operation", func() bool { return delivered(ms[0].Cluster, writers*each) })
	checkInOrder(t, "m1", ms[1].got.snapshot(), "m0", writers*each, true)
}

// The caller may reuse its buffer once Broadcast returns (node passes
// fasthttp's request body, which is recycled after the handler).
func TestBroadcastCopiesData(t *testing.T) {
	t.Parallel()
	ms := startTier(t, 2, nil)
	ms[1].fail.Store(true) // keep the operations queued while buf changes
	buf := make([]byte, 0, 16)
	for i := 1; i <= 20; i++ {
		buf = append(buf[:0], opData(i)...)
		ms[0].Broadcast("publish", buf)
	}
	copy(buf, `{"n":"clobbered"}`)
	ms[1].fail.Store(false)
	waitFor(t, "m0 to deliver every operation", func() bool { return delivered(ms[0].Cluster, 20) })
	checkInOrder(t, "m1", ms[1].got.snapshot(), "m0", 20, false)
}

// Data that is not JSON cannot travel in a batch: it is not sent, and
// does not hold up the operations after it.
func TestBroadcastOfNonJSONIsNotSent(t *testing.T) {
	t.Parallel()
	ms := startTier(t, 2, nil)
	ms[0].Broadcast("publish", opData(1))
	ms[0].Broadcast("publish", []byte("not json"))
	ms[0].Broadcast("publish", nil)
	ms[0].Broadcast("publish", opData(2))
	waitFor(t, "m0 to deliver the JSON operations", func() bool { return delivered(ms[0].Cluster, 2) })
	checkInOrder(t, "m1", ms[1].got.snapshot(), "m0", 2, false)
}

func TestReceiveAppliesADuplicatedBatchOnce(t *testing.T) {
	t.Parallel()
	key := testKey(t)
	m := startMember(t, "m0", func(c *Config) { c.SecretKey, c.Token = key, TokenFor(key) })
	batch := func(src string, inc int64, seqs ...uint64) []byte {
		var ops []Op
		for _, s := range seqs {
			ops = append(ops, Op{Source: src, Incarnation: inc, Seq: s, Kind: "publish", Data: opData(int(s))})
		}
		b, err := json.Marshal(ops)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// The same batch POSTed twice, as a retry after a lost answer would.
	post := func(body []byte) {
		t.Helper()
		if code, msg, _ := m.post(t, http.MethodPost, "Bearer "+TokenFor(key), body); code != http.StatusOK {
			t.Fatalf("POST %s: %d %s", OpsPath, code, msg)
		}
	}
	b := batch("other", 1, 1, 2, 3)
	post(b)
	post(b)
	if st := m.Stats(); m.got.len() != 3 || st.Received != 3 || st.Duplicates != 3 {
		t.Fatalf("after the batch twice: applied %d, stats %+v", m.got.len(), st)
	}
	// Overlapping batches apply only what is new.
	if err := m.Receive(batch("other", 1, 2, 3, 4, 5)); err != nil {
		t.Fatal(err)
	}
	if st := m.Stats(); m.got.len() != 5 || st.Received != 5 || st.Duplicates != 5 {
		t.Fatalf("after an overlapping batch: applied %d, stats %+v", m.got.len(), st)
	}
	checkInOrder(t, "m0", m.got.snapshot(), "other", 5, false)
	// An older incarnation of the source is stale; a newer one (the source
	// restarted, Seq restarts) is fresh.
	m.Receive(batch("other", 0, 9))
	m.Receive(batch("other", 2, 1))
	// Operations from this node itself are ignored, not counted.
	m.Receive(batch("m0", 1, 1))
	ops := m.got.snapshot()
	if st := m.Stats(); len(ops) != 6 || ops[5].Incarnation != 2 || st.Received != 6 || st.Duplicates != 6 {
		t.Fatalf("after other incarnations: applied %+v, stats %+v", ops, st)
	}
	err := m.Receive([]byte(`{"not":"a batch"}`))
	if err == nil || !strings.HasPrefix(err.Error(), "cluster: bad batch") {
		t.Fatalf("Receive of a bad batch: %v", err)
	}
}

func TestAuthorizationAndTokenFor(t *testing.T) {
	t.Parallel()
	key := testKey(t)
	tok := TokenFor(key)
	if len(tok) != 64 || strings.Trim(tok, "0123456789abcdef") != "" {
		t.Fatalf("TokenFor = %q, want 64 hex digits", tok)
	}
	if TokenFor(key) != tok || TokenFor([]byte("fedcba9876543210")) == tok {
		t.Fatal("TokenFor is not a deterministic function of the key")
	}
	if strings.Contains(tok, string(key)) {
		t.Fatal("the token reveals the key")
	}
	ms := startTier(t, 2, func(i int, c *Config) { c.SecretKey, c.Token = key, tok })
	for _, h := range []string{"", "Bearer", "Bearer ", tok, "Bearer " + TokenFor([]byte("fedcba9876543210")), "Bearer " + tok + "x", "Basic " + tok} {
		if ms[0].authorized([]byte(h)) {
			t.Errorf("authorized(%q) = true", h)
		}
	}
	if ms[0].authorized(nil) {
		t.Error("authorized(nil) = true")
	}
	if !ms[0].authorized([]byte("Bearer " + tok)) {
		t.Error("the tier's own token is refused")
	}
	// Peers send the token: operations arrive.
	ms[0].Broadcast("publish", opData(1))
	waitFor(t, "m1 to receive", func() bool { return ms[1].got.len() == 1 })
	// Without a token the receiver refuses the batch.
	code, _, _ := ms[1].post(t, http.MethodPost, "", []byte(`[{"src":"x","inc":1,"seq":1,"kind":"k","data":{}}]`))
	if code != http.StatusUnauthorized || ms[1].got.len() != 1 {
		t.Fatalf("ops without the token: %d, applied %d", code, ms[1].got.len())
	}
	// No token configured: anything is accepted.
	open := startMember(t, "open", func(c *Config) { c.Token = "" })
	if !open.authorized(nil) || !open.authorized([]byte("Bearer whatever")) {
		t.Error("a member without a token refuses operations")
	}
}

// A member with the right key but the wrong token can join, but neither
// side accepts the other's operations.
func TestWrongTokenIsRefused(t *testing.T) {
	t.Parallel()
	key := testKey(t)
	ms := startTier(t, 2, func(i int, c *Config) {
		c.SecretKey, c.Token = key, TokenFor(key)
		if i == 1 {
			c.Token = "wrong"
		}
	})
	ms[0].Broadcast("publish", opData(1))
	ms[1].Broadcast("publish", opData(1))
	waitFor(t, "both sides to fail deliveries", func() bool {
		p0, _ := peerStats(ms[0].Cluster, "m1")
		p1, _ := peerStats(ms[1].Cluster, "m0")
		return p0.Failures >= 2 && p1.Failures >= 2
	})
	for _, m := range ms {
		if k := m.got.len(); k != 0 || m.Stats().Received != 0 {
			t.Errorf("%s applied %d operations", m.name, k)
		}
		if p := m.Stats().Peers[0]; p.Queued != 1 || p.Sent != 0 {
			t.Errorf("%s's peer: %+v", m.name, p)
		}
	}
}

func TestRetriesUntilReceiverRecovers(t *testing.T) {
	t.Parallel()
	const n = 50
	ms := startTier(t, 3, nil)
	ms[2].fail.Store(true)
	for i := 1; i <= n; i++ {
		ms[0].Broadcast("publish", opData(i))
	}
	// The healthy member is not held up by the failing one.
	waitFor(t, "m1 to receive everything", func() bool { return ms[1].got.len() == n })
	waitFor(t, "a few failed attempts to m2", func() bool {
		p, _ := peerStats(ms[0].Cluster, "m2")
		return p.Failures >= 3
	})
	if p, _ := peerStats(ms[0].Cluster, "m2"); p.Queued != n || p.Sent != 0 || ms[2].got.len() != 0 {
		t.Fatalf("while m2 fails: %+v, applied %d", p, ms[2].got.len())
	}
	ms[2].fail.Store(false)
	waitFor(t, "m0 to deliver every operation", func() bool { return delivered(ms[0].Cluster, n) })
	checkInOrder(t, "m2", ms[2].got.snapshot(), "m0", n, false)
	p, _ := peerStats(ms[0].Cluster, "m2")
	if p.Dropped != 0 {
		t.Errorf("dropped %d operations", p.Dropped)
	}
}

func TestFullQueueDropsOldest(t *testing.T) {
	t.Parallel()
	const limit, n = 10, 25
	ms := startTier(t, 2, func(i int, c *Config) { c.QueueLen = limit })
	ms[1].fail.Store(true)
	for i := 1; i <= n; i++ {
		ms[0].Broadcast("publish", opData(i))
	}
	p, _ := peerStats(ms[0].Cluster, "m1")
	if p.Queued != limit || p.Dropped != n-limit {
		t.Fatalf("full queue: %+v", p)
	}
	if d := ms[0].Stats().Dropped; d != (DropStats{QueueFull: n - limit}) {
		t.Fatalf("full queue: drops by reason %+v", d)
	}
	// A batch read before the drops may still be on its way; the second
	// attempt from now read the queue after them.
	waitFor(t, "two more failed attempts", func() bool {
		q, _ := peerStats(ms[0].Cluster, "m1")
		return q.Failures >= p.Failures+2
	})
	ms[1].fail.Store(false)
	waitFor(t, "m0 to deliver the queue", func() bool {
		p, _ := peerStats(ms[0].Cluster, "m1")
		return p.Queued == 0 && p.Sent == limit
	})
	var seqs []uint64
	for _, op := range ms[1].got.snapshot() {
		seqs = append(seqs, op.Seq)
	}
	if want := []uint64{16, 17, 18, 19, 20, 21, 22, 23, 24, 25}; !slices.Equal(seqs, want) {
		t.Fatalf("m1 applied %v, want the newest %v", seqs, want)
	}
}

// A member that crashes (no Leave) is declared dead by the others, which
// drop its queue; meanwhile publishes keep reaching the survivors, each
// one before the next is sent. (That a member which takes no operations
// holds up no one is shown without a crash, and so without racing failure
// detection, by TestRetriesUntilReceiverRecovers.)
func TestDeadMemberIsDroppedWithoutBlockingOthers(t *testing.T) {
	t.Parallel()
	ms := startTier(t, 3, nil)
	ms[2].kill()
	start := time.Now()
	// Failure detection takes a few probe rounds, longer on a loaded
	// machine: this bound only catches a member never declared dead.
	const detection = 3 * waitTimeout
	sent := 0
	for {
		sent++
		ms[0].Broadcast("publish", opData(sent))
		waitFor(t, fmt.Sprintf("m1 to receive op %d", sent), func() bool { return ms[1].got.len() == sent })
		_, queued := peerStats(ms[0].Cluster, "m2")
		if !queued && ms[0].NumMembers() == 2 {
			break
		}
		if time.Since(start) > detection {
			t.Fatalf("m2 still a member of m0's tier after %v: %+v", detection, ms[0].Stats())
		}
		time.Sleep(20 * time.Millisecond) // the pace of publishes, not a wait
	}
	t.Logf("m2 declared dead after %v, %d publishes", time.Since(start), sent)
	st := ms[0].Stats()
	if len(st.Members) != 2 || len(st.Peers) != 1 || st.Peers[0].Name != "m1" {
		t.Fatalf("m0 after m2 died: %+v", st)
	}
	waitFor(t, "m1 to drop m2", func() bool { return ms[1].NumMembers() == 2 && len(ms[1].Stats().Peers) == 1 })
	checkInOrder(t, "m1", ms[1].got.snapshot(), "m0", sent, false)
}

// A member that leaves gracefully is dropped at once, and Shutdown and
// Leave may be called again.
func TestLeaveThenShutdown(t *testing.T) {
	t.Parallel()
	ms := startTier(t, 3, nil)
	if err := ms[2].Leave(time.Second); err != nil {
		t.Fatal(err)
	}
	if err := ms[2].Leave(time.Second); err != nil {
		t.Fatalf("second Leave: %v", err)
	}
	for _, m := range ms[:2] {
		waitFor(t, m.name+" to drop m2", func() bool {
			_, ok := peerStats(m.Cluster, "m2")
			return m.NumMembers() == 2 && !ok
		})
	}
	for range 2 {
		if err := ms[2].Shutdown(); err != nil {
			t.Fatal(err)
		}
	}
	if err := ms[1].Shutdown(); err != nil {
		t.Fatal(err)
	}
	if err := ms[1].Leave(time.Second); err != nil {
		t.Fatalf("Leave after Shutdown: %v", err)
	}
	if len(ms[1].Stats().Peers) != 0 {
		t.Fatal("peers left after Shutdown")
	}
	ms[1].Broadcast("publish", opData(1)) // goes nowhere, must not block
}

// A membership event handled after Shutdown (the watcher was waiting for
// the lock while Shutdown stopped the peers) must not start a peer that
// nothing would stop.
func TestEventAfterShutdownStartsNoPeer(t *testing.T) {
	t.Parallel()
	m := startMember(t, "m0", nil)
	m.Shutdown()
	b, _ := json.Marshal(meta{Control: "127.0.0.1:1", Version: "test"})
	m.onEvent(memberlist.NodeEvent{Event: memberlist.NodeJoin, Node: &memberlist.Node{Name: "late", Meta: b, State: memberlist.StateAlive}})
	if st := m.Stats(); len(st.Peers) != 0 {
		t.Fatalf("a peer was started after Shutdown: %+v", st.Peers)
	}
}

func TestConfigCheck(t *testing.T) {
	t.Parallel()
	valid := func() Config {
		return Config{Name: "n", Bind: "127.0.0.1:0", ControlAddr: "127.0.0.1:1", Handler: HandlerFunc(func(Op) {})}
	}
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want []string
	}{
		{"no handler", func(c *Config) { c.Handler = nil }, []string{"cluster: Handler is required"}},
		{"no control address", func(c *Config) { c.ControlAddr = "" }, []string{"cluster: ControlAddr is required"}},
		{"short key", func(c *Config) { c.SecretKey = []byte("short") }, []string{"cluster: secret key is 5 bytes, want 16, 24 or 32"}},
		{"bind without port", func(c *Config) { c.Bind = "127.0.0.1" }, []string{`cluster: bind address "127.0.0.1"`}},
		{"bind with a bad port", func(c *Config) { c.Bind = "127.0.0.1:http" }, []string{`cluster: bind address "127.0.0.1:http"`, "port"}},
		{"bind port out of range", func(c *Config) { c.Bind = "127.0.0.1:70000" }, []string{`cluster: bind address "127.0.0.1:70000"`, "port"}},
		{"bind to a host name", func(c *Config) { c.Bind = "localhost:0" }, []string{`cluster: bind address "localhost:0"`, "IP"}},
		{"advertise without port", func(c *Config) { c.Advertise = "10.0.0.1" }, []string{`cluster: advertise address "10.0.0.1"`}},
		{"several", func(c *Config) { c.Handler, c.SecretKey = nil, make([]byte, 33) }, []string{"Handler is required", "secret key is 33 bytes"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := valid()
			tc.mod(&cfg)
			// check only: a bad address must not reach memberlist, which
			// would bind 0.0.0.0:7946 instead.
			err := cfg.check()
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	for _, bind := range []string{"", ":0", "127.0.0.1:0", "[::1]:7946", "0.0.0.0:7946"} {
		cfg := valid()
		cfg.Bind, cfg.Advertise = bind, "127.0.0.1:7946"
		if err := cfg.check(); err != nil {
			t.Errorf("Bind %q: %v", bind, err)
		}
	}
	// New reports the same errors and binds nothing.
	cfg := valid()
	cfg.SecretKey = []byte("short")
	if c, err := New(cfg); err == nil || c != nil {
		t.Fatalf("New with a short key: %v, %v", c, err)
	}
	// Zero values get their documented defaults.
	cfg = valid()
	cfg.Name = ""
	if err := cfg.check(); err != nil || cfg.QueueLen != 16384 || cfg.LogMax != 4096 || cfg.LogAge != 48*time.Hour || cfg.Log == nil || cfg.Name == "" {
		t.Fatalf("defaults: %v, %+v", err, cfg)
	}
}
