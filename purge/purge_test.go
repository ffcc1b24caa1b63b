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
}

func (p *recPurger) Purge(key string, soft bool)    { p.add("k:"+key, soft) }
func (p *recPurger) PurgeURL(url string, soft bool) { p.add("u:"+url, soft) }
func (p *recPurger) add(s string, soft bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !soft {
		s += "!"
	}
	p.log = append(p.log, s)
}
func (p *recPurger) got() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.log, " ")
}

func TestLimiterLeadingAndOneTrailingPurge(t *testing.T) {
	p := &recPurger{}
	l := NewLimiter(100*time.Millisecond, p)
	defer l.Close()
	start := time.Now()
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
	if !second.At.Equal(third.At) || second.At.Sub(start) > 110*time.Millisecond {
		t.Fatalf("trailing purge at %v and %v", second.At, third.At)
	}
	if got := p.got(); got != "k:a k:b" {
		t.Fatalf("before the interval ends: %q", got)
	}
	deadline := time.Now().Add(2 * time.Second)
	for p.got() != "k:a k:b k:a!" {
		if time.Now().After(deadline) {
			t.Fatalf("trailing purge: %q", p.got())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if st := l.Stats(); st.Requested != 4 || st.Run != 3 || st.Deferred != 1 || st.Folded != 1 {
		t.Fatalf("stats %+v", st)
	}
	// After the trailing purge, a new request is within its interval again.
	if o := l.Request(Target{Key: "a"}, true); o.Ran {
		t.Fatal("purge right after the trailing one ran at once")
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
