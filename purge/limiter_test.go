package purge

import (
	"fmt"
	"testing"
	"time"
)

// countPurger counts purges; the limiter calls it from its own goroutines
// only for trailing purges, which these tests do not schedule.
type countPurger struct{ n int }

func (p *countPurger) Purge(string, bool)    { p.n++ }
func (p *countPurger) PurgeURL(string, bool) { p.n++ }

func (l *Limiter) tracked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.targets)
}

// TestLimiterForgetsEndedIntervals purges a stream of distinct targets,
// a batch per interval: the limiter must forget the targets whose interval
// is over once there are many, so the targets it tracks stay bounded by
// what one interval brings, not by every target ever purged.
func TestLimiterForgetsEndedIntervals(t *testing.T) {
	const (
		interval = 5 * time.Millisecond
		perRound = 1500
		rounds   = 20
	)
	p := &countPurger{}
	l := NewLimiter(interval, p)
	defer l.Close()
	peak := 0
	for r := range rounds {
		for i := range perRound {
			if out := l.Request(Target{Key: fmt.Sprintf("r%d-%d", r, i)}, true); !out.Ran {
				t.Fatalf("first purge of a new target deferred: %+v", out)
			}
			peak = max(peak, l.tracked())
		}
		// Every target of this round is past its interval before the
		// next round starts (a slow machine only makes more of them so).
		time.Sleep(interval)
	}
	if p.n != perRound*rounds {
		t.Fatalf("%d purges ran, want %d", p.n, perRound*rounds)
	}
	// A sweep leaves at most one round (the targets still in their
	// interval) and runs again at twice that, or at 1024.
	if bound := 2*perRound + 1024; peak > bound {
		t.Fatalf("the limiter tracked %d targets at once, want at most %d (of %d purged)", peak, bound, perRound*rounds)
	}
	// Forgotten targets run at once when purged again.
	if out := l.Request(Target{Key: "r0-0"}, true); !out.Ran {
		t.Fatalf("a target whose interval ended long ago was deferred: %+v", out)
	}
}

// TestLimiterSweepKeepsTargetsInTheirInterval: sweeps triggered by many
// new targets must not forget the ones still in their interval, or a
// repeat purge of one would run at once instead of being deferred.
func TestLimiterSweepKeepsTargetsInTheirInterval(t *testing.T) {
	p := &countPurger{}
	l := NewLimiter(time.Hour, p)
	defer l.Close()
	const n = 5000 // several sweeps (at 1024, 2048, 4096)
	for i := range n {
		l.Request(Target{URL: fmt.Sprintf("http://h/%d", i)}, false)
	}
	if got := l.tracked(); got != n {
		t.Fatalf("tracking %d targets, want all %d (none is past its interval)", got, n)
	}
	// 1023 is the target whose arrival triggered the first sweep.
	for _, i := range []int{0, 1023, n / 2, n - 1} {
		out := l.Request(Target{URL: fmt.Sprintf("http://h/%d", i)}, false)
		if out.Ran {
			t.Fatalf("target %d purged again within its interval ran at once: %+v", i, out)
		}
	}
	if st := l.Stats(); st.Requested != n+4 || st.Run != n || st.Deferred != 4 {
		t.Fatalf("stats %+v", st)
	}
}
