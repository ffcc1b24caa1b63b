package node

import (
	"strings"
	"testing"
	"unsafe"
)

// Packed headers give back every field as packed, in order, whatever
// the lengths (uvarints of one, two and three bytes), and a session's
// lookupHeader joins a repeated header's values.
func TestPackedHeaders(t *testing.T) {
	fields := [][2]string{
		{"X-Forwarded-For", "127.0.0.1"},
		{"Empty", ""},
		{"Long", strings.Repeat("v", 200)},
		{strings.Repeat("N", 130), "x"},
		{"Longer", strings.Repeat("w", 20000)},
		{"X-Forwarded-For", "10.0.0.1"},
	}
	var b strings.Builder
	size := 0
	for _, f := range fields {
		writePackedHeader(&b, []byte(f[0]), []byte(f[1]))
		size += packedHeaderSize([]byte(f[0]), []byte(f[1]))
	}
	if size != b.Len() {
		t.Errorf("sizes add up to %d, packed %d bytes", size, b.Len())
	}
	h := packedHeaders(b.String())
	var got [][2]string
	for k, v := range h.All() {
		got = append(got, [2]string{k, v})
	}
	if len(got) != len(fields) {
		t.Fatalf("%d fields back, want %d", len(got), len(fields))
	}
	for i := range fields {
		if got[i] != fields[i] {
			t.Errorf("field %d: %.40q: %.40q, want %.40q: %.40q", i, got[i][0], got[i][1], fields[i][0], fields[i][1])
		}
	}
	for range h.All() {
		break // stopping early must not panic
	}
	ws := &wsSession{header: h}
	if v := ws.lookupHeader("x-forwarded-for"); v != "127.0.0.1, 10.0.0.1" {
		t.Errorf("lookupHeader: %q", v)
	}
	// A single value comes back as a copy, not as a part of the packed
	// headers, which it would keep alive (in a cache entry's Vary values).
	v := ws.lookupHeader("long")
	start := uintptr(unsafe.Pointer(unsafe.StringData(string(h))))
	if p := uintptr(unsafe.Pointer(unsafe.StringData(v))); p >= start && p < start+uintptr(len(h)) {
		t.Error("lookupHeader returned a part of the packed headers")
	}
	if v := ws.lookupHeader("Absent"); v != "" {
		t.Errorf("lookupHeader of an absent header: %q", v)
	}
}
