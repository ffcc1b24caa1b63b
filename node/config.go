package node

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"time"
)

// Config is the node's configuration. Every field is a command-line flag
// and a config-file key of the same name (see RegisterFlags); the zero value
// of a field means its default.
type Config struct {
	// Listen is the client listener address. Default ":7999".
	Listen string
	// Control is the control API listener (publish, status). Default
	// "127.0.0.1:5561".
	Control string
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
	}
}

// RegisterFlags defines one flag per Config field on fs, bound to c. It is
// the single list of the node's settings; the config file uses the same
// names.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Listen, "listen", c.Listen, "client listener `address`")
	fs.StringVar(&c.Control, "control", c.Control, "control API listener `address` (publish, status)")
	fs.StringVar(&c.Origin, "origin", c.Origin, "origin base `URL`, e.g. http://127.0.0.1:8080: the catch-all route")
	fs.StringVar(&c.SigKey, "sig-key", c.SigKey, "Grip-Sig signing `key` (base64:... for binary); empty: a random key")
	fs.StringVar(&c.SigIss, "sig-iss", c.SigIss, "Grip-Sig issuer")
	fs.StringVar(&c.PublishKey, "publish-key", c.PublishKey, "`key` required on the control API; empty: no auth")
	fs.DurationVar(&c.PublishJWTMaxLifetime, "publish-jwt-max-lifetime", c.PublishJWTMaxLifetime, "longest validity of a publish-key JWT: its exp (required) at most this after now and after iat (0: default)")
	fs.DurationVar(&c.OriginTimeout, "origin-timeout", c.OriginTimeout, "origin request timeout")
	fs.DurationVar(&c.OriginDialTimeout, "origin-dial-timeout", c.OriginDialTimeout, "origin connect timeout")
	fs.IntVar(&c.OriginMaxBody, "origin-max-body", c.OriginMaxBody, "origin response body limit in `bytes`")
	fs.IntVar(&c.OriginRetries, "origin-retries", c.OriginRetries, "retries of an idempotent origin request (0-2)")
	fs.IntVar(&c.OriginMaxConns, "origin-max-conns", c.OriginMaxConns, "connections to the origin")
	fs.IntVar(&c.OriginMaxHeaderBytes, "origin-max-header-bytes", c.OriginMaxHeaderBytes, "origin response header limit in `bytes`")
	fs.StringVar(&c.ControlHosts, "control-hosts", c.ControlHosts, "host `names` the control API answers to without -publish-key (besides IPs and localhost)")
	fs.Var(&c.Routes, "route", "a `route`: \"host=H path=/p/ origin=URL[,URL] ...\" (repeat; see README)")
	fs.StringVar(&c.TrustXFF, "trust-xff", c.TrustXFF, "`CIDRs` of proxies whose X-Forwarded-For is appended to (others': replaced)")
	fs.StringVar(&c.CDNLoop, "cdn-loop", c.CDNLoop, "CDN-Loop `token` of this node (a request carrying it gets 508)")
	fs.StringVar(&c.OriginCAFile, "origin-ca-file", c.OriginCAFile, "PEM `file` of the CAs of HTTPS origins (default: the system's)")
	fs.StringVar(&c.OriginClientCert, "origin-client-cert", c.OriginClientCert, "PEM `file`: client certificate for HTTPS origins")
	fs.StringVar(&c.OriginClientKey, "origin-client-key", c.OriginClientKey, "PEM `file`: key of -origin-client-cert")
	fs.IntVar(&c.MaxConns, "max-conns", c.MaxConns, "client connections (held ones included); over it: 503")
	fs.IntVar(&c.MaxHeaderBytes, "max-header-bytes", c.MaxHeaderBytes, "client request header limit in `bytes`")
	fs.IntVar(&c.MaxBody, "max-body", c.MaxBody, "client request body limit in `bytes`")
	fs.DurationVar(&c.ReadTimeout, "read-timeout", c.ReadTimeout, "time to read a client request")
	fs.DurationVar(&c.IdleTimeout, "idle-timeout", c.IdleTimeout, "idle keep-alive client connection timeout")
	fs.IntVar(&c.MaxChannels, "max-channels", c.MaxChannels, "channels per connection")
	fs.IntVar(&c.MaxQueueBytes, "max-queue-bytes", c.MaxQueueBytes, "`bytes` a held connection may fall behind once its socket stops taking data, before it is dropped as a slow consumer")
	fs.IntVar(&c.MaxPendingBytes, "max-pending-bytes", c.MaxPendingBytes, "`bytes` queued per held connection in any case, waiting for the node's writers included (0: 16 × -max-queue-bytes)")
	fs.DurationVar(&c.WriteTimeout, "write-timeout", c.WriteTimeout, "give up on a held connection that accepts nothing for this long")
	fs.IntVar(&c.MaxPublishBody, "max-publish-body", c.MaxPublishBody, "control API request body limit in `bytes`")
	fs.IntVar(&c.WSReadLimit, "ws-read-limit", c.WSReadLimit, "largest WebSocket message from a client, in `bytes`")
	fs.DurationVar(&c.WSPingInterval, "ws-ping-interval", c.WSPingInterval, "WebSocket ping interval")
	fs.IntVar(&c.WSMaxPending, "ws-max-pending", c.WSMaxPending, "`bytes` of client WebSocket messages waiting for the origin")
	fs.IntVar(&c.WSOriginRetries, "ws-origin-retries", c.WSOriginRetries, "retries of a failed WebSocket-over-HTTP request")
	fs.BoolVar(&c.WSCompression, "ws-compression", c.WSCompression, "negotiate WebSocket permessage-deflate")
	fs.StringVar(&c.WSAllowedOrigins, "ws-allowed-origins", c.WSAllowedOrigins, "comma-separated WebSocket Origin values allowed (handshakes without Origin, from non-browser clients, are let through); empty: any")
	fs.BoolVar(&c.CacheOff, "cache-off", c.CacheOff, "turn the edge cache off")
	fs.Int64Var(&c.CacheMaxBytes, "cache-max-bytes", c.CacheMaxBytes, "edge cache memory limit in `bytes`")
	fs.DurationVar(&c.StaleIfError, "stale-if-error", c.StaleIfError, "serve cached responses this long past freshness while the origin fails (0: never), unless the response says")
	fs.IntVar(&c.OriginFailures, "origin-failures", c.OriginFailures, "consecutive origin failures (refused or timed out; answers, 5xx included, do not count) that open the circuit breaker (negative: never)")
	fs.StringVar(&c.OriginProbePath, "origin-probe-path", c.OriginProbePath, "path the breaker probes the origin with")
	fs.DurationVar(&c.OriginProbeMaxPause, "origin-probe-max-pause", c.OriginProbeMaxPause, "longest pause between origin probes")
	fs.DurationVar(&c.PurgeInterval, "purge-interval", c.PurgeInterval, "per-key purge rate limit (0: none)")
	fs.IntVar(&c.HistorySize, "history-size", c.HistorySize, "recent messages kept per channel for replay (0: none)")
	fs.DurationVar(&c.HistoryAge, "history-age", c.HistoryAge, "how long channel history is kept")
	fs.Int64Var(&c.HistoryMaxBytes, "history-max-bytes", c.HistoryMaxBytes, "memory limit in `bytes` of all channels' history together (oldest messages dropped first)")
	fs.DurationVar(&c.PublishIDTTL, "publish-id-ttl", c.PublishIDTTL, "drop a published item whose id was seen on its channel within this long (0: no deduplication)")
	fs.DurationVar(&c.SequenceWait, "sequence-wait", c.SequenceWait, "how long an item waits for the item its prev-id names before it is delivered anyway (0: never waits)")
	fs.StringVar(&c.ClusterBind, "cluster-bind", c.ClusterBind, "memberlist `host:port`: join a tier of nodes (empty: single node)")
	fs.StringVar(&c.ClusterAdvertise, "cluster-advertise", c.ClusterAdvertise, "memberlist `host:port` other members use")
	fs.StringVar(&c.Join, "join", c.Join, "tier members to join, `host:port,...` (retried until one answers)")
	fs.StringVar(&c.NodeName, "node-name", c.NodeName, "unique node name in the tier (default: hostname)")
	fs.StringVar(&c.ClusterKey, "cluster-key", c.ClusterKey, "tier encryption `key` (16, 24 or 32 bytes, base64:... for binary)")
	fs.StringVar(&c.ClusterLabel, "cluster-label", c.ClusterLabel, "tier label, keeps tiers on one network apart")
	fs.BoolVar(&c.ClusterLocal, "cluster-local", c.ClusterLocal, "fast memberlist timings for a tier on one host")
	fs.DurationVar(&c.ClusterPushPull, "cluster-push-pull", c.ClusterPushPull, "how often tier members exchange state (0: memberlist's default)")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "log level: debug, info, warn, error")
	fs.StringVar(&c.AccessLog, "access-log", c.AccessLog, "access log `file` (JSON lines, appended; - for stderr; empty: off)")
	fs.BoolVar(&c.MetricsAuth, "metrics-auth", c.MetricsAuth, "require the publish key on GET /metrics too")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "how long a graceful shutdown may take after the drain")
	fs.StringVar(&c.TLSListen, "tls-listen", c.TLSListen, "HTTPS client listener `address` (empty: none)")
	fs.Var(&c.TLSCert, "tls-cert", "TLS certificate `file` (repeat for several, paired with -tls-key by position; chosen by SNI)")
	fs.Var(&c.TLSKey, "tls-key", "TLS private key `file` (repeat, paired with -tls-cert)")
	fs.DurationVar(&c.DrainDelay, "drain-delay", c.DrainDelay, "on shutdown, keep accepting this long after /readyz turns 503")
	fs.DurationVar(&c.DrainPeriod, "drain-period", c.DrainPeriod, "on shutdown, end held connections spread over this long")
}

// LoadConfigFile sets, on fs, every setting found in the file at path that
// was not given on the command line (explicit flags win). The file holds
// one "name = value" (or "name value") per line, names as the flags without
// the dash; blank lines and lines starting with # are ignored.
func LoadConfigFile(fs *flag.FlagSet, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	explicit := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { explicit[fl.Name] = true })
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		name, value, ok := parseConfigLine(sc.Text())
		if !ok {
			continue
		}
		if fs.Lookup(name) == nil || name == "config" {
			return fmt.Errorf("config: %s:%d: unknown setting %q", path, line, name)
		}
		if explicit[name] {
			continue
		}
		if err := fs.Set(name, value); err != nil {
			return fmt.Errorf("config: %s:%d: %s: %w", path, line, name, err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("config: %s: %w", path, err)
	}
	return nil
}

func parseConfigLine(s string) (name, value string, ok bool) {
	s = strings.TrimSpace(s)
	if s == "" || strings.HasPrefix(s, "#") {
		return "", "", false
	}
	if i := strings.IndexAny(s, "= \t"); i >= 0 {
		name, value = s[:i], strings.TrimSpace(s[i:])
		value = strings.TrimSpace(strings.TrimPrefix(value, "="))
	} else {
		name = s
	}
	return strings.TrimPrefix(name, "-"), unquote(value), true
}

func unquote(s string) string {
	if len(s) >= 2 && (s[0] == '"' && s[len(s)-1] == '"' || s[0] == '\'' && s[len(s)-1] == '\'') {
		return s[1 : len(s)-1]
	}
	return s
}

// withDefaults returns c with zero fields set to their defaults and checks
// it.
func (c Config) withDefaults() (Config, error) {
	d := DefaultConfig()
	var errs []error
	setDefault(&c.Listen, d.Listen)
	setDefault(&c.Control, d.Control)
	setDefault(&c.SigIss, d.SigIss)
	setDefault(&c.PublishJWTMaxLifetime, d.PublishJWTMaxLifetime)
	if c.PublishJWTMaxLifetime < 0 {
		errs = append(errs, fmt.Errorf("config: -publish-jwt-max-lifetime %v is negative", c.PublishJWTMaxLifetime))
	}
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
	if c.DrainDelay < 0 {
		errs = append(errs, fmt.Errorf("config: -drain-delay %v is negative", c.DrainDelay))
	}
	if len(c.TLSCert) != len(c.TLSKey) {
		errs = append(errs, fmt.Errorf("config: %d -tls-cert files but %d -tls-key files", len(c.TLSCert), len(c.TLSKey)))
	}
	if c.TLSListen != "" && len(c.TLSCert) == 0 {
		errs = append(errs, errors.New("config: -tls-listen needs -tls-cert and -tls-key"))
	}
	setDefault(&c.WSReadLimit, d.WSReadLimit)
	setDefault(&c.WSPingInterval, d.WSPingInterval)
	setDefault(&c.WSMaxPending, d.WSMaxPending)
	setDefault(&c.WSOriginRetries, d.WSOriginRetries)
	c.WSOriginRetries = max(c.WSOriginRetries, 0)
	setDefault(&c.CacheMaxBytes, d.CacheMaxBytes)
	setDefault(&c.HistoryAge, d.HistoryAge)
	setDefault(&c.HistoryMaxBytes, d.HistoryMaxBytes)
	if c.PurgeInterval < 0 || c.HistorySize < 0 || c.HistoryMaxBytes < 0 || c.MaxPendingBytes < 0 {
		errs = append(errs, errors.New("config: -purge-interval, -history-size, -history-max-bytes and -max-pending-bytes must not be negative"))
	}
	if c.PublishIDTTL < 0 || c.SequenceWait < 0 {
		errs = append(errs, fmt.Errorf("config: -publish-id-ttl %v and -sequence-wait %v must not be negative", c.PublishIDTTL, c.SequenceWait))
	}
	setDefault(&c.OriginFailures, d.OriginFailures)
	setDefault(&c.OriginProbePath, d.OriginProbePath)
	setDefault(&c.OriginProbeMaxPause, d.OriginProbeMaxPause)
	if c.StaleIfError < 0 {
		errs = append(errs, fmt.Errorf("config: -stale-if-error %v is negative", c.StaleIfError))
	}
	if !strings.HasPrefix(c.OriginProbePath, "/") {
		errs = append(errs, fmt.Errorf("config: -origin-probe-path %q must start with /", c.OriginProbePath))
	}
	setDefault(&c.CDNLoop, d.CDNLoop)
	if !validCDNLoopToken(c.CDNLoop) {
		errs = append(errs, fmt.Errorf("config: -cdn-loop %q: want a token (letters, digits, -._~) or host:port", c.CDNLoop))
	}
	if _, err := parseTrusted(c.TrustXFF); err != nil {
		errs = append(errs, fmt.Errorf("config: -trust-xff: %w", err))
	}
	if c.Origin == "" && len(c.Routes) == 0 {
		errs = append(errs, errors.New("config: -origin is required (or at least one -route)"))
	}
	if _, err := originPath([]string{c.Origin}); c.Origin != "" && err != nil {
		errs = append(errs, fmt.Errorf("config: -origin %q: want http://host:port or https://host:port", c.Origin))
	}
	if c.OriginRetries > 2 {
		errs = append(errs, fmt.Errorf("config: -origin-retries %d: at most 2", c.OriginRetries))
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		errs = append(errs, err)
	}
	if c.ClusterBind != "" && c.ClusterKey == "" && !loopbackAddr(c.ClusterBind) {
		errs = append(errs, fmt.Errorf("config: -cluster-bind %s is not a loopback address: a tier on a network needs -cluster-key "+
			"(it encrypts membership and authenticates forwarded operations; without it any host could join)", c.ClusterBind))
	}
	return c, errors.Join(errs...)
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
