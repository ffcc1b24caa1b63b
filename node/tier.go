package node

import (
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/edgepush/edgepush/cluster"
	"github.com/edgepush/edgepush/grip"
	"github.com/edgepush/edgepush/purge"
	"github.com/valyala/fasthttp"
)

// Kinds of operations forwarded to the other members of a tier.
const (
	opPublish      = "publish"       // a Pushpin publish body
	opPurge        = "purge"         // a purge.Request
	opPurgePublish = "purge-publish" // a purge.PurgePublish
)

// startTier joins the tier when -cluster-bind is set.
func (s *Server) startTier() error {
	if s.cfg.ClusterBind == "" {
		return nil
	}
	var key []byte
	if s.cfg.ClusterKey != "" {
		var err error
		if key, err = grip.ParseKey(s.cfg.ClusterKey); err != nil {
			return fmt.Errorf("config: -cluster-key: %w", err)
		}
	}
	token := string(s.publishKey)
	if key != nil {
		token = cluster.TokenFor(key)
	}
	var join []string
	for _, j := range strings.Split(s.cfg.Join, ",") {
		if j = strings.TrimSpace(j); j != "" {
			join = append(join, j)
		}
	}
	s.purges = newPurgeLog(s, 4096, s.cfg.HistoryAge+48*time.Hour)
	tier, err := cluster.New(cluster.Config{
		State:       s.purges,
		PushPull:    s.cfg.ClusterPushPull,
		Name:        s.cfg.NodeName,
		Bind:        s.cfg.ClusterBind,
		Advertise:   s.cfg.ClusterAdvertise,
		Join:        join,
		SecretKey:   key,
		Label:       s.cfg.ClusterLabel,
		ControlAddr: s.reachableControlAddr(),
		Version:     Version,
		Token:       token,
		Handler:     cluster.HandlerFunc(s.applyOp),
		Local:       s.cfg.ClusterLocal,
		Log:         s.log.With("component", "cluster"),
	})
	if err != nil {
		return err
	}
	s.tier = tier
	tier.Start()
	return nil
}

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

// forward sends an operation this node received from a client to every
// other member; purge is the purge it carries, if any, for the purge log.
func (s *Server) forward(kind string, data []byte, purge *purge.Request) {
	if s.tier == nil {
		return
	}
	op := s.tier.Broadcast(kind, data)
	if purge != nil {
		s.purges.add(op.ID(), *purge, time.Now())
	}
}

// applyOp applies an operation a peer forwarded: locally only, never
// forwarded again.
func (s *Server) applyOp(op cluster.Op) {
	switch op.Kind {
	case opPublish:
		req, err := grip.ParsePublish(op.Data)
		if err != nil {
			s.log.Warn("tier: bad publish", "from", op.Source, "err", err)
			return
		}
		for i := range req.Items {
			s.publish(&req.Items[i])
		}
	case opPurge:
		var req purge.Request
		if err := json.Unmarshal(op.Data, &req); err != nil {
			s.log.Warn("tier: bad purge", "from", op.Source, "err", err)
			return
		}
		s.purges.add(op.ID(), req, time.Now())
		s.purgeLocal(&req)
	case opPurgePublish:
		req, items, err := purge.ParsePurgePublish(op.Data)
		var pub *grip.PublishRequest
		if err == nil && items != nil {
			pub, err = grip.ParsePublish(items)
		}
		if err != nil {
			s.log.Warn("tier: bad purge-publish", "from", op.Source, "err", err)
			return
		}
		s.purges.add(op.ID(), *req, time.Now())
		s.purgeLocal(req)
		if pub != nil {
			for i := range pub.Items {
				s.publish(&pub.Items[i])
			}
		}
	}
}

// purgeLocal runs a purge request through this node's limiter.
func (s *Server) purgeLocal(req *purge.Request) []purge.Outcome {
	var out []purge.Outcome
	for _, t := range req.Targets() {
		out = append(out, s.limiter.Request(t, req.IsSoft()))
	}
	return out
}

// serveTierOps receives operations from peers.
func (s *Server) serveTierOps(ctx *fasthttp.RequestCtx) {
	if s.tier == nil {
		controlError(ctx, fasthttp.StatusNotFound, "not in a tier")
		return
	}
	if !ctx.IsPost() || !s.tier.Authorized(ctx.Request.Header.Peek("Authorization")) {
		controlError(ctx, fasthttp.StatusUnauthorized, "missing or invalid tier token")
		return
	}
	if s.dropOps.Load() {
		return // a test's partition: accepted and lost
	}
	if err := s.tier.Receive(ctx.PostBody()); err != nil {
		controlError(ctx, fasthttp.StatusBadRequest, err.Error())
		return
	}
	ctx.SetStatusCode(fasthttp.StatusOK)
}
