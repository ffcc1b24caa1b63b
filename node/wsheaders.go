package node

import (
	"iter"
	"strings"
)

// packedHeaders is a list of header fields in one string, kept for a
// WebSocket session's lifetime (its origin requests repeat them): one
// allocation instead of a slice of name/value strings. Each field is its
// name's length and its value's length (uvarints), then name and value.
type packedHeaders string

// writePackedHeader adds the field name: value to sb.
func writePackedHeader(sb *strings.Builder, name, value []byte) {
	var buf [20]byte // two uvarints of at most 10 bytes
	sb.Write(appendUvarint(appendUvarint(buf[:0], len(name)), len(value)))
	sb.Write(name)
	sb.Write(value)
}

// packedHeaderSize is what writePackedHeader adds for name: value.
func packedHeaderSize(name, value []byte) int {
	return uvarintSize(len(name)) + uvarintSize(len(value)) + len(name) + len(value)
}

func uvarintSize(n int) int {
	size := 1
	for ; n >= 0x80; n >>= 7 {
		size++
	}
	return size
}

func appendUvarint(b []byte, n int) []byte {
	for n >= 0x80 {
		b = append(b, byte(n)|0x80)
		n >>= 7
	}
	return append(b, byte(n))
}

// uvarint decodes the length at the start of s, returning it and the rest.
func uvarint(s string) (int, string) {
	n, shift := 0, 0
	for i := 0; i < len(s) && shift < 63; i++ {
		n |= int(s[i]&0x7f) << shift
		if s[i] < 0x80 {
			return n, s[i+1:]
		}
		shift += 7
	}
	return 0, "" // not reached for what writePackedHeader wrote
}

// All yields the fields in the order they were packed.
func (h packedHeaders) All() iter.Seq2[string, string] {
	return func(yield func(name, value string) bool) {
		s := string(h)
		for len(s) > 0 {
			var nl, vl int
			nl, s = uvarint(s)
			vl, s = uvarint(s)
			if nl+vl > len(s) {
				return
			}
			if !yield(s[:nl], s[nl:nl+vl]) {
				return
			}
			s = s[nl+vl:]
		}
	}
}
