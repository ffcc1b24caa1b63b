package cluster

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// memberlistLog receives memberlist's log lines ("[ERR] memberlist: …")
// and writes each to slog at the level its tag names: [ERR] and [ERROR]
// at warn (memberlist says ERR for a peer that stopped answering, an
// everyday event in a tier), [WARN] at warn, [INFO] at info, [DEBUG] and
// untagged lines at debug. Lines that mean the tier is misconfigured (a
// peer's traffic that cannot be decrypted, is not encrypted when it should
// be, or carries another label) are errors, with a hint naming the
// setting. A line repeated within repeatWindow (a misconfigured member
// retries every second) is written once at its level; the repeats go to
// debug.
type memberlistLog struct {
	log *slog.Logger
	now func() time.Time

	mu   sync.Mutex
	last map[string]time.Time // normalized message → when last written above debug
}

// repeatWindow is how long a memberlist warning or error, once written,
// is not written again above debug level.
const repeatWindow = time.Minute

// maxRepeats bounds memberlistLog.last; past it the map starts over.
const maxRepeats = 256

func newMemberlistLog(log *slog.Logger) *memberlistLog {
	return &memberlistLog{log: log, now: time.Now, last: map[string]time.Time{}}
}

// misconfiguration returns the hint logged with a memberlist message that
// means a peer's tier settings differ from this member's, if msg is one.
func misconfiguration(msg string) (hint string, ok bool) {
	const sameKey = "every member needs the same -cluster-key"
	switch lower := strings.ToLower(msg); {
	case strings.Contains(lower, "remote state is encrypted and encryption is not configured"):
		return "a member has a -cluster-key and this one has none: " + sameKey, true
	case strings.Contains(lower, "encryption is configured but remote state is not encrypted"):
		return "a member has no -cluster-key and this one has one: " + sameKey, true
	case strings.Contains(lower, "decrypt"):
		return "a member's -cluster-key differs from this one's: " + sameKey, true
	case strings.Contains(lower, "unacceptable label"):
		return "a member's -cluster-label differs from this one's (or another tier shares the network)", true
	}
	return "", false
}

// Write implements io.Writer for memberlist's log.Logger: one call per
// line.
func (w *memberlistLog) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	level, msg := slog.LevelDebug, line
	for _, t := range []struct {
		tag   string
		level slog.Level
	}{
		{"[ERR] ", slog.LevelWarn}, {"[ERROR] ", slog.LevelWarn}, {"[WARN] ", slog.LevelWarn},
		{"[INFO] ", slog.LevelInfo}, {"[DEBUG] ", slog.LevelDebug},
	} {
		if rest, ok := strings.CutPrefix(line, t.tag); ok {
			level, msg = t.level, rest
			break
		}
	}
	msg = strings.TrimPrefix(msg, "memberlist: ")
	var attrs []any
	if level >= slog.LevelWarn {
		if hint, ok := misconfiguration(msg); ok {
			level, attrs = slog.LevelError, []any{"hint", hint}
		}
		if w.repeated(msg) {
			level = slog.LevelDebug
		}
	}
	w.log.Log(context.Background(), level, msg, attrs...)
	return len(p), nil
}

// repeated reports whether a message like msg (the same but for digits:
// addresses, ports, sizes) was written within repeatWindow, and notes it
// as written now if not.
func (w *memberlistLog) repeated(msg string) bool {
	key := strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return -1
		}
		return r
	}, msg)
	now := w.now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if t, ok := w.last[key]; ok && now.Sub(t) < repeatWindow {
		return true
	}
	if len(w.last) >= maxRepeats {
		clear(w.last)
	}
	w.last[key] = now
	return false
}

var _ io.Writer = (*memberlistLog)(nil)

// joinWarnEvery is how many failed join attempts (one a second) pass
// between two warnings; the others are logged at debug.
const joinWarnEvery = 60

// logJoinFailure logs the attempt-th failed attempt to join: the first
// and every joinWarnEvery-th at warn, so that a member that can never
// join (a wrong -cluster-key, a seed address nobody listens on) says so
// at the default level without a line a second.
func logJoinFailure(log *slog.Logger, attempt int, seeds []string, err error) {
	level := slog.LevelDebug
	if attempt == 1 || attempt%joinWarnEvery == 0 {
		level = slog.LevelWarn
	}
	errText := "no member answered"
	if err != nil {
		errText = strings.Join(strings.Fields(err.Error()), " ") // go-multierror's lines, on one
	}
	log.Log(context.Background(), level, "cannot join the tier, retrying every second",
		"join", strings.Join(seeds, ","), "attempts", attempt, "err", errText)
}
