package loadtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
)

// Transport is how subscribers connect.
type Transport string

// The transports Run supports.
const (
	// TransportStream is HTTP streaming (Grip-Hold: stream): each message
	// arrives as one line of a chunked response body.
	TransportStream Transport = "stream"
	// TransportSSE is Server-Sent Events (Grip-Hold: stream with
	// text/event-stream): each message arrives as a "data:" event.
	TransportSSE Transport = "sse"
	// TransportLongPoll is HTTP long-polling (Grip-Hold: response): each
	// message is the body of one response, after which the client polls
	// again on the same connection.
	TransportLongPoll Transport = "longpoll"
	// TransportWS is WebSocket (ws:// URLs): the proxy opens the session
	// with the origin over WebSocket-over-HTTP and each message arrives
	// as one text message (published as ws-message).
	TransportWS Transport = "ws"
)

// Transports lists the supported transports, for help texts.
var Transports = []Transport{TransportStream, TransportSSE, TransportLongPoll, TransportWS}

// Defaults applied by Run to zero Config fields.
const (
	DefaultConcurrency      = 64
	DefaultMsgs             = 20
	DefaultRate             = 10
	DefaultSettle           = 10 * time.Second
	DefaultTimeout          = 10 * time.Minute
	DefaultConnectTimeout   = 10 * time.Second
	DefaultPublishTimeout   = 10 * time.Second
	DefaultSampleInterval   = 500 * time.Millisecond
	DefaultProgressInterval = 500 * time.Millisecond
	DefaultChannel          = "bench"
	// DefaultLongPollDelay is the pause between setup and the first publish
	// for long-poll runs (a long-poll client cannot see when the proxy has
	// subscribed it).
	DefaultLongPollDelay = time.Second
)

// Limits checked by Run.
const (
	// MaxLocalAddrs bounds Config.LocalAddrs (127.0.0.1 … 127.0.0.254).
	MaxLocalAddrs = 254
	// MaxMsgs bounds Config.Msgs.
	MaxMsgs = 1_000_000
	// MaxWarmup bounds Config.Warmup.
	MaxWarmup = 1000
	// reservedFDs is how many file descriptors Run leaves for itself
	// (publisher, /proc files, stdio) when checking Conns against the
	// process's open-file limit.
	reservedFDs = 64
)

// Config describes one load-test run. Zero fields take the defaults above;
// URL and PublishURL are required.
type Config struct {
	// URL is the subscriber URL on the proxy under test, e.g.
	// "http://127.0.0.1:7999/stream?ch=bench", or for TransportWS
	// "ws://127.0.0.1:7999/ws?ch=bench". Its host must be a loopback
	// address (or a name that resolves only to loopback ones).
	URL string
	// Transport is how subscribers connect. Default TransportStream.
	Transport Transport
	// Conns is how many subscriber connections to open. Required (>= 1).
	Conns int
	// Concurrency bounds how many connections are being set up at once.
	// Default 64.
	Concurrency int
	// LocalAddrs spreads the subscribers' source addresses round-robin over
	// 127.0.0.1 … 127.0.0.LocalAddrs (each address has its own ephemeral
	// port range). 0 or 1: the kernel's choice of source address. At most
	// MaxLocalAddrs.
	LocalAddrs int
	// PublishURL is the proxy's publish endpoint, e.g.
	// "http://127.0.0.1:5561/publish/". Loopback only, like URL.
	PublishURL string
	// PublishKey, when set, is sent as "Authorization: Bearer <key>" on
	// every publish.
	PublishKey string
	// Host, when set, is the Host header of the subscribers' requests
	// instead of URL's host: nodes of a tier on one box listen on
	// different ports, while clients of real edge nodes all send the
	// public name (which a tier's cache keys and origin shields go by).
	Host string
	// Channel is the channel published to. Default: the URL's "ch" query
	// parameter, else "bench". It must be the channel the origin puts the
	// subscribers on.
	Channel string
	// Msgs is how many messages to publish. Default 20, at most MaxMsgs.
	Msgs int
	// Rate is the publish rate in messages per second. Default 10.
	// Publishes are sequential: a proxy slower than the rate lowers it.
	Rate float64
	// Settle is how long to wait after the last publish for deliveries
	// still on their way; a message that has not arrived by then is lost.
	// The wait ends early once every expected delivery has arrived.
	// Default 10s.
	Settle time.Duration
	// Timeout bounds the whole run. Default 10m.
	Timeout time.Duration
	// ConnectTimeout bounds the setup of one connection (dial to first body
	// byte). Default 10s.
	ConnectTimeout time.Duration
	// PublishTimeout bounds one publish request. Default 10s.
	PublishTimeout time.Duration
	// PublishDelay is a pause between the end of setup and the first
	// publish. Default 0, or DefaultLongPollDelay for long-poll.
	PublishDelay time.Duration
	// PIDs are the server processes whose resident memory and CPU time are
	// sampled from /proc (summed over the processes). Empty: no sampling.
	PIDs []int
	// SampleInterval is how often PIDs are sampled. Default 500ms.
	SampleInterval time.Duration
	// SlowShare is the share (0 ≤ SlowShare < 1) of the subscribers that
	// stop reading once they are set up, as slow consumers do: every
	// 1/SlowShare-th connection, floor(Conns × SlowShare) in all. They
	// are counted in Report.SlowConns (and in ConnsOK), left out of the
	// deliveries, losses and latencies, and at the end of the run they
	// are checked for having been disconnected by the server
	// (Report.SlowDropped). Default 0: none.
	SlowShare float64
	// Warmup is how many connections to open (and close again) before the
	// measured ones, e.g. to fill the proxy's cache; they are not part of
	// the figures but for Report.WarmupOK. Default 0, or 1 with
	// OriginDown; at most MaxWarmup.
	Warmup int
	// Origin is an origin Run may take down (see OriginDown): typically
	// the built-in one, started with StartOrigin, that the proxy under
	// test is pointed at.
	Origin *OriginServer
	// OriginDown makes Run stop Origin after the warm-up connections and
	// before the measured ones, so that these can only be opened from
	// what the proxy has cached. It requires Origin.
	OriginDown bool
	// ExternalPublish makes Run publish nothing: another process (e.g. a
	// second load-test process, possibly through another node of a tier)
	// publishes Msgs messages at Rate on the channel, and this run only
	// subscribes and measures what arrives. Every message 0 … Msgs−1 is
	// expected on every connection; the wait ends when all have arrived,
	// or PublishDelay (how long the other process may take to start
	// publishing) + Msgs/Rate + Settle after setup. PublishURL is not used.
	ExternalPublish bool
	// Progress, when set, is called every ProgressInterval (and once at the
	// end of each phase) from a goroutine of Run with the run's state. It
	// must return quickly.
	Progress func(Progress)
	// ProgressInterval is how often Progress is called. Default 500ms.
	ProgressInterval time.Duration
}

// Progress is a snapshot of a running load test, passed to
// Config.Progress.
type Progress struct {
	// Phase is "warmup", "setup", "publish", "settle" or "done"
	// ("listen" instead of publish and settle with ExternalPublish).
	Phase string
	// Elapsed is the time since Run started.
	Elapsed time.Duration
	// ConnsTarget, ConnsOK, ConnsFailed and ConnsDropped count subscriber
	// connections: requested, set up, failed to set up, and ended by the
	// server (or an error) after setup.
	ConnsTarget, ConnsOK, ConnsFailed, ConnsDropped int
	// ConnsSlow counts the slow readers among ConnsOK (Config.SlowShare).
	ConnsSlow int
	// MsgsTarget and MsgsPublished count publishes: requested and
	// acknowledged by the publish API.
	MsgsTarget, MsgsPublished int
	// Expected and Received count deliveries: what the connections set up
	// (slow readers aside) should have got for the messages published so far, and the distinct
	// messages they did get.
	Expected, Received int64
	// RSSBytes is the latest summed RSS of Config.PIDs (0 without PIDs).
	RSSBytes int64
}

// withDefaults validates c and returns it with defaults filled in.
func (c Config) withDefaults() (Config, error) {
	if c.Transport == "" {
		c.Transport = TransportStream
	}
	if _, err := transportFor(c.Transport); err != nil {
		return c, err
	}
	scheme := "http"
	if c.Transport == TransportWS {
		scheme = "ws"
	}
	u, err := parseLoopbackURL("URL", c.URL, scheme)
	if err != nil {
		return c, err
	}
	if !c.ExternalPublish {
		if _, err := parseLoopbackURL("PublishURL", c.PublishURL, "http"); err != nil {
			return c, err
		}
	}
	if strings.ContainsAny(c.Host, " \t\r\n/") {
		return c, fmt.Errorf("loadtest: Host %q is not a host[:port]", c.Host)
	}
	if c.Conns < 1 {
		return c, fmt.Errorf("loadtest: Conns must be at least 1, got %d", c.Conns)
	}
	if c.Concurrency < 0 || c.LocalAddrs < 0 || c.Msgs < 0 || c.Rate < 0 || c.Settle < 0 ||
		c.Timeout < 0 || c.ConnectTimeout < 0 || c.PublishTimeout < 0 || c.PublishDelay < 0 ||
		c.SampleInterval < 0 || c.ProgressInterval < 0 || c.Warmup < 0 {
		return c, errors.New("loadtest: negative setting")
	}
	if !(c.SlowShare >= 0 && c.SlowShare < 1) { // also refuses NaN
		return c, fmt.Errorf("loadtest: SlowShare %v is not in [0, 1)", c.SlowShare)
	}
	if c.OriginDown && c.Origin == nil {
		return c, errors.New("loadtest: OriginDown needs an Origin to take down")
	}
	if c.Warmup > MaxWarmup {
		return c, fmt.Errorf("loadtest: Warmup %d is more than %d", c.Warmup, MaxWarmup)
	}
	if c.LocalAddrs > MaxLocalAddrs {
		return c, fmt.Errorf("loadtest: LocalAddrs %d is more than %d", c.LocalAddrs, MaxLocalAddrs)
	}
	if c.Msgs > MaxMsgs {
		return c, fmt.Errorf("loadtest: Msgs %d is more than %d", c.Msgs, MaxMsgs)
	}
	for _, pid := range c.PIDs {
		if pid <= 0 {
			return c, fmt.Errorf("loadtest: bad PID %d", pid)
		}
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.Warmup == 0 && c.OriginDown {
		c.Warmup = 1
	}
	if c.LocalAddrs == 0 {
		c.LocalAddrs = 1
	}
	if c.Msgs == 0 {
		c.Msgs = DefaultMsgs
	}
	if c.Rate == 0 {
		c.Rate = DefaultRate
	}
	if c.Settle == 0 {
		c.Settle = DefaultSettle
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.PublishTimeout == 0 {
		c.PublishTimeout = DefaultPublishTimeout
	}
	if c.PublishDelay == 0 && c.Transport == TransportLongPoll {
		c.PublishDelay = DefaultLongPollDelay
	}
	if c.SampleInterval == 0 {
		c.SampleInterval = DefaultSampleInterval
	}
	if c.ProgressInterval == 0 {
		c.ProgressInterval = DefaultProgressInterval
	}
	if c.Channel == "" {
		c.Channel = u.Query().Get("ch")
	}
	if c.Channel == "" {
		c.Channel = DefaultChannel
	}
	if limit, ok := openFileLimit(); ok && uint64(c.Conns)+reservedFDs > limit {
		return c, fmt.Errorf("loadtest: %d connections need more than this process's open-file limit of %d (%d are kept in reserve)",
			c.Conns, limit, reservedFDs)
	}
	return c, nil
}

// parseLoopbackURL parses a URL of the given scheme and checks that its
// host is a loopback address.
func parseLoopbackURL(field, raw, scheme string) (*url.URL, error) {
	if raw == "" {
		return nil, fmt.Errorf("loadtest: %s is required", field)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("loadtest: %s: %w", field, err)
	}
	if u.Scheme != scheme {
		return nil, fmt.Errorf("loadtest: %s %q: only %s:// URLs are supported here", field, raw, scheme)
	}
	host := u.Hostname()
	if host == "" {
		return nil, fmt.Errorf("loadtest: %s %q has no host", field, raw)
	}
	if !isLoopbackHost(host) {
		return nil, fmt.Errorf("loadtest: %s %q: the host must be a loopback address", field, raw)
	}
	return u, nil
}

// isLoopbackHost reports whether host is a loopback IP, or a name that
// resolves to loopback addresses only.
func isLoopbackHost(host string) bool {
	if ip := net.ParseIP(host); ip != nil {
		return ip.IsLoopback()
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil || len(addrs) == 0 {
		return false
	}
	for _, a := range addrs {
		if !a.IP.IsLoopback() {
			return false
		}
	}
	return true
}
