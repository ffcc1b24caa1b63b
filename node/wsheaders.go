package node

import (
	"encoding/binary"
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
	var buf [2 * binary.MaxVarintLen64]byte
	sb.Write(appendLengths(buf[:0], name, value))
	sb.Write(name)
	sb.Write(value)
}

// packedHeaderSize is what writePackedHeader adds for name: value.
func packedHeaderSize(name, value []byte) int {
	var buf [2 * binary.MaxVarintLen64]byte
	return len(appendLengths(buf[:0], name, value)) + len(name) + len(value)
}

// appendLengths appends the lengths that precede a field to b.
func appendLengths(b, name, value []byte) []byte {
	return binary.AppendUvarint(binary.AppendUvarint(b, uint64(len(name))), uint64(len(value)))
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
