package cluster

import (
	"fmt"
	"time"

	"github.com/hashicorp/memberlist"
)

// Membership profiles: memberlist's preset timings, by the name
// Config.Profile takes.
const (
	// ProfileLAN is memberlist's DefaultLANConfig: members on one network
	// (probe every 1s, 500ms probe timeout, push/pull every 30s).
	ProfileLAN = "lan"
	// ProfileWAN is memberlist's DefaultWANConfig: members across regions,
	// with round trips of up to a few hundred milliseconds (probe every 5s,
	// 3s probe timeout, push/pull every 60s).
	ProfileWAN = "wan"
	// ProfileLocal is memberlist's DefaultLocalConfig: members on one host
	// (probe every 1s, 200ms probe timeout, push/pull every 15s).
	ProfileLocal = "local"
)

// Profiles lists the profile names, the default first.
func Profiles() []string { return []string{ProfileLAN, ProfileWAN, ProfileLocal} }

// profileConfig returns memberlist's configuration for a profile and the
// time a member declared dead may be taken over by a node of its name at
// another address (memberlist's DeadNodeReclaimTime, which its presets
// leave at zero: never).
func profileConfig(profile string) (*memberlist.Config, time.Duration, error) {
	switch profile {
	case ProfileLAN, "":
		return memberlist.DefaultLANConfig(), 5 * time.Second, nil
	case ProfileWAN:
		return memberlist.DefaultWANConfig(), 10 * time.Second, nil
	case ProfileLocal:
		return memberlist.DefaultLocalConfig(), 500 * time.Millisecond, nil
	}
	return nil, 0, fmt.Errorf("unknown profile %q (want lan, wan or local)", profile)
}

// profile is the profile cfg selects: Profile, or local for Local.
func (c *Config) profile() string {
	if c.Profile == "" && c.Local {
		return ProfileLocal
	}
	if c.Profile == "" {
		return ProfileLAN
	}
	return c.Profile
}

// maxLocalityLen bounds a region or zone name.
const maxLocalityLen = 64

// CheckLocality checks a region or zone name: 1 to 64 letters, digits,
// '-', '_' or '.' (it travels in the member metadata and shows on the
// status page and in logs).
func CheckLocality(s string) error {
	if s == "" {
		return fmt.Errorf("empty")
	}
	if len(s) > maxLocalityLen {
		return fmt.Errorf("%d bytes, at most %d", len(s), maxLocalityLen)
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
		default:
			return fmt.Errorf("%q is not allowed (letters, digits, '-', '_', '.')", r)
		}
	}
	return nil
}
