package node

import (
	"bufio"
	"net"
	"testing"
	"time"
)

// BenchmarkShieldSetup measures a new client's setup on a member that is
// not the key's shield: dial, GET a held stream, read its first line. hit:
// from the member's own cache; shield: after a purge (on every member)
// and a client of the shield's own, which refilled the shield's cache:
// the member's miss answered by the shield's cache; origin: the same
// miss with shielding off (every member asks the origin).
func BenchmarkShieldSetup(b *testing.B) {
	for _, tc := range []struct {
		name          string
		shield, purge bool
	}{{"hit", true, false}, {"shield", true, true}, {"origin", false, true}} {
		b.Run(tc.name, func(b *testing.B) {
			o := &counterOrigin{}
			nodes := startTierTuned(b, 3, o, nil, func(i int, c *Config) { c.Shield = tc.shield })
			member := nodes[0]
			if tc.shield {
				waitShieldView(b, nodes, "/value")
				member = nodes[(shieldOf(b, nodes, "/value")+1)%3]
			}
			open := func(n *testNode) {
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
			}
			open(member) // warms the member's cache, and the shield's
			b.ResetTimer()
			for range b.N {
				if tc.purge {
					// A purge on every member, as the tier delivers
					// it; then the shield's own client refills its
					// cache.
					b.StopTimer()
					for _, n := range nodes {
						n.cache.Purge("counter", false)
					}
					if tc.shield {
						open(nodes[shieldOf(b, nodes, "/value")])
					}
					b.StartTimer()
				}
				open(member)
			}
		})
	}
}
