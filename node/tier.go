package node

import (
	"net"
	"strings"
	"time"

	"github.com/edgepush/edgepush/cluster"
	"github.com/edgepush/edgepush/purge"
)

// The tier, wired: cluster carries operations (send, receive, dedup, the
// log of recent purges exchanged at push/pull); purge decodes and applies
// them. This file only connects the two.

// startTier joins the tier when -cluster-bind is set.
func (s *Server) startTier() error {
	if s.cfg.ClusterBind == "" {
		return nil
	}
	token := tierToken(s.clusterKey, s.publishKey)
	var join []string
	for _, j := range strings.Split(s.cfg.Join, ",") {
		if j = strings.TrimSpace(j); j != "" {
			join = append(join, j)
		}
	}
	cfg := cluster.Config{
		PushPull:    s.cfg.ClusterPushPull,
		Name:        s.cfg.NodeName,
		Bind:        s.cfg.ClusterBind,
		Advertise:   s.cfg.ClusterAdvertise,
		Join:        join,
		SecretKey:   s.clusterKey,
		Label:       s.cfg.ClusterLabel,
		ControlAddr: s.reachableControlAddr(),
		Version:     Version,
		Token:       token,
		Handler:     cluster.HandlerFunc(s.applyPeerOp),
		Remember:    rememberPurges,
		LogMax:      4096,
		LogAge:      s.cfg.HistoryAge + 48*time.Hour,
		Local:       s.cfg.ClusterLocal,
		Log:         s.log, // lines carry component=cluster or component=memberlist

		Profile:     s.cfg.ClusterProfile,
		Region:      s.cfg.Region,
		Zone:        s.cfg.Zone,
		RetryWindow: s.cfg.ClusterRetryWindow,
		Shield:      s.cfg.Shield,
		ShieldDial:  s.shieldDial,
		ShieldRetry: s.cfg.ShieldRetry,
		// The stored response, its headers JSON-encoded (escapes can
		// lengthen them), and the answer's own fields.
		ShieldMaxBody: s.cfg.OriginMaxBody + 8*s.cfg.OriginMaxHeaderBytes + 4096,
	}
	if s.tierHook != nil {
		s.tierHook(&cfg)
	}
	tier, err := cluster.New(cfg)
	if err != nil {
		return err
	}
	s.tier = tier
	s.ops.Forwarder = tierForwarder{tier}
	tier.Start()
	return nil
}

// tierToken is the credential members send with forwarded operations:
// derived from the cluster key, else (a tier on loopback, see
// Config.withDefaults) from the publish key, so that the key itself never
// leaves the node; none when neither is set (then the control API is
// open anyway).
func tierToken(clusterKey, publishKey []byte) string {
	switch {
	case clusterKey != nil:
		return cluster.TokenFor(clusterKey)
	case publishKey != nil:
		return cluster.TokenFor(publishKey)
	}
	return ""
}

// applyPeerOp applies an operation a peer forwarded (or the tier's log
// replayed): locally only, never forwarded again.
func (s *Server) applyPeerOp(op cluster.Op) {
	o, err := purge.Decode(purge.Kind(op.Kind), op.Data)
	if err != nil {
		s.log.Warn("tier: bad operation", "from", op.Source, "kind", op.Kind, "err", err)
		return
	}
	s.ops.Apply(o, purge.FromPeer)
}

// rememberPurges is what the tier's log keeps of an operation: its
// purges, replayed to a member that missed them; publishes are not kept.
func rememberPurges(op cluster.Op) (cluster.Op, bool) {
	if purge.Kind(op.Kind) == purge.KindPublish {
		return op, false
	}
	o, err := purge.Decode(purge.Kind(op.Kind), op.Data)
	if err != nil {
		return op, false
	}
	p, ok := o.PurgePart()
	if !ok {
		return op, false
	}
	op.Kind, op.Data = string(p.Kind), p.Encode()
	return op, true
}

// tierForwarder sends operations from clients to the other members.
type tierForwarder struct{ c *cluster.Cluster }

// Forward broadcasts one operation.
func (f tierForwarder) Forward(kind purge.Kind, data []byte) { f.c.Broadcast(string(kind), data) }

// reachableControlAddr is the control address peers can use: the
// listener's, with an unspecified host replaced by the tier address's.
func (s *Server) reachableControlAddr() string {
	host, port, _ := net.SplitHostPort(s.controlLn.Addr().String())
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		adv := s.cfg.ClusterAdvertise
		if adv == "" {
			adv = s.cfg.ClusterBind
		}
		if h, _, err := net.SplitHostPort(adv); err == nil && h != "" && !net.ParseIP(h).IsUnspecified() {
			host = h
		}
	}
	return net.JoinHostPort(host, port)
}
