package cluster

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/valyala/fasthttp"
)

// Cluster is this node's membership in a tier and its delivery of
// operations to the other members. New joins nothing; Start does; Leave
// then Shutdown end it.
type Cluster struct {
	cfg   Config
	ml    *memberlist.Memberlist
	inc   int64
	seq   atomic.Uint64
	dedup dedup
	log   *opLog

	// dropIncoming makes ServeOps lose what it accepts (DropIncoming).
	dropIncoming atomic.Bool

	events chan memberlist.NodeEvent
	stop   chan struct{}
	wg     sync.WaitGroup

	mu    sync.Mutex
	peers map[string]*peer
	// members is every member as its latest event showed it, this one
	// included: copies, unlike memberlist's Members, whose Nodes
	// memberlist keeps writing to.
	members map[string]memberlist.Node

	// localAddr is LocalAddr, read once: memberlist rewrites the local
	// node when its metadata changes (Leave).
	localAddr string

	// mlLog receives memberlist's own log lines.
	mlLog *memberlistLog

	// shields are the members that may shield (shield.go).
	shields shieldSet

	received, duplicates atomic.Uint64
	shutdown             sync.Once
	leaving, left        atomic.Bool // leaving: in NodeMeta, from Leave on
	closed               atomic.Bool

	// drops counts operations dropped undelivered, over every peer.
	drops dropCounts
	// lost holds, under mu, the peers of members declared dead, their
	// queues kept for the retry window in case they come back; lostAddrs
	// the addresses of members declared dead, which rejoin retries.
	lost      map[string]*lostPeer
	lostAddrs map[string]lostAddr
	// failed counts members declared dead; rejoins, rejoins that
	// contacted a lost member or a seed.
	failed, rejoins atomic.Uint64
}

// meta is what a member tells the others about itself.
type meta struct {
	Control string `json:"control"`
	Version string `json:"version"`
	// Leaving is set by a member that leaves gracefully (Leave), just
	// before it leaves: the others then log it as left, not failed.
	// memberlist's leave event does not say which (its Node.State is
	// never updated).
	Leaving bool `json:"leaving,omitempty"`
	// Region and Zone are Config's.
	Region string `json:"region,omitempty"`
	Zone   string `json:"zone,omitempty"`
	// Shield is set by a member that may be a key's shield
	// (Config.Shield).
	Shield bool `json:"shield,omitempty"`
}

// New checks cfg and creates the memberlist (bound, not joined).
func New(cfg Config) (*Cluster, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	c := newCluster(cfg)
	mc := c.memberlistConfig()
	if cfg.Faults != nil {
		t, err := newFaultTransport(cfg.Faults, mc.BindAddr, mc.BindPort, mc)
		if err != nil {
			return nil, fmt.Errorf("cluster: %w", err)
		}
		mc.Transport = t
		if mc.BindPort == 0 {
			mc.BindPort = t.GetAutoBindPort()
		}
	}
	ml, err := memberlist.Create(mc)
	if err != nil {
		if t, ok := mc.Transport.(*faultTransport); ok {
			t.Shutdown()
		}
		return nil, fmt.Errorf("cluster: %w", err)
	}
	c.ml = ml
	c.localAddr = ml.LocalNode().Address()
	return c, nil
}

// newCluster is New without memberlist, for a checked cfg: enough for
// Receive and the op log.
func newCluster(cfg Config) *Cluster {
	// Each line says which part wrote it, once: memberlist's lines are
	// not the cluster's.
	base := cfg.Log
	cfg.Log = base.With("component", "cluster")
	c := &Cluster{
		mlLog:  newMemberlistLog(base.With("component", "memberlist")),
		cfg:    cfg,
		inc:    time.Now().UnixNano(),
		events: make(chan memberlist.NodeEvent, 1024),
		stop:   make(chan struct{}),
		peers:  map[string]*peer{},

		members: map[string]memberlist.Node{},

		lost:      map[string]*lostPeer{},
		lostAddrs: map[string]lostAddr{},
	}
	c.log = newOpLog(&c.cfg)
	return c
}

func (c *Cluster) memberlistConfig() *memberlist.Config {
	mc, reclaim, _ := profileConfig(c.cfg.profile()) // checked by New
	mc.Name = c.cfg.Name
	host, port := splitHostPort(c.cfg.Bind, "0.0.0.0", 7946)
	mc.BindAddr, mc.BindPort = host, port
	if c.cfg.Advertise != "" {
		mc.AdvertiseAddr, mc.AdvertisePort = splitHostPort(c.cfg.Advertise, "", port)
	}
	// A node that comes back under its name from another address (a
	// rescheduled container) may take the name over once declared dead.
	mc.DeadNodeReclaimTime = reclaim
	if c.cfg.PushPull > 0 {
		mc.PushPullInterval = c.cfg.PushPull
	}
	mc.SecretKey = c.cfg.SecretKey
	mc.Label = c.cfg.Label
	mc.Delegate = delegate{c}
	mc.Events = &memberlist.ChannelEventDelegate{Ch: c.events}
	mc.Logger = log.New(c.mlLog, "", 0)
	if c.cfg.Tune != nil {
		c.cfg.Tune(mc)
	}
	return mc
}

func splitHostPort(addr, defHost string, defPort int) (string, int) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return defHost, defPort
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		port = defPort
	}
	if host == "" {
		host = defHost
	}
	return host, port
}

// Start handles membership events and joins the configured members in
// the background, retrying until one answers.
func (c *Cluster) Start() {
	c.wg.Add(3)
	go c.watch()
	// The kept queues of lost members end with their retry window; lost
	// members are joined again (partition.go).
	go c.every(min(time.Second, max(c.cfg.RetryWindow/4, 50*time.Millisecond)), c.expireLost)
	go c.every(c.rejoinEvery(), c.rejoinOnce)
	if len(c.cfg.Join) > 0 {
		c.wg.Add(1)
		go c.join()
	}
}

// join tries the seeds until one of them answers; failures are logged
// at warn now and then (logJoinFailure).
func (c *Cluster) join() {
	defer c.wg.Done()
	for attempt := 1; ; attempt++ {
		n, err := c.ml.Join(c.cfg.Join)
		if n > 0 {
			c.cfg.Log.Info("joined the tier", "contacted", n, "attempts", attempt)
			return
		}
		logJoinFailure(c.cfg.Log, attempt, c.cfg.Join, err)
		select {
		case <-c.stop:
			return
		case <-time.After(joinRetry):
		}
	}
}

// watch turns membership events into peers. memberlist's event delegate
// must not call back into memberlist; this goroutine may.
func (c *Cluster) watch() {
	defer c.wg.Done()
	for {
		select {
		case <-c.stop:
			return
		case ev := <-c.events:
			c.onEvent(ev)
		}
	}
}

func (c *Cluster) onEvent(ev memberlist.NodeEvent) {
	n := ev.Node
	var m meta
	json.Unmarshal(n.Meta, &m)
	c.mu.Lock()
	if c.closed.Load() {
		// Shutdown has stopped the peers (this event waited for the
		// lock meanwhile): a peer started now would never be stopped.
		c.mu.Unlock()
		return
	}
	if ev.Event == memberlist.NodeLeave {
		delete(c.members, n.Name)
	} else {
		c.members[n.Name] = *n
	}
	c.shields.update(n.Name, m, ev.Event == memberlist.NodeLeave)
	if n.Name == c.cfg.Name {
		c.mu.Unlock()
		return
	}
	old := c.peers[n.Name]
	delete(c.peers, n.Name)
	came := c.recoverLocked(n.Name, &old)
	failed := false
	if ev.Event != memberlist.NodeLeave && m.Control != "" {
		if old != nil && old.addr == m.Control {
			c.peers[n.Name] = old // nothing changed for delivery
			old = nil
			if came {
				c.cfg.Log.Info("tier member back: delivering what was queued for it", "node", n.Name, "region", m.Region, "zone", m.Zone)
			}
		} else {
			p := newPeer(n.Name, m.Control, &c.cfg, &c.drops)
			c.peers[n.Name] = p
			c.wg.Add(1)
			go func() { defer c.wg.Done(); p.run() }()
			c.cfg.Log.Info("tier member joined", "node", n.Name, "control", m.Control, "version", m.Version, "region", m.Region, "zone", m.Zone)
		}
	} else if ev.Event == memberlist.NodeLeave && !m.Leaving {
		failed = true
		c.loseLocked(n, old)
		old = nil
	}
	c.mu.Unlock()
	if old != nil {
		// Outside the lock: a hung peer must not delay publishes.
		if k := old.close(); k > 0 {
			c.drops.memberGone.Add(uint64(k))
		}
	}
	if failed {
		c.failed.Add(1)
	}
	if ev.Event == memberlist.NodeLeave {
		// A member that left has its queue dropped; one declared dead
		// keeps it for the retry window (loseLocked).
		if m.Leaving {
			c.cfg.Log.Info("tier member left", "node", n.Name, "state", "left")
		} else {
			c.cfg.Log.Warn("tier member failed: declared dead, it did not answer probes", "node", n.Name, "state", "failed")
		}
	}
}

// memberState is a member's state for Stats, "alive" or "left" (it is
// leaving): memberlist's Node.State is never updated (always alive), and
// a member is in Stats until it has left or been declared dead.
func memberState(m meta) string {
	if m.Leaving {
		return "left"
	}
	return "alive"
}

// Broadcast sends an operation of kind with data to every other alive
// member and returns it; delivery is in the background. data must be JSON
// (it travels as a json.RawMessage); it is copied, so the caller may reuse
// it. Data that is not JSON is logged and not sent: no peer would ever
// accept the batch holding it. What Config.Remember keeps of the operation
// goes to the op log, for members that miss it.
func (c *Cluster) Broadcast(kind string, data []byte) Op {
	if !json.Valid(data) {
		c.cfg.Log.Error("operation is not JSON, not forwarded", "kind", kind)
		return Op{Source: c.cfg.Name, Incarnation: c.inc, Kind: kind}
	}
	op := Op{Source: c.cfg.Name, Incarnation: c.inc, Kind: kind, Data: bytes.Clone(data)}
	c.mu.Lock()
	// Numbered under the lock: every peer queue must be in Seq order (the
	// sender removes what it sent by Seq, the receiver drops a Seq lower
	// than one it applied).
	op.Seq = c.seq.Add(1)
	now := time.Now()
	for _, p := range c.peers {
		p.enqueue(op, now, c.cfg.QueueLen)
	}
	for _, l := range c.lost {
		l.peer.enqueue(op, now, c.cfg.QueueLen)
	}
	c.mu.Unlock()
	c.log.claim(op)
	return op
}

// ID names an operation uniquely in the tier.
func (op Op) ID() string {
	return op.Source + "/" + strconv.FormatInt(op.Incarnation, 36) + "/" + strconv.FormatUint(op.Seq, 36)
}

// authorized checks the Authorization header of a forwarded batch.
func (c *Cluster) authorized(authorization []byte) bool {
	if c.cfg.Token == "" {
		return true
	}
	want := "Bearer " + c.cfg.Token
	return subtle.ConstantTimeCompare(authorization, []byte(want)) == 1
}

// TokenFor derives the token members use to authenticate operations from
// the tier's secret key.
func TokenFor(secretKey []byte) string {
	mac := hmac.New(sha256.New, secretKey)
	mac.Write([]byte("edgepush tier operations"))
	return hex.EncodeToString(mac.Sum(nil))
}

// ServeOps is the handler for POST OpsPath on the control listener: it
// receives a batch of operations a peer forwarded and applies each new
// one through Config.Handler. It answers, in plain text: 405 to another
// method, 401 without the tier token (Config.Token, as a Bearer token),
// 400 to a body that is not a batch, and 200 once the batch is applied
// (the peer then drops it from its queue; with DropIncoming, without
// applying it).
func (c *Cluster) ServeOps(ctx *fasthttp.RequestCtx) {
	if !ctx.IsPost() {
		ctx.Response.Header.Set(fasthttp.HeaderAllow, fasthttp.MethodPost)
		opsReply(ctx, fasthttp.StatusMethodNotAllowed, "method not allowed: POST operations")
		return
	}
	if !c.authorized(ctx.Request.Header.Peek(fasthttp.HeaderAuthorization)) {
		opsReply(ctx, fasthttp.StatusUnauthorized, "missing or invalid tier token")
		return
	}
	if c.cfg.Faults.isCut() {
		// A test's partition: the sender's request fails, and it retries.
		ctx.SetConnectionClose()
		opsReply(ctx, fasthttp.StatusServiceUnavailable, "tier traffic cut (injected fault)")
		return
	}
	if c.dropIncoming.Load() {
		opsReply(ctx, fasthttp.StatusOK, "ok") // a test's partition: accepted and lost
		return
	}
	if err := c.Receive(ctx.PostBody()); err != nil {
		opsReply(ctx, fasthttp.StatusBadRequest, err.Error())
		return
	}
	opsReply(ctx, fasthttp.StatusOK, "ok")
}

func opsReply(ctx *fasthttp.RequestCtx, code int, msg string) {
	ctx.SetStatusCode(code)
	ctx.SetContentType("text/plain; charset=utf-8")
	ctx.SetBodyString(msg + "\n")
}

// DropIncoming makes this member accept every forwarded batch and lose it,
// as a network partition would; for tests.
func (c *Cluster) DropIncoming(drop bool) { c.dropIncoming.Store(drop) }

// Receive applies a batch of operations (the body ServeOps receives), each
// once: operations from this member itself, ones older than the newest
// applied from their source, and ones already applied from the op log are
// skipped and counted as duplicates. What Config.Remember keeps of the
// others goes to the op log.
func (c *Cluster) Receive(body []byte) error {
	var ops []Op
	if err := json.Unmarshal(body, &ops); err != nil {
		return fmt.Errorf("cluster: bad batch: %w", err)
	}
	for _, op := range ops {
		if op.Source == c.cfg.Name {
			continue
		}
		if !c.dedup.fresh(op) || !c.log.claim(op) {
			c.duplicates.Add(1)
			continue
		}
		c.received.Add(1)
		c.cfg.Handler.HandleOp(op)
	}
	return nil
}

// Member is one tier member as /status shows it.
type Member struct {
	Name    string `json:"name"`
	Addr    string `json:"addr"`
	Control string `json:"control"`
	Version string `json:"version"`
	State   string `json:"state"`
	Region  string `json:"region,omitempty"`
	Zone    string `json:"zone,omitempty"`
}

// Stats is the tier's state.
type Stats struct {
	// Node is this member's name.
	Node string `json:"node"`
	// Members lists the members memberlist knows, this one included, by
	// name, as its membership events last showed them.
	Members []Member `json:"members"`
	// Received counts operations applied from peers' batches.
	Received uint64 `json:"ops_received"`
	// Duplicates counts operations in peers' batches skipped as applied
	// already.
	Duplicates uint64 `json:"ops_deduplicated"`
	// Replayed counts operations applied from other members' op logs
	// (missed when they were forwarded).
	Replayed uint64 `json:"ops_replayed"`
	// Logged is the number of entries in the op log.
	Logged int `json:"ops_logged"`
	// Peers counts delivery to each other member.
	Peers []PeerStats `json:"peers"`

	// Profile is the membership profile (ProfileLAN, ProfileWAN,
	// ProfileLocal); Region and Zone are this member's.
	Profile string `json:"profile"`
	Region  string `json:"region,omitempty"`
	Zone    string `json:"zone,omitempty"`
	// Lost counts delivery to members declared dead whose queues are kept
	// for the retry window (Config.RetryWindow), in case they come back.
	Lost []PeerStats `json:"lost_peers,omitempty"`
	// Dropped counts operations dropped undelivered, by reason.
	Dropped DropStats `json:"ops_dropped"`
	// Failed counts members declared dead (they stopped answering probes;
	// a partition, a crash); Rejoins counts joins that contacted a lost
	// member or, alone, a seed again.
	Failed  uint64 `json:"members_failed"`
	Rejoins uint64 `json:"rejoins"`
}

// Stats returns the members and delivery counters.
func (c *Cluster) Stats() Stats {
	st := Stats{Node: c.cfg.Name, Received: c.received.Load(), Duplicates: c.duplicates.Load(),
		Replayed: c.log.replayed.Load(), Logged: c.log.len()}
	st.Profile, st.Region, st.Zone = c.cfg.profile(), c.cfg.Region, c.cfg.Zone
	st.Dropped, st.Failed, st.Rejoins = c.drops.stats(), c.failed.Load(), c.rejoins.Load()
	c.mu.Lock()
	for _, n := range c.members {
		var m meta
		json.Unmarshal(n.Meta, &m)
		st.Members = append(st.Members, Member{Name: n.Name, Addr: n.Address(), Control: m.Control, Version: m.Version, State: memberState(m),
			Region: m.Region, Zone: m.Zone})
	}
	for _, p := range c.peers {
		st.Peers = append(st.Peers, p.stats())
	}
	for _, l := range c.lost {
		st.Lost = append(st.Lost, l.peer.stats())
	}
	c.mu.Unlock()
	slices.SortFunc(st.Members, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return st
}

// NumMembers counts alive members, this node included.
func (c *Cluster) NumMembers() int { return c.ml.NumMembers() }

// LocalAddr is the memberlist address others join (host:port).
func (c *Cluster) LocalAddr() string { return c.localAddr }

// Leave tells the tier this node is going, waiting up to timeout (zero or
// negative: as long as it takes): first its metadata says it is leaving
// (so that the others log it as left, not failed), then it leaves.
func (c *Cluster) Leave(timeout time.Duration) error {
	if c.closed.Load() || c.left.Swap(true) {
		return nil // memberlist panics on Leave after Shutdown
	}
	c.leaving.Store(true)
	if timeout <= 0 {
		if err := c.ml.UpdateNode(0); err != nil {
			c.cfg.Log.Debug("telling the tier this member is leaving", "err", err)
		}
		return c.ml.Leave(0)
	}
	deadline := time.Now().Add(timeout)
	if err := c.ml.UpdateNode(timeout / 2); err != nil {
		c.cfg.Log.Debug("telling the tier this member is leaving", "err", err)
	}
	// memberlist waits forever for a zero timeout: never pass one.
	return c.ml.Leave(max(time.Until(deadline), time.Millisecond))
}

// Shutdown stops delivery and memberlist. It is idempotent; call Leave
// first for a graceful exit.
func (c *Cluster) Shutdown() error {
	var err error
	c.shutdown.Do(func() {
		c.closed.Store(true)
		close(c.stop)
		c.mu.Lock()
		for name, p := range c.peers {
			p.close()
			delete(c.peers, name)
		}
		for name, l := range c.lost {
			l.peer.close()
			delete(c.lost, name)
		}
		clear(c.members)
		c.mu.Unlock()
		c.shields.close()
		err = c.ml.Shutdown()
		c.wg.Wait()
	})
	return err
}

// delegate gives memberlist this node's metadata and op log.
type delegate struct{ c *Cluster }

func (d delegate) NodeMeta(limit int) []byte {
	b, _ := json.Marshal(meta{Control: d.c.cfg.ControlAddr, Version: d.c.cfg.Version, Leaving: d.c.leaving.Load(),
		Region: d.c.cfg.Region, Zone: d.c.cfg.Zone,
		Shield: d.c.cfg.Shield})
	if len(b) > limit {
		return nil
	}
	return b
}
func (d delegate) NotifyMsg([]byte)                           {}
func (d delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d delegate) LocalState(join bool) []byte                { return d.c.log.state() }
func (d delegate) MergeRemoteState(buf []byte, join bool) {
	d.c.log.merge(buf, d.c.cfg.Name, d.c.cfg.Handler.HandleOp)
}
