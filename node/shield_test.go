package node

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/edgepush/edgepush/cluster"
)

// shieldKeyOf is the key a tier shields a test client's GET of path by
// (rawConn.get sends Host: test).
func shieldKeyOf(path string) string { return "\x00GET http://test" + path }

// shieldOf returns the index in nodes of the shield of path, as nodes[0]
// sees it.
func shieldOf(t testing.TB, nodes []*testNode, path string) int {
	t.Helper()
	m, ok := nodes[0].tier.ShieldFor(shieldKeyOf(path))
	if !ok {
		t.Fatalf("no shield for %s", path)
	}
	for i, n := range nodes {
		if n.cfg.NodeName == m.Name {
			return i
		}
	}
	t.Fatalf("shield %s is not a test node", m.Name)
	return -1
}

// waitShieldView waits until every node sees n shields (the shield flag
// comes with each member's metadata).
func waitShieldView(t testing.TB, nodes []*testNode, path string) {
	t.Helper()
	want, _ := nodes[0].tier.ShieldFor(shieldKeyOf(path))
	for i, n := range nodes {
		waitFor(t, fmt.Sprintf("node %d to see the shields", i), func() bool {
			m, _ := n.tier.ShieldFor(shieldKeyOf(path))
			return m.Name == want.Name
		})
	}
}

// TestShieldOneOriginFetchPerPurge is the goal: with the origin
// shielded, a tier of 3, 5 or 10 members asks the origin once per key per
// purge, however many members serve new clients; held streams on every
// member get each update once (no replay twice, none lost), and new
// clients on every member get the current value.
func TestShieldOneOriginFetchPerPurge(t *testing.T) {
	for _, size := range []int{3, 5, 10} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			o := &counterOrigin{}
			nodes := startTier(t, size, o, func(i int, c *Config) { c.PurgeInterval = 0 })
			waitShieldView(t, nodes, "/value")
			streams := counterStreams(t, nodes, "value 0\n")
			if f := o.fetches.Load(); f != 1 {
				t.Fatalf("%d origin fetches for %d members' first clients, want 1", f, size)
			}
			for round := int64(1); round <= 3; round++ {
				before := o.fetches.Load()
				o.value.Store(round)
				nodes[int(round)%size].purgePublish(t, round)
				want := fmt.Sprintf("value %d\n", round)
				for i, r := range streams {
					if got := readLine(t, r); got != want {
						t.Fatalf("round %d: held stream on node %d got %q, want %q", round, i, got, want)
					}
				}
				for i, node := range nodes {
					if got := firstLine(t, node); got != want {
						t.Fatalf("round %d: new client on node %d got %q, want %q", round, i, got, want)
					}
				}
				if got := o.fetches.Load() - before; got != 1 {
					t.Fatalf("round %d: %d origin fetches for new clients on %d members, want 1", round, got, size)
				}
			}
			var answered, served uint64
			for _, n := range nodes {
				answered += n.shieldStats.answered.Load()
				served += n.shieldStats.served.Load()
				if f := n.shieldStats.failed.Load(); f != 0 {
					t.Fatalf("%s: %d failed shield requests", n.cfg.NodeName, f)
				}
			}
			var purged uint64
			for _, n := range nodes {
				purged += n.shieldStats.purged.Load()
			}
			if answered == 0 || answered+purged != served {
				t.Fatalf("%d shield answers used, %d asked again after a purge, %d served", answered, purged, served)
			}
		})
	}
}

// TestShieldPurgeNotYetAtTheShield: a member that ran a purge the key's
// shield has not run yet (it lost the forwarded operation) does not take
// the shield's pre-purge copy: it asks again for one fetched after its
// purge, and its new clients get the current value.
func TestShieldPurgeNotYetAtTheShield(t *testing.T) {
	o := &counterOrigin{}
	nodes := startTier(t, 3, o, func(i int, c *Config) { c.PurgeInterval = 0 })
	waitShieldView(t, nodes, "/value")
	s := shieldOf(t, nodes, "/value")
	member := nodes[(s+1)%3]
	if got := firstLine(t, member); got != "value 0\n" {
		t.Fatalf("first client: %q", got)
	}
	nodes[s].tier.DropIncoming(true) // the shield misses the purge
	o.value.Store(1)
	member.purgePublish(t, 1)
	if got := firstLine(t, member); got != "value 1\n" {
		t.Fatalf("new client on the member after its purge: %q, want the current value", got)
	}
	if p := member.shieldStats.purged.Load(); p != 1 {
		t.Fatalf("%d answers older than the purge, want 1", p)
	}
}

// TestShieldPurgeDuringShieldFetch: a purge that runs while the shield is
// fetching for a member leaves neither of them a fresh pre-purge copy.
// everywhere: the member's client gets the current value (the member
// asks again for a copy fetched after its purge, or, served the pre-purge
// copy, gets the update replayed), and so do new clients of both. at the
// shield (the member lost the forwarded purge): the shield does not keep
// the copy it was fetching as fresh.
func TestShieldPurgeDuringShieldFetch(t *testing.T) {
	for _, memberGetsIt := range []bool{true, false} {
		t.Run(map[bool]string{true: "everywhere", false: "at the shield"}[memberGetsIt], func(t *testing.T) {
			o := &gatedCounter{gate: make(chan struct{}), arrived: make(chan struct{})}
			nodes := startTier(t, 3, o, func(i int, c *Config) { c.PurgeInterval = 0 })
			t.Cleanup(o.release) // before the nodes shut down
			waitShieldView(t, nodes, "/value")
			s := shieldOf(t, nodes, "/value")
			member := nodes[(s+1)%3]
			ch := dialRaw(t, member.Addr())
			r := make(chan *bufio.Reader, 1)
			go func() { r <- bufio.NewReader(ch.get(t, "/value").Body) }()
			<-o.arrived // the shield's origin request, for value 0
			o.value.Store(1)
			if !memberGetsIt {
				member.tier.DropIncoming(true)
			}
			nodes[s].purgePublish(t, 1)
			for i, n := range nodes {
				if n != member || memberGetsIt {
					waitFor(t, fmt.Sprintf("node %d to run the purge", i), func() bool { return n.Status().Purges.Run >= 1 })
				}
			}
			o.release()
			stream := <-r
			got := readLine(t, stream)
			if !memberGetsIt {
				if got != "value 0\n" {
					t.Fatalf("the member's client got %q, want the copy (the member has not run the purge)", got)
				}
				if got := firstLine(t, nodes[s]); got != "value 1\n" {
					t.Fatalf("new client on the shield: %q, want the current value", got)
				}
				return
			}
			if got == "value 0\n" {
				got = readLine(t, stream)
			}
			if got != "value 1\n" {
				t.Fatalf("the member's client got %q, want the update", got)
			}
			for _, i := range []int{s, (s + 1) % 3} {
				if got := firstLine(t, nodes[i]); got != "value 1\n" {
					t.Fatalf("new client on node %d (shield %d): %q, want the current value", i, s, got)
				}
			}
		})
	}
}

// gatedCounter is counterOrigin whose first fetch reads the value, then
// waits for release before it answers with it.
type gatedCounter struct {
	counterOrigin
	gate, arrived chan struct{}
	first         atomic.Bool
	once          sync.Once
}

func (o *gatedCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !o.first.CompareAndSwap(false, true) {
		o.counterOrigin.ServeHTTP(w, r)
		return
	}
	o.fetches.Add(1)
	v := o.value.Load()
	close(o.arrived)
	select {
	case <-o.gate:
	case <-time.After(waitTimeout):
	}
	o.answer(w, r, v)
}

func (o *gatedCounter) release() { o.once.Do(func() { close(o.gate) }) }

// shieldLinks dials shields for a node and lets a test cut them: refuse
// new connections to an address and close those open (a member killed),
// or send them to a listener that never answers (a partition).
type shieldLinks struct {
	mu      sync.Mutex
	conns   map[string][]net.Conn
	dials   map[string]int
	refused map[string]bool
	hole    string // address of the black hole, for addresses in holed
	holed   map[string]bool
}

func newShieldLinks() *shieldLinks {
	return &shieldLinks{conns: map[string][]net.Conn{}, dials: map[string]int{}, refused: map[string]bool{}, holed: map[string]bool{}}
}

func (l *shieldLinks) dial(addr string) (net.Conn, error) {
	l.mu.Lock()
	l.dials[addr]++
	refused, to := l.refused[addr], addr
	if l.holed[addr] {
		to = l.hole
	}
	l.mu.Unlock()
	if refused {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	}
	c, err := net.Dial("tcp", to)
	if err == nil {
		l.mu.Lock()
		l.conns[addr] = append(l.conns[addr], c)
		l.mu.Unlock()
	}
	return c, err
}

// kill refuses addr from now on and closes its open connections.
func (l *shieldLinks) kill(addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.refused[addr] = true
	for _, c := range l.conns[addr] {
		c.Close()
	}
}

func (l *shieldLinks) dialsTo(addr string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.dials[addr]
}

// blackHole listens on loopback, accepts, reads and never answers.
func blackHole(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); io.Copy(io.Discard, c); c.Close() }()
			t.Cleanup(func() { c.Close() })
		}
	}()
	return ln.Addr().String()
}

// TestShieldKilledMidFetch: the shield dies while a member waits for it
// (its connections reset, new ones refused): the member asks the origin
// itself at once, its client gets the answer, and its next misses of
// the dead shield's keys do not try it again.
func TestShieldKilledMidFetch(t *testing.T) {
	o := &gatedCounter{gate: make(chan struct{}), arrived: make(chan struct{})}
	links := newShieldLinks()
	nodes := startTierTuned(t, 3, o, func(i int, s *Server) { s.shieldDial = links.dial },
		func(i int, c *Config) { c.PurgeInterval, c.ShieldRetry = 0, time.Hour })
	t.Cleanup(o.release)
	waitShieldView(t, nodes, "/value")
	s := shieldOf(t, nodes, "/value")
	member := nodes[(s+1)%3]
	shieldAddr := nodes[s].ControlAddr().String()
	ch := dialRaw(t, member.Addr())
	r := make(chan *bufio.Reader, 1)
	go func() { r <- bufio.NewReader(ch.get(t, "/value").Body) }()
	<-o.arrived // the shield is fetching
	links.kill(shieldAddr)
	if got := readLine(t, <-r); got != "value 0\n" {
		t.Fatalf("the member's client got %q", got)
	}
	if f, a := member.shieldStats.failed.Load(), member.shieldStats.answered.Load(); f != 1 || a != 0 {
		t.Fatalf("member: %d failed shield requests, %d answered; want 1, 0", f, a)
	}
	dials := links.dialsTo(shieldAddr)
	// Another key of the dead shield: the member goes to the origin (or
	// another shield) without trying it.
	path := pathShieldedBy(t, nodes, nodes[s].cfg.NodeName)
	if got := firstLine(t, member); got != "value 0\n" { // cached by now
		t.Fatalf("cached: %q", got)
	}
	c := dialRaw(t, member.Addr())
	if resp := c.get(t, path); resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: %d", path, resp.StatusCode)
	}
	if d := links.dialsTo(shieldAddr); d != dials {
		t.Fatalf("the member dialed the dead shield %d more times", d-dials)
	}
	if f := member.shieldStats.failed.Load(); f != 1 {
		t.Fatalf("%d failed shield requests, want still 1", f)
	}
}

// pathShieldedBy returns a path whose key's shield is name, as every
// member saw the tier at its start.
func pathShieldedBy(t *testing.T, nodes []*testNode, name string) string {
	t.Helper()
	for k := range 1000 {
		p := fmt.Sprintf("/k%d", k)
		if nodes[shieldOf(t, nodes, p)].cfg.NodeName == name {
			return p
		}
	}
	t.Fatal("no path")
	return ""
}

// TestShieldPartitioned: a shield the member cannot reach (its requests
// go unanswered; memberlist still counts it) costs one wait of
// -shield-timeout, then the member asks the origin; the shield is
// skipped for -shield-retry.
func TestShieldPartitioned(t *testing.T) {
	o := &counterOrigin{}
	links := newShieldLinks()
	links.hole = blackHole(t)
	nodes := startTierTuned(t, 3, o, func(i int, s *Server) { s.shieldDial = links.dial },
		func(i int, c *Config) { c.ShieldTimeout, c.ShieldRetry = 200*time.Millisecond, time.Hour })
	waitShieldView(t, nodes, "/value")
	s := shieldOf(t, nodes, "/value")
	member := nodes[(s+1)%3]
	addr := nodes[s].ControlAddr().String()
	links.mu.Lock()
	links.holed[addr] = true
	links.mu.Unlock()
	if got := firstLine(t, member); got != "value 0\n" {
		t.Fatalf("member's client: %q", got)
	}
	if f := member.shieldStats.failed.Load(); f != 1 {
		t.Fatalf("%d failed shield requests, want 1", f)
	}
	if f := o.fetches.Load(); f != 1 {
		t.Fatalf("%d origin fetches, want the member's own", f)
	}
	dials := links.dialsTo(addr)
	c := dialRaw(t, member.Addr())
	if resp := c.get(t, pathShieldedBy(t, nodes, nodes[s].cfg.NodeName)); resp.StatusCode != http.StatusOK {
		t.Fatalf("another key: %d", resp.StatusCode)
	}
	if d, f := links.dialsTo(addr), member.shieldStats.failed.Load(); d != dials || f != 1 {
		t.Fatalf("the partitioned shield was tried again (%d dials, %d failures)", d-dials, f)
	}
}

// shieldPost sends a shield request to node's control listener.
func shieldPost(t *testing.T, node *testNode, token string, body string) (int, string) {
	t.Helper()
	auth := ""
	if token != "" {
		auth = "Bearer " + token
	}
	return send(t, http.MethodPost, node.ctl+cluster.ShieldPath, "", auth, strings.NewReader(body))
}

// TestShieldEndpoint: the shield endpoint wants the tier token, refuses
// what is not a cacheable origin request for a path of a cached route,
// and answers one by its own cache, from its own origin: never through
// another shield, even for a key it would send to one.
func TestShieldEndpoint(t *testing.T) {
	o := &counterOrigin{}
	nodes := startTier(t, 2, o, func(i int, c *Config) { c.PublishKey = "secret" })
	waitShieldView(t, nodes, "/value")
	token := tierToken(nil, []byte("secret"))
	// A key node 1 would send to node 0.
	path := pathShieldedBy(t, nodes, nodes[0].cfg.NodeName)
	ok := `{"route":"default","url":"http://test` + path + `","method":"GET","uri":"` + path + `","host":"test","header":[["X-A","1"]]}` + "\n"
	for _, tc := range []struct {
		token, body string
		code        int
		want        string
	}{
		{"", ok, 401, "tier token"},
		{"wrong", ok, 401, "tier token"},
		{token, "{", 400, "bad shield request"},
		{token, strings.Replace(ok, `"GET"`, `"POST"`, 1), 400, "not cached"},
		{token, strings.Replace(ok, `"uri":"/`, `"uri":"http://evil.example/`, 1), 400, "must be a path"},
		{token, strings.Replace(ok, `"uri":"/`, `"uri":"//evil.example/`, 1), 400, "must be a path"},
		{token, strings.Replace(ok, `"route":"default"`, `"route":"nope"`, 1), 404, "no cached route"},
		{token, ok + "body", 400, "no body"},
		{token, strings.Replace(ok, `"url"`, `"namespace":"ws","url"`, 1), 400, "namespace"},
	} {
		code, body := shieldPost(t, nodes[1], tc.token, tc.body)
		if code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("%.60q: %d %q, want %d %q", tc.body, code, body, tc.code, tc.want)
		}
	}
	code, body := shieldPost(t, nodes[1], token, ok)
	head, rest, _ := strings.Cut(body, "\n")
	if code != 200 || !strings.Contains(head, `"status":200`) || !strings.Contains(head, `"Surrogate-Key","counter"`) ||
		!strings.Contains(head, `"Age","0"`) || rest != "value 0\n" {
		t.Fatalf("shield answer: %d %q", code, body)
	}
	if s0, s1 := nodes[0].shieldStats.served.Load(), nodes[1].shieldStats.served.Load(); s0 != 0 || s1 != 1 {
		t.Fatalf("served: node 0 %d, node 1 %d; want node 1 alone (a shield request is never shielded again)", s0, s1)
	}
	// Its validators match: 304, no body.
	cond := strings.Replace(ok, `["X-A","1"]`, `["If-None-Match","\"nope\""]`, 1)
	if code, body := shieldPost(t, nodes[1], token, cond); code != 200 || !strings.Contains(body, `"status":200`) {
		t.Fatalf("other validators: %d %q", code, body)
	}
	if f := o.fetches.Load(); f != 1 {
		t.Fatalf("%d origin fetches, want 1 (the shield's cache answers)", f)
	}
}

// A shield whose origin is down says so; the member answers its client
// as for its own origin failure, without asking the origin itself.
func TestShieldOriginDown(t *testing.T) {
	nodes := startTier(t, 2, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "ok\n")
	}))
	waitShieldView(t, nodes, "/x")
	path := pathShieldedBy(t, nodes, nodes[0].cfg.NodeName)
	nodes[0].stopOrigin(t)
	resp := dialRaw(t, nodes[1].Addr()).get(t, path)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("status %d, want 502", resp.StatusCode)
	}
	st := &nodes[1].shieldStats
	if st.originFailed.Load() != 1 || st.failed.Load() != 0 {
		t.Fatalf("member: origin_failed %d, failed %d", st.originFailed.Load(), st.failed.Load())
	}
	if n := nodes[1].routes.all[0].origins[0].client.requests.Load(); n != 0 {
		t.Fatalf("the member asked its origin %d times", n)
	}
}

// TestShieldRevalidation: a member's conditional revalidation goes to the
// shield, which revalidates its own copy with the origin and answers the
// member 304 when the member's validators still match: the member's copy
// is refreshed (REVALIDATED) and the origin sent its body once.
func TestShieldRevalidation(t *testing.T) {
	var full, notModified atomic.Int64
	origin := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=0")
		w.Header().Set("ETag", `"v1"`)
		if r.Header.Get("If-None-Match") == `"v1"` {
			notModified.Add(1)
			w.WriteHeader(http.StatusNotModified)
			return
		}
		full.Add(1)
		io.WriteString(w, "body\n")
	})
	nodes := startTier(t, 2, origin)
	waitShieldView(t, nodes, "/x")
	path := pathShieldedBy(t, nodes, nodes[0].cfg.NodeName)
	member := nodes[1]
	for i, want := range []string{"MISS", "REVALIDATED", "REVALIDATED"} {
		c := dialRaw(t, member.Addr())
		resp := c.get(t, path)
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(b) != "body\n" || resp.Header.Get("X-Cache") != want {
			t.Fatalf("request %d: %d %q X-Cache %q, want %s", i, resp.StatusCode, b, resp.Header.Get("X-Cache"), want)
		}
	}
	if f, n := full.Load(), notModified.Load(); f != 1 || n != 2 {
		t.Fatalf("origin: %d full answers, %d 304s; want 1 and 2 (the shield's revalidations)", f, n)
	}
	if r := member.cache.Stats().Revalidations; r != 2 {
		t.Fatalf("member: %d revalidations, want 2 (the shield's 304s)", r)
	}
	if a := member.shieldStats.answered.Load(); a != 3 {
		t.Fatalf("member: %d shield answers, want 3", a)
	}
}

// The shield settings are checked with the others.
func TestShieldConfig(t *testing.T) {
	for _, name := range []string{"shield-timeout", "shield-retry"} {
		c := DefaultConfig()
		c.Origin = "http://127.0.0.1:1"
		if name == "shield-timeout" {
			c.ShieldTimeout = -time.Second
		} else {
			c.ShieldRetry = -time.Second
		}
		if _, _, err := c.withDefaults(); err == nil || !strings.Contains(err.Error(), "-"+name+" -1s: must not be negative") {
			t.Errorf("-%s -1s: %v", name, err)
		}
	}
	c := DefaultConfig()
	if !c.Shield || c.ShieldTimeout != 2*time.Second || c.ShieldRetry != 5*time.Second {
		t.Fatalf("defaults: %v %v %v", c.Shield, c.ShieldTimeout, c.ShieldRetry)
	}
}

// TestShieldReplaysSinceTheShieldsFetch: a member's new client served the
// shield's older copy gets what was published after the shield asked the
// origin replayed, as for a copy of the member's own: the member's history
// position is the one of the moment the shield asked.
func TestShieldReplaysSinceTheShieldsFetch(t *testing.T) {
	o := &counterOrigin{}
	nodes := startTier(t, 3, o)
	waitShieldView(t, nodes, "/value")
	s := shieldOf(t, nodes, "/value")
	member := nodes[(s+1)%3]
	if got := firstLine(t, nodes[s]); got != "value 0\n" { // the shield's copy
		t.Fatalf("shield's client: %q", got)
	}
	if a, sv := nodes[s].shieldStats.answered.Load(), nodes[s].shieldStats.served.Load(); a != 0 || sv != 0 {
		t.Fatalf("the shield sent its own miss through a shield request (%d answered, %d served)", a, sv)
	}
	nodes[s].publish(t, streamItem("counter", "update\n")) // no purge: the copy stays fresh
	waitFor(t, "the member to have the update", func() bool { return member.hub.Stats().Published == 1 })
	r := bufio.NewReader(dialRaw(t, member.Addr()).get(t, "/value").Body)
	if got := readLine(t, r); got != "value 0\n" {
		t.Fatalf("member's client: %q, want the shield's copy", got)
	}
	if got := readLine(t, r); got != "update\n" {
		t.Fatalf("member's client then got %q, want the update replayed", got)
	}
	if a := member.shieldStats.answered.Load(); a != 1 {
		t.Fatalf("%d shield answers, want 1", a)
	}
}

// TestShieldAge: the member's copy is as old as the shield's: its age
// counts from the shield's Age, not from the member's fetch.
func TestShieldAge(t *testing.T) {
	nodes := startTier(t, 2, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Age", "100")
		io.WriteString(w, "ok\n")
	}))
	waitShieldView(t, nodes, "/x")
	path := pathShieldedBy(t, nodes, nodes[0].cfg.NodeName)
	for i, want := range []string{"MISS", "HIT"} {
		resp := dialRaw(t, nodes[1].Addr()).get(t, path)
		resp.Body.Close()
		if resp.Header.Get("X-Cache") != want {
			t.Fatalf("request %d: X-Cache %q", i, resp.Header.Get("X-Cache"))
		}
		if age, err := strconv.Atoi(resp.Header.Get("Age")); err != nil || age < 100 {
			t.Fatalf("request %d: Age %q, want at least the origin's 100", i, resp.Header.Get("Age"))
		}
	}
}

// TestShieldStaleWhileOriginDown: with the origin failing, a soft purge
// leaves stale copies serving on every member, the shield's included (a
// member without one gets the shield's); the member does not store the
// shield's stale copy as fresh, so once the origin is back every member
// serves the current value.
func TestShieldStaleWhileOriginDown(t *testing.T) {
	o := &failingCounter{}
	nodes := startTier(t, 3, o, func(i int, c *Config) { c.PurgeInterval = 0 })
	waitShieldView(t, nodes, "/value")
	for _, n := range nodes[:2] {
		if got := firstLine(t, n); got != "value 0\n" {
			t.Fatalf("warm: %q", got)
		}
	}
	o.down.Store(true)
	o.value.Store(1)
	resp, err := http.Post(nodes[0].ctl+"/purge/", "application/json", strings.NewReader(`{"keys":["counter"],"soft":true}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for i, n := range nodes {
		waitFor(t, fmt.Sprintf("node %d to run the purge", i), func() bool { return n.Status().Purges.Run >= 1 })
	}
	for i, n := range nodes { // node 2 never had a copy: it gets the shield's (or its origin failure)
		if got := firstLine(t, n); got != "value 0\n" {
			t.Fatalf("origin down: node %d served %q, want the stale copy", i, got)
		}
	}
	o.down.Store(false)
	for i, n := range nodes {
		if got := firstLine(t, n); got != "value 1\n" {
			t.Fatalf("origin back: node %d served %q, want the current value", i, got)
		}
	}
}

// failingCounter is counterOrigin answering 503 while down.
type failingCounter struct {
	counterOrigin
	down atomic.Bool
}

func (o *failingCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if o.down.Load() {
		o.fetches.Add(1)
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	o.counterOrigin.ServeHTTP(w, r)
}
