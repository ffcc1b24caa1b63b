package grip

import (
	"encoding/json"
	"math"
	"slices"
	"strings"
)

// These helpers walk JSON decoded into map[string]any and produce Pushpin's
// error texts ("<parent> contains '<key>' with wrong type" and so on). A
// JSON null counts as an absent field.

// lookup returns obj[key] unless it is absent or null.
func lookup(obj map[string]any, key string) (any, bool) {
	v, ok := obj[key]
	return v, ok && v != nil
}

func wrongType(pn, key string) error {
	return fieldErrorf("%s contains '%s' with wrong type", pn, key)
}

func invalidValue(pn, key string) error {
	return fieldErrorf("%s contains '%s' with invalid value", pn, key)
}

// optString returns the string field key, if present.
func optString(obj map[string]any, pn, key string) (string, bool, error) {
	v, ok := lookup(obj, key)
	if !ok {
		return "", false, nil
	}
	s, ok := v.(string)
	if !ok {
		return "", false, wrongType(pn, key)
	}
	return s, true, nil
}

// reqString returns the string field key, which must be present.
func reqString(obj map[string]any, pn, key string) (string, error) {
	s, ok, err := optString(obj, pn, key)
	if err == nil && !ok {
		err = fieldErrorf("%s does not contain '%s'", pn, key)
	}
	return s, err
}

// optInt returns the numeric field key, rounded, if present. Values outside
// the 32-bit range Pushpin uses are invalid.
func optInt(obj map[string]any, pn, key string) (int, bool, error) {
	v, ok := lookup(obj, key)
	if !ok {
		return 0, false, nil
	}
	f, ok := v.(float64)
	if !ok {
		return 0, false, wrongType(pn, key)
	}
	f = math.Round(f)
	if f < math.MinInt32 || f > math.MaxInt32 {
		return 0, false, invalidValue(pn, key)
	}
	return int(f), true, nil
}

// optNonNegInt is optInt that rejects negative values.
func optNonNegInt(obj map[string]any, pn, key string) (int, bool, error) {
	n, ok, err := optInt(obj, pn, key)
	if err == nil && n < 0 {
		err = invalidValue(pn, key)
	}
	return n, ok, err
}

// optObject returns the object field key, if present.
func optObject(obj map[string]any, pn, key string) (map[string]any, bool, error) {
	v, ok := lookup(obj, key)
	if !ok {
		return nil, false, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, false, wrongType(pn, key)
	}
	return m, true, nil
}

// optList returns the array field key, if present.
func optList(obj map[string]any, pn, key string) ([]any, bool, error) {
	v, ok := lookup(obj, key)
	if !ok {
		return nil, false, nil
	}
	l, ok := v.([]any)
	if !ok {
		return nil, false, wrongType(pn, key)
	}
	return l, true, nil
}

// optStringList returns the array-of-strings field key, if present; the
// result is non-nil when present. elemErr is the error for a non-string.
func optStringList(obj map[string]any, pn, key, elemErr string) ([]string, bool, error) {
	l, ok, err := optList(obj, pn, key)
	if !ok || err != nil {
		return nil, false, err
	}
	out := make([]string, 0, len(l))
	for _, v := range l {
		s, ok := v.(string)
		if !ok {
			return nil, false, fieldErrorf("%s", elemErr)
		}
		out = append(out, s)
	}
	return out, true, nil
}

// optStringMap returns the "meta" style object field key, whose values must
// all be strings.
func optStringMap(obj map[string]any, pn, key string) (map[string]string, error) {
	m, ok, err := optObject(obj, pn, key)
	if !ok || err != nil {
		return nil, err
	}
	out := make(map[string]string, len(m))
	for _, k := range sortedKeys(m) {
		s, ok := m[k].(string)
		if !ok {
			return nil, fieldErrorf("'%s' contains '%s' with wrong type", key, k)
		}
		out[k] = s
	}
	return out, nil
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// optBytes returns the content given as binKey (base64) or, failing that,
// as key (a string). binKey takes precedence, as in Pushpin. The result is
// non-nil when present.
func optBytes(obj map[string]any, pn, binKey, key string) ([]byte, bool, error) {
	if s, ok, err := optString(obj, pn, binKey); ok || err != nil {
		if err != nil {
			return nil, false, err
		}
		b, ok := decodeBase64(s)
		if !ok {
			return nil, false, invalidValue(pn, binKey)
		}
		return nonNil(b), true, nil
	}
	s, ok, err := optString(obj, pn, key)
	if !ok || err != nil {
		return nil, false, err
	}
	return nonNil([]byte(s)), true, nil
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// optHeaders returns the "headers" field, given either as [[name, value],
// ...] or as {name: value, ...} (object keys in sorted order).
func optHeaders(obj map[string]any, pn string) ([]Header, error) {
	v, ok := lookup(obj, "headers")
	if !ok {
		return nil, nil
	}
	switch v := v.(type) {
	case []any:
		return headerPairs(v)
	case map[string]any:
		return headerObject(v)
	}
	return nil, wrongType(pn, "headers")
}

func headerPairs(list []any) ([]Header, error) {
	out := make([]Header, 0, len(list))
	for _, e := range list {
		pair, ok := e.([]any)
		if !ok {
			return nil, fieldErrorf("headers contains element with wrong type")
		}
		if len(pair) != 2 {
			return nil, fieldErrorf("headers contains list with wrong number of elements")
		}
		name, ok := pair[0].(string)
		if !ok {
			return nil, fieldErrorf("header contains name element with wrong type")
		}
		value, ok := pair[1].(string)
		if !ok {
			return nil, fieldErrorf("header contains value element with wrong type")
		}
		if err := checkHeader(name, value); err != nil {
			return nil, err
		}
		out = append(out, Header{Name: name, Value: value})
	}
	return out, nil
}

func headerObject(m map[string]any) ([]Header, error) {
	out := make([]Header, 0, len(m))
	for _, k := range sortedKeys(m) {
		value, ok := m[k].(string)
		if !ok {
			return nil, fieldErrorf("headers contains '%s' with wrong type", k)
		}
		if err := checkHeader(k, value); err != nil {
			return nil, err
		}
		out = append(out, Header{Name: k, Value: value})
	}
	return out, nil
}

// checkHeader refuses a header that could not be written as one header
// line: a name that is not an HTTP token, a value with CR, LF or NUL
// (they would end the line and inject headers, or a whole response, into
// what a held connection receives).
func checkHeader(name, value string) error {
	if !isToken(name) {
		return fieldErrorf("header name %q is not a valid token", name)
	}
	if strings.ContainsAny(value, "\r\n\x00") {
		return fieldErrorf("header '%s' has a value with CR, LF or NUL", name)
	}
	return nil
}

// checkReason refuses a status reason with CR, LF or NUL.
func checkReason(reason string) error {
	if strings.ContainsAny(reason, "\r\n\x00") {
		return fieldErrorf("reason has CR, LF or NUL")
	}
	return nil
}

// isToken reports whether s is an HTTP token (RFC 9110 §5.6.2).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// rawJSON re-encodes a decoded JSON value.
func rawJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	return b
}
