// Package node is the edgepush server: it accepts client connections,
// proxies them to the origin with a Grip-Sig, turns the origin's GRIP
// instructions into held connections (HTTP streams, SSE, long-polls,
// WebSockets), and serves the Pushpin-compatible control API (/publish/,
// /purge/, /purge-publish/, /status), its Prometheus metrics, status page
// and access log.
//
// It wires the other packages together and owns the client-facing proxy;
// channel bookkeeping and delivery belong to fanout, caching rules to
// cache, the publish and purge operation to purge, the tier's protocol to
// cluster, the wire format to grip.
//
// # Files, one job each
//
//	server.go     Server: New (checks config), Start (open, serve), Shutdown (drain, teardown)
//	proxy.go      a client request: route → origin request → cache → relay or hold
//	routes.go     the route table and route lookup (host, path prefix, loops, dot-segments)
//	headers.go    every header rule: client → origin, node → origin, origin → client
//	ranges.go     a client's Range, answered from the whole response
//	cached.go     what the node hands the cache: requests, the origin fetcher and revalidator, parsed answers
//	origin.go     the origin client: requests, retries, breakers (breaker.go), probes
//	interim.go    the origin's interim (1xx) responses, passed on to the client waiting
//	hold.go       held HTTP transports (stream, long-poll) and their framing
//	stream.go     reliable streams: prev-id sequencing, next-link recovery, paging, refresh, hints
//	links.go      Grip-Link requests: next links (through the cache unless Grip-Last), gone links
//	subs.go       per-connection filter state (meta, filters, last ids), for HTTP and WebSocket
//	longpoll.go   cached copies too old to bring up to date; long-polls never repeat a message
//	heldconn.go   what held transports share: socket writer, subscriptions, hang-up watch
//	wsclient.go   a WebSocket's client side: handshake, upgrade, frames both ways
//	wsread.go     reading a client's frames from the epoll watcher (no goroutine per session)
//	wsparse.go    the client frame parser (RFC 6455 §5) and permessage-deflate inflation
//	wsorigin.go   a WebSocket's origin side: the WebSocket-over-HTTP session
//	wsframe.go    WebSocket frame encoding and permessage-deflate
//	control.go    the control API: publish and purge calls → purge.Op
//	tier.go       the tier, wired: cluster carries purge.Ops
//	shield.go     origin shielding: a member's miss goes to the key's shield
//	status.go     /status; metrics.go /metrics; statuspage.go the page; accesslog.go the log
//
// # Four flows, top-down
//
// One GET: serveClient (proxy.go) picks the route (routeFor, routes.go),
// builds the origin request (originRequest, proxy.go, with the rules of
// headers.go), asks the cache (cacheRequest and cacheGet, cached.go),
// which on a miss calls fetchVia (shield.go: in a tier, the key's shield
// is asked instead, and answers from its own cache) or fetchOrigin
// (cached.go) → originDo → originClient.do (origin.go), and parses the
// GRIP instructions once (parsed). No hold:
// relay (proxy.go). Grip-Hold: stream or response: holdStream or
// holdResponse (hold.go) hijack the connection and hand it to the fanout
// pool and hub (hold in heldconn.go), replaying what was published since
// the answer was fetched. A hold with a next link, prev-ids, filters or
// meta gets a streamSession (stream.go), which checks each message's
// prev-id against the connection's last id, runs its filters (subs.go)
// and fetches the next link (links.go) to page, refresh or recover.
//
// One publish: POST /publish/ → servePublish (control.go) →
// purge.DecodePublish → purge.Applier.Apply: publisher.Publish to the
// hub, which drops a repeated id, holds an item until the one its prev-id
// names is delivered (sweepHub, server.go, releases those that waited
// -sequence-wait), and whose subscribers' transports frame each message
// once per encoding (hold.go, wsclient.go); the hub reports each
// delivery to noteDelivered (server.go, for the long-poll cache,
// longpoll.go, with no hub lock held); then the Forwarder (tier.go) broadcasts
// it through cluster. A peer's copy arrives at cluster's ServeOps, whose
// handler (applyPeerOp, tier.go) decodes it with purge.Decode and applies
// it with the same Apply, never forwarding again.
//
// One purge-publish: POST /purge-publish/ → servePurge (control.go) →
// purge.DecodePurgePublish → Apply: each purge through the purge.Limiter
// (rate-limited per key) into the cache (cachePurger), then the items as
// in a publish, then the tier. cluster keeps the purge part in its log
// (rememberPurges, tier.go), so a member that missed it applies it at the
// next push/pull through the same handler.
//
// One WebSocket: serveClient → serveWebSocket (wsclient.go) checks the
// handshake, creates the session (newWSSession, wsorigin.go, whose origin
// requests repeat the handshake's originRequest), asks the cache for the
// origin's answer to OPEN (namespace "ws"), upgrades, registers the
// client with the pool (wsClient.start), plays the answer's events and
// has the epoll watcher report the socket readable (wsReader, wsread.go;
// a goroutine of its own under TLS); client frames become events that the session batches
// into WebSocket-over-HTTP POSTs (enqueue, sendLoop, post); the events of
// each answer are played to the client, and c: control messages
// (subscribe, set-meta, keep-alive, detach) obeyed (control). Publishes
// reach it through wsTransport.Frame, which runs the subscription's
// message filters (subs.go) when the connection has filters or meta.
//
// # Lock order
//
// Across packages, a goroutine holding a lock on the left may take the
// ones to its right, never the reverse: wsReader.mu (held while a
// client's bytes are parsed and handed on) → wsSession.mu → fanout hub
// shard.mu → channel.mu → fanout.Conn.mu → the writer shard's readyMu;
// wsClient.mu, wsIdleList.mu, heldConn.mu/wmu and connSubs.mu are leaves (nothing is
// taken while they are held). streamSession.mu comes after channel.mu
// (Frame runs under it) and before fanout.Conn.mu (Send); the session
// subscribes and unsubscribes only with its own lock released. Transports' Frame and Replay run under
// channel.mu, so work that calls back into the hub or the origin (hints,
// refreshes, a close publish's CLOSE to the origin) runs in a goroutine
// of the Server's background group, and Frame reads a WebSocket's filter
// state through an atomic pointer and its connSubs.mu, never
// wsSession.mu; the session takes connSubs.mu under wsSession.mu but
// never around a hub call.
package node
