package node

import (
	"strconv"
	"strings"
	"testing"
	"unicode"
)

// refHasDotSegment is the definition hasDotSegment implements, written
// plainly: decode every %XX escape once (url.PathUnescape cannot be used:
// it refuses malformed escapes, which are kept as they are here), read
// backslashes as slashes, split on '/', drop each segment's ";parameters",
// and look for "." or "..".
func refHasDotSegment(path string) bool {
	var b strings.Builder
	for i := 0; i < len(path); i++ {
		if path[i] == '%' && i+2 < len(path) {
			if v, err := strconv.ParseUint(path[i+1:i+3], 16, 8); err == nil {
				b.WriteByte(byte(v))
				i += 2
				continue
			}
		}
		b.WriteByte(path[i])
	}
	decoded := strings.ReplaceAll(b.String(), "\\", "/")
	for _, seg := range strings.Split(decoded, "/") {
		seg, _, _ = strings.Cut(seg, ";")
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

// FuzzHasDotSegment compares hasDotSegment with refHasDotSegment: any
// disagreement is a path one route matches that names another route's
// resource, or a valid path refused.
func FuzzHasDotSegment(f *testing.F) {
	for _, s := range []string{
		"/", "/stream", "/public/../admin", "/public/%2e%2e/admin", "/./x", "/a/%2E./b", "/%2e",
		"/a/.%2E/b", "/a/%2e%2e%2e", "/a%2fb", "/.well-known/acme-challenge/x", "/a/...", "/a/..b",
		"/events?last-event-id=1", "//", "/a//../b", "/%2", "/%2%2e", "/..%2f", "/a/%252e%252e/b",
		"/api/v1/items/42?fields=a,b", "/socket.io/?EIO=4&transport=polling",
		`/a/..\\b`, "/a/..%5cb", "/a/..;x/b", "/a;p/b", "/a/%2e%2e%3bx/b", "/%+e", "/%2g",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, path []byte) {
		if got, want := hasDotSegment(path), refHasDotSegment(string(path)); got != want {
			t.Fatalf("hasDotSegment(%q) = %v, want %v", path, got, want)
		}
	})
}

// isOWS reports whether c is optional whitespace (RFC 9110 §5.6.3).
func isOWS(c byte) bool { return c == ' ' || c == '\t' }

// strictCDNLoopHas reads a CDN-Loop value as RFC 8586 writes it: list
// elements separated by commas outside quoted strings (parameter values),
// each a cdn-id, then optional ";" parameters, with OWS around.
func strictCDNLoopHas(v, token string) bool {
	var elems []string
	start, inQuote := 0, false
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case inQuote && c == '\\':
			i++
		case c == '"':
			inQuote = !inQuote
		case c == ',' && !inQuote:
			elems = append(elems, v[start:i])
			start = i + 1
		}
	}
	elems = append(elems, v[start:])
	for _, e := range elems {
		id, _, _ := strings.Cut(e, ";")
		i, j := 0, len(id)
		for i < j && isOWS(id[i]) {
			i++
		}
		for j > i && isOWS(id[j-1]) {
			j--
		}
		if asciiEqualFold(id[i:j], token) {
			return true
		}
	}
	return false
}

// looseCDNLoopHas is the widest reading: some comma-separated piece,
// before any ';', is the token once all whitespace is removed.
func looseCDNLoopHas(v, token string) bool {
	for _, e := range strings.Split(v, ",") {
		id, _, _ := strings.Cut(e, ";")
		id = strings.Map(func(r rune) rune {
			if unicode.IsSpace(r) {
				return -1
			}
			return r
		}, id)
		if asciiEqualFold(id, token) {
			return true
		}
	}
	return false
}

// asciiEqualFold compares without ASCII case (strings.EqualFold also
// folds non-ASCII letters, such as the Kelvin sign with k).
func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range len(a) {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// FuzzCDNLoopHas bounds cdnLoopHas between two references: it sees the
// node's token wherever RFC 8586 does (strictCDNLoopHas), and only where
// the widest reading does (looseCDNLoopHas). Whatever other members,
// malformed quotes included, come before or after it, an element naming
// the token (in any case, with OWS and parameters) is always found: a
// loop must never hide behind a malformed header line another hop
// merged with the node's own.
func FuzzCDNLoopHas(f *testing.F) {
	for _, s := range []struct{ value, token, before, after string }{
		{"edgepush", "edgepush", "", ""},
		{"cloudflare; loops=1, Fastly, edgepush", "edgepush", "Akamai;v=1.0;c=1", ""},
		{"foo123.foocdn.example, barcdn; abc=\"123\"; def=\"456\"", "barcdn", "", "x"},
		{"edge.example:8080; hop=2", "edge.example:8080", "x; p=\"", "y; q=\"a,b\""},
		{"x; p=\"a, edgepush, b\"", "edgepush", "\"", ","},
		{"\u00a0EdgePush\u00a0", "edgepush", "", ""},
		{"[2001:db8::1]:443", "[2001:db8::1]:443", "", ""},
		{"", "edgepush", ";", ";;"},
	} {
		f.Add(s.value, s.token, s.before, s.after, uint64(0))
	}
	f.Fuzz(func(t *testing.T, value, token, before, after string, caseMask uint64) {
		if !validCDNLoopToken(token) {
			return
		}
		got := cdnLoopHas([]byte(value), token)
		if strictCDNLoopHas(value, token) && !got {
			t.Fatalf("cdnLoopHas(%q, %q) misses an element RFC 8586 sees", value, token)
		}
		if got && !looseCDNLoopHas(value, token) {
			t.Fatalf("cdnLoopHas(%q, %q) sees an element that is not there", value, token)
		}
		// The token as a member, its case changed by caseMask, with OWS
		// and a parameter, between arbitrary text.
		b := []byte(token)
		for i := range b {
			if caseMask>>(i%64)&1 == 1 && 'a' <= b[i]|0x20 && b[i]|0x20 <= 'z' {
				b[i] ^= 0x20
			}
		}
		member := " \t" + string(b) + " ; p=\"" + after + "\" "
		for _, v := range []string{before + "," + member, member + "," + after, before + "," + member + "," + after} {
			if !cdnLoopHas([]byte(v), token) {
				t.Fatalf("cdnLoopHas(%q, %q) misses the token", v, token)
			}
		}
	})
}
