package node

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/edgepush/edgepush/grip"
)

// RouteConfig is one route: which client requests it takes (by Host and
// path prefix) and how they reach its origins. A route is written as
// space-separated key=value pairs (ParseRoute); an empty field means the
// node-wide setting of the same name.
type RouteConfig struct {
	// ID names the route in /status and logs. Default: host and path,
	// e.g. "api.example.com/v1/" or "*/".
	ID string
	// Host is the Host the route takes, without port, compared without
	// case: an exact name ("api.example.com"), a wildcard for every
	// subdomain ("*.example.com", not example.com itself), or empty (also
	// written "*") for any host.
	Host string
	// Path is the path prefix the route takes, compared byte for byte
	// with the request target as the client sent it (no decoding). Write
	// "/v1/" rather than "/v1" to stop at a segment boundary. Default "/".
	Path string
	// Origins are the origin base URLs, http:// or https://, all with the
	// same path (prepended to request paths). Several: requests take
	// turns (round-robin), an origin whose circuit breaker is open is
	// skipped, and a request that cannot connect to one origin is sent to
	// the next at once. Required.
	Origins []string
	// StripPrefix is removed from the start of the request target before
	// it goes to the origin (a target left without a leading "/" gets
	// one). Empty: nothing removed.
	StripPrefix string
	// HostRewrite is the Host header sent to the origin. Empty: the
	// client's Host.
	HostRewrite string
	// SigKey signs this route's Grip-Sig ("base64:..." for binary).
	// Empty: -sig-key.
	SigKey string
	// SigIss is this route's Grip-Sig issuer. Empty: -sig-iss.
	SigIss string
	// WebSocket, when false, refuses WebSocket upgrades on this route
	// with 403. Nil: on (WebSocket-over-HTTP to the origin).
	WebSocket *bool
	// Cache, when false, sends every request of this route to the origin
	// (X-Cache: BYPASS). Nil: on unless -cache-off.
	Cache *bool
	// StaleIfError replaces -stale-if-error for this route's responses
	// (the response's own stale-if-error still wins). Nil: -stale-if-error.
	StaleIfError *time.Duration
	// TrustXFF lists the proxies (CIDRs or addresses, comma-separated)
	// whose X-Forwarded-For is appended to on this route; "none" trusts
	// no one. Empty: -trust-xff.
	TrustXFF string
	// CAFile is a PEM file of the CAs that sign the HTTPS origins'
	// certificates, used instead of the system's. Empty: -origin-ca-file.
	CAFile string
	// ClientCert and ClientKey are PEM files of the client certificate
	// presented to HTTPS origins; both or neither. Empty:
	// -origin-client-cert and -origin-client-key.
	ClientCert, ClientKey string
}

// routeKeys are ParseRoute's keys, for error messages.
const routeKeys = "id, host, path, origin, strip-prefix, host-rewrite, sig-key, sig-iss, ws, cache, " +
	"stale-if-error, trust-xff, ca-file, client-cert, client-key"

// ParseRoute parses a route written as space-separated key=value pairs
// (a value may be double-quoted), e.g.
//
//	host=api.example.com path=/v1/ origin=http://10.0.0.5:8080 strip-prefix=/v1 ws=off
//
// Errors name the bad key.
func ParseRoute(s string) (RouteConfig, error) {
	var r RouteConfig
	fields, err := splitRouteFields(s)
	if err != nil {
		return r, err
	}
	seen := map[string]bool{}
	for _, f := range fields {
		key, value, ok := strings.Cut(f, "=")
		if !ok {
			return r, fmt.Errorf("%q: want key=value (keys: %s)", f, routeKeys)
		}
		if seen[key] {
			return r, fmt.Errorf("%s: given twice", key)
		}
		seen[key] = true
		if err := r.set(key, value); err != nil {
			return r, err
		}
	}
	return r, r.validate()
}

// set applies one key=value of a route.
func (r *RouteConfig) set(key, value string) error {
	var err error
	switch key {
	case "id":
		r.ID = value
	case "host":
		r.Host = value
	case "path":
		r.Path = value
	case "origin":
		r.Origins = strings.Split(value, ",")
	case "strip-prefix":
		r.StripPrefix = value
	case "host-rewrite":
		r.HostRewrite = value
	case "sig-key":
		r.SigKey = value
	case "sig-iss":
		r.SigIss = value
	case "ws":
		r.WebSocket, err = parseOnOff(value)
	case "cache":
		r.Cache, err = parseOnOff(value)
	case "stale-if-error":
		var d time.Duration
		if d, err = parseDuration(value); err == nil && d < 0 {
			err = errors.New("negative")
		}
		r.StaleIfError = &d
	case "trust-xff":
		r.TrustXFF = value
	case "ca-file":
		r.CAFile = value
	case "client-cert":
		r.ClientCert = value
	case "client-key":
		r.ClientKey = value
	default:
		return fmt.Errorf("unknown key %q (keys: %s)", key, routeKeys)
	}
	if err != nil {
		return fmt.Errorf("%s=%s: %w", key, value, err)
	}
	return nil
}

// validate checks a route's fields; errors name the key.
func (r *RouteConfig) validate() error {
	if err := checkRouteHost(r.Host); err != nil {
		return fmt.Errorf("host=%s: %w", r.Host, err)
	}
	if r.Path != "" && (!strings.HasPrefix(r.Path, "/") || strings.ContainsAny(r.Path, "? \t")) {
		return fmt.Errorf("path=%s: want a path prefix starting with /", r.Path)
	}
	if r.StripPrefix != "" && !strings.HasPrefix(r.StripPrefix, "/") {
		return fmt.Errorf("strip-prefix=%s: want a prefix starting with /", r.StripPrefix)
	}
	if strings.ContainsAny(r.HostRewrite, " \t\r\n,/") {
		return fmt.Errorf("host-rewrite=%s: want a host[:port]", r.HostRewrite)
	}
	if len(r.Origins) == 0 {
		return errors.New("origin: missing (every route needs origin=URL)")
	}
	if _, err := originPath(r.Origins); err != nil {
		return fmt.Errorf("origin=%s: %w", strings.Join(r.Origins, ","), err)
	}
	if r.SigKey != "" {
		if _, err := grip.ParseKey(r.SigKey); err != nil {
			return fmt.Errorf("sig-key: %w", err)
		}
	}
	if _, err := parseTrusted(r.TrustXFF); err != nil {
		return fmt.Errorf("trust-xff=%s: %w", r.TrustXFF, err)
	}
	if (r.ClientCert == "") != (r.ClientKey == "") {
		return errors.New("client-cert and client-key: give both or neither")
	}
	return nil
}

// routeID is the route's name: its ID, else host and path.
func (r *RouteConfig) routeID() string {
	if r.ID != "" {
		return r.ID
	}
	host := routeHost(r.Host)
	if host == "" {
		host = "*"
	}
	return host + r.pathPrefix()
}

func (r *RouteConfig) pathPrefix() string {
	if r.Path == "" {
		return "/"
	}
	return r.Path
}

// takes reports whether r and o take the same requests (same host and
// path), which would make one of them unreachable.
func (r *RouteConfig) takes(o *RouteConfig) bool {
	return routeHost(r.Host) == routeHost(o.Host) && r.pathPrefix() == o.pathPrefix()
}

// routeHost is a route's Host as matched: lower case, "" for any host.
func routeHost(h string) string {
	if h == "*" {
		return ""
	}
	return strings.ToLower(h)
}

func anyHost(h string) bool { return h == "" || h == "*" }

func checkRouteHost(h string) error {
	if anyHost(h) {
		return nil
	}
	name := strings.TrimPrefix(h, "*.")
	switch {
	case len(h) > maxHostLen:
		return errors.New("too long")
	case name == "" || strings.Contains(name, "*"):
		return errors.New(`want a name, "*.name" or "*"`)
	case strings.HasPrefix(name, "["):
		if _, err := netip.ParseAddr(strings.Trim(name, "[]")); err != nil || !strings.HasSuffix(name, "]") {
			return errors.New("bad IPv6 literal")
		}
	case strings.ContainsAny(name, ":/ \t,"):
		return errors.New("want a host name without port or path")
	}
	return nil
}

// originPath checks origin URLs and returns their common path.
func originPath(origins []string) (string, error) {
	var path string
	for i, o := range origins {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return "", fmt.Errorf("%q: want http://host:port or https://host:port", o)
		}
		if err := checkOriginURL(u); err != nil {
			return "", fmt.Errorf("%q: %w", o, err)
		}
		p := strings.TrimSuffix(u.Path, "/")
		if i > 0 && p != path {
			return "", fmt.Errorf("%q: the origins of one route must share one path (%q)", o, path)
		}
		path = p
	}
	return path, nil
}

// checkOriginURL checks what url.Parse lets through and no request to
// the origin could use: a port out of range, no host, user info, a query
// or a fragment.
func checkOriginURL(u *url.URL) error {
	if u.Hostname() == "" {
		return errors.New("missing host")
	}
	if strings.ContainsAny(u.Hostname(), " \t") {
		return fmt.Errorf("bad host %q", u.Hostname())
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("port %s is out of range (1-65535)", p)
		}
	} else if strings.HasSuffix(u.Host, ":") {
		return errors.New("empty port")
	}
	switch {
	case u.User != nil:
		return errors.New("user info in an origin URL is not sent: remove it")
	case u.RawQuery != "" || u.ForceQuery:
		return errors.New("an origin URL has no query")
	case u.Fragment != "":
		return errors.New("an origin URL has no fragment")
	}
	return nil
}

// parseOnOff reads on/off (or true/false, yes/no, 1/0).
func parseOnOff(v string) (*bool, error) {
	var b bool
	switch strings.ToLower(v) {
	case "on", "true", "yes", "1":
		b = true
	case "off", "false", "no", "0":
	default:
		return nil, errors.New("want on or off")
	}
	return &b, nil
}

// parseTrusted reads a comma-separated list of CIDRs or addresses;
// "none" and "" are the empty list.
func parseTrusted(s string) ([]netip.Prefix, error) {
	if s == "" || s == "none" {
		return nil, nil
	}
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		p, err := netip.ParsePrefix(f)
		if err != nil {
			a, aerr := netip.ParseAddr(f)
			if aerr != nil {
				return nil, fmt.Errorf("%q: want a CIDR (10.0.0.0/8) or an address", f)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// splitRouteFields splits a route at spaces outside double quotes and
// removes the quotes.
func splitRouteFields(s string) ([]string, error) {
	var out []string
	var b strings.Builder
	quoted, have := false, false
	for _, c := range s {
		switch {
		case c == '"':
			quoted, have = !quoted, true
		case !quoted && unicode.IsSpace(c):
			if have {
				out = append(out, b.String())
				b.Reset()
				have = false
			}
		default:
			b.WriteRune(c)
			have = true
		}
	}
	if quoted {
		return nil, errors.New("unterminated quote")
	}
	if have {
		out = append(out, b.String())
	}
	if len(out) == 0 {
		return nil, errors.New("empty route (want key=value pairs, at least origin=URL)")
	}
	return out, nil
}

// RouteList is the node's routes in the order given; as a flag.Value
// each Set parses one more route (-route may repeat, as may "route =" in
// the config file).
type RouteList []RouteConfig

// String lists the routes' IDs.
func (l *RouteList) String() string {
	if l == nil {
		return ""
	}
	ids := make([]string, len(*l))
	for i := range *l {
		ids[i] = (*l)[i].routeID()
	}
	return strings.Join(ids, " ")
}

// Set parses one route and adds it; a route taking the same host and
// path as an earlier one is an error.
func (l *RouteList) Set(s string) error {
	r, err := ParseRoute(s)
	if err != nil {
		return err
	}
	if err := l.checkNew(&r); err != nil {
		return err
	}
	*l = append(*l, r)
	return nil
}

// checkNew refuses a route that would clash with one already listed.
func (l RouteList) checkNew(r *RouteConfig) error {
	for i := range l {
		o := &l[i]
		switch {
		case r.takes(o):
			return fmt.Errorf("host=%s path=%s: route %q already takes these requests", r.Host, r.pathPrefix(), o.routeID())
		case r.routeID() == o.routeID():
			return fmt.Errorf("id=%s: used twice", r.routeID())
		}
	}
	return nil
}
