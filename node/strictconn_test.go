package node

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"slices"
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

// chunkConn returns its chunks one per Read, then io.EOF.
type chunkConn struct {
	net.Conn
	chunks []string
}

func (c *chunkConn) Read(p []byte) (int, error) {
	if len(c.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.chunks[0])
	c.chunks[0] = c.chunks[0][n:]
	if c.chunks[0] == "" {
		c.chunks = c.chunks[1:]
	}
	return n, nil
}

// Whatever the bytes and however they are split, strictConn decides as a
// search of the whole stream does: a bare LF is refused when "\n\n" comes
// before any "\r\n\r\n".
func TestStrictConnMatchesWholeStreamSearch(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte("\r\na")
	for range 20000 {
		s := make([]byte, rng.IntN(14))
		for i := range s {
			s[i] = alphabet[rng.IntN(len(alphabet))]
		}
		end := bytes.Index(s, []byte("\r\n\r\n"))
		lf := bytes.Index(s, []byte("\n\n"))
		want := lf >= 0 && (end < 0 || lf < end)
		var chunks []string
		for rest := string(s); rest != ""; {
			k := 1 + rng.IntN(len(rest))
			chunks = append(chunks, rest[:k])
			rest = rest[k:]
		}
		sc := &strictConn{Conn: &chunkConn{chunks: slices.Clone(chunks)}}
		buf := make([]byte, 16)
		got := false
		for {
			_, err := sc.Read(buf)
			if errors.Is(err, errBareLF) {
				got = true
			}
			if err != nil {
				break
			}
		}
		if got != want {
			t.Fatalf("%q read as %q: bare LF %v, want %v", s, chunks, got, want)
		}
	}
}
