package node

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/edgepush/edgepush/cluster"
)

// Config is the node's configuration. Every field is a command-line flag
// and a config-file key of the same name (see RegisterFlags); the zero value
// of a field means its default.
type Config struct {
	// Listen is the client listener address. Default ":7999".
	Listen string
	// Control is the control API listener (publish, purge, status,
	// metrics, health). Default "127.0.0.1:5561".
	Control string
	// MetricsListen, when set, is a listener serving only GET /healthz,
	// /readyz and /metrics (the latter with the publish key if
	// MetricsAuth): for probes and scrapers on a network the control API
	// must not be reachable from (a container's). Empty: none (they are on
	// Control).
	MetricsListen string
	// Origin is the origin's base URL, e.g. "http://127.0.0.1:8080": the
	// catch-all route, taking what no route in Routes takes. Required
	// unless Routes is set.
	Origin string
	// Routes send requests to origins by Host and path prefix (see
	// RouteConfig and ParseRoute); -route repeats. Empty: Origin only.
	Routes RouteList
	// TrustXFF lists the proxies (CIDRs or addresses, comma-separated)
	// whose X-Forwarded-For is kept and appended to; from any other client
	// it is replaced by the client's address. Routes may say otherwise.
	// Empty: trust no one.
	TrustXFF string
	// CDNLoop is the CDN id this node appends to CDN-Loop on origin
	// requests (RFC 8586); a client request already carrying it is a loop
	// and gets 508. Give each layer of chained edgepush CDNs its own.
	// Default "edgepush".
	CDNLoop string
	// OriginCAFile is a PEM file of the CAs that sign HTTPS origins'
	// certificates, used instead of the system's. Routes may say
	// otherwise. Empty: the system's CAs.
	OriginCAFile string
	// OriginClientCert and OriginClientKey are PEM files of the client
	// certificate presented to HTTPS origins (both or neither). Routes
	// may say otherwise. Empty: none.
	OriginClientCert, OriginClientKey string
	// SigKey signs the Grip-Sig JWT sent to the origin ("base64:..." for a
	// binary key). Empty: a random key chosen at start, so origins that
	// only check that Grip-Sig is present still see the proxy; set it for
	// origins that verify the signature.
	SigKey string
	// SigIss is the Grip-Sig issuer claim. Default "edgepush".
	SigIss string
	// PublishKey, when set, is required on the control API (Bearer key,
	// HS256 JWT signed with it, or Basic auth with it as password).
	PublishKey string
	// ControlHosts lists, comma-separated, the host names the control API
	// answers to when no PublishKey is set, besides IP addresses and
	// "localhost" (a Host of any other name is refused with 421: a web
	// page could reach an open control API through DNS rebinding). Empty:
	// IP addresses and localhost only.
	ControlHosts string
	// PublishJWTMaxLifetime is the longest validity accepted of a JWT
	// given with PublishKey: its exp (required) must be at most this long
	// after now, and after its iat when it has one; 30s of clock skew is
	// allowed (grip.DefaultJWTLeeway). Default (and zero) 1h
	// (@fanoutio/grip 4.x signs for 10 minutes); negative is an error.
	PublishJWTMaxLifetime time.Duration

	// OriginTimeout bounds one origin request, retries included.
	// Default 30s.
	OriginTimeout time.Duration
	// OriginDialTimeout bounds connecting to the origin. Default 3s.
	OriginDialTimeout time.Duration
	// OriginMaxBody caps an origin response body in bytes. Default 10 MiB.
	OriginMaxBody int
	// OriginRetries is how many times an idempotent origin request is
	// retried after a failure on a reused connection (0–2). Default 1;
	// negative: no retries.
	OriginRetries int
	// OriginMaxConns caps connections to the origin. Default 512.
	OriginMaxConns int
	// OriginMaxHeaderBytes caps an origin response's header block (many
	// Grip-Channel values make large ones); a bigger one fails that
	// request with 502 (it does not count against the origin's circuit
	// breaker). It is also each origin connection's read buffer. Default
	// 64 KiB.
	OriginMaxHeaderBytes int

	// MaxConns caps client connections being served, held ones included;
	// over it new connections get 503. Default 50000.
	MaxConns int
	// MaxHeaderBytes caps a client request's header. Default 16 KiB.
	MaxHeaderBytes int
	// MaxBody caps a client request body proxied to the origin. Default
	// 1 MiB.
	MaxBody int
	// ReadTimeout bounds reading one client request (slowloris
	// protection). Default 30s.
	ReadTimeout time.Duration
	// IdleTimeout closes a keep-alive client connection idle this long.
	// Default 60s.
	IdleTimeout time.Duration
	// MaxChannels caps the channels one connection subscribes to; an
	// origin response with more gets 502. Default 20.
	MaxChannels int
	// MaxQueueBytes is a held connection's slow-consumer budget: once its
	// socket stops taking data, a client that falls this many bytes
	// further behind is disconnected. Bytes waiting only for the node's
	// writers (busy with other connections) are not charged to it.
	// Default 256 KiB.
	MaxQueueBytes int
	// MaxPendingBytes caps the bytes queued for one held connection
	// whatever the reason, waiting for the node's writers included: a
	// memory bound for when the node as a whole falls behind. Zero: 16 ×
	// MaxQueueBytes (the default); never below MaxQueueBytes.
	MaxPendingBytes int
	// WriteTimeout gives up on a held connection whose socket has accepted
	// nothing for this long. Default 10s.
	WriteTimeout time.Duration
	// MaxPublishBody caps a control API request body. Default 1 MiB.
	MaxPublishBody int
	// WSReadLimit caps one WebSocket message from a client in bytes; a
	// bigger one closes the connection with 1009. Default 64 KiB.
	WSReadLimit int
	// WSPingInterval is how often the node pings WebSocket clients; a
	// client silent for two intervals is dropped. Default 30s.
	WSPingInterval time.Duration
	// WSMaxPending caps bytes of client messages waiting for the origin
	// (one WebSocket-over-HTTP request is in flight at a time); over it
	// the connection is closed with 1013. Default 256 KiB.
	WSMaxPending int
	// WSOriginRetries is how many times a failed WebSocket-over-HTTP
	// request is retried (with back-off) before the client is closed with
	// 1011. Default 3; negative: none.
	WSOriginRetries int
	// WSCompression negotiates permessage-deflate with clients that offer
	// it. Default off.
	WSCompression bool
	// WSAllowedOrigins, comma-separated, restricts the Origin header of
	// WebSocket handshakes (compared case-insensitively): any other Origin
	// is refused with 403 before the origin server is asked. Empty: any
	// origin (a proxy leaves this to the origin server).
	//
	// A handshake without an Origin header is let through: the list
	// protects browsers' users from other sites' pages opening
	// WebSockets with their cookies (cross-site WebSocket hijacking), and
	// browsers always send Origin; a client that sends none is not a
	// browser (a native app, a server, a device) and could send any Origin
	// it likes, so refusing it would protect nothing. Browsers send
	// "Origin: null" from sandboxed or file: pages; it is refused unless
	// listed.
	WSAllowedOrigins string
	// CacheOff turns the edge cache off: every request goes to the origin.
	CacheOff bool
	// CacheMaxBytes bounds the cache's memory. Default 256 MiB.
	CacheMaxBytes int64
	// StaleIfError is how long past its freshness a cached response is
	// served while the origin fails, unless the response says
	// (stale-if-error=N). Zero disables it; DefaultConfig sets 24h.
	StaleIfError time.Duration
	// OriginFailures is how many origin failures in a row open the circuit
	// breaker: requests then fail at once (stale entries are served) while
	// the origin is probed in the background. Connections refused count;
	// requests that get no answer (timed out, dropped before it) count
	// once per URL in the run, which must then have lasted a second; any
	// answer, 5xx included, ends a run; a failure of one answer (cut
	// mid-answer, too large, malformed) counts for nothing. Default 5;
	// negative: no breaker.
	OriginFailures int
	// OriginProbePath is what the breaker's probe GETs. Default "/".
	OriginProbePath string
	// OriginProbeMaxPause caps the pause between probes (it starts at 1s
	// and doubles). Default 30s.
	OriginProbeMaxPause time.Duration
	// PurgeInterval is the per-key purge rate limit: the first purge of a
	// key runs at once, later ones within the interval fold into one
	// trailing purge at its end. Zero: no limit; DefaultConfig sets 1s.
	PurgeInterval time.Duration
	// HistorySize is how many recent messages each channel keeps, to
	// replay to connections opened from data older than them (a cached
	// entry). Zero: none; DefaultConfig sets 64.
	HistorySize int
	// HistoryAge drops channel history older than this. Default 2m.
	HistoryAge time.Duration
	// HistoryMaxBytes caps the memory all channels' history holds
	// together, in bytes (messages, their encodings and bookkeeping);
	// over it the oldest messages go first, whatever their channel.
	// Zero: the default, 64 MiB.
	HistoryMaxBytes int64
	// PublishIDTTL is how long each channel remembers the ids of the
	// items published to it: an item whose id was seen on its channel
	// within it is a duplicate and dropped (as Pushpin's id cache; a
	// channel remembers its 4096 newest ids at most). Zero: no
	// deduplication; DefaultConfig sets 60s; negative is an error.
	PublishIDTTL time.Duration
	// SequenceWait is how long a published item waits for its
	// predecessor: one whose prev-id is not the id of the last item
	// delivered on its channel (when known; no-seq items never wait) is
	// held until that item comes, then delivered right after it, or until
	// it has waited this long, then delivered anyway (checked every
	// second), as Pushpin's sequencer. Zero: items never wait;
	// DefaultConfig sets 5s; negative is an error.
	SequenceWait time.Duration
	// ClusterBind, when set, joins this node to a tier: the memberlist
	// address (host:port). Publishes and purges received by any member then
	// reach every member. Empty: a single node.
	ClusterBind string
	// ClusterAdvertise is the memberlist address other members use, if not
	// ClusterBind's.
	ClusterAdvertise string
	// Join lists members to join (host:port, comma-separated; DNS names
	// resolved), retried in the background until one answers.
	Join string
	// NodeName is this node's unique name in the tier. Default: hostname.
	NodeName string
	// ClusterKey encrypts tier traffic and authenticates forwarded
	// operations (16, 24 or 32 bytes; "base64:..." for binary). Without it
	// forwarded operations are authenticated with the publish key.
	ClusterKey string
	// ClusterLabel keeps tiers on one network apart.
	ClusterLabel string
	// ClusterLocal uses memberlist's fast timings for a tier on one host.
	ClusterLocal bool
	// ClusterPushPull is how often members exchange state (recent purges,
	// so a member that missed one catches up). Zero: memberlist's default,
	// 30s (15s with -cluster-local).
	ClusterPushPull time.Duration
	// Shield makes this tier member one that may be a cache key's origin
	// shield (shield.go): the members that may are ranked per key by
	// rendezvous hashing, and the others' misses and revalidations go to
	// the key's shield, which asks the origin once for all. False: this
	// member shields nothing (it still asks the shields). DefaultConfig
	// sets true.
	Shield bool
	// ShieldTimeout bounds a request to a key's shield, its own origin
	// fetch included: past it the member asks the origin itself. Zero:
	// 2s.
	ShieldTimeout time.Duration
	// ShieldRetry is how long a shield that failed a request (unreachable,
	// no answer within ShieldTimeout) is skipped: its keys go to the next
	// shield in their ranking meanwhile. Zero: 5s.
	ShieldRetry time.Duration
	// LogLevel is debug, info, warn or error. Default info.
	LogLevel string
	// AccessLog is where one JSON line per client request (and per held
	// connection, when it ends) is written: a file path opened for append,
	// or "-" for stderr. Empty: no access log.
	AccessLog string
	// MetricsAuth makes GET /metrics require the publish key like the
	// rest of the control API. Default off: scrapers usually send no key.
	MetricsAuth bool
	// ShutdownTimeout bounds a graceful shutdown. Default 10s.
	ShutdownTimeout time.Duration

	// TLSListen is the HTTPS client listener address (empty: none); it
	// serves the same clients as Listen, side by side.
	TLSListen string
	// TLSCert and TLSKey are certificate and key files, paired by
	// position; the certificate is chosen by the client's SNI (the first
	// pair when none matches). Reloaded on SIGHUP (Server.ReloadTLS).
	TLSCert, TLSKey StringList
	// DrainDelay is how long a draining node keeps accepting connections
	// after /readyz turns 503, so load balancers notice first. Default 0.
	DrainDelay time.Duration
	// DrainPeriod spreads the ending of held connections on shutdown over
	// this long, so their clients do not all reconnect elsewhere at once.
	// Default 5s.
	DrainPeriod time.Duration

	// ClusterProfile selects memberlist's timings: "lan" (the default),
	// "wan" (members across regions) or "local" (one host; what
	// ClusterLocal also selects). See cluster.Profiles.
	ClusterProfile string
	// Region and Zone say where the node runs: letters, digits, '-', '_'
	// and '.', at most 64 (cluster.CheckLocality). They show on /status and
	// its page and, in a tier, in the member metadata. Empty: not said.
	Region, Zone string
	// ClusterRetryWindow bounds how long an operation is retried to a
	// member that does not take it (unreachable, or declared dead: its
	// queue is kept this long in case it comes back, as after a partition
	// heals); then it is dropped and counted in
	// edgepush_tier_ops_dropped_total. Default 60s.
	ClusterRetryWindow time.Duration
}

// StringList is a repeatable flag: each use (or config-file line) adds
// its comma-separated values.
type StringList []string

// String implements flag.Value.
func (l *StringList) String() string {
	if l == nil {
		return ""
	}
	return strings.Join(*l, ",")
}

// Set implements flag.Value.
func (l *StringList) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// DefaultConfig returns the configuration with every default filled in
// and Origin empty.
func DefaultConfig() Config {
	return Config{
		Listen:               ":7999",
		Control:              "127.0.0.1:5561",
		SigIss:               "edgepush",
		OriginTimeout:        30 * time.Second,
		OriginDialTimeout:    3 * time.Second,
		OriginMaxBody:        10 << 20,
		OriginRetries:        1,
		OriginMaxConns:       512,
		OriginMaxHeaderBytes: 64 << 10,
		MaxConns:             50000,
		MaxHeaderBytes:       16 << 10,
		MaxBody:              1 << 20,
		ReadTimeout:          30 * time.Second,
		IdleTimeout:          60 * time.Second,
		MaxChannels:          20,
		MaxQueueBytes:        256 << 10,
		WriteTimeout:         10 * time.Second,
		MaxPublishBody:       1 << 20,
		WSReadLimit:          64 << 10,
		WSPingInterval:       30 * time.Second,
		WSMaxPending:         256 << 10,
		WSOriginRetries:      3,
		CacheMaxBytes:        256 << 20,
		StaleIfError:         24 * time.Hour,
		OriginFailures:       5,
		OriginProbePath:      "/",
		OriginProbeMaxPause:  30 * time.Second,
		PurgeInterval:        time.Second,
		HistorySize:          64,
		HistoryAge:           2 * time.Minute,
		PublishIDTTL:         time.Minute,
		SequenceWait:         5 * time.Second,
		LogLevel:             "info",
		CDNLoop:              "edgepush",
		ShutdownTimeout:      10 * time.Second,
		DrainPeriod:          5 * time.Second,

		PublishJWTMaxLifetime: time.Hour,
		HistoryMaxBytes:       64 << 20,

		ClusterProfile:     "lan",
		ClusterRetryWindow: time.Minute,
		Shield:             true,
		ShieldTimeout:      2 * time.Second,
		ShieldRetry:        5 * time.Second,
	}
}

// RegisterFlags defines one flag per Config field on fs, bound to c. It is
// the single list of the node's settings; the config file uses the same
// names.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Listen, "listen", c.Listen, "client listener `address`")
	fs.StringVar(&c.Control, "control", c.Control, "control API listener `address` (publish, purge, status, metrics, health)")
	fs.StringVar(&c.MetricsListen, "metrics-listen", c.MetricsListen, "listener `address` serving only /healthz, /readyz and /metrics (empty: none)")
	fs.StringVar(&c.Origin, "origin", c.Origin, "origin base `URL`, e.g. http://127.0.0.1:8080: the catch-all route")
	fs.StringVar(&c.SigKey, "sig-key", c.SigKey, "Grip-Sig signing `key` (base64:... for binary); empty: a random key")
	fs.StringVar(&c.SigIss, "sig-iss", c.SigIss, "Grip-Sig issuer")
	fs.StringVar(&c.PublishKey, "publish-key", c.PublishKey, "`key` required on the control API; empty: no auth")
	fs.Var(durationFlag(&c.PublishJWTMaxLifetime), "publish-jwt-max-lifetime", "longest validity of a publish-key JWT: its exp (required) at most this after now and after iat (0: default)")
	fs.Var(durationFlag(&c.OriginTimeout), "origin-timeout", "origin request timeout")
	fs.Var(durationFlag(&c.OriginDialTimeout), "origin-dial-timeout", "origin connect timeout")
	fs.Var(sizeFlag(&c.OriginMaxBody), "origin-max-body", "origin response body limit (`size`: bytes, or 64KiB, 10MB, …)")
	fs.Var(intFlag(&c.OriginRetries), "origin-retries", "retries of an idempotent origin request (0-2)")
	fs.Var(intFlag(&c.OriginMaxConns), "origin-max-conns", "connections to the origin")
	fs.Var(sizeFlag(&c.OriginMaxHeaderBytes), "origin-max-header-bytes", "origin response header limit (`size`: bytes, or 64KiB, 10MB, …)")
	fs.StringVar(&c.ControlHosts, "control-hosts", c.ControlHosts, "host `names` the control API answers to without -publish-key (besides IPs and localhost)")
	fs.Var(&c.Routes, "route", "a `route`: \"host=H path=/p/ origin=URL[,URL] ...\" (repeat; see README)")
	fs.StringVar(&c.TrustXFF, "trust-xff", c.TrustXFF, "`CIDRs` of proxies whose X-Forwarded-For is appended to (others': replaced)")
	fs.StringVar(&c.CDNLoop, "cdn-loop", c.CDNLoop, "CDN-Loop `token` of this node (a request carrying it gets 508)")
	fs.StringVar(&c.OriginCAFile, "origin-ca-file", c.OriginCAFile, "PEM `file` of the CAs of HTTPS origins (default: the system's)")
	fs.StringVar(&c.OriginClientCert, "origin-client-cert", c.OriginClientCert, "PEM `file`: client certificate for HTTPS origins")
	fs.StringVar(&c.OriginClientKey, "origin-client-key", c.OriginClientKey, "PEM `file`: key of -origin-client-cert")
	fs.Var(intFlag(&c.MaxConns), "max-conns", "client connections (held ones included); over it: 503")
	fs.Var(sizeFlag(&c.MaxHeaderBytes), "max-header-bytes", "client request header limit (`size`: bytes, or 64KiB, 10MB, …)")
	fs.Var(sizeFlag(&c.MaxBody), "max-body", "client request body limit (`size`: bytes, or 64KiB, 10MB, …)")
	fs.Var(durationFlag(&c.ReadTimeout), "read-timeout", "time to read a client request")
	fs.Var(durationFlag(&c.IdleTimeout), "idle-timeout", "idle keep-alive client connection timeout")
	fs.Var(intFlag(&c.MaxChannels), "max-channels", "channels per connection")
	fs.Var(sizeFlag(&c.MaxQueueBytes), "max-queue-bytes", "`size` a held connection may fall behind once its socket stops taking data, before it is dropped as a slow consumer")
	fs.Var(sizeFlag(&c.MaxPendingBytes), "max-pending-bytes", "`size` queued per held connection in any case, waiting for the node's writers included (0: 16 × -max-queue-bytes)")
	fs.Var(durationFlag(&c.WriteTimeout), "write-timeout", "give up on a held connection that accepts nothing for this long")
	fs.Var(sizeFlag(&c.MaxPublishBody), "max-publish-body", "control API request body limit (`size`: bytes, or 64KiB, 10MB, …)")
	fs.Var(sizeFlag(&c.WSReadLimit), "ws-read-limit", "largest WebSocket message from a client (`size`: bytes, or 64KiB, 10MB, …)")
	fs.Var(durationFlag(&c.WSPingInterval), "ws-ping-interval", "WebSocket ping interval")
	fs.Var(sizeFlag(&c.WSMaxPending), "ws-max-pending", "`size` of client WebSocket messages waiting for the origin")
	fs.Var(intFlag(&c.WSOriginRetries), "ws-origin-retries", "retries of a failed WebSocket-over-HTTP request")
	fs.Var(boolFlag(&c.WSCompression), "ws-compression", "negotiate WebSocket permessage-deflate")
	fs.StringVar(&c.WSAllowedOrigins, "ws-allowed-origins", c.WSAllowedOrigins, "comma-separated WebSocket Origin values allowed (handshakes without Origin, from non-browser clients, are let through); empty: any")
	fs.Var(boolFlag(&c.CacheOff), "cache-off", "turn the edge cache off")
	fs.Var(sizeFlag(&c.CacheMaxBytes), "cache-max-bytes", "edge cache memory limit (`size`: bytes, or 64KiB, 10MB, …)")
	fs.Var(durationFlag(&c.StaleIfError), "stale-if-error", "serve cached responses this long past freshness while the origin fails (0: never), unless the response says")
	fs.Var(intFlag(&c.OriginFailures), "origin-failures", "consecutive origin failures (refused or timed out; answers, 5xx included, do not count) that open the circuit breaker (negative: never)")
	fs.StringVar(&c.OriginProbePath, "origin-probe-path", c.OriginProbePath, "path the breaker probes the origin with")
	fs.Var(durationFlag(&c.OriginProbeMaxPause), "origin-probe-max-pause", "longest pause between origin probes")
	fs.Var(durationFlag(&c.PurgeInterval), "purge-interval", "per-key purge rate limit (0: none)")
	fs.Var(intFlag(&c.HistorySize), "history-size", "recent messages kept per channel for replay (0: none)")
	fs.Var(durationFlag(&c.HistoryAge), "history-age", "how long channel history is kept")
	fs.Var(sizeFlag(&c.HistoryMaxBytes), "history-max-bytes", "memory limit (`size`: bytes, or 64KiB, 10MB, …) of all channels' history together (oldest messages dropped first)")
	fs.Var(durationFlag(&c.PublishIDTTL), "publish-id-ttl", "drop a published item whose id was seen on its channel within this long (0: no deduplication)")
	fs.Var(durationFlag(&c.SequenceWait), "sequence-wait", "how long an item waits for the item its prev-id names before it is delivered anyway (0: never waits)")
	fs.StringVar(&c.ClusterBind, "cluster-bind", c.ClusterBind, "memberlist `host:port`: join a tier of nodes (empty: single node)")
	fs.StringVar(&c.ClusterAdvertise, "cluster-advertise", c.ClusterAdvertise, "memberlist `host:port` other members use")
	fs.StringVar(&c.Join, "join", c.Join, "tier members to join, `host:port,...` (retried until one answers)")
	fs.StringVar(&c.NodeName, "node-name", c.NodeName, "unique node name in the tier (default: hostname)")
	fs.StringVar(&c.ClusterKey, "cluster-key", c.ClusterKey, "tier encryption `key` (16, 24 or 32 bytes, base64:... for binary)")
	fs.StringVar(&c.ClusterLabel, "cluster-label", c.ClusterLabel, "tier label, keeps tiers on one network apart")
	fs.Var(boolFlag(&c.ClusterLocal), "cluster-local", "fast memberlist timings for a tier on one host")
	fs.Var(durationFlag(&c.ClusterPushPull), "cluster-push-pull", "how often tier members exchange state (0: memberlist's default)")
	fs.Var(boolFlag(&c.Shield), "shield", "in a tier, this member may be a cache key's origin shield (false: it only asks the shields)")
	fs.Var(durationFlag(&c.ShieldTimeout), "shield-timeout", "longest wait for a key's shield before asking the origin directly")
	fs.Var(durationFlag(&c.ShieldRetry), "shield-retry", "how long a shield that failed a request is skipped")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "log level: debug, info, warn, error")
	fs.StringVar(&c.AccessLog, "access-log", c.AccessLog, "access log `file` (JSON lines, appended; - for stderr; empty: off)")
	fs.Var(boolFlag(&c.MetricsAuth), "metrics-auth", "require the publish key on GET /metrics too")
	fs.Var(durationFlag(&c.ShutdownTimeout), "shutdown-timeout", "how long a graceful shutdown may take after the drain")
	fs.StringVar(&c.TLSListen, "tls-listen", c.TLSListen, "HTTPS client listener `address` (empty: none)")
	fs.Var(&c.TLSCert, "tls-cert", "TLS certificate `file` (repeat for several, paired with -tls-key by position; chosen by SNI)")
	fs.Var(&c.TLSKey, "tls-key", "TLS private key `file` (repeat, paired with -tls-cert)")
	fs.Var(durationFlag(&c.DrainDelay), "drain-delay", "on shutdown, keep accepting this long after /readyz turns 503")
	fs.Var(durationFlag(&c.DrainPeriod), "drain-period", "on shutdown, end held connections spread over this long")
	fs.StringVar(&c.ClusterProfile, "cluster-profile", c.ClusterProfile, "memberlist timings: `lan`, wan (members across regions) or local (one host)")
	fs.StringVar(&c.Region, "region", c.Region, "the node's region `name` (letters, digits, -_.), shown on /status and to the tier")
	fs.StringVar(&c.Zone, "zone", c.Zone, "the node's zone `name` (letters, digits, -_.), shown on /status and to the tier")
	fs.Var(durationFlag(&c.ClusterRetryWindow), "cluster-retry-window", "how long an operation is retried to an unreachable or dead tier member before it is dropped (and counted)")
}

// Check reports what New would refuse in c (the same errors, but for
// those only parsing the keys and opening the certificates and the access
// log finds) and the settings that do nothing as given (warnings, which
// New logs and does not refuse).
func (c Config) Check() (warnings []string, err error) {
	c, warnings, err = c.withDefaults()
	if err != nil {
		return warnings, err
	}
	_, err = newRouteTable(c, []byte("check"))
	return warnings, err
}

// withDefaults returns c with zero fields set to their defaults and checks
// it: errors for settings that are invalid or that would do nothing where
// the intent is plain (a tier member, an HTTPS listener), warnings for
// settings that only do nothing. Each message starts with "config: -NAME".
func (c Config) withDefaults() (Config, []string, error) {
	d := DefaultConfig()
	var errs []error
	var warnings []string
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("config: "+format, args...)) }
	warn := func(format string, args ...any) { warnings = append(warnings, fmt.Sprintf("config: "+format, args...)) }

	// Zero: the default.
	setDefault(&c.Listen, d.Listen)
	setDefault(&c.Control, d.Control)
	setDefault(&c.SigIss, d.SigIss)
	setDefault(&c.PublishJWTMaxLifetime, d.PublishJWTMaxLifetime)
	setDefault(&c.LogLevel, d.LogLevel)
	setDefault(&c.OriginTimeout, d.OriginTimeout)
	setDefault(&c.OriginDialTimeout, d.OriginDialTimeout)
	setDefault(&c.OriginMaxBody, d.OriginMaxBody)
	setDefault(&c.OriginMaxConns, d.OriginMaxConns)
	setDefault(&c.OriginMaxHeaderBytes, d.OriginMaxHeaderBytes)
	setDefault(&c.MaxConns, d.MaxConns)
	setDefault(&c.MaxHeaderBytes, d.MaxHeaderBytes)
	setDefault(&c.MaxBody, d.MaxBody)
	setDefault(&c.ReadTimeout, d.ReadTimeout)
	setDefault(&c.IdleTimeout, d.IdleTimeout)
	setDefault(&c.MaxChannels, d.MaxChannels)
	setDefault(&c.MaxQueueBytes, d.MaxQueueBytes)
	setDefault(&c.WriteTimeout, d.WriteTimeout)
	setDefault(&c.MaxPublishBody, d.MaxPublishBody)
	setDefault(&c.ShutdownTimeout, d.ShutdownTimeout)
	setDefault(&c.DrainPeriod, d.DrainPeriod)
	setDefault(&c.WSReadLimit, d.WSReadLimit)
	setDefault(&c.WSPingInterval, d.WSPingInterval)
	setDefault(&c.WSMaxPending, d.WSMaxPending)
	setDefault(&c.WSOriginRetries, d.WSOriginRetries)
	setDefault(&c.CacheMaxBytes, d.CacheMaxBytes)
	setDefault(&c.HistoryAge, d.HistoryAge)
	setDefault(&c.HistoryMaxBytes, d.HistoryMaxBytes)
	setDefault(&c.OriginFailures, d.OriginFailures)
	setDefault(&c.OriginProbePath, d.OriginProbePath)
	setDefault(&c.OriginProbeMaxPause, d.OriginProbeMaxPause)
	setDefault(&c.CDNLoop, d.CDNLoop)
	setDefault(&c.ShieldTimeout, d.ShieldTimeout)
	setDefault(&c.ShieldRetry, d.ShieldRetry)

	// Numbers: negative means nothing, but where documented otherwise
	// (-origin-retries, -ws-origin-retries, -origin-failures,
	// -drain-period: none or never).
	for _, n := range []struct {
		name string
		v    int64
	}{
		{"origin-max-body", int64(c.OriginMaxBody)}, {"origin-max-conns", int64(c.OriginMaxConns)},
		{"origin-max-header-bytes", int64(c.OriginMaxHeaderBytes)}, {"max-conns", int64(c.MaxConns)},
		{"max-header-bytes", int64(c.MaxHeaderBytes)}, {"max-body", int64(c.MaxBody)},
		{"max-channels", int64(c.MaxChannels)}, {"max-queue-bytes", int64(c.MaxQueueBytes)},
		{"max-pending-bytes", int64(c.MaxPendingBytes)}, {"max-publish-body", int64(c.MaxPublishBody)},
		{"ws-read-limit", int64(c.WSReadLimit)}, {"ws-max-pending", int64(c.WSMaxPending)},
		{"cache-max-bytes", c.CacheMaxBytes}, {"history-size", int64(c.HistorySize)},
		{"history-max-bytes", c.HistoryMaxBytes},
	} {
		if n.v < 0 {
			bad("-%s %d: must not be negative", n.name, n.v)
		}
	}
	if c.OriginRetries > 2 {
		bad("-origin-retries %d: at most 2", c.OriginRetries)
	}
	c.WSOriginRetries = max(c.WSOriginRetries, 0)
	for _, v := range []struct {
		name string
		d    time.Duration
	}{
		{"publish-jwt-max-lifetime", c.PublishJWTMaxLifetime}, {"origin-timeout", c.OriginTimeout},
		{"origin-dial-timeout", c.OriginDialTimeout}, {"read-timeout", c.ReadTimeout},
		{"idle-timeout", c.IdleTimeout}, {"write-timeout", c.WriteTimeout},
		{"ws-ping-interval", c.WSPingInterval}, {"stale-if-error", c.StaleIfError},
		{"origin-probe-max-pause", c.OriginProbeMaxPause}, {"purge-interval", c.PurgeInterval},
		{"history-age", c.HistoryAge}, {"publish-id-ttl", c.PublishIDTTL},
		{"sequence-wait", c.SequenceWait}, {"cluster-push-pull", c.ClusterPushPull},
		{"shutdown-timeout", c.ShutdownTimeout}, {"drain-delay", c.DrainDelay},
		{"shield-timeout", c.ShieldTimeout}, {"shield-retry", c.ShieldRetry},
	} {
		if v.d < 0 {
			bad("-%s %v: must not be negative", v.name, v.d)
		}
	}

	// Addresses.
	listeners := map[string]string{} // address → flag, for clashes
	for _, a := range []struct{ name, addr string }{
		{"listen", c.Listen}, {"control", c.Control}, {"tls-listen", c.TLSListen}, {"metrics-listen", c.MetricsListen},
	} {
		if a.addr == "" {
			continue
		}
		if err := checkHostPort(a.addr, true); err != nil {
			bad("-%s %q: %v", a.name, a.addr, err)
			continue
		}
		if _, port, _ := net.SplitHostPort(a.addr); port != "0" {
			if other, ok := listeners[a.addr]; ok {
				bad("-%s %s: -%s listens there already", a.name, a.addr, other)
			}
			listeners[a.addr] = a.name
		}
	}
	if c.Control != "" && !loopbackAddr(c.Control) && c.PublishKey == "" {
		warn("-control %s is not a loopback address and there is no -publish-key: whoever reaches it can publish and purge", c.Control)
	}

	// Origins.
	if c.Origin == "" && len(c.Routes) == 0 {
		bad("-origin is required (or at least one -route)")
	}
	if c.Origin != "" {
		if _, err := originPath([]string{c.Origin}); err != nil {
			bad("-origin %v", err)
		}
	}
	if !strings.HasPrefix(c.OriginProbePath, "/") {
		bad("-origin-probe-path %q must start with /", c.OriginProbePath)
	}
	if c.OriginFailures < 0 && (c.OriginProbePath != d.OriginProbePath || c.OriginProbeMaxPause != d.OriginProbeMaxPause) {
		warn("-origin-probe-path and -origin-probe-max-pause do nothing with -origin-failures %d (no circuit breaker, no probes)", c.OriginFailures)
	}
	if !validCDNLoopToken(c.CDNLoop) {
		bad("-cdn-loop %q: want a token (letters, digits, -._~) or host:port", c.CDNLoop)
	}
	if _, err := parseTrusted(c.TrustXFF); err != nil {
		bad("-trust-xff: %v", err)
	}

	// The cache.
	caching := !c.CacheOff
	for _, r := range c.Routes {
		caching = caching || r.Cache != nil && *r.Cache
	}
	if !caching && (c.CacheMaxBytes != d.CacheMaxBytes || c.StaleIfError != d.StaleIfError) {
		warn("-cache-max-bytes and -stale-if-error do nothing with -cache-off (and no route with cache=on)")
	}

	// The control API.
	if c.PublishKey == "" {
		if c.MetricsAuth {
			warn("-metrics-auth does nothing without -publish-key (there is no key to require)")
		}
		if c.PublishJWTMaxLifetime != d.PublishJWTMaxLifetime {
			warn("-publish-jwt-max-lifetime does nothing without -publish-key")
		}
	} else if c.ControlHosts != "" {
		warn("-control-hosts does nothing with -publish-key (it restricts the Host names of an open control API)")
	}

	// HTTPS.
	if len(c.TLSCert) != len(c.TLSKey) {
		bad("-tls-cert and -tls-key: %d -tls-cert files but %d -tls-key files (they pair by position)", len(c.TLSCert), len(c.TLSKey))
	}
	switch {
	case c.TLSListen != "" && len(c.TLSCert) == 0:
		bad("-tls-listen needs -tls-cert and -tls-key")
	case c.TLSListen == "" && len(c.TLSCert)+len(c.TLSKey) > 0:
		bad("-tls-cert and -tls-key are given without -tls-listen: no HTTPS listener would use them (add -tls-listen :443)")
	}

	// The tier.
	if c.ClusterBind != "" {
		if err := checkHostPort(c.ClusterBind, true); err != nil {
			bad("-cluster-bind %q: %v", c.ClusterBind, err)
		} else if host, _, _ := net.SplitHostPort(c.ClusterBind); host != "" && net.ParseIP(host) == nil {
			bad("-cluster-bind %q: the host must be an IP address (or empty for every interface)", c.ClusterBind)
		}
		if c.ClusterAdvertise != "" {
			if err := checkHostPort(c.ClusterAdvertise, false); err != nil {
				bad("-cluster-advertise %q: %v", c.ClusterAdvertise, err)
			}
		}
		for _, j := range strings.Split(c.Join, ",") {
			if j = strings.TrimSpace(j); j != "" {
				if err := checkHostPort(j, false); err != nil {
					bad("-join %q: %v", j, err)
				}
			}
		}
		if c.ClusterKey == "" && !loopbackAddr(c.ClusterBind) {
			bad("-cluster-bind %s is not a loopback address: a tier on a network needs -cluster-key "+
				"(it encrypts membership and authenticates forwarded operations; without it any host could join)", c.ClusterBind)
		}
	} else {
		for _, s := range []struct{ name, v string }{
			{"join", c.Join}, {"cluster-key", c.ClusterKey}, {"cluster-advertise", c.ClusterAdvertise},
		} {
			if s.v != "" {
				bad("-%s needs -cluster-bind: without it the node runs alone and never joins a tier", s.name)
			}
		}
		if c.ClusterLabel != "" || c.ClusterLocal || c.ClusterPushPull != 0 {
			warn("-cluster-label, -cluster-local and -cluster-push-pull do nothing without -cluster-bind")
		}
	}

	c.checkTierProfile(d, bad, warn)

	if _, err := parseLevel(c.LogLevel); err != nil {
		errs = append(errs, err)
	}
	return c, warnings, errors.Join(errs...)
}

// checkHostPort checks a host:port (an empty host: every interface, for a
// listener). The port is a number, 1-65535, or 0 for a listener (the
// system picks one).
func checkHostPort(addr string, listener bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return errors.New("want host:port, e.g. 127.0.0.1:7999 or :7999")
	}
	if strings.ContainsAny(host, " \t/") {
		return fmt.Errorf("bad host %q", host)
	}
	p, err := strconv.Atoi(port)
	switch {
	case err != nil:
		return fmt.Errorf("port %q is not a number", port)
	case p < 0 || p > 65535:
		return fmt.Errorf("port %d is out of range (1-65535)", p)
	case p == 0 && !listener:
		return errors.New("port 0: want the port it listens on")
	case host == "" && !listener:
		return errors.New("missing host")
	}
	return nil
}

func setDefault[T comparable](v *T, d T) {
	var zero T
	if *v == zero {
		*v = d
	}
}

// loopbackAddr reports whether host:port names a loopback address (an IP
// or localhost; an empty host means every interface, not loopback).
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkTierProfile checks, and defaults, -cluster-profile, -region, -zone
// and -cluster-retry-window (-cluster-local is -cluster-profile local).
func (c *Config) checkTierProfile(d Config, bad, warn func(format string, args ...any)) {
	setDefault(&c.ClusterProfile, d.ClusterProfile)
	setDefault(&c.ClusterRetryWindow, d.ClusterRetryWindow)
	if c.ClusterLocal {
		switch c.ClusterProfile {
		case cluster.ProfileLAN, cluster.ProfileLocal: // lan: the default, not chosen
			c.ClusterProfile = cluster.ProfileLocal
		default:
			bad("-cluster-local is -cluster-profile local: it conflicts with -cluster-profile %s", c.ClusterProfile)
		}
	}
	if !slices.Contains(cluster.Profiles(), c.ClusterProfile) {
		bad("-cluster-profile %q: want %s", c.ClusterProfile, strings.Join(cluster.Profiles(), ", "))
	}
	for _, l := range []struct{ name, v string }{{"region", c.Region}, {"zone", c.Zone}} {
		if l.v != "" {
			if err := cluster.CheckLocality(l.v); err != nil {
				bad("-%s %q: %v", l.name, l.v, err)
			}
		}
	}
	if c.ClusterRetryWindow < 0 {
		bad("-cluster-retry-window %v: must not be negative", c.ClusterRetryWindow)
	}
	if c.ClusterBind == "" && (c.ClusterProfile != d.ClusterProfile && !c.ClusterLocal || c.ClusterRetryWindow != d.ClusterRetryWindow) {
		warn("-cluster-profile and -cluster-retry-window do nothing without -cluster-bind")
	}
}
