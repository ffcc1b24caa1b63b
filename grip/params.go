package grip

import "strings"

// Header is one HTTP header field. It is an alias of the unnamed struct
// type, as cache.Field is, so that header lists pass between the wire
// format and the cache without conversion.
type Header = struct{ Name, Value string }

// ows is the whitespace trimmed around header list elements and parameters
// (the ASCII set Qt's trimmed() removes, which Pushpin uses).
const ows = " \t\r\n\v\f"

func isOWS(c byte) bool {
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f'
}

// trimOWS trims ows from both ends of s.
func trimOWS(s string) string {
	for len(s) > 0 && isOWS(s[0]) {
		s = s[1:]
	}
	for len(s) > 0 && isOWS(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	return s
}

// trimLeftOWS trims ows from the start of s.
func trimLeftOWS(s string) string {
	for len(s) > 0 && isOWS(s[0]) {
		s = s[1:]
	}
	return s
}

// nameIs compares header or parameter names case-insensitively.
func nameIs(a, b string) bool { return len(a) == len(b) && strings.EqualFold(a, b) }

// IsGripHeader reports whether name starts with "Grip-" (case-insensitive).
// Such headers are instructions for the proxy and never reach the client.
func IsGripHeader(name string) bool {
	return len(name) >= 5 && strings.EqualFold(name[:5], "Grip-")
}

// ClientHeaders returns the headers of an instruct response that may be
// passed to the client: all but Grip-* headers and, when expose is not
// empty, only those named in expose (case-insensitive). This is what
// Pushpin does with Grip-Expose-Headers.
func ClientHeaders(headers []Header, expose []string) []Header {
	out := make([]Header, 0, len(headers))
	for _, h := range headers {
		if IsGripHeader(h.Name) || (len(expose) > 0 && !containsFold(expose, h.Name)) {
			continue
		}
		out = append(out, h)
	}
	return out
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

// firstHeader returns the value of the first header called name.
func firstHeader(headers []Header, name string) (string, bool) {
	for _, h := range headers {
		if nameIs(h.Name, name) {
			return h.Value, true
		}
	}
	return "", false
}

// listElements appends to dst the comma-separated elements of every header
// called name, in order. ok is false when a quoted string is not terminated.
func listElements(dst []string, headers []Header, name string, angle bool) (elems []string, ok bool) {
	elems = dst
	for _, h := range headers {
		if !nameIs(h.Name, name) {
			continue
		}
		if elems, ok = splitList(elems, h.Value, angle); !ok {
			return nil, false
		}
	}
	return elems, true
}

// splitList appends to dst the trimmed, non-empty elements of the
// comma-separated list v. Commas inside quoted strings, and inside <...>
// when angle is set (Grip-Link URIs), do not split.
func splitList(dst []string, v string, angle bool) ([]string, bool) {
	start, inQuote, inAngle := 0, false, false
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case inQuote && c == '\\':
			i++
			if i >= len(v) {
				return nil, false
			}
		case c == '"' && !inAngle:
			inQuote = !inQuote
		case inQuote:
		case angle && c == '<':
			inAngle = true
		case angle && c == '>':
			inAngle = false
		case c == ',' && !inAngle:
			dst = appendNonEmpty(dst, v[start:i])
			start = i + 1
		}
	}
	if inQuote {
		return nil, false
	}
	return appendNonEmpty(dst, v[start:]), true
}

func appendNonEmpty(dst []string, s string) []string {
	if s = trimOWS(s); s != "" {
		dst = append(dst, s)
	}
	return dst
}

// param is one name=value parameter of a header list element.
type param struct{ name, value string }

// cutFirst splits a list element into its leading value (up to the first
// ';', or the first ';' after a closing '>' when angle is set) and the
// parameter text after it.
func cutFirst(elem string, angle bool) (first, rest string) {
	from := 0
	if angle && strings.HasPrefix(elem, "<") {
		if j := strings.IndexByte(elem, '>'); j >= 0 {
			from = j
		}
	}
	i := strings.IndexByte(elem[from:], ';')
	if i < 0 {
		return trimOWS(elem), ""
	}
	return trimOWS(elem[:from+i]), elem[from+i+1:]
}

// parseParams appends the parameters in "a=1; b=\"x;y\"; c" to dst. Names are
// trimmed, unquoted values are trimmed, quoted values may contain ';' and
// backslash escapes. Parameters with an empty name are dropped. ok is false
// on an unterminated quoted string.
func parseParams(dst []param, s string) (params []param, ok bool) {
	params = dst
	for len(s) > 0 {
		i := strings.IndexAny(s, "=;")
		if i < 0 || s[i] == ';' {
			name := s
			if i >= 0 {
				name, s = s[:i], s[i+1:]
			} else {
				s = ""
			}
			params = appendParam(params, name, "")
			continue
		}
		name := s[:i]
		value, rest, ok := parseParamValue(trimLeftOWS(s[i+1:]))
		if !ok {
			return nil, false
		}
		params, s = appendParam(params, name, value), rest
	}
	return params, true
}

func appendParam(params []param, name, value string) []param {
	if name = trimOWS(name); name != "" {
		params = append(params, param{name: name, value: value})
	}
	return params
}

// parseParamValue reads one parameter value from the start of s and returns
// it with the text after the next ';'.
func parseParamValue(s string) (value, rest string, ok bool) {
	if !strings.HasPrefix(s, `"`) {
		i := strings.IndexByte(s, ';')
		if i < 0 {
			return trimOWS(s), "", true
		}
		return trimOWS(s[:i]), s[i+1:], true
	}
	value, n, ok := unquote(s)
	if !ok {
		return "", "", false
	}
	s = s[n:]
	if i := strings.IndexByte(s, ';'); i >= 0 {
		return value, s[i+1:], true
	}
	return value, "", true
}

// unquote decodes the quoted string at the start of s (s[0] == '"') and
// returns it with the number of bytes consumed.
func unquote(s string) (string, int, bool) {
	var b *strings.Builder
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '"':
			if b == nil {
				return s[1:i], i + 1, true
			}
			return b.String(), i + 1, true
		case '\\':
			if i+1 >= len(s) {
				return "", 0, false
			}
			if b == nil {
				b = new(strings.Builder)
				b.WriteString(s[1:i])
			}
			i++
			b.WriteByte(s[i])
		default:
			if b != nil {
				b.WriteByte(s[i])
			}
		}
	}
	return "", 0, false
}

// paramValue returns the value of the first parameter called name
// (case-insensitive).
func paramValue(params []param, name string) (string, bool) {
	for _, p := range params {
		if nameIs(p.name, name) {
			return p.value, true
		}
	}
	return "", false
}
