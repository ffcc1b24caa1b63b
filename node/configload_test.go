package node

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// newFlagSet returns a FlagSet with every setting, bound to a fresh
// DefaultConfig, as cmd/edgepush makes it (plus its -demo, a boolean
// setting of its own, and -version, a command).
func newFlagSet(t *testing.T, args ...string) (*Config, *flag.FlagSet) {
	t.Helper()
	cfg := DefaultConfig()
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	fs.String("config", "", "")
	fs.Bool("demo", false, "")
	fs.Bool("version", false, "")
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return &cfg, fs
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "edgepush.conf")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestSizes(t *testing.T) {
	for in, want := range map[string]int64{
		"262144": 262144, "256KiB": 256 << 10, "256 KiB": 256 << 10, "256kib": 256 << 10, "256Ki": 256 << 10,
		"256MiB": 256 << 20, "10 MiB": 10 << 20, "1GiB": 1 << 30,
		"256MB": 256_000_000, "256M": 256_000_000, "64KB": 64_000, "64k": 64_000, "0": 0, " 7 ": 7,
	} {
		got, err := parseSize(in)
		if err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for in, want := range map[string]string{
		"-5": "must not be negative", "lots": "want a size in bytes, e.g. 65536, 64KiB or 10MB", "5 parsecs": "want a size",
		"": "want a size", "99999999999999999999": "too large",
	} {
		if _, err := parseSize(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parseSize(%q): %v, want %q", in, err, want)
		}
	}
	for n, want := range map[int64]string{0: "0", 1000: "1000", 65536: "64KiB", 10 << 20: "10MiB", 3 << 30: "3GiB", 1536: "1536"} {
		if got := formatSize(n); got != want {
			t.Errorf("formatSize(%d) = %q, want %q", n, got, want)
		}
		if back, err := parseSize(formatSize(n)); err != nil || back != n {
			t.Errorf("formatSize(%d) does not read back: %d %v", n, back, err)
		}
	}
	// The flags take them; an int flag refuses what does not fit.
	cfg, _ := newFlagSet(t, "-cache-max-bytes", "256MiB", "-max-queue-bytes", "256KiB", "-origin-max-body", "10MB", "-history-max-bytes", "1000000")
	if cfg.CacheMaxBytes != 256<<20 || cfg.MaxQueueBytes != 256<<10 || cfg.OriginMaxBody != 10_000_000 || cfg.HistoryMaxBytes != 1_000_000 {
		t.Fatalf("sizes from flags: %d %d %d %d", cfg.CacheMaxBytes, cfg.MaxQueueBytes, cfg.OriginMaxBody, cfg.HistoryMaxBytes)
	}
}

func TestFlagValueErrors(t *testing.T) {
	for _, tc := range []struct{ args, want []string }{
		{[]string{"-stale-if-error", "5"}, []string{`invalid value "5" for flag -stale-if-error: missing unit, e.g. 5s`}},
		{[]string{"-origin-timeout", "1.5"}, []string{"missing unit, e.g. 1.5s"}},
		{[]string{"-origin-timeout", "5 sec"}, []string{"want a duration such as 500ms, 5s, 2m or 1h30m"}},
		{[]string{"-max-channels", "many"}, []string{"-max-channels: want a whole number"}},
		{[]string{"-max-conns", "99999999999999999999"}, []string{"out of range"}},
		{[]string{"-max-body", "1 lot"}, []string{"-max-body: want a size in bytes"}},
	} {
		cfg := DefaultConfig()
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(discard{})
		cfg.RegisterFlags(fs)
		err := fs.Parse(tc.args)
		for _, w := range tc.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%q: %v, want %q", tc.args, err, w)
			}
		}
	}
	cfg, _ := newFlagSet(t, "-stale-if-error", "0", "-origin-timeout", "1m30s")
	if cfg.StaleIfError != 0 || cfg.OriginTimeout != 90*time.Second {
		t.Fatalf("durations: %v %v", cfg.StaleIfError, cfg.OriginTimeout)
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func TestConfigFileSyntax(t *testing.T) {
	path := writeConfig(t, `# an edge node
cache-off
ws-compression = false
origin = http://127.0.0.1:9000   # the app
sig-key = abc#def
publish-key = "a # in quotes"
cluster-label 'single'
control-hosts =
	max-channels=7 # seven
route = host=a.example path=/v1/ origin=http://10.0.0.5:8080 sig-iss="x # y" # a route
route = host=b.example origin=http://10.0.0.6:8080
tls-cert = a.crt
tls-cert = b.crt
demo
cache-max-bytes = 256 MiB
`)
	cfg, fs := newFlagSet(t)
	if err := LoadConfigFile(fs, path); err != nil {
		t.Fatal(err)
	}
	if !cfg.CacheOff || cfg.WSCompression || cfg.Origin != "http://127.0.0.1:9000" || cfg.SigKey != "abc#def" ||
		cfg.PublishKey != "a # in quotes" || cfg.ClusterLabel != "single" || cfg.ControlHosts != "" || cfg.MaxChannels != 7 ||
		cfg.CacheMaxBytes != 256<<20 {
		t.Fatalf("cfg = %+v", cfg)
	}
	if len(cfg.Routes) != 2 || cfg.Routes[0].SigIss != "x # y" || cfg.Routes[1].Host != "b.example" {
		t.Fatalf("routes = %+v", cfg.Routes)
	}
	if strings.Join(cfg.TLSCert, ",") != "a.crt,b.crt" {
		t.Fatalf("tls-cert = %v", cfg.TLSCert)
	}
	if fs.Lookup("demo").Value.String() != "true" {
		t.Fatal("a bare boolean line of a flag of cmd's own did not set it")
	}
}

func TestConfigFileErrors(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{"nosuch = 1\n", `c.conf:1: unknown setting "nosuch"`},
		{"# x\nmax-conn = 1\n", `c.conf:2: unknown setting "max-conn" (did you mean -max-conns?)`},
		{"max-channels = many\n", "c.conf:1: max-channels: want a whole number"},
		{"origin-timeout = 5\n", "c.conf:1: origin-timeout: missing unit, e.g. 5s"},
		{"stale-if-error = 5 # five\n", "c.conf:1: stale-if-error: missing unit, e.g. 5s"},
		{"listen\n", "c.conf:1: listen: missing value (write listen = value)"},
		{"listen = :1\n\nlisten = :2\n", "c.conf:3: listen is given twice (first on line 1)"},
		{"config = other.conf\n", "c.conf:1: config: a config file cannot name another"},
		{"version\n", `c.conf:1: unknown setting "version"`},
		{"cache-off = maybe\n", "c.conf:1: cache-off: want true or false"},
	} {
		path := filepath.Join(t.TempDir(), "c.conf")
		os.WriteFile(path, []byte(tc.body), 0o600)
		_, fs := newFlagSet(t)
		err := (&Loader{FS: fs, Commands: []string{"version"}}).LoadFile(path)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want %q", tc.body, err, tc.want)
		}
	}
	// Every error of a file is reported at once.
	path := writeConfig(t, "nosuch = 1\nmax-channels = many\n")
	_, fs := newFlagSet(t)
	if err := LoadConfigFile(fs, path); err == nil || !strings.Contains(err.Error(), ":1:") || !strings.Contains(err.Error(), ":2:") {
		t.Fatalf("two bad lines: %v", err)
	}
	_, fs = newFlagSet(t)
	if err := LoadConfigFile(fs, "/nonexistent/x.conf"); err == nil {
		t.Fatal("missing file accepted")
	}
}

// Flags win over the environment, the environment over the config file,
// the file over the defaults; the Loader says where each came from.
func TestSettingsPrecedence(t *testing.T) {
	path := writeConfig(t, "listen = 127.0.0.1:1\ncontrol = 127.0.0.1:2\norigin = http://file:1\nmax-channels = 3\nroute = host=f origin=http://f:1\n")
	cfg, fs := newFlagSet(t, "-listen", "127.0.0.1:9")
	l := &Loader{FS: fs, Commands: []string{"version"}}
	warnings, err := l.LoadEnv([]string{
		"EDGEPUSH_LISTEN=127.0.0.1:8",  // the flag wins
		"EDGEPUSH_CONTROL=127.0.0.1:7", // wins over the file
		"EDGEPUSH_ORIGIN=",             // empty: not set
		"EDGEPUSH_ROUTE=host=a origin=http://a:1\n\nhost=b origin=http://b:1,http://b:2\n",
		"EDGEPUSH_CACHE_OFF=1",
		"EDGEPUSH_STALE_IF_ERROR=90s",
		"EDGEPUSH_CACHE_MAX_BYTES=64MiB",
		"EDGEPUSH_VERSION=1",   // a command, not a setting
		"EDGEPUSH_MAXCONNS=10", // a typo
		"PATH=/bin",
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{
		"config: environment variable EDGEPUSH_MAXCONNS is not a setting, ignored (did you mean -max-conns?)",
		"config: environment variable EDGEPUSH_VERSION is not a setting, ignored",
	}; strings.Join(warnings, "\n") != strings.Join(want, "\n") {
		t.Fatalf("warnings:\n%s\nwant:\n%s", strings.Join(warnings, "\n"), strings.Join(want, "\n"))
	}
	if err := l.LoadFile(path); err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:9" || cfg.Control != "127.0.0.1:7" || cfg.Origin != "http://file:1" || cfg.MaxChannels != 3 ||
		!cfg.CacheOff || cfg.StaleIfError != 90*time.Second || cfg.CacheMaxBytes != 64<<20 || cfg.OriginTimeout != 30*time.Second {
		t.Fatalf("cfg = %+v", cfg)
	}
	if len(cfg.Routes) != 2 || cfg.Routes[0].Host != "a" || len(cfg.Routes[1].Origins) != 2 {
		t.Fatalf("routes from the environment (the file's are not added) = %+v", cfg.Routes)
	}
	for name, want := range map[string]string{
		"listen": "", "control": "EDGEPUSH_CONTROL", "origin": path + ":3", "max-channels": path + ":4", "origin-timeout": "",
	} {
		if got := l.Origin(name); got != want {
			t.Errorf("Origin(%q) = %q, want %q", name, got, want)
		}
	}
	// A bad value names its variable.
	_, fs = newFlagSet(t)
	if _, err := (&Loader{FS: fs}).LoadEnv([]string{"EDGEPUSH_STALE_IF_ERROR=5"}); err == nil ||
		err.Error() != "config: EDGEPUSH_STALE_IF_ERROR=5: missing unit, e.g. 5s (units: ns, us, ms, s, m, h)" {
		t.Fatalf("bad value: %v", err)
	}
}

// Every flag has its variable, which sets it.
func TestEveryFlagHasAnEnvironmentVariable(t *testing.T) {
	_, fs := newFlagSet(t)
	var environ []string
	fs.VisitAll(func(fl *flag.Flag) {
		v := fl.DefValue
		switch fl.Name {
		case "version":
			return
		case "route":
			v = "host=x origin=http://x:1"
		case "tls-cert", "tls-key":
			v = "x.pem"
		}
		if v == "" {
			v = "x"
		}
		environ = append(environ, EnvVar(fl.Name)+"="+v)
	})
	l := &Loader{FS: fs, Commands: []string{"version"}}
	if warnings, err := l.LoadEnv(environ); err != nil || len(warnings) != 0 {
		t.Fatalf("%v %v", warnings, err)
	}
	fs.VisitAll(func(fl *flag.Flag) {
		if fl.Name != "version" && l.Origin(fl.Name) != EnvVar(fl.Name) {
			t.Errorf("-%s was not set from %s", fl.Name, EnvVar(fl.Name))
		}
	})
	if EnvVar("max-conns") != "EDGEPUSH_MAX_CONNS" {
		t.Fatal(EnvVar("max-conns"))
	}
}

func TestStripComment(t *testing.T) {
	for in, want := range map[string]string{
		"# all":                   "",
		"a = b # c":               "a = b ",
		"a = b\t# c":              "a = b\t",
		"a = b#c":                 "a = b#c",
		`a = "b # c" # d`:         `a = "b # c" `,
		"a = http://h/#frag # x":  "a = http://h/#frag ",
		`route = x="1 # 2" y=3 #`: `route = x="1 # 2" y=3 `,
	} {
		if got := stripComment(in); got != want {
			t.Errorf("stripComment(%q) = %q, want %q", in, got, want)
		}
	}
}
