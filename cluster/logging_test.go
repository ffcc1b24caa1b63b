package cluster

import (
	"errors"
	"fmt"
	"log"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/edgepush/edgepush/internal/testlog"
)

// logCapture is a JSON logger's output, kept for a test to read.
type logCapture struct{ testlog.Buffer }

func (c *logCapture) logger(level slog.Level) *slog.Logger { return c.Logger(level) }

func (c *logCapture) lines(tb testing.TB) []map[string]any { return c.Lines(tb) }

// find returns the first captured line at level or above whose message
// contains msg, nil if none.
func (c *logCapture) find(tb testing.TB, level slog.Level, msg string) map[string]any {
	tb.Helper()
	for _, l := range c.lines(tb) {
		var lv slog.Level
		lv.UnmarshalText([]byte(fmt.Sprint(l["level"])))
		if lv >= level && strings.Contains(fmt.Sprint(l["msg"]), msg) {
			return l
		}
	}
	return nil
}

// A member whose -cluster-key differs from the tier's, or that has none,
// never joins; at the default (info) level both sides say why: the one
// joining warns that it cannot join, the one it asks logs an error naming
// the key. Neither line carries a key twice.
func TestMismatchedKeysAreLogged(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		seed, join []byte
	}{
		{"different keys", []byte("0123456789abcdef"), []byte("fedcba9876543210")},
		{"key missing on the joining member", []byte("0123456789abcdef"), nil},
		{"key missing on the seed", nil, []byte("0123456789abcdef")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var seedLog, joinLog logCapture
			seed := startMember(t, "seed", func(c *Config) {
				c.SecretKey, c.Log = tc.seed, seedLog.logger(slog.LevelInfo)
			})
			joiner := startMember(t, "joiner", func(c *Config) {
				c.SecretKey, c.Log, c.Join = tc.join, joinLog.logger(slog.LevelInfo), []string{seed.LocalAddr()}
			})
			var warn, refused map[string]any
			waitFor(t, "both members to log the failed join", func() bool {
				warn = joinLog.find(t, slog.LevelWarn, "cannot join the tier")
				refused = seedLog.find(t, slog.LevelError, "")
				return warn != nil && refused != nil
			})
			if warn["component"] != "cluster" || warn["join"] != seed.LocalAddr() || warn["err"] == "" {
				t.Errorf("the joining member's warning: %v", warn)
			}
			if refused["component"] != "memberlist" || !strings.Contains(fmt.Sprint(refused["hint"]), "-cluster-key") {
				t.Errorf("the seed's error: %v", refused)
			}
			if seed.NumMembers() != 1 || joiner.NumMembers() != 1 {
				t.Fatalf("members with different keys joined: %d, %d", seed.NumMembers(), joiner.NumMembers())
			}
		})
	}
}

// Members with the same key log their joining at info and nothing above
// it; a member that leaves is logged as left, one that dies as failed
// (memberlist's own state says alive for both).
func TestLeaveAndFailureAreLoggedWithTheirState(t *testing.T) {
	t.Parallel()
	logs := make([]logCapture, 3)
	ms := startTier(t, 3, func(i int, c *Config) {
		c.SecretKey, c.Log = testKey(t), logs[i].logger(slog.LevelInfo)
	})
	if l := logs[1].find(t, slog.LevelInfo, "joined the tier"); l == nil || l["component"] != "cluster" {
		t.Fatalf("m1 joining: %v", l)
	}
	if err := ms[2].Leave(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	var left map[string]any
	waitFor(t, "m0 to log m2's leaving", func() bool {
		left = logs[0].find(t, slog.LevelInfo, "tier member left")
		return left != nil
	})
	if left["node"] != "m2" || left["state"] != "left" || left["level"] != "INFO" {
		t.Fatalf("m2's leaving, as m0 logs it: %v", left)
	}
	ms[1].kill()
	var failed map[string]any
	waitFor(t, "m0 to log m1's failure", func() bool {
		failed = logs[0].find(t, slog.LevelWarn, "tier member failed")
		return failed != nil
	})
	if failed["node"] != "m1" || failed["state"] != "failed" {
		t.Fatalf("m1's failure, as m0 logs it: %v", failed)
	}
	for _, l := range logs[0].lines(t) {
		if l["level"] == "ERROR" {
			t.Errorf("an error in a tier with one key: %v", l)
		}
	}
}

// memberlist's lines are logged at the level their tag names, a
// misconfiguration as an error with a hint, and a repeat within a minute
// at debug.
func TestMemberlistLogLevels(t *testing.T) {
	t.Parallel()
	var out logCapture
	w := newMemberlistLog(out.logger(slog.LevelDebug))
	now := time.Unix(1000, 0)
	w.now = func() time.Time { return now }
	ml := log.New(w, "", 0) // as memberlist writes

	for _, l := range []string{
		"[DEBUG] memberlist: Stream connection from=127.0.0.1:5000",
		"[INFO] memberlist: Marking m2 as failed, suspect timeout reached (0 peer confirmations)",
		"[WARN] memberlist: Was able to connect to m2 over TCP but UDP probes failed, network may be misconfigured",
		"[ERR] memberlist: Failed to send ping: write udp 127.0.0.1:5000->127.0.0.1:5001: connection refused",
		"[ERR] memberlist: failed to receive: No installed keys could decrypt the message from=127.0.0.1:5002",
		"[ERR] memberlist: failed to receive: No installed keys could decrypt the message from=127.0.0.1:5003",
		"Err: Could not set the deadline: x",
	} {
		ml.Print(l)
	}
	now = now.Add(repeatWindow)
	ml.Print("[ERR] memberlist: failed to receive: No installed keys could decrypt the message from=127.0.0.1:5004")
	var got []string
	for _, l := range out.lines(t) {
		if l["component"] != nil {
			t.Errorf("the bridge adds a component the logger lacks: %v", l)
		}
		got = append(got, fmt.Sprintf("%v %v hint=%v", l["level"], l["msg"], l["hint"] != nil))
	}
	want := []string{
		"DEBUG Stream connection from=127.0.0.1:5000 hint=false",
		"INFO Marking m2 as failed, suspect timeout reached (0 peer confirmations) hint=false",
		"WARN Was able to connect to m2 over TCP but UDP probes failed, network may be misconfigured hint=false",
		"WARN Failed to send ping: write udp 127.0.0.1:5000->127.0.0.1:5001: connection refused hint=false",
		"ERROR failed to receive: No installed keys could decrypt the message from=127.0.0.1:5002 hint=true",
		"DEBUG failed to receive: No installed keys could decrypt the message from=127.0.0.1:5003 hint=true",
		"DEBUG Err: Could not set the deadline: x hint=false",
		"ERROR failed to receive: No installed keys could decrypt the message from=127.0.0.1:5004 hint=true",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("logged:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// A join that keeps failing is logged at warn the first time and once a
// minute (every joinWarnEvery attempts), at debug otherwise.
func TestJoinFailureLogLevels(t *testing.T) {
	t.Parallel()
	var out logCapture
	l := out.logger(slog.LevelDebug)
	for attempt := 1; attempt <= 2*joinWarnEvery; attempt++ {
		logJoinFailure(l, attempt, []string{"10.0.0.1:7946"}, errors.New("1 error occurred:\n\t* Failed to join 10.0.0.1:7946: EOF\n\n"))
	}
	var warned []float64
	for _, m := range out.lines(t) {
		if m["level"] == "WARN" {
			warned = append(warned, m["attempts"].(float64))
		}
		if m["err"] != "1 error occurred: * Failed to join 10.0.0.1:7946: EOF" {
			t.Fatalf("err on one line: %q", m["err"])
		}
	}
	if fmt.Sprint(warned) != fmt.Sprint([]float64{1, joinWarnEvery, 2 * joinWarnEvery}) {
		t.Fatalf("warned at attempts %v", warned)
	}
}
