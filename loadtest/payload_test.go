package loadtest

import (
	"encoding/json"
	"testing"
)

func TestParseMessage(t *testing.T) {
	tests := []struct {
		line    string
		seq, ts int64
		ok      bool
	}{
		{`{"seq":0,"ts":1700000000000000000}` + "\n", 0, 1700000000000000000, true},
		{`data: {"seq":17,"ts":42}` + "\n", 17, 42, true},
		{`{"seq": 3, "ts": 9, "x":1}`, 3, 9, true},
		{`{"ts":9,"seq":3}`, 3, 9, true},
		{"open\n", 0, 0, false},
		{": open\n", 0, 0, false},
		{"\n", 0, 0, false},
		{`{"seq":,"ts":1}`, 0, 0, false},
		{`{"seq":1}`, 0, 0, false},
		{`{"seq":-1,"ts":1}`, 0, 0, false},
		{`{"seq":1,"ts":"x"}`, 0, 0, false},
		{`{"seq":1234567890123456789012,"ts":1}`, 0, 0, false},
	}
	for _, tt := range tests {
		seq, ts, ok := ParseMessage([]byte(tt.line))
		if ok != tt.ok || seq != tt.seq || ts != tt.ts {
			t.Errorf("ParseMessage(%q) = %d, %d, %v; want %d, %d, %v", tt.line, seq, ts, ok, tt.seq, tt.ts, tt.ok)
		}
	}
}

func TestParseMessageDoesNotAllocate(t *testing.T) {
	line := []byte(`data: {"seq":12345,"ts":1700000000123456789}` + "\n")
	if n := testing.AllocsPerRun(100, func() { ParseMessage(line) }); n != 0 {
		t.Errorf("ParseMessage allocates %v times", n)
	}
}

func TestAppendMessageRoundTrip(t *testing.T) {
	b := AppendMessage(nil, 7, 1234567)
	if string(b) != `{"seq":7,"ts":1234567}` {
		t.Fatalf("AppendMessage = %s", b)
	}
	seq, ts, ok := ParseMessage(b)
	if !ok || seq != 7 || ts != 1234567 {
		t.Fatalf("round trip: %d %d %v", seq, ts, ok)
	}
}

func TestPublishBody(t *testing.T) {
	for _, tr := range Transports {
		spec, err := transportFor(tr)
		if err != nil {
			t.Fatal(err)
		}
		pb := newPublishBody(`we"ird\ch`, spec.format, spec.field, spec.pre, spec.post)
		body := pb.append(nil, 5, 99)
		var v struct {
			Items []struct {
				Channel string                       `json:"channel"`
				Formats map[string]map[string]string `json:"formats"`
			} `json:"items"`
		}
		if err := json.Unmarshal(body, &v); err != nil {
			t.Fatalf("%s: %v in %s", tr, err, body)
		}
		if len(v.Items) != 1 || v.Items[0].Channel != `we"ird\ch` {
			t.Fatalf("%s: items %+v", tr, v.Items)
		}
		got := v.Items[0].Formats[spec.format][spec.field]
		want := map[Transport]string{
			TransportStream:   `{"seq":5,"ts":99}` + "\n",
			TransportSSE:      `data: {"seq":5,"ts":99}` + "\n\n",
			TransportLongPoll: `{"seq":5,"ts":99}` + "\n",
			TransportWS:       `{"seq":5,"ts":99}`,
		}[tr]
		if got != want {
			t.Errorf("%s: %s.%s = %q, want %q", tr, spec.format, spec.field, got, want)
		}
	}
	if _, err := transportFor("carrier-pigeon"); err == nil {
		t.Error("unknown transport accepted")
	}
}

func TestDeliverCounts(t *testing.T) {
	r := &runState{msgs: 5, latency: newHist()}
	cs := &connState{run: r, seen: make([]uint64, 1)}
	line := func(seq int64) []byte { return append(AppendMessage(nil, seq, 1), '\n') }
	for _, seq := range []int64{0, 2, 1, 2, 4, 7} {
		cs.deliver(line(seq))
	}
	cs.deliver([]byte("open\n"))
	if cs.received != 4 || cs.duplicated != 1 || cs.outOfOrder != 1 || cs.foreign != 1 {
		t.Errorf("received %d duplicated %d outOfOrder %d foreign %d; want 4 1 1 1",
			cs.received, cs.duplicated, cs.outOfOrder, cs.foreign)
	}
	if r.received.Load() != 4 || r.latency.merged().TotalCount() != 4 {
		t.Errorf("run received %d, latencies %d", r.received.Load(), r.latency.merged().TotalCount())
	}
	msg := line(3)
	if n := testing.AllocsPerRun(100, func() { cs.deliver(msg) }); n != 0 {
		t.Errorf("deliver allocates %v times", n)
	}
}
