package node

import (
	"errors"
	"net"
	"strings"
	"testing"
)

// strictConn finds the end of the first header block, or a bare-LF one,
// however the bytes are split between reads.
func TestStrictConnAcrossReads(t *testing.T) {
	cases := []struct {
		name   string
		chunks []string
		bare   bool
	}{
		{"one read", []string{"GET / HTTP/1.1\r\nHost: a\r\n\r\nbody\n\n"}, false},
		{"CRLFCRLF split", []string{"GET / HTTP/1.1\r\nHost: a\r\n\r", "\nbody\n\n"}, false},
		{"CRLFCRLF split early", []string{"GET / HTTP/1.1\r\nHost: a\r", "\n", "\r", "\n", "\n\n"}, false},
		{"bare LF in one read", []string{"GET / HTTP/1.1\nHost: a\n\n"}, true},
		{"bare LF split", []string{"GET / HTTP/1.1\nHost: a\n", "\n"}, true},
		{"bare LF after a split CRLF", []string{"GET / HTTP/1.1\r\nHost: a\r", "\nX: b\n", "\n"}, true},
		{"body blank lines after the headers", []string{"POST / HTTP/1.1\r\nHost: a\r\n", "\r\n", "a\n\nb"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			client, server := net.Pipe()
			defer client.Close()
			go func() {
				for _, c := range tc.chunks {
					if _, err := client.Write([]byte(c)); err != nil {
						return
					}
				}
				client.Close()
			}()
			sc := &strictConn{Conn: server}
			var got strings.Builder
			buf := make([]byte, 64)
			for {
				n, err := sc.Read(buf)
				got.Write(buf[:n])
				if errors.Is(err, errBareLF) {
					if !tc.bare {
						t.Fatalf("bare LF reported for %q", tc.chunks)
					}
					return
				}
				if err != nil {
					break
				}
			}
			if tc.bare {
				t.Fatalf("bare LF not reported for %q", tc.chunks)
			}
			if want := strings.Join(tc.chunks, ""); got.String() != want {
				t.Errorf("read %q, want %q", got.String(), want)
			}
		})
	}
}
