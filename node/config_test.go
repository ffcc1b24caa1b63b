package node

import (
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgepush/edgepush/internal/testlog"
)

func TestConfigFileAndFlags(t *testing.T) {
	path := filepath.Join(t.TempDir(), "edgepush.conf")
	os.WriteFile(path, []byte(`# edge node
listen = 127.0.0.1:8000
origin   http://127.0.0.1:9000
sig-key = "from file"
origin-timeout = 5s

max-channels=7
`), 0o600)
	cfg := DefaultConfig()
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	if err := fs.Parse([]string{"-listen", ":9999"}); err != nil {
		t.Fatal(err)
	}
	if err := LoadConfigFile(fs, path); err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != ":9999" { // the flag wins
		t.Fatalf("Listen = %q", cfg.Listen)
	}
	if cfg.Origin != "http://127.0.0.1:9000" || cfg.SigKey != "from file" || cfg.OriginTimeout != 5*time.Second || cfg.MaxChannels != 7 {
		t.Fatalf("cfg = %+v", cfg)
	}
}

// New refuses, before anything listens, every setting that is invalid or
// that would do nothing where the intent is plain; each error names the
// setting.
func TestConfigValidation(t *testing.T) {
	for _, tc := range []struct {
		mod  func(*Config)
		want string
	}{
		{func(c *Config) { c.Origin = "" }, "-origin is required"},
		{func(c *Config) { c.Origin = "ftp://x" }, "-origin"},
		{func(c *Config) { c.Origin = "http://127.0.0.1:99999" }, `config: -origin "http://127.0.0.1:99999": port 99999 is out of range (1-65535)`},
		{func(c *Config) { c.Origin = "http://127.0.0.1:0" }, "port 0 is out of range"},
		{func(c *Config) { c.Origin = "http://:8080" }, "missing host"},
		{func(c *Config) { c.Origin = "http://a:" }, "empty port"},
		{func(c *Config) { c.Origin = "http://u:p@a:1" }, "user info"},
		{func(c *Config) { c.Origin = "http://a:1/?x=1" }, "no query"},
		{func(c *Config) { c.Origin = "http://a:1/#f" }, "no fragment"},
		{func(c *Config) { c.Routes = RouteList{{Host: "a.example", Origins: []string{"http://a:70000"}}} }, `route "a.example/": origin=http://a:70000: "http://a:70000": port 70000 is out of range`},
		{func(c *Config) { c.OriginRetries = 5 }, "at most 2"},
		{func(c *Config) { c.LogLevel = "loud" }, "-log-level"},
		{func(c *Config) { c.SigKey = "base64:!!" }, "-sig-key"},
		{func(c *Config) { c.MaxConns = -5 }, "config: -max-conns -5: must not be negative"},
		{func(c *Config) { c.OriginMaxConns = -1 }, "-origin-max-conns -1: must not be negative"},
		{func(c *Config) { c.MaxChannels = -1 }, "-max-channels -1"},
		{func(c *Config) { c.CacheMaxBytes = -1 }, "-cache-max-bytes -1"},
		{func(c *Config) { c.WSReadLimit = -1 }, "-ws-read-limit -1"},
		{func(c *Config) { c.OriginTimeout = -time.Second }, "-origin-timeout -1s: must not be negative"},
		{func(c *Config) { c.ReadTimeout = -time.Second }, "-read-timeout -1s"},
		{func(c *Config) { c.HistoryAge = -time.Second }, "-history-age -1s"},
		{func(c *Config) { c.ClusterPushPull = -time.Second }, "-cluster-push-pull -1s"},
		{func(c *Config) { c.Listen = "127.0.0.1:70000" }, `-listen "127.0.0.1:70000": port 70000 is out of range`},
		{func(c *Config) { c.Control = "localhost" }, `-control "localhost": want host:port`},
		{func(c *Config) { c.MetricsListen = "127.0.0.1:http" }, `-metrics-listen "127.0.0.1:http": port "http" is not a number`},
		{func(c *Config) { c.Listen, c.Control = "127.0.0.1:7000", "127.0.0.1:7000" }, "-control 127.0.0.1:7000: -listen listens there already"},
		{func(c *Config) { c.TLSCert, c.TLSKey = StringList{"a.crt"}, StringList{"a.key"} }, "-tls-cert and -tls-key are given without -tls-listen"},
		{func(c *Config) { c.TLSKey = StringList{"a.key"} }, "-tls-cert and -tls-key: 0 -tls-cert files but 1 -tls-key files"},
		{func(c *Config) { c.TLSListen = "127.0.0.1:0" }, "-tls-listen needs -tls-cert and -tls-key"},
		{func(c *Config) { c.Join = "127.0.0.1:7946" }, "-join needs -cluster-bind"},
		{func(c *Config) { c.ClusterKey = "0123456789abcdef" }, "-cluster-key needs -cluster-bind"},
		{func(c *Config) { c.ClusterAdvertise = "10.0.0.1:7946" }, "-cluster-advertise needs -cluster-bind"},
		{func(c *Config) { c.ClusterBind = "localhost:0" }, `-cluster-bind "localhost:0": the host must be an IP address`},
		{func(c *Config) { c.ClusterBind, c.Join = "127.0.0.1:0", "127.0.0.1:0" }, `-join "127.0.0.1:0": port 0`},
		{func(c *Config) { c.ClusterBind, c.Join = "127.0.0.1:0", ":7946" }, `-join ":7946": missing host`},
		{func(c *Config) { c.ClusterBind = "10.0.0.1:7946" }, "needs -cluster-key"},
	} {
		cfg := DefaultConfig()
		cfg.Origin = "http://127.0.0.1:1"
		tc.mod(&cfg)
		if _, err := New(cfg, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("err = %v, want %q", err, tc.want)
		}
		if _, err := cfg.Check(); err == nil && tc.want != "-sig-key" {
			t.Errorf("Check accepts what New refuses (%q)", tc.want)
		}
	}
	// What is documented as meaningful is accepted.
	cfg := DefaultConfig()
	cfg.Origin = "https://[::1]:8443/base"
	cfg.OriginRetries, cfg.WSOriginRetries, cfg.OriginFailures, cfg.DrainPeriod = -1, -1, -1, -time.Second
	cfg.StaleIfError, cfg.PurgeInterval, cfg.HistorySize, cfg.PublishIDTTL, cfg.SequenceWait = 0, 0, 0, 0, 0
	cfg.Listen, cfg.Control, cfg.MetricsListen = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	if warnings, err := cfg.Check(); err != nil || len(warnings) != 0 {
		t.Fatalf("%v %v", warnings, err)
	}
	if _, err := New(cfg, nil); err != nil {
		t.Fatal(err)
	}
}

// Settings that only do nothing are warned about, in New's log, and not
// refused.
func TestConfigWarnings(t *testing.T) {
	for _, tc := range []struct {
		mod  func(*Config)
		want string
	}{
		{func(c *Config) { c.MetricsAuth = true }, "-metrics-auth does nothing without -publish-key"},
		{func(c *Config) { c.PublishJWTMaxLifetime = time.Minute }, "-publish-jwt-max-lifetime does nothing without -publish-key"},
		{func(c *Config) { c.PublishKey, c.ControlHosts = "k", "edge.internal" }, "-control-hosts does nothing with -publish-key"},
		{func(c *Config) { c.CacheOff, c.CacheMaxBytes = true, 1<<20 }, "-cache-max-bytes and -stale-if-error do nothing with -cache-off"},
		{func(c *Config) { c.ClusterLocal = true }, "-cluster-local and -cluster-push-pull do nothing without -cluster-bind"},
		{func(c *Config) { c.ClusterLabel = "a" }, "do nothing without -cluster-bind"},
		{func(c *Config) { c.OriginFailures, c.OriginProbePath = -1, "/health" }, "-origin-probe-path and -origin-probe-max-pause do nothing with -origin-failures -1"},
		{func(c *Config) { c.Control = "0.0.0.0:0" }, "-control 0.0.0.0:0 is not a loopback address and there is no -publish-key"},
	} {
		cfg := DefaultConfig()
		cfg.Origin = "http://127.0.0.1:1"
		tc.mod(&cfg)
		warnings, err := cfg.Check()
		if err != nil || len(warnings) != 1 || !strings.Contains(warnings[0], tc.want) {
			t.Errorf("Check: %q %v, want %q", warnings, err, tc.want)
			continue
		}
		var out logCapture
		if _, err := New(cfg, out.logger()); err != nil {
			t.Fatal(err)
		}
		if got := out.String(); !strings.Contains(got, `"level":"WARN"`) || !strings.Contains(got, tc.want) {
			t.Errorf("New logged %q, want a warning %q", got, tc.want)
		}
	}
	// A route that caches makes the cache settings count with -cache-off.
	cfg := DefaultConfig()
	cfg.Origin, cfg.CacheOff, cfg.CacheMaxBytes = "http://127.0.0.1:1", true, 1<<20
	on := true
	cfg.Routes = RouteList{{Host: "a.example", Origins: []string{"http://127.0.0.1:2"}, Cache: &on}}
	if warnings, err := cfg.Check(); err != nil || len(warnings) != 0 {
		t.Fatalf("%v %v", warnings, err)
	}
}

// logCapture is a JSON logger's output, for a test to read.
type logCapture struct{ testlog.Buffer }

func (c *logCapture) logger() *slog.Logger { return c.Logger(slog.LevelInfo) }
