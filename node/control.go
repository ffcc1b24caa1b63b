package node

import (
	"bytes"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"net"
	"strings"
	"time"

	"github.com/edgepush/edgepush/cluster"
	"github.com/edgepush/edgepush/fanout"
	"github.com/edgepush/edgepush/grip"
	"github.com/edgepush/edgepush/purge"
	"github.com/valyala/fasthttp"
)

// serveControl routes the control API.
func (s *Server) serveControl(ctx *fasthttp.RequestCtx) {
	defer recoverLog(s.log, "control request")
	if s.publishKey == nil && !s.controlHostAllowed(ctx.Request.Header.Host()) {
		// An open control API answers only to names that cannot be
		// rebound: a page elsewhere could point its own DNS name at this
		// address (DNS rebinding) and publish, purge or read /status.
		controlError(ctx, fasthttp.StatusMisdirectedRequest, "unknown Host for the control API (see -control-hosts)")
		return
	}
	if !ctx.IsGet() && !ctx.IsHead() && crossSite(ctx) {
		// A browser that holds the key (Basic auth given to the status
		// page) must not publish or purge for another site's page.
		controlError(ctx, fasthttp.StatusForbidden, "cross-site request refused")
		return
	}
	switch string(ctx.Path()) {
	case "/publish", "/publish/":
		s.servePublish(ctx)
	case "/purge", "/purge/":
		s.servePurge(ctx, purge.KindPurge)
	case "/purge-publish", "/purge-publish/":
		s.servePurge(ctx, purge.KindPurgePublish)
	case cluster.OpsPath:
		if s.tier == nil {
			controlError(ctx, fasthttp.StatusNotFound, "not in a tier")
			return
		}
		s.tier.ServeOps(ctx)
	case cluster.ShieldPath:
		s.serveShield(ctx)
	case "/healthz":
		serveHealthz(ctx)
	case "/readyz":
		s.serveReadyz(ctx)
	case "/status":
		if !s.authorized(ctx) {
			controlError(ctx, fasthttp.StatusUnauthorized, "missing or invalid publish key")
			return
		}
		writeJSON(ctx, fasthttp.StatusOK, s.Status())
	case "/status/events":
		s.serveStatusEvents(ctx)
	case "/metrics":
		s.serveMetrics(ctx)
	case "/":
		s.serveRoot(ctx) // the status page for browsers, plain text otherwise
	default:
		controlError(ctx, fasthttp.StatusNotFound, "no such endpoint: "+string(ctx.Path()))
	}
}

// serveMonitoring serves the -metrics-listen listener: /healthz, /readyz
// and /metrics only, never what changes anything or shows more than the
// metrics do. It answers to any Host (scrapers and probes name nodes as
// they like; nothing here can be misused through DNS rebinding).
func (s *Server) serveMonitoring(ctx *fasthttp.RequestCtx) {
	defer recoverLog(s.log, "metrics listener request")
	switch string(ctx.Path()) {
	case "/healthz":
		serveHealthz(ctx)
	case "/readyz":
		s.serveReadyz(ctx)
	case "/metrics":
		s.serveMetrics(ctx)
	default:
		controlError(ctx, fasthttp.StatusNotFound, "no such endpoint: "+string(ctx.Path())+
			" (this listener serves /healthz, /readyz and /metrics; the control API is on -control)")
	}
}

// serveHealthz is liveness: the process is up and serving.
func serveHealthz(ctx *fasthttp.RequestCtx) {
	ctx.SetContentType("text/plain")
	ctx.SetBodyString("ok\n")
}

// serveReadyz is readiness: not while draining, so load balancers move
// new clients elsewhere first.
func (s *Server) serveReadyz(ctx *fasthttp.RequestCtx) {
	ctx.SetContentType("text/plain")
	if s.draining.Load() {
		ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
		ctx.SetBodyString("draining\n")
		return
	}
	ctx.SetBodyString("ready\n")
}

// controlHostAllowed reports whether a Host header names this control
// listener in a way DNS rebinding cannot forge: an IP address, localhost,
// a -control-hosts name or the tier's advertised host; no Host
// (HTTP/1.0) is allowed too.
func (s *Server) controlHostAllowed(host []byte) bool {
	if len(host) == 0 {
		return true
	}
	var buf [maxHostLen]byte
	h, ok := matchHost(&buf, host)
	if !ok {
		return false
	}
	name := strings.Trim(string(h), "[]")
	if net.ParseIP(name) != nil || name == "localhost" {
		return true
	}
	for _, allowed := range strings.Split(s.cfg.ControlHosts, ",") {
		if strings.EqualFold(strings.TrimSpace(allowed), name) {
			return true
		}
	}
	if adv, _, err := net.SplitHostPort(s.cfg.ClusterAdvertise); err == nil && strings.EqualFold(adv, name) {
		return true
	}
	return false
}

// crossSite reports whether a browser sent the request for a page of
// another site (Sec-Fetch-Site, else an Origin that is not this host).
// Publishers on servers send neither header.
func crossSite(ctx *fasthttp.RequestCtx) bool {
	if site := ctx.Request.Header.Peek("Sec-Fetch-Site"); len(site) > 0 {
		return string(site) != "same-origin" && string(site) != "none"
	}
	origin := ctx.Request.Header.Peek("Origin")
	if len(origin) == 0 {
		return false
	}
	_, host, ok := bytes.Cut(origin, []byte("://"))
	return !ok || !bytes.Equal(host, ctx.Request.Header.Host())
}

// servePublish is Pushpin's POST /publish/: the items are delivered to
// the channels' subscribers (and the tier's), and the answer comes
// before delivery.
func (s *Server) servePublish(ctx *fasthttp.RequestCtx) {
	if !ctx.IsPost() {
		ctx.Response.Header.Set("Allow", "POST")
		controlError(ctx, fasthttp.StatusMethodNotAllowed, "Method not allowed: "+string(ctx.Method())+".")
		return
	}
	if !s.authorized(ctx) {
		controlError(ctx, fasthttp.StatusUnauthorized, "missing or invalid publish key")
		return
	}
	op, err := purge.DecodePublish(ctx.PostBody())
	if err != nil {
		controlError(ctx, fasthttp.StatusBadRequest, err.Error())
		return
	}
	s.ops.Apply(op, purge.FromClient)
	if wantsJSON(ctx) {
		writeJSON(ctx, fasthttp.StatusOK, map[string]string{"message": "Published"})
		return
	}
	ctx.SetContentType("text/plain")
	ctx.SetBodyString("Published\n")
}

// servePurge is POST /purge/ (purges) and POST /purge-publish/ (purges,
// then publishes). Purges are rate-limited per key; publishes never wait.
func (s *Server) servePurge(ctx *fasthttp.RequestCtx, kind purge.Kind) {
	if !ctx.IsPost() {
		ctx.Response.Header.Set("Allow", "POST")
		writeJSON(ctx, fasthttp.StatusMethodNotAllowed, map[string]string{"error": "method not allowed: " + string(ctx.Method())})
		return
	}
	if !s.authorized(ctx) {
		writeJSON(ctx, fasthttp.StatusUnauthorized, map[string]string{"error": "missing or invalid publish key"})
		return
	}
	var op *purge.Op
	var err error
	if kind == purge.KindPurge {
		op, err = purge.DecodePurge(ctx.PostBody(), string(ctx.Request.Header.Peek("Surrogate-Key")))
	} else {
		op, err = purge.DecodePurgePublish(ctx.PostBody())
	}
	if err != nil {
		writeJSON(ctx, fasthttp.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(ctx, fasthttp.StatusOK, s.ops.Apply(op, purge.FromClient))
}

// cachePurger applies purges to the cache, if there is one.
type cachePurger struct{ s *Server }

// Purge purges the entries tagged with key.
func (p cachePurger) Purge(key string, soft bool) {
	if p.s.cache != nil {
		p.s.cache.Purge(key, soft)
	}
}

// PurgeURL purges every variant of url.
func (p cachePurger) PurgeURL(url string, soft bool) {
	if p.s.cache != nil {
		p.s.cache.PurgeURL(normalizeURL(url), soft)
	}
}

// publisher delivers published items to this node's subscribers.
type publisher struct{ s *Server }

// Publish delivers one item to its channel's local subscribers, unless
// the hub drops it as a duplicate or holds it for its predecessor (its
// id, prev-id and no-seq); Server.noteDelivered notes it once delivered.
func (p publisher) Publish(item *grip.Item) {
	p.s.publishes.Add(1)
	m := fanout.NewMessage(item.Channel, item)
	m.ID, m.PrevID, m.NoSeq = item.ID, item.PrevID, item.NoSeq
	p.s.hub.Publish(m)
}

// authorized checks the control API credentials when a publish key is
// set: "Bearer <key>", "Bearer <HS256 JWT signed with the key>" (Fanout's
// publisher libraries; exp required, at most -publish-jwt-max-lifetime
// away), or Basic auth with the key as password (pushpin-publish -u).
func (s *Server) authorized(ctx *fasthttp.RequestCtx) bool {
	if s.publishKey == nil {
		return true
	}
	auth := ctx.Request.Header.Peek("Authorization")
	scheme, cred, _ := bytes.Cut(auth, []byte(" "))
	switch {
	case bytes.EqualFold(scheme, []byte("Bearer")):
		if subtle.ConstantTimeCompare(cred, s.publishKey) == 1 {
			return true
		}
		v := grip.JWTVerifier{Key: s.publishKey, MaxLifetime: s.cfg.PublishJWTMaxLifetime}
		_, err := v.Verify(string(cred), time.Now())
		return err == nil
	case bytes.EqualFold(scheme, []byte("Basic")):
		raw, err := base64.StdEncoding.DecodeString(string(cred))
		if err != nil {
			return false
		}
		_, pass, _ := bytes.Cut(raw, []byte(":"))
		return subtle.ConstantTimeCompare(pass, s.publishKey) == 1
	}
	return false
}

func wantsJSON(ctx *fasthttp.RequestCtx) bool {
	return bytes.Contains(ctx.Request.Header.Peek("Accept"), []byte("application/json"))
}

// controlError answers like Pushpin (plain-text reason) unless the client
// asks for JSON, which gets {"error": "..."}.
func controlError(ctx *fasthttp.RequestCtx, code int, msg string) {
	if wantsJSON(ctx) {
		writeJSON(ctx, code, map[string]string{"error": msg})
		return
	}
	ctx.SetStatusCode(code)
	ctx.SetContentType("text/plain")
	ctx.SetBodyString(msg + "\n")
}

func writeJSON(ctx *fasthttp.RequestCtx, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = fasthttp.StatusInternalServerError, []byte(`{"error":"encoding failed"}`)
	}
	ctx.SetStatusCode(code)
	ctx.SetContentType("application/json")
	ctx.SetBody(append(b, '\n'))
}
