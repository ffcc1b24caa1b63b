package node

import (
	"encoding/json"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgepush/edgepush/cluster"
)

// -cluster-profile, -region, -zone and -cluster-retry-window are checked
// before anything listens; -cluster-local is -cluster-profile local.
func TestTierProfileConfig(t *testing.T) {
	for _, tc := range []struct {
		mod  func(*Config)
		want string
	}{
		{func(c *Config) { c.ClusterProfile = "metro" }, `config: -cluster-profile "metro": want lan, wan, local`},
		{func(c *Config) { c.ClusterBind, c.ClusterLocal, c.ClusterProfile = "127.0.0.1:0", true, "wan" },
			"config: -cluster-local is -cluster-profile local: it conflicts with -cluster-profile wan"},
		{func(c *Config) { c.Region = "eu west" }, `config: -region "eu west": ' ' is not allowed`},
		{func(c *Config) { c.Zone = strings.Repeat("z", 65) }, `config: -zone "zzzz`},
		{func(c *Config) { c.ClusterRetryWindow = -time.Second }, "config: -cluster-retry-window -1s: must not be negative"},
	} {
		cfg := DefaultConfig()
		cfg.Origin = "http://127.0.0.1:1"
		tc.mod(&cfg)
		if _, err := New(cfg, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New: %v, want %q", err, tc.want)
		}
		if _, err := cfg.Check(); err == nil {
			t.Errorf("Check accepts what New refuses (%q)", tc.want)
		}
	}
	for _, tc := range []struct {
		mod  func(*Config)
		want string
	}{
		{func(c *Config) { c.ClusterProfile = "wan" }, "-cluster-profile and -cluster-retry-window do nothing without -cluster-bind"},
		{func(c *Config) { c.ClusterRetryWindow = time.Second }, "-cluster-profile and -cluster-retry-window do nothing without -cluster-bind"},
	} {
		cfg := DefaultConfig()
		cfg.Origin = "http://127.0.0.1:1"
		tc.mod(&cfg)
		if warnings, err := cfg.Check(); err != nil || len(warnings) != 1 || !strings.Contains(warnings[0], tc.want) {
			t.Errorf("Check: %q %v, want %q", warnings, err, tc.want)
		}
	}
	// The defaults, and region and zone without a tier (shown on /status),
	// are quiet; a zero Config gets the defaults.
	cfg := DefaultConfig()
	cfg.Origin, cfg.Region, cfg.Zone = "http://127.0.0.1:1", "eu-west-1", "b"
	if warnings, err := cfg.Check(); err != nil || len(warnings) != 0 {
		t.Fatalf("%q %v", warnings, err)
	}
	got, _, err := Config{Origin: "http://127.0.0.1:1"}.withDefaults()
	if err != nil || got.ClusterProfile != "lan" || got.ClusterRetryWindow != time.Minute {
		t.Fatalf("defaults: %q %v %v", got.ClusterProfile, got.ClusterRetryWindow, err)
	}
	for _, tc := range []struct {
		local   bool
		profile string
		want    string
	}{{false, "", "lan"}, {true, "", "local"}, {true, "lan", "local"}, {true, "local", "local"}, {false, "wan", "wan"}, {false, "local", "local"}} {
		c := Config{Origin: "http://127.0.0.1:1", ClusterBind: "127.0.0.1:0", ClusterLocal: tc.local, ClusterProfile: tc.profile}
		if got, _, err := c.withDefaults(); err != nil || got.ClusterProfile != tc.want {
			t.Errorf("-cluster-local=%v -cluster-profile %q: %q %v, want %q", tc.local, tc.profile, got.ClusterProfile, err, tc.want)
		}
	}
}

// A node's profile, region, zone and retry window reach its tier: /status
// shows its own region and zone, its profile, and every member's region
// and zone.
func TestTierRegionAndProfileOnStatus(t *testing.T) {
	where := [][2]string{{"eu-west-1", "a"}, {"us-east-1", "c"}}
	nodes := startTier(t, 2, streamOrigin(), func(i int, c *Config) {
		c.ClusterLocal, c.ClusterProfile = false, "local"
		c.Region, c.Zone = where[i][0], where[i][1]
	})
	resp := getWith(t, nodes[0].ctl+"/status")
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var st Status
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	if st.Region != "eu-west-1" || st.Zone != "a" || st.Tier == nil || st.Tier.Profile != cluster.ProfileLocal ||
		st.Tier.Region != "eu-west-1" || st.Tier.Zone != "a" {
		t.Fatalf("/status: region %q zone %q tier %+v", st.Region, st.Zone, st.Tier)
	}
	for i, node := range nodes {
		j := slices.IndexFunc(st.Tier.Members, func(m cluster.Member) bool { return m.Name == node.cfg.NodeName })
		if j < 0 || st.Tier.Members[j].Region != where[i][0] || st.Tier.Members[j].Zone != where[i][1] {
			t.Fatalf("node 0 lists %+v, want node %d in %v", st.Tier.Members, i, where[i])
		}
	}
	// A single node shows its region and zone too.
	single := startNode(t, streamOrigin(), func(c *Config) { c.Region = "ap-south-1" })
	if s := single.Status(); s.Region != "ap-south-1" || s.Zone != "" || s.Tier != nil {
		t.Fatalf("single node: %+v", s)
	}
}
