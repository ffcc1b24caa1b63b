package cluster

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// profileTimings are a profile's key memberlist timings, as README's
// table of profiles gives them.
type profileTimings struct {
	probeInterval, probeTimeout time.Duration
	suspicionMult               int
	gossipInterval              time.Duration
	pushPull, tcpTimeout        time.Duration
	gossipToTheDead, reclaim    time.Duration
}

// wantProfiles is README's table of profiles (memberlist's presets, and
// the reclaim time this package adds).
var wantProfiles = map[string]profileTimings{
	ProfileLAN:   {time.Second, 500 * time.Millisecond, 4, 200 * time.Millisecond, 30 * time.Second, 10 * time.Second, 30 * time.Second, 5 * time.Second},
	ProfileWAN:   {5 * time.Second, 3 * time.Second, 6, 500 * time.Millisecond, 60 * time.Second, 30 * time.Second, 60 * time.Second, 10 * time.Second},
	ProfileLocal: {time.Second, 200 * time.Millisecond, 3, 100 * time.Millisecond, 15 * time.Second, time.Second, 15 * time.Second, 500 * time.Millisecond},
}

// Each profile gives memberlist the timings documented for it; Local is
// the local profile; a PushPull set wins over the profile's.
func TestProfilesMapToMemberlistTimings(t *testing.T) {
	t.Parallel()
	if got := Profiles(); !slices.Equal(got, []string{"lan", "wan", "local"}) {
		t.Fatalf("Profiles() = %v", got)
	}
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"default", func(*Config) {}, ProfileLAN},
		{"lan", func(c *Config) { c.Profile = ProfileLAN }, ProfileLAN},
		{"wan", func(c *Config) { c.Profile = ProfileWAN }, ProfileWAN},
		{"local", func(c *Config) { c.Profile = ProfileLocal }, ProfileLocal},
		{"Local", func(c *Config) { c.Local = true }, ProfileLocal},
		{"Local and local", func(c *Config) { c.Local, c.Profile = true, ProfileLocal }, ProfileLocal},
	} {
		cfg := Config{Name: "n", ControlAddr: "127.0.0.1:1", Handler: HandlerFunc(func(Op) {})}
		tc.mod(&cfg)
		if err := cfg.check(); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		c := newCluster(cfg)
		mc := c.memberlistConfig()
		w := wantProfiles[tc.want]
		got := profileTimings{mc.ProbeInterval, mc.ProbeTimeout, mc.SuspicionMult, mc.GossipInterval,
			mc.PushPullInterval, mc.TCPTimeout, mc.GossipToTheDeadTime, mc.DeadNodeReclaimTime}
		if got != w {
			t.Errorf("%s: memberlist timings %+v, want %s's %+v", tc.name, got, tc.want, w)
		}
		if st := c.Stats(); st.Profile != tc.want {
			t.Errorf("%s: Stats.Profile %q, want %q", tc.name, st.Profile, tc.want)
		}
		if c.rejoinEvery() != w.pushPull {
			t.Errorf("%s: rejoin every %v, want the push/pull interval %v", tc.name, c.rejoinEvery(), w.pushPull)
		}
	}
	cfg := Config{Name: "n", ControlAddr: "127.0.0.1:1", Handler: HandlerFunc(func(Op) {}), Profile: ProfileWAN, PushPull: 2 * time.Second}
	if err := cfg.check(); err != nil {
		t.Fatal(err)
	}
	c := newCluster(cfg)
	if mc := c.memberlistConfig(); mc.PushPullInterval != 2*time.Second || mc.ProbeTimeout != 3*time.Second || c.rejoinEvery() != 2*time.Second {
		t.Fatalf("wan with PushPull 2s: push/pull %v, probe timeout %v", mc.PushPullInterval, mc.ProbeTimeout)
	}
}

func TestProfileAndLocalityChecks(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		mod  func(*Config)
		want string
	}{
		{func(c *Config) { c.Profile = "metro" }, `unknown profile "metro" (want lan, wan or local)`},
		{func(c *Config) { c.Profile = "WAN" }, `unknown profile "WAN"`},
		{func(c *Config) { c.Local, c.Profile = true, ProfileWAN }, `Local conflicts with profile "wan"`},
		{func(c *Config) { c.Region = "eu west" }, `cluster: region "eu west": ' ' is not allowed`},
		{func(c *Config) { c.Zone = "a/b" }, `cluster: zone "a/b": '/' is not allowed`},
		{func(c *Config) { c.Region = strings.Repeat("r", 65) }, "65 bytes, at most 64"},
		{func(c *Config) { c.Zone = "é" }, "is not allowed"},
	} {
		cfg := Config{Name: "n", ControlAddr: "127.0.0.1:1", Handler: HandlerFunc(func(Op) {})}
		tc.mod(&cfg)
		if err := cfg.check(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("check: %v, want %q", err, tc.want)
		}
	}
	for _, ok := range []string{"eu-west-1", "us_east.2", "A", strings.Repeat("z", 64)} {
		if err := CheckLocality(ok); err != nil {
			t.Errorf("CheckLocality(%q): %v", ok, err)
		}
	}
	if err := CheckLocality(""); err == nil {
		t.Error("CheckLocality accepts an empty name")
	}
}

// Each member's region and zone travel in its metadata: every member
// lists every other's.
func TestRegionAndZoneInMemberMetadata(t *testing.T) {
	t.Parallel()
	where := [][2]string{{"eu-west", "a"}, {"us-east", "b"}, {"", ""}}
	ms := startTier(t, 3, func(i int, c *Config) { c.Region, c.Zone = where[i][0], where[i][1] })
	for _, m := range ms {
		st := m.Stats()
		for i, other := range ms {
			j := slices.IndexFunc(st.Members, func(x Member) bool { return x.Name == other.name })
			if j < 0 {
				t.Fatalf("%s does not list %s", m.name, other.name)
			}
			if got := st.Members[j]; got.Region != where[i][0] || got.Zone != where[i][1] {
				t.Errorf("%s lists %s in %q/%q, want %q/%q", m.name, other.name, got.Region, got.Zone, where[i][0], where[i][1])
			}
		}
	}
	if st := ms[0].Stats(); st.Region != "eu-west" || st.Zone != "a" {
		t.Errorf("m0's own region/zone: %q/%q", st.Region, st.Zone)
	}
}
