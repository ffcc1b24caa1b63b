package grip

import (
	"encoding/base64"
	"strings"
	"time"
)

// DefaultKeepAliveTimeout is the keep-alive timeout when none is given
// (Grip-Keep-Alive, hold.keep-alive and the keep-alive control message).
const DefaultKeepAliveTimeout = 55 * time.Second

// minKeepAliveTimeout is the smallest keep-alive timeout Pushpin uses.
const minKeepAliveTimeout = time.Second

// defaultSendDelayedTimeout is the send-delayed control message's default.
const defaultSendDelayedTimeout = time.Second

// KeepAliveMode says when keep-alive data is sent.
type KeepAliveMode int

const (
	// KeepAliveIdle sends the data after Timeout without any other output.
	KeepAliveIdle KeepAliveMode = iota
	// KeepAliveInterval sends the data every Timeout, whatever else is sent.
	KeepAliveInterval
)

// String returns "idle" or "interval".
func (m KeepAliveMode) String() string {
	if m == KeepAliveInterval {
		return "interval"
	}
	return "idle"
}

// KeepAlive is data the proxy sends on a held stream to keep it open.
type KeepAlive struct {
	// Data is sent as is; it is never empty.
	Data []byte
	// Timeout is at least one second.
	Timeout time.Duration
	// Mode says whether Timeout counts from the last output or is a fixed
	// interval.
	Mode KeepAliveMode
}

// parseKeepAliveMode maps a Grip-Keep-Alive or hold.keep-alive mode value.
func parseKeepAliveMode(s string) (KeepAliveMode, bool) {
	switch s {
	case "", "idle":
		return KeepAliveIdle, true
	case "interval":
		return KeepAliveInterval, true
	}
	return KeepAliveIdle, false
}

// clampKeepAliveTimeout applies Pushpin's one-second minimum.
func clampKeepAliveTimeout(secs int) time.Duration {
	return max(time.Duration(secs)*time.Second, minKeepAliveTimeout)
}

// decodeKeepAliveData decodes Grip-Keep-Alive data given in format "raw"
// (or ""), "cstring" or "base64". The reason is empty on success.
func decodeKeepAliveData(val, format string) (data []byte, reason string) {
	switch format {
	case "", "raw":
		return []byte(val), ""
	case "cstring":
		data, ok := unescapeCString(val)
		if !ok {
			return nil, "failed to parse cstring format"
		}
		return data, ""
	case "base64":
		data, ok := decodeBase64(val)
		if !ok {
			return nil, "failed to parse base64 format"
		}
		return data, ""
	}
	return nil, "no such format '" + format + "'"
}

// unescapeCString decodes the escapes Pushpin accepts in cstring keep-alive
// data: \\ \r \n and \xHH. Like Pushpin, it drops any other escaped
// character together with its backslash (so "\t" yields nothing), and fails
// on a trailing backslash or a bad \x sequence.
func unescapeCString(s string) ([]byte, bool) {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			out = append(out, s[i])
			continue
		}
		i++
		if i >= len(s) {
			return nil, false
		}
		switch s[i] {
		case '\\':
			out = append(out, '\\')
		case 'r':
			out = append(out, '\r')
		case 'n':
			out = append(out, '\n')
		case 'x':
			if i+2 >= len(s) {
				return nil, false
			}
			hi, lo := unhex(s[i+1]), unhex(s[i+2])
			if hi < 0 || lo < 0 {
				return nil, false
			}
			out = append(out, byte(hi<<4|lo))
			i += 2
		}
	}
	return out, true
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// decodeBase64 decodes standard or URL-safe base64, padded or not, ignoring
// whitespace. Pushpin's decoder is more lenient still (it skips any invalid
// character); this one rejects garbage instead of guessing.
func decodeBase64(s string) ([]byte, bool) {
	if strings.ContainsAny(s, ows) {
		s = strings.Map(dropOWS, s)
	}
	s = strings.TrimRight(s, "=")
	enc := base64.RawStdEncoding
	if strings.ContainsAny(s, "-_") {
		enc = base64.RawURLEncoding
	}
	b, err := enc.DecodeString(s)
	return b, err == nil
}

func dropOWS(r rune) rune {
	if strings.ContainsRune(ows, r) {
		return -1
	}
	return r
}
