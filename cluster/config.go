package cluster

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/hashicorp/memberlist"
)

// Config configures a tier member.
type Config struct {
	// Name is the node's unique name in the tier. Default: the hostname.
	Name string
	// Bind is the memberlist address (ip:port, or :port for every
	// interface; port 0 picks one). Empty: 0.0.0.0:7946.
	Bind string
	// Advertise is the address other members use, if not Bind's.
	Advertise string
	// Join lists members to join (host:port, DNS names resolved); tried in
	// the background until one answers, so nodes can start in any order.
	Join []string
	// SecretKey encrypts memberlist traffic (16, 24 or 32 bytes) and
	// authenticates forwarded operations. Empty: neither.
	SecretKey []byte
	// Label separates tiers sharing a network: members with another label
	// are ignored.
	Label string
	// ControlAddr is this node's control listener address as peers reach
	// it (host:port); forwarded operations are POSTed there, to OpsPath,
	// which the listener must route to ServeOps.
	ControlAddr string
	// Version is reported to peers in the node metadata.
	Version string
	// Token authenticates forwarded operations (sent as a Bearer token and
	// required by ServeOps); empty: none. See TokenFor.
	Token string
	// Handler applies operations received from peers, directly or
	// replayed from another member's op log (in the form Remember kept).
	// Required.
	Handler Handler
	// QueueLen bounds each peer's queue of undelivered operations; a peer
	// that falls further behind loses the oldest and is counted. Zero:
	// 16384.
	QueueLen int
	// Remember chooses what the op log keeps of an operation this member
	// broadcast or received: the form to replay to a member that missed
	// it (e.g. only the purge part of a purge-and-publish), or false to
	// keep nothing (operations that need not reach every member, or are
	// worthless late). Whatever it returns keeps the original's Source,
	// Incarnation and Seq, so its ID is the original's; Kind and Data may
	// differ, and Data must be JSON. Members exchange the log at every
	// push/pull and apply, through Handler, the entries they have not seen
	// (see the package documentation). It must be fast and must not call
	// the Cluster. Nil: the log is off (nothing kept, sent or applied).
	Remember func(op Op) (Op, bool)
	// LogMax bounds the op log's entries, the oldest dropped first. The
	// state sent at one push/pull is also capped (256 KiB), to its newest
	// entries. Zero: 4096.
	LogMax int
	// LogAge bounds the age of the op log's entries: older ones are
	// dropped, and not applied when another member sends them. An
	// operation's ID stays seen (not applied again) for twice LogAge,
	// within a bound of 4×LogMax IDs. Zero: 48h.
	LogAge time.Duration
	// PushPull is how often members exchange the op log (memberlist's
	// push/pull interval). Zero: the profile's (30s, 60s on WAN, 15s
	// local).
	PushPull time.Duration
	// Local selects memberlist's timings for one host (tests, a tier on
	// one machine): faster failure detection. It is Profile ProfileLocal.
	Local bool
	// Tune, if set, adjusts the memberlist configuration last.
	Tune func(*memberlist.Config)
	// Shield makes this member one that may shield cache keys (see
	// ShieldFor); the others learn it from its metadata.
	Shield bool
	// ShieldRetry is how long ShieldFor skips a shield that failed a
	// request (unreachable, no answer in time). Zero: 5s.
	ShieldRetry time.Duration
	// ShieldMaxBody bounds a shield's answer (AskShield). Zero: no bound.
	ShieldMaxBody int
	// ShieldDial, if set, connects to members' control listeners for
	// AskShield instead of TCP (tests cut or black-hole the connections).
	ShieldDial func(addr string) (net.Conn, error)
	// Log receives membership events, join failures and memberlist's own
	// lines (at the level each names: see memberlistLog), each with a
	// "component" attribute, "cluster" or "memberlist": Log must not
	// carry one already. Nil: no logging.
	Log *slog.Logger

	// Profile selects memberlist's timings: ProfileLAN (the default),
	// ProfileWAN or ProfileLocal (what Local selects). Local with another
	// profile is an error.
	Profile string
	// Region and Zone say where this member runs (CheckLocality); they
	// travel in its metadata and show in Stats. Empty: not said.
	Region, Zone string
	// RetryWindow bounds how long an operation is retried to a member that
	// does not take it (unreachable, failing, or declared dead: a failed
	// member's queue is kept this long after, in case it comes back, as
	// after a partition heals); past it the operation is dropped and
	// counted (Stats.Dropped). Zero: 60s.
	RetryWindow time.Duration
	// Rejoin is how often a member joins again the members it lost
	// (declared dead, not left, within LogAge) and, when it is alone, the
	// Join seeds: memberlist stops gossiping to a dead member after a while,
	// so two sides of a long partition would not find each other again
	// without it. Zero: the profile's push/pull interval (PushPull when
	// set).
	Rejoin time.Duration
	// Faults, when set, injects network faults into this member's tier
	// traffic (a cut, a delay): for tests. Nil: none.
	Faults *Faults
}

func (c *Config) check() error {
	var errs []error
	if c.Name == "" {
		h, err := os.Hostname()
		if err != nil {
			errs = append(errs, fmt.Errorf("cluster: node name: %w", err))
		}
		c.Name = h
	}
	if c.Handler == nil {
		errs = append(errs, errors.New("cluster: Handler is required"))
	}
	if c.ControlAddr == "" {
		errs = append(errs, errors.New("cluster: ControlAddr is required"))
	}
	if c.Bind != "" {
		if err := checkAddr(c.Bind, true); err != nil {
			errs = append(errs, fmt.Errorf("cluster: bind address %q: %w", c.Bind, err))
		}
	}
	if c.Advertise != "" {
		if err := checkAddr(c.Advertise, false); err != nil {
			errs = append(errs, fmt.Errorf("cluster: advertise address %q: %w", c.Advertise, err))
		}
	}
	if n := len(c.SecretKey); n != 0 && n != 16 && n != 24 && n != 32 {
		errs = append(errs, fmt.Errorf("cluster: secret key is %d bytes, want 16, 24 or 32", n))
	}
	if c.QueueLen <= 0 {
		c.QueueLen = 16384
	}
	if c.LogMax <= 0 {
		c.LogMax = defaultLogMax
	}
	if c.ShieldRetry <= 0 {
		c.ShieldRetry = 5 * time.Second
	}
	if c.LogAge <= 0 {
		c.LogAge = defaultLogAge
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Local && c.Profile != "" && c.Profile != ProfileLocal {
		errs = append(errs, fmt.Errorf("cluster: Local conflicts with profile %q", c.Profile))
	}
	if _, _, err := profileConfig(c.profile()); err != nil {
		errs = append(errs, fmt.Errorf("cluster: %w", err))
	}
	for _, l := range []struct{ name, v string }{{"region", c.Region}, {"zone", c.Zone}} {
		if l.v != "" {
			if err := CheckLocality(l.v); err != nil {
				errs = append(errs, fmt.Errorf("cluster: %s %q: %w", l.name, l.v, err))
			}
		}
	}
	if c.RetryWindow <= 0 {
		c.RetryWindow = defaultRetryWindow
	}
	return errors.Join(errs...)
}

// checkAddr checks a memberlist host:port. Memberlist binds to an IP (a
// host name it cannot parse means every interface), so a bind host must
// be an IP or empty.
func checkAddr(addr string, bind bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("bad port %q", port)
	}
	if bind && host != "" && net.ParseIP(host) == nil {
		return errors.New("host is not an IP address")
	}
	return nil
}

// joinRetry is the pause between join attempts.
const joinRetry = time.Second

// defaultRetryWindow is Config.RetryWindow's default.
const defaultRetryWindow = time.Minute
