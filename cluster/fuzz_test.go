package cluster

import (
	"bytes"
	"cmp"
	"encoding/json"
	"slices"
	"testing"
	"time"
)

// fuzzNowMs is the fuzz targets' clock: 2025-01-01T00:00:00Z in Unix
// milliseconds.
const fuzzNowMs = 1735689600000

// fuzzMember is a Cluster as New builds it, without memberlist (Receive
// and the op log do not use it), whose log keeps purges (as the node's
// does; other operations rely on the deduplication alone) and whose
// Handler records what it applies.
func fuzzMember(t *testing.T, name string) (*Cluster, *recorder) {
	t.Helper()
	got := &recorder{}
	cfg := Config{Name: name, ControlAddr: "127.0.0.1:1", Handler: got, LogAge: time.Hour, LogMax: 1 << 16,
		Remember: func(op Op) (Op, bool) { return op, op.Kind == "purge" }}
	if err := cfg.check(); err != nil {
		t.Fatal(err)
	}
	c := newCluster(cfg)
	c.log.now = func() time.Time { return time.UnixMilli(fuzzNowMs) }
	return c, got
}

// opKey is what identifies an operation in the tier; Kind and Data are
// compared too, so that nothing is altered on the way. Data is compared
// as JSON values: the op log stores it re-encoded (compact, with <, >
// and & escaped), and absent Data as null.
func opKey(op Op) [3]string {
	dec := json.NewDecoder(bytes.NewReader(op.Data))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil {
		v = nil
	}
	data, _ := json.Marshal(v)
	return [3]string{op.ID(), op.Kind, string(data)}
}

func opKeys(ops []Op) [][3]string {
	out := make([][3]string, len(ops))
	for i, op := range ops {
		out[i] = opKey(op)
	}
	return out
}

// FuzzReceive: a batch a peer POSTs is applied as a reference model of
// the deduplication says (operations of this member skipped; per source,
// only an (incarnation, seq) above the highest applied), counted, and
// applied once only when it comes again; the op log then holds the
// purges applied, and its state, merged by another member, replays them.
func FuzzReceive(f *testing.F) {
	for _, s := range []string{
		`[{"src":"edge-1","inc":1735689600000000000,"seq":1,"kind":"publish","data":{"items":[{"channel":"news","formats":{"http-stream":{"content":"hi\n"}}}]}}]`,
		`[{"src":"edge-1","inc":7,"seq":2,"kind":"purge","data":{"keys":["a"],"urls":null,"soft":null}},{"src":"edge-1","inc":7,"seq":1,"kind":"purge","data":{}},{"src":"edge-1","inc":7,"seq":2,"kind":"purge","data":{}}]`,
		`[{"src":"a","inc":2,"seq":1},{"src":"a","inc":1,"seq":9},{"src":"a","inc":3,"seq":0},{"src":"m0","inc":1,"seq":1},{"src":"","inc":-1,"seq":18446744073709551615}]`,
		`[{"src":"a/1","inc":2,"seq":3},{"src":"a","inc":1,"seq":2}]`,
		`{"not":"a batch"}`,
		`[]`,
		`null`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		c, got := fuzzMember(t, "m0")
		if err := c.Receive(body); err != nil {
			return
		}
		var ops []Op
		if err := json.Unmarshal(body, &ops); err != nil {
			t.Fatalf("Receive accepted %q: %v", body, err)
		}
		type pos struct {
			inc int64
			seq uint64
		}
		last := map[string]pos{}
		var want []Op
		others := 0
		for _, op := range ops {
			if op.Source == "m0" {
				continue
			}
			others++
			p, seen := last[op.Source]
			if seen && cmp.Or(cmp.Compare(op.Incarnation, p.inc), cmp.Compare(op.Seq, p.seq)) <= 0 {
				continue
			}
			last[op.Source] = pos{op.Incarnation, op.Seq}
			want = append(want, op)
		}
		applied := got.snapshot()
		if !slices.Equal(opKeys(applied), opKeys(want)) {
			t.Fatalf("batch %q: applied %v, want %v", body, opKeys(applied), opKeys(want))
		}
		purges := slices.DeleteFunc(slices.Clone(want), func(op Op) bool { return op.Kind != "purge" })
		// The counters Stats reports (it also asks memberlist).
		if r, d, l := c.received.Load(), c.duplicates.Load(), c.log.len(); r != uint64(len(want)) || d != uint64(others-len(want)) || l != len(purges) {
			t.Fatalf("batch of %d (%d from others), %d applied, %d purges: received %d, duplicates %d, logged %d", len(ops), others, len(want), len(purges), r, d, l)
		}
		if err := c.Receive(body); err != nil || got.len() != len(want) {
			t.Fatalf("the batch again: %v, applied %d more", err, got.len()-len(want))
		}
		// Another member merging this one's log replays the purges it
		// applied (but its own, and those without a source).
		other, replayed := fuzzMember(t, "m1")
		other.log.merge(c.log.state(), "m1", replayed.HandleOp)
		purges = slices.DeleteFunc(purges, func(op Op) bool { return op.Source == "" || op.Source == "m1" })
		if !slices.Equal(opKeys(replayed.snapshot()), opKeys(purges)) {
			t.Fatalf("replayed %v, want %v", opKeys(replayed.snapshot()), opKeys(purges))
		}
	})
}

// FuzzMergeState: a member's op log state (memberlist push/pull) merged
// into an empty log applies, oldest first, exactly what a reference model
// says: entries with a source other than this member, not older than
// LogAge, each ID once, dated no later than now; merging it again applies
// nothing, and the log's own state gives the same operations back.
func FuzzMergeState(f *testing.F) {
	at := int64(fuzzNowMs)
	for _, s := range []string{
		`{"ops":[{"src":"edge-2","inc":1,"seq":1,"kind":"purge","data":{"keys":["a"],"urls":null,"soft":null},"at":` + itoa(at-1000) + `}]}`,
		`{"ops":[{"src":"e","inc":1,"seq":2,"kind":"purge","data":1,"at":` + itoa(at) + `},{"src":"e","inc":1,"seq":1,"kind":"purge","data":2,"at":` + itoa(at-5) + `},{"src":"e","inc":1,"seq":2,"kind":"x","data":3,"at":1}]}`,
		`{"ops":[{"src":"m0","inc":1,"seq":1,"at":` + itoa(at) + `},{"src":"","inc":1,"seq":1,"at":` + itoa(at) + `},{"src":"f","inc":1,"seq":1,"at":` + itoa(at-3600001) + `},{"src":"f","inc":1,"seq":2,"at":9223372036854775807}]}`,
		`{"ops":null}`,
		`{"ops":[{"src":"e","data":[1,{"a":null}],"at":` + itoa(at) + `}],"extra":true}`,
		`not json`,
		``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, buf []byte) {
		c, got := fuzzMember(t, "m0")
		c.log.merge(buf, "m0", got.HandleOp)
		var st wireState
		if len(buf) == 0 || json.Unmarshal(buf, &st) != nil {
			if got.len() != 0 {
				t.Fatalf("malformed state %q applied %v", buf, got.snapshot())
			}
			return
		}
		nowMs, old := int64(fuzzNowMs), time.UnixMilli(fuzzNowMs).Add(-time.Hour).UnixMilli()
		type dated struct {
			op Op
			at int64
		}
		var want []dated
		taken := map[string]bool{}
		for _, w := range st.Ops {
			if w.Source == "" || w.Source == "m0" || w.At < old || taken[w.ID()] {
				continue
			}
			taken[w.ID()] = true
			want = append(want, dated{w.Op, min(w.At, nowMs)})
		}
		slices.SortStableFunc(want, func(a, b dated) int { return cmp.Compare(a.at, b.at) })
		wantOps := make([]Op, len(want))
		for i, d := range want {
			wantOps[i] = d.op
		}
		if !slices.Equal(opKeys(got.snapshot()), opKeys(wantOps)) {
			t.Fatalf("state %q: applied %v, want %v", buf, opKeys(got.snapshot()), opKeys(wantOps))
		}
		c.log.merge(buf, "m0", got.HandleOp)
		if got.len() != len(want) || c.log.len() != len(want) {
			t.Fatalf("merged again: applied %d, logged %d, want %d", got.len(), c.log.len(), len(want))
		}
		var mine wireState
		if s := c.log.state(); s != nil || len(want) > 0 {
			if err := json.Unmarshal(s, &mine); err != nil {
				t.Fatalf("own state %q: %v", s, err)
			}
		}
		if len(mine.Ops) != len(want) {
			t.Fatalf("own state holds %d entries, want %d", len(mine.Ops), len(want))
		}
		for i, w := range mine.Ops {
			if opKey(w.Op) != opKey(want[i].op) || w.At != want[i].at {
				t.Fatalf("own state entry %d: %v at %d, want %v at %d", i, opKey(w.Op), w.At, opKey(want[i].op), want[i].at)
			}
		}
	})
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }
