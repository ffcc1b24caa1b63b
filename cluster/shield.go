package cluster

import (
	"errors"
	"fmt"
	"hash/fnv"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// Origin shielding: for each cache key one member of the tier is its
// shield, chosen by rendezvous (highest random weight) hashing over the
// alive members that may shield (Config.Shield, carried in the node
// metadata). Every member computes the same choice from the same
// membership; one that sees another membership at worst asks another
// member, which fetches the origin itself (a shield never asks a shield).
// The node decides what a shield request means; this file only picks the
// member and carries the request, over kept-alive connections to the
// member's control listener, with the tier token.

// ShieldPath is the control API path members POST shield requests to.
const ShieldPath = "/_cluster/shield"

// ErrNoShield is AskShield's error for a member that is not (or no longer)
// a shield, or after Shutdown.
var ErrNoShield = errors.New("cluster: no such shield")

// ErrShieldUnreachable wraps AskShield's error for a request that got no
// answer (not sent, or none in time): the shield is skipped for
// Config.ShieldRetry.
var ErrShieldUnreachable = errors.New("cluster: shield unreachable")

// ShieldMember is the member that shields a key.
type ShieldMember struct {
	Name    string
	Control string // its control address
	Self    bool   // this member: fetch the origin directly
}

// shieldSet is the members that may shield, and what this member knows of
// their health.
type shieldSet struct {
	mu      sync.RWMutex
	members map[string]shieldEntry
	clients map[string]*fasthttp.HostClient // by member name
	closed  bool
}

type shieldEntry struct {
	control   string
	nameHash  uint64
	downUntil time.Time // skipped until then: a request to it failed
}

// update records what a membership event says of member name: a shield
// when its metadata says so (and it is not leaving).
func (s *shieldSet) update(name string, m meta, gone bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, had := s.members[name]
	if gone || !m.Shield || m.Leaving || m.Control == "" {
		delete(s.members, name)
	} else {
		if s.members == nil {
			s.members = map[string]shieldEntry{}
		}
		e := shieldEntry{control: m.Control, nameHash: hashString(name)}
		if had && old.control == m.Control {
			e.downUntil = old.downUntil
		}
		s.members[name] = e
	}
	if c := s.clients[name]; c != nil {
		if e, ok := s.members[name]; !ok || e.control != old.control {
			delete(s.clients, name)
			c.CloseIdleConnections()
		}
	}
}

// close drops every client; AskShield fails from now on.
func (s *shieldSet) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for name, c := range s.clients {
		c.CloseIdleConnections()
		delete(s.clients, name)
	}
}

// ShieldFor returns the member that shields key: of the alive members
// that may shield and did not fail a request in the last
// Config.ShieldRetry, the one whose hash with key is the highest. False
// when there is none.
func (c *Cluster) ShieldFor(key string) (ShieldMember, bool) {
	kh := hashString(key)
	now := time.Now()
	s := &c.shields
	s.mu.RLock()
	defer s.mu.RUnlock()
	var best ShieldMember
	var bestScore uint64
	found := false
	for name, e := range s.members {
		if now.Before(e.downUntil) {
			continue
		}
		score := mix(kh ^ e.nameHash)
		if !found || score > bestScore || score == bestScore && name < best.Name {
			best, bestScore, found = ShieldMember{Name: name, Control: e.control}, score, true
		}
	}
	best.Self = found && best.Name == c.cfg.Name
	return best, found
}

// AskShield sends req to shield m's ShieldPath, with the tier token, and
// reads its answer into resp, within timeout. A request that fails makes
// ShieldFor skip m for Config.ShieldRetry when m itself is the problem:
// it could not be reached, or, after a request with no answer in time,
// it does not answer a probe either (shieldAnswers). A shield that is
// slow only because that one URL's origin fetch is slow is not skipped
// for every key. An answer, whatever its status, never skips it.
func (c *Cluster) AskShield(m ShieldMember, req *fasthttp.Request, resp *fasthttp.Response, timeout time.Duration) error {
	hc, err := c.shieldClient(m)
	if err != nil {
		return err
	}
	req.Header.SetMethod(fasthttp.MethodPost)
	req.SetRequestURI("http://" + m.Control + ShieldPath)
	if c.cfg.Token != "" {
		req.Header.Set(fasthttp.HeaderAuthorization, "Bearer "+c.cfg.Token)
	}
	if err := hc.DoTimeout(req, resp, timeout); err != nil {
		if !errors.Is(err, fasthttp.ErrTimeout) || !shieldAnswers(hc, m) {
			c.shieldFailed(m)
		}
		return fmt.Errorf("%w: %s: %w", ErrShieldUnreachable, m.Name, err)
	}
	return nil
}

// shieldProbeTimeout bounds the probe of a shield that did not answer a
// request in time.
const shieldProbeTimeout = 500 * time.Millisecond

// shieldAnswers reports whether m's control listener answers at all (a
// GET of ShieldPath: any status will do) within shieldProbeTimeout, on a
// connection of its own.
func shieldAnswers(hc *fasthttp.HostClient, m ShieldMember) bool {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://" + m.Control + ShieldPath)
	resp.SkipBody = true
	return hc.DoTimeout(req, resp, shieldProbeTimeout) == nil
}

// shieldClient returns the client for m, made on first use.
func (c *Cluster) shieldClient(m ShieldMember) (*fasthttp.HostClient, error) {
	s := &c.shields
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.members[m.Name]
	if s.closed || !ok || e.control != m.Control {
		return nil, ErrNoShield
	}
	if hc := s.clients[m.Name]; hc != nil {
		return hc, nil
	}
	if s.clients == nil {
		s.clients = map[string]*fasthttp.HostClient{}
	}
	hc := &fasthttp.HostClient{
		Addr:                      m.Control,
		MaxResponseBodySize:       c.cfg.ShieldMaxBody,
		MaxIdemponentCallAttempts: 1,
		MaxIdleConnDuration:       30 * time.Second,
		NoDefaultUserAgentHeader:  true,
		Dial:                      c.cfg.ShieldDial,
	}
	s.clients[m.Name] = hc
	return hc, nil
}

// shieldFailed skips m for Config.ShieldRetry.
func (c *Cluster) shieldFailed(m ShieldMember) {
	s := &c.shields
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.members[m.Name]; ok && e.control == m.Control {
		e.downUntil = time.Now().Add(c.cfg.ShieldRetry)
		s.members[m.Name] = e
	}
}

// Authorized reports whether an Authorization header carries the tier
// token (always, when the tier has none): for the node's handler of
// ShieldPath, which must check it like ServeOps does.
func (c *Cluster) Authorized(authorization []byte) bool { return c.authorized(authorization) }

// hashString is FNV-1a: the same on every member (maphash is seeded per
// process).
func hashString(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}

// mix is SplitMix64's finalizer, so that keys that differ in a few bits
// rank members independently.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
