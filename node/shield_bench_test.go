package node

import (
	"bufio"
	"fmt"
	"net"
	"slices"
	"testing"
	"time"
)

// BenchmarkShieldSetup measures a new client's setup on a member that is
// not the key's shield (dial, GET a held stream, read its first line),
// paired in each iteration: after a purge on every member (as the tier
// delivers it) and a client of the shield's own, which refills the
// shield's cache, the member's miss (answered by the shield's cache; with
// shield=false, by the origin), then the same request again, a hit in
// the member's cache. Each is timed alone, after the same pause, and
// reported as medians (miss-µs, hit-µs) and their ratio (miss/hit).
func BenchmarkShieldSetup(b *testing.B) {
	for _, shield := range []bool{true, false} {
		b.Run(fmt.Sprintf("shield=%v", shield), func(b *testing.B) {
			o := &counterOrigin{}
			nodes := startTierTuned(b, 3, o, nil, func(i int, c *Config) { c.Shield = shield })
			member, other := nodes[0], nodes[1]
			if shield {
				waitShieldView(b, nodes, "/value")
				s := shieldOf(b, nodes, "/value")
				member, other = nodes[(s+1)%3], nodes[s]
			}
			open := func(n *testNode) time.Duration {
				start := time.Now()
				c, err := net.Dial("tcp", n.Addr().String())
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(waitTimeout))
				raw := &rawConn{Conn: c, r: bufio.NewReader(c)}
				if line := readLine(b, bufio.NewReader(raw.get(b, "/value").Body)); line != "value 0\n" {
					b.Fatalf("first line %q", line)
				}
				return time.Since(start)
			}
			open(member)
			misses, hits := make([]time.Duration, 0, b.N), make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				for _, n := range nodes {
					n.cache.Purge("counter", false)
				}
				open(other)                  // with shielding: the shield's own client refills its cache
				time.Sleep(time.Millisecond) // what that left running (closing, unsubscribing) ends
				misses = append(misses, open(member))
				time.Sleep(time.Millisecond)
				hits = append(hits, open(member))
			}
			b.StopTimer()
			slices.Sort(misses)
			slices.Sort(hits)
			miss, hit := misses[len(misses)/2], hits[len(hits)/2]
			b.ReportMetric(float64(miss.Microseconds()), "miss-µs")
			b.ReportMetric(float64(hit.Microseconds()), "hit-µs")
			b.ReportMetric(float64(miss)/float64(hit), "miss/hit")
			b.ReportMetric(float64(misses[len(misses)*9/10].Microseconds()), "miss-p90-µs")
			b.ReportMetric(float64(hits[len(hits)*9/10].Microseconds()), "hit-p90-µs")
			if shield {
				b.ReportMetric(float64(member.shieldStats.purged.Load())/float64(b.N), "reasked/op")
			}
		})
	}
}

// BenchmarkShieldOriginFetches counts the origin fetches of a tier per
// purge-and-publish followed by a new client on every member, with
// shielding on and off: reported as fetches/purge (the goal: 1).
func BenchmarkShieldOriginFetches(b *testing.B) {
	for _, size := range []int{3, 10} {
		for _, shield := range []bool{true, false} {
			b.Run(fmt.Sprintf("members=%d/shield=%v", size, shield), func(b *testing.B) {
				o := &counterOrigin{}
				nodes := startTierTuned(b, size, o, nil, func(i int, c *Config) { c.PurgeInterval, c.Shield = 0, shield })
				waitShieldView(b, nodes, "/value")
				for _, n := range nodes {
					firstLine(b, n)
				}
				before := o.fetches.Load()
				b.ResetTimer()
				for i := range b.N {
					v := int64(i + 1)
					o.value.Store(v)
					nodes[i%size].purgePublish(b, v)
					for _, n := range nodes {
						waitFor(b, "the purge", func() bool { return n.Status().Purges.Run >= uint64(i+1) })
					}
					want := fmt.Sprintf("value %d\n", v)
					for _, n := range nodes {
						if got := firstLine(b, n); got != want {
							b.Fatalf("%q, want %q", got, want)
						}
					}
				}
				b.ReportMetric(float64(o.fetches.Load()-before)/float64(b.N), "fetches/purge")
			})
		}
	}
}
