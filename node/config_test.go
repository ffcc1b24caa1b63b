package node

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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

func TestConfigFileErrors(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{"nosuch = 1\n", `unknown setting "nosuch"`},
		{"max-channels = many\n", "max-channels"},
		{"origin-timeout = 5\n", "origin-timeout"},
	} {
		path := filepath.Join(t.TempDir(), "c.conf")
		os.WriteFile(path, []byte(tc.body), 0o600)
		cfg := DefaultConfig()
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		cfg.RegisterFlags(fs)
		err := LoadConfigFile(fs, path)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("%q: err = %v, want %q", tc.body, err, tc.want)
		}
	}
	if err := LoadConfigFile(flag.NewFlagSet("t", flag.ContinueOnError), "/nonexistent/x.conf"); err == nil {
		t.Fatal("missing file accepted")
	}
}

func TestConfigValidation(t *testing.T) {
	for _, tc := range []struct {
		mod  func(*Config)
		want string
	}{
		{func(c *Config) { c.Origin = "" }, "-origin is required"},
		{func(c *Config) { c.Origin = "ftp://x" }, "-origin"},
		{func(c *Config) { c.OriginRetries = 5 }, "at most 2"},
		{func(c *Config) { c.LogLevel = "loud" }, "-log-level"},
		{func(c *Config) { c.SigKey = "base64:!!" }, "-sig-key"},
	} {
		cfg := DefaultConfig()
		cfg.Origin = "http://127.0.0.1:1"
		tc.mod(&cfg)
		if _, err := New(cfg, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("err = %v, want %q", err, tc.want)
		}
	}
}
