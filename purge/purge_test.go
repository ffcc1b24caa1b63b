package purge

import (
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type recPurger struct {
	mu  sync.Mutex
	log []string
	at  []time.Time // when each purge ran
}

func (p *recPurger) Purge(key string, soft bool)    { p.add("k:"+key, soft) }
func (p *recPurger) PurgeURL(url string, soft bool) { p.add("u:"+url, soft) }
func (p *recPurger) add(s string, soft bool) {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if !soft {
		s += "!"
	}
	p.log = append(p.log, s)
	p.at = append(p.at, now)
}
func (p *recPurger) got() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.log, " ")
}
func (p *recPurger) ranAt(i int) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.at[i]
}

// TestLimiterLeadingAndOneTrailingPurge checks when purges run by the
// limiter's own times (Outcome.At) and by their order, never by how long
// the test took: the trailing purge is scheduled exactly one interval
// after the leading one and cannot run before then, however slow or fast
// the machine.
func TestLimiterLeadingAndOneTrailingPurge(t *testing.T) {
	const interval = 100 * time.Millisecond
	p := &recPurger{}
	l := NewLimiter(interval, p)
	defer l.Close()
	first := l.Request(Target{Key: "a"}, true)
	if !first.Ran {
		t.Fatal("first purge did not run at once")
	}
	second := l.Request(Target{Key: "a"}, true)
	third := l.Request(Target{Key: "a"}, false) // hard wins
	other := l.Request(Target{Key: "b"}, true)
	if second.Ran || second.Folded || third.Ran || !third.Folded || !other.Ran {
		t.Fatalf("outcomes: %+v %+v %+v", second, third, other)
	}
	if due := first.At.Add(interval); !second.At.Equal(due) || !third.At.Equal(due) {
		t.Fatalf("trailing purge at %v and %v, want %v (one interval after the leading one)", second.At, third.At, due)
	}
	deadline := time.Now().Add(20 * time.Second) // only catches a hang
	for p.got() != "k:a k:b k:a!" {
		if time.Now().After(deadline) {
			t.Fatalf("trailing purge: %q", p.got())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if ran := p.ranAt(2); ran.Before(second.At) {
		t.Fatalf("trailing purge ran at %v, before its time %v", ran, second.At)
	}
	if st := l.Stats(); st.Requested != 4 || st.Run != 3 || st.Deferred != 1 || st.Folded != 1 {
		t.Fatalf("stats %+v", st)
	}
	// After the trailing purge, a new request is within its interval
	// again: the trailing purge started a new interval, so the request
	// may run at once only a whole interval after it, and at the
	// earliest two intervals after the leading purge.
	o := l.Request(Target{Key: "a"}, true)
	if earliest := first.At.Add(2 * interval); o.At.Before(earliest) {
		t.Fatalf("purge right after the trailing one: ran=%v at %v, want nothing before %v", o.Ran, o.At, earliest)
	}
}

func TestLimiterCloseRunsPendingPurges(t *testing.T) {
	p := &recPurger{}
	l := NewLimiter(time.Hour, p)
	l.Request(Target{URL: "http://h/x"}, true)
	l.Request(Target{URL: "http://h/x"}, true)
	l.Close()
	if got := p.got(); got != "u:http://h/x u:http://h/x" {
		t.Fatalf("after Close: %q", got)
	}
	if o := l.Request(Target{Key: "z"}, true); !o.Ran {
		t.Fatal("request after Close was deferred")
	}
}

func TestLimiterOff(t *testing.T) {
	p := &recPurger{}
	l := NewLimiter(0, p)
	defer l.Close()
	for range 3 {
		if o := l.Request(Target{Key: "a"}, false); !o.Ran {
			t.Fatal("deferred without an interval")
		}
	}
	if p.got() != "k:a! k:a! k:a!" {
		t.Fatal(p.got())
	}
}

func TestParseBadBodies(t *testing.T) {
	for _, tc := range []struct{ body, header, want string }{
		{"", "", "nothing to purge"},
		{"{}", "", "nothing to purge"},
		{"{nope", "", "invalid JSON"},
		{`{"keys":"a"}`, "", "invalid JSON"},
		{`{"keys":[1]}`, "", "invalid JSON"},
		{`{"soft":"yes","keys":["a"]}`, "", "invalid JSON"},
		{`{"keys":["a"],"extra":1}`, "", "unknown field"},
		{`{"keys":["a b"]}`, "", "invalid surrogate key"},
		{`{"urls":["/path"]}`, "", "invalid URL"},
		{`{"keys":["a"]} {}`, "", "data after"},
	} {
		if _, err := ParsePurge([]byte(tc.body), tc.header); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParsePurge(%q): %v, want %q", tc.body, err, tc.want)
		}
	}
	r, err := ParsePurge(nil, "a  b")
	if err != nil || len(r.Targets()) != 2 || !r.IsSoft() {
		t.Fatalf("Surrogate-Key header: %+v %v", r, err)
	}
	for _, tc := range []struct{ body, want string }{
		{`{}`, "nothing to purge"},
		{`{"purge":{"keys":[]},"items":null}`, "nothing to purge"},
		{`{"purge":{"keys":["a"]},"items":[],"x":1}`, "unknown field"},
		{`{"purge":[]}`, "invalid JSON"},
	} {
		if _, _, err := ParsePurgePublish([]byte(tc.body)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParsePurgePublish(%q): %v, want %q", tc.body, err, tc.want)
		}
	}
	req, items, err := ParsePurgePublish([]byte(`{"purge":{"keys":["a"],"soft":false},"items":[{"channel":"c"}]}`))
	if err != nil || req.IsSoft() || string(items) != `{"items":[{"channel":"c"}]}` {
		t.Fatalf("%+v %s %v", req, items, err)
	}
}
