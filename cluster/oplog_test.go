package cluster

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// pushPull is the push/pull interval of the op log tests.
const pushPull = 100 * time.Millisecond

// rememberPurges is a Config.Remember the way a node would write it: a
// publish is not kept, a purge is kept as is, and a purge-publish
// ({"purge":…,"publish":…}) is kept as the purge it carries.
func rememberPurges(op Op) (Op, bool) {
	switch op.Kind {
	case "purge":
		return op, true
	case "purge-publish":
		var pp struct{ Purge json.RawMessage }
		if json.Unmarshal(op.Data, &pp) != nil || pp.Purge == nil {
			return Op{}, false
		}
		// Source, Incarnation and Seq left zero: the log keeps op's.
		return Op{Kind: "purge", Data: pp.Purge}, true
	}
	return Op{}, false
}

func logConfig(c *Config) {
	c.Remember, c.PushPull = rememberPurges, pushPull
}

// waitMerges waits until c has merged k more remote states, well-formed or
// not: every exchange under way when it was called has ended by then.
func waitMerges(tb testing.TB, c *Cluster, k uint64) {
	tb.Helper()
	target := c.log.merges.Load() + k
	waitFor(tb, fmt.Sprintf("%d more push/pull exchanges", k), func() bool { return c.log.merges.Load() >= target })
}

// ids lists the IDs of ops.
func ids(ops []Op) []string {
	var s []string
	for _, op := range ops {
		s = append(s, op.ID())
	}
	return s
}

func TestServeOpsStatusCodes(t *testing.T) {
	t.Parallel()
	key := testKey(t)
	m := startMember(t, "m0", func(c *Config) { c.Token = TokenFor(key) })
	auth := "Bearer " + TokenFor(key)
	valid := []byte(`[{"src":"other","inc":1,"seq":1,"kind":"publish","data":{"n":1}}]`)
	check := func(what string, code int, body string, wantCode int, wantBody string) {
		t.Helper()
		if code != wantCode || !strings.HasPrefix(body, wantBody) || !strings.HasSuffix(body, "\n") {
			t.Errorf("%s: %d %q, want %d %q…\\n", what, code, body, wantCode, wantBody)
		}
	}
	for _, method := range []string{http.MethodGet, http.MethodPut, http.MethodDelete} {
		code, body, h := m.post(t, method, auth, valid)
		check(method, code, body, http.StatusMethodNotAllowed, "method not allowed")
		if h.Get("Allow") != http.MethodPost {
			t.Errorf("%s: Allow %q", method, h.Get("Allow"))
		}
	}
	for _, a := range []string{"", "Bearer", "Bearer " + TokenFor([]byte("fedcba9876543210")), TokenFor(key), "Basic " + TokenFor(key)} {
		code, body, _ := m.post(t, http.MethodPost, a, valid)
		check(fmt.Sprintf("Authorization %q", a), code, body, http.StatusUnauthorized, "missing or invalid tier token\n")
	}
	for _, b := range []string{"", "not json", `{"not":"a batch"}`, `[{"seq":"x"}]`, `[{"src":"other","data":{]`} {
		code, body, _ := m.post(t, http.MethodPost, auth, []byte(b))
		check(fmt.Sprintf("body %q", b), code, body, http.StatusBadRequest, "cluster: bad batch: ")
	}
	if k := m.got.len(); k != 0 {
		t.Fatalf("refused requests applied %d operations", k)
	}
	code, body, h := m.post(t, http.MethodPost, auth, valid)
	check("a batch", code, body, http.StatusOK, "ok\n")
	if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type %q", ct)
	}
	if ops := m.got.snapshot(); len(ops) != 1 || ops[0].ID() != "other/1/1" || string(ops[0].Data) != `{"n":1}` {
		t.Fatalf("applied %+v", ops)
	}
	// An empty batch is a batch.
	code, body, _ = m.post(t, http.MethodPost, auth, []byte(`[]`))
	check("an empty batch", code, body, http.StatusOK, "ok\n")
}

func TestDropIncomingLosesBatches(t *testing.T) {
	t.Parallel()
	const n = 20
	ms := startTier(t, 2, nil)
	ms[1].DropIncoming(true)
	for i := 1; i <= n; i++ {
		ms[0].Broadcast("publish", opData(i))
	}
	// Sent counts batches the receiver answered 200 to.
	waitFor(t, "m0 to deliver every operation", func() bool { return delivered(ms[0].Cluster, n) })
	if k, st := ms[1].got.len(), ms[1].Stats(); k != 0 || st.Received != 0 || st.Duplicates != 0 {
		t.Fatalf("a member dropping what it receives applied %d operations: %+v", k, st)
	}
	if p, _ := peerStats(ms[0].Cluster, "m1"); p.Failures != 0 || p.Dropped != 0 {
		t.Fatalf("the sender saw the loss: %+v", p)
	}
	// The token is still checked.
	if code, _, _ := ms[1].post(t, http.MethodPost, "", []byte(`[]`)); code != http.StatusUnauthorized {
		t.Fatalf("ops without the token while dropping: %d", code)
	}
	ms[1].DropIncoming(false)
	ms[0].Broadcast("publish", opData(n+1))
	waitFor(t, "m1 to receive the next operation", func() bool { return ms[1].got.len() == 1 })
	if op := ms[1].got.snapshot()[0]; op.Seq != n+1 {
		t.Fatalf("m1 applied %s", op.ID())
	}
}

// A member that missed operations gets, at a push/pull, what Remember kept
// of them, once, even after their source is gone, and passes them on.
func TestOpLogReplaysMissedOperations(t *testing.T) {
	t.Parallel()
	ms := startTier(t, 2, func(i int, c *Config) { logConfig(c) })
	ms[1].DropIncoming(true)
	pub := ms[0].Broadcast("publish", opData(1))
	pp := ms[0].Broadcast("purge-publish", []byte(`{"purge":{"keys":["a"]},"publish":{"n":2}}`))
	purge := ms[0].Broadcast("purge", []byte(`{"keys":["b"]}`))
	waitFor(t, "m0 to deliver every operation", func() bool { return delivered(ms[0].Cluster, 3) })
	if st := ms[0].Stats(); st.Logged != 2 {
		t.Fatalf("m0 logged %d operations, want the 2 purges", st.Logged)
	}
	waitFor(t, "m1 to apply the missed purges", func() bool { return ms[1].got.len() >= 2 })
	want := []Op{
		{Source: "m0", Incarnation: pp.Incarnation, Seq: pp.Seq, Kind: "purge", Data: json.RawMessage(`{"keys":["a"]}`)},
		{Source: "m0", Incarnation: purge.Incarnation, Seq: purge.Seq, Kind: "purge", Data: json.RawMessage(`{"keys":["b"]}`)},
	}
	check := func(who string, m *member) {
		t.Helper()
		got := m.got.snapshot()
		if len(got) != len(want) {
			t.Fatalf("%s applied %v, want %v", who, ids(got), ids(want))
		}
		for i := range want {
			if got[i].ID() != want[i].ID() || got[i].Kind != want[i].Kind || string(got[i].Data) != string(want[i].Data) {
				t.Fatalf("%s applied %+v, want %+v", who, got[i], want[i])
			}
		}
		if st := m.Stats(); st.Replayed != 2 || st.Received != 0 || st.Logged != 2 {
			t.Fatalf("%s: %+v", who, st)
		}
	}
	// Applied once though every later push/pull sends them again.
	waitMerges(t, ms[1].Cluster, 3)
	check("m1", ms[1])
	if slices.Contains(ids(ms[1].got.snapshot()), pub.ID()) {
		t.Fatal("the publish Remember did not keep was replayed")
	}
	// The source dies; a member joining later still gets the purges, from
	// m1's log.
	ms[0].kill()
	m2 := startMember(t, "m2", func(c *Config) {
		logConfig(c)
		c.Join = []string{ms[1].LocalAddr()}
	})
	waitFor(t, "m2 to apply the purges", func() bool { return m2.got.len() >= 2 })
	waitMerges(t, m2.Cluster, 3)
	check("m2", m2)
}

// An operation applied from the log and then delivered late (its sender
// kept retrying) is not applied again; what the log does not keep is.
func TestOpLogReplayThenLateDeliveryAppliesOnce(t *testing.T) {
	t.Parallel()
	ms := startTier(t, 2, func(i int, c *Config) { logConfig(c) })
	ms[1].fail.Store(true) // m0 retries until it is cleared
	ms[0].Broadcast("purge", []byte(`{"keys":["a"]}`))
	ms[0].Broadcast("publish", opData(2))
	waitFor(t, "m1 to apply the purge from m0's log", func() bool { return ms[1].got.len() == 1 })
	ms[1].fail.Store(false)
	waitFor(t, "m0 to deliver every operation", func() bool { return delivered(ms[0].Cluster, 2) })
	got := ms[1].got.snapshot()
	if len(got) != 2 || got[0].Seq != 1 || got[1].Seq != 2 || got[1].Kind != "publish" {
		t.Fatalf("m1 applied %+v", got)
	}
	if st := ms[1].Stats(); st.Replayed != 1 || st.Received != 1 || st.Duplicates != 1 {
		t.Fatalf("m1: %+v", st)
	}
}

// An entry dropped from a member's log for room stays seen there: a member
// whose log still holds it does not make it apply it again.
func TestOpLogEntryEvictedByCountIsNotReapplied(t *testing.T) {
	t.Parallel()
	const n = 5
	ms := startTier(t, 2, func(i int, c *Config) {
		logConfig(c)
		if i == 0 {
			c.LogMax = 2
		}
	})
	var sent []string
	for i := 1; i <= n; i++ {
		sent = append(sent, ms[1].Broadcast("purge", opData(i)).ID())
	}
	waitFor(t, "m1 to deliver every operation", func() bool { return delivered(ms[1].Cluster, n) })
	if l0, l1 := ms[0].Stats().Logged, ms[1].Stats().Logged; l0 != 2 || l1 != n {
		t.Fatalf("logs hold %d and %d entries, want 2 and %d", l0, l1, n)
	}
	// m1 sends all n at every push/pull; m0 keeps the newest 2.
	waitMerges(t, ms[0].Cluster, 5)
	got := ids(ms[0].got.snapshot())
	if !slices.Equal(got, sent) {
		t.Fatalf("m0 applied %v, want each of %v once", got, sent)
	}
	if st := ms[0].Stats(); st.Logged != 2 || st.Received+st.Replayed != n {
		t.Fatalf("m0: %+v", st)
	}
}

// rogue is a bare memberlist member that sends whatever state a test sets
// at push/pull.
type rogue struct {
	ml    *memberlist.Memberlist
	state atomic.Pointer[[]byte]
}

func (r *rogue) NodeMeta(int) []byte                 { return nil }
func (r *rogue) NotifyMsg([]byte)                    {}
func (r *rogue) GetBroadcasts(int, int) [][]byte     { return nil }
func (r *rogue) MergeRemoteState(buf []byte, _ bool) {}
func (r *rogue) LocalState(bool) []byte              { return *r.state.Load() }
func (r *rogue) set(state string)                    { b := []byte(state); r.state.Store(&b) }
func (r *rogue) setEntries(t *testing.T, es ...wireEntry) {
	t.Helper()
	b, err := json.Marshal(wireState{Ops: es})
	if err != nil {
		t.Fatal(err)
	}
	r.set(string(b))
}

// startRogue starts a rogue that joins m.
func startRogue(t *testing.T, m *member) *rogue {
	t.Helper()
	r := &rogue{}
	r.set("")
	mc := memberlist.DefaultLocalConfig()
	mc.Name, mc.BindAddr, mc.BindPort = "rogue", "127.0.0.1", 0
	mc.Label, mc.PushPullInterval = t.Name(), pushPull
	mc.Delegate = r
	mc.LogOutput = io.Discard
	ml, err := memberlist.Create(mc)
	if err != nil {
		t.Fatal(err)
	}
	r.ml = ml
	t.Cleanup(func() { ml.Shutdown() })
	if _, err := ml.Join([]string{m.LocalAddr()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the rogue to join", func() bool { return m.NumMembers() == 2 })
	return r
}

// A malformed log state is ignored; of a well-formed one, only entries
// younger than LogAge, from another source, are applied.
func TestOpLogIgnoresMalformedOldAndOwnEntries(t *testing.T) {
	t.Parallel()
	m := startMember(t, "m0", func(c *Config) { logConfig(c); c.LogAge = time.Hour })
	r := startRogue(t, m)
	for _, bad := range []string{
		"not json",
		`{"ops":[{"src":`,
		`{"ops":"x"}`,
		`{"ops":[{"src":"x","inc":1,"seq":1,"kind":"purge","data":{},"at":"yesterday"}]}`,
		`[{"id":"x/1/1","req":{"keys":["a"]},"at":"2025-01-01T00:00:00Z"}]`, // node's former purge log
		`null`,
	} {
		r.set(bad)
		waitMerges(t, m.Cluster, 3)
	}
	if st := m.Stats(); m.got.len() != 0 || st.Logged != 0 || st.Replayed != 0 {
		t.Fatalf("after malformed states: applied %d, %+v", m.got.len(), st)
	}
	now := time.Now()
	entry := func(src string, seq uint64, at time.Time) wireEntry {
		return wireEntry{Op{Source: src, Incarnation: 1, Seq: seq, Kind: "purge", Data: opData(int(seq))}, at.UnixMilli()}
	}
	r.setEntries(t,
		entry("far", 1, now.Add(-2*time.Hour)),    // older than LogAge
		entry("far", 2, now.Add(-61*time.Minute)), // just older
		entry("m0", 3, now),                       // this member's own
		entry("", 4, now),                         // no source
		entry("far", 5, now.Add(-59*time.Minute)),
		entry("far", 6, now.Add(time.Hour)), // a clock ahead
		entry("far", 6, now),                // listed twice
	)
	waitFor(t, "m0 to apply the young entries", func() bool { return m.got.len() >= 2 })
	waitMerges(t, m.Cluster, 3)
	if got := ids(m.got.snapshot()); !slices.Equal(got, []string{"far/1/5", "far/1/6"}) {
		t.Fatalf("applied %v, want far/1/5 and far/1/6 once", got)
	}
	if st := m.Stats(); st.Logged != 2 || st.Replayed != 2 {
		t.Fatalf("%+v", st)
	}
	m.log.mu.Lock()
	at := m.log.entries[1].at
	m.log.mu.Unlock()
	if at > time.Now().UnixMilli() {
		t.Fatalf("an entry from a clock ahead is dated %v", time.UnixMilli(at))
	}
}

// testLog is an op log with its own clock, for the bounds.
func testLog(max int, age time.Duration) (*opLog, *time.Time) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	cfg := Config{Remember: func(op Op) (Op, bool) { return op, true }, LogMax: max, LogAge: age}
	cfg.check()
	l := newOpLog(&cfg)
	l.now = func() time.Time { return now }
	return l, &now
}

func logOp(seq int) Op {
	return Op{Source: "s", Incarnation: 1, Seq: uint64(seq), Kind: "purge", Data: opData(seq)}
}

func decodeState(t *testing.T, b []byte) []Op {
	t.Helper()
	var st wireState
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("state %q: %v", b, err)
	}
	var ops []Op
	for _, e := range st.Ops {
		ops = append(ops, e.Op)
	}
	return ops
}

func TestOpLogStateIsCappedToNewestEntries(t *testing.T) {
	t.Parallel()
	l, _ := testLog(1000, time.Hour)
	for i := 1; i <= 1000; i++ {
		l.claim(logOp(i))
	}
	full := l.state()
	if ops := decodeState(t, full); len(ops) != 1000 || ops[0].Seq != 1 || ops[999].Seq != 1000 {
		t.Fatalf("uncapped state holds %d entries", len(ops))
	}
	l.maxBytes = len(full) / 3
	b := l.state()
	ops := decodeState(t, b)
	if len(b) > l.maxBytes || len(ops) < 300 || len(ops) > 340 {
		t.Fatalf("capped state: %d bytes (cap %d), %d entries", len(b), l.maxBytes, len(ops))
	}
	for i, op := range ops {
		if want := uint64(1000 - len(ops) + 1 + i); op.Seq != want {
			t.Fatalf("entry %d is seq %d, want %d: the newest, oldest first", i, op.Seq, want)
		}
	}
	if l.len() != 1000 {
		t.Fatalf("capping the state dropped entries from the log: %d", l.len())
	}
	if maxStateBytes >= 1<<20 {
		t.Fatalf("maxStateBytes %d is not well under a megabyte", maxStateBytes)
	}
}

func TestOpLogBounds(t *testing.T) {
	t.Parallel()
	l, now := testLog(2, time.Hour)
	for i := 1; i <= 9; i++ {
		if !l.claim(logOp(i)) {
			t.Fatalf("op %d is not new", i)
		}
		*now = now.Add(time.Second)
	}
	if ops := decodeState(t, l.state()); len(ops) != 2 || ops[0].Seq != 8 {
		t.Fatalf("log of 2 holds %v", ids(ops))
	}
	// 4×LogMax IDs stay seen: 2..9; the oldest, 1, is forgotten.
	for i := 2; i <= 9; i++ {
		if l.claim(logOp(i)) {
			t.Fatalf("op %d, evicted by count, is new again", i)
		}
	}
	if !l.claim(logOp(1)) {
		t.Fatal("op 1 is still seen past the bound of seen IDs")
	}
	// Past LogAge entries are dropped; their IDs stay seen until twice
	// LogAge.
	*now = now.Add(time.Hour + time.Minute)
	if b := l.state(); b != nil || l.len() != 0 {
		t.Fatalf("after LogAge the state is %q", b)
	}
	if l.claim(logOp(9)) {
		t.Fatal("op 9 is new again right after LogAge")
	}
	*now = now.Add(time.Hour)
	if !l.claim(logOp(9)) {
		t.Fatal("op 9 is still seen after twice LogAge")
	}
	// Remember's form keeps the operation's identity; not keeping is new.
	l.remember = func(op Op) (Op, bool) { return Op{Kind: "k", Data: json.RawMessage(`1`)}, op.Seq != 100 }
	if first, second := l.claim(logOp(100)), l.claim(logOp(100)); !first || !second {
		t.Fatal("an operation Remember does not keep is not new")
	}
	l.claim(logOp(50))
	l.mu.Lock()
	last := l.entries[len(l.entries)-1].op
	l.mu.Unlock()
	if last.ID() != logOp(50).ID() || last.Kind != "k" {
		t.Fatalf("kept %+v", last)
	}
	// Off: nothing kept or sent, everything new.
	off := newOpLog(&Config{LogMax: 2, LogAge: time.Hour})
	if first, second := off.claim(logOp(1)), off.claim(logOp(1)); !first || !second || off.state() != nil || off.len() != 0 {
		t.Fatal("a log without Remember is not off")
	}
	off.merge([]byte(`{"ops":[{"src":"x","inc":1,"seq":1,"kind":"k","data":1,"at":1}]}`), "n", func(Op) { t.Fatal("applied") })
}
