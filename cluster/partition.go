package cluster

import (
	"maps"
	"slices"
	"time"

	"github.com/hashicorp/memberlist"
)

// Partitions. A member cut off from the others (a network partition, a
// host that stops answering) is declared dead by them after a few probe
// rounds, as they are by it. Two things keep the cut from losing
// operations silently and from lasting past the heal:
//
//   - The peer of a member declared dead is kept, with its queue, for
//     Config.RetryWindow (a lostPeer): operations broadcast meanwhile are
//     queued for it too and retried, so if it comes back within the window
//     (the partition heals) it gets them; what is still queued when the
//     window ends, and every operation queued longer than the window, is
//     dropped and counted (Stats.Dropped), never lost unsaid. Purges also
//     reach it later through the op log (see opLog), whatever the window.
//   - Memberlist gossips to a dead member only for a while
//     (GossipToTheDeadTime) and pushes/pulls with alive ones only, so after
//     a longer cut neither side would contact the other again: rejoin
//     joins the members lost (declared dead, not left) every Config.Rejoin,
//     and the Join seeds when this member is alone.

// lostPeer is the peer of a member declared dead, kept for the retry
// window.
type lostPeer struct {
	peer *peer
	at   time.Time // when it was declared dead
}

// lostAddr is the memberlist address of a member declared dead.
type lostAddr struct {
	addr string
	at   time.Time
}

// maxLostAddrs bounds the lost members' addresses rejoin retries, the
// oldest forgotten first.
const maxLostAddrs = 64

// loseLocked keeps, under c.mu, the peer (nil: none) of a member declared
// dead, and its address for rejoin.
func (c *Cluster) loseLocked(n *memberlist.Node, p *peer) {
	now := time.Now()
	if p != nil {
		c.lost[n.Name] = &lostPeer{peer: p, at: now}
	}
	c.lostAddrs[n.Name] = lostAddr{addr: n.Address(), at: now}
	for len(c.lostAddrs) > maxLostAddrs {
		oldest := slices.MinFunc(slices.Collect(maps.Keys(c.lostAddrs)), func(a, b string) int {
			return c.lostAddrs[a].at.Compare(c.lostAddrs[b].at)
		})
		delete(c.lostAddrs, oldest)
	}
}

// recoverLocked, under c.mu, takes back the kept peer of a member that was
// declared dead into *old (when *old is nil) and forgets its address;
// it reports whether there was a kept peer.
func (c *Cluster) recoverLocked(name string, old **peer) bool {
	delete(c.lostAddrs, name)
	l, ok := c.lost[name]
	if !ok {
		return false
	}
	delete(c.lost, name)
	if *old == nil {
		*old = l.peer
		return true
	}
	// Not expected (a member is alive or lost, not both): keep the alive
	// one's peer.
	if k := l.peer.close(); k > 0 {
		c.drops.memberGone.Add(uint64(k))
	}
	return false
}

// every calls f every d until Shutdown.
func (c *Cluster) every(d time.Duration, f func(now time.Time)) {
	defer c.wg.Done()
	tick := time.NewTicker(d)
	defer tick.Stop()
	for {
		select {
		case <-c.stop:
			return
		case now := <-tick.C:
			f(now)
		}
	}
}

// expireLost drops the kept peers declared dead a retry window before now.
func (c *Cluster) expireLost(now time.Time) {
	var gone []*lostPeer
	c.mu.Lock()
	for name, l := range c.lost {
		if now.Sub(l.at) >= c.cfg.RetryWindow {
			gone = append(gone, l)
			delete(c.lost, name)
		}
	}
	c.mu.Unlock()
	for _, l := range gone {
		k := l.peer.close()
		if k == 0 {
			c.cfg.Log.Info("tier member not back within the retry window: no longer queuing operations for it",
				"node", l.peer.name, "retry_window", c.cfg.RetryWindow.String())
			continue
		}
		c.drops.memberGone.Add(uint64(k))
		c.cfg.Log.Warn("tier member not back within the retry window: operations queued for it dropped",
			"node", l.peer.name, "dropped", k, "retry_window", c.cfg.RetryWindow.String())
	}
}

// rejoinEvery is how often rejoinOnce runs: Config.Rejoin, else the
// push/pull interval.
func (c *Cluster) rejoinEvery() time.Duration {
	if c.cfg.Rejoin > 0 {
		return c.cfg.Rejoin
	}
	return c.pushPull()
}

// rejoinOnce joins the lost members' addresses, forgetting those lost
// longer than LogAge ago, and the seeds when this member is alone.
func (c *Cluster) rejoinOnce(now time.Time) {
	var addrs []string
	c.mu.Lock()
	for name, l := range c.lostAddrs {
		if now.Sub(l.at) > c.cfg.LogAge {
			delete(c.lostAddrs, name)
			continue
		}
		if _, alive := c.members[name]; !alive {
			addrs = append(addrs, l.addr)
		}
	}
	c.mu.Unlock()
	if c.ml.NumMembers() <= 1 {
		addrs = append(addrs, c.cfg.Join...)
	}
	if len(addrs) == 0 || c.closed.Load() {
		return
	}
	slices.Sort(addrs)
	addrs = slices.Compact(addrs)
	n, err := c.ml.Join(addrs)
	if n > 0 {
		c.rejoins.Add(1)
		c.cfg.Log.Info("rejoined lost tier members", "contacted", n, "tried", len(addrs))
		return
	}
	c.cfg.Log.Debug("lost tier members still unreachable", "tried", addrs, "err", err)
}

// pushPull is memberlist's push/pull interval: Config.PushPull, else the
// profile's.
func (c *Cluster) pushPull() time.Duration {
	if c.cfg.PushPull > 0 {
		return c.cfg.PushPull
	}
	mc, _, _ := profileConfig(c.cfg.profile())
	return mc.PushPullInterval
}
