package node

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestRangesFromTheWholeResponse: a Range on a cacheable GET is answered
// by the node from the whole response (fetched without the Range, then
// stored): one byte range as 206 with Content-Range, on the identity
// body even when a compressed variant exists; 416 past the end; the whole
// 200 for several ranges, an If-Range that does not match, a HEAD, or a
// malformed Range; a matching conditional gets its 304 first.
func TestRangesFromTheWholeResponse(t *testing.T) {
	big := strings.Repeat("0123456789", 200) // compressed variants exist
	n := startNode(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Range") != "" || r.Header.Get("If-Range") != "" {
			t.Errorf("range headers reached the origin: %v", r.Header)
		}
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("ETag", `"e1"`)
		w.Header().Set("Last-Modified", "Wed, 01 Jan 2025 00:00:00 GMT")
		w.Header().Set("Content-Type", "text/plain")
		if r.URL.Path == "/big" {
			io.WriteString(w, big)
			return
		}
		io.WriteString(w, "0123456789A")
	}))
	for _, tc := range []struct {
		name     string
		path     string
		headers  []string
		code     int
		body     string
		cr       string
		encoding string
	}{
		{"first bytes (miss)", "/r", []string{"Range", "bytes=0-1"}, 206, "01", "bytes 0-1/11", ""},
		{"no last", "/r", []string{"Range", "bytes=1-"}, 206, "123456789A", "bytes 1-10/11", ""},
		{"suffix", "/r", []string{"Range", "bytes=-1"}, 206, "A", "bytes 10-10/11", ""},
		{"last past the end", "/r", []string{"Range", "bytes=9-99"}, 206, "9A", "bytes 9-10/11", ""},
		{"suffix longer than the body", "/r", []string{"Range", "bytes=-99"}, 206, "0123456789A", "bytes 0-10/11", ""},
		{"past the end", "/r", []string{"Range", "bytes=11-"}, 416, "", "bytes */11", ""},
		{"several ranges", "/r", []string{"Range", "bytes=0-1,3-4"}, 200, "0123456789A", "", ""},
		{"other unit", "/r", []string{"Range", "items=0-1"}, 200, "0123456789A", "", ""},
		{"malformed", "/r", []string{"Range", "bytes=4-1"}, 200, "0123456789A", "", ""},
		{"If-Range ETag", "/r", []string{"Range", "bytes=0-1", "If-Range", `"e1"`}, 206, "01", "bytes 0-1/11", ""},
		{"If-Range other ETag", "/r", []string{"Range", "bytes=0-1", "If-Range", `"e0"`}, 200, "0123456789A", "", ""},
		{"If-Range weak ETag", "/r", []string{"Range", "bytes=0-1", "If-Range", `W/"e1"`}, 200, "0123456789A", "", ""},
		{"If-Range date", "/r", []string{"Range", "bytes=0-1", "If-Range", "Wed, 01 Jan 2025 00:00:00 GMT"}, 206, "01", "bytes 0-1/11", ""},
		{"If-Range other date", "/r", []string{"Range", "bytes=0-1", "If-Range", "Thu, 02 Jan 2025 00:00:00 GMT"}, 200, "0123456789A", "", ""},
		{"matching conditional first", "/r", []string{"Range", "bytes=0-1", "If-None-Match", `"e1"`}, 304, "", "", ""},
		{"identity body", "/big", []string{"Range", "bytes=10-14", "Accept-Encoding", "gzip, zstd"}, 206, "01234", "bytes 10-14/2000", ""},
		{"whole, compressed", "/big", []string{"Accept-Encoding", "zstd"}, 200, "", "", "zstd"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, b := n.getWith(t, tc.path, tc.headers...) // Accept-Encoding set: no transparent decompression
			if resp.StatusCode != tc.code || tc.encoding == "" && string(b) != tc.body ||
				resp.Header.Get("Content-Range") != tc.cr || resp.Header.Get("Content-Encoding") != tc.encoding {
				t.Fatalf("%d %q, Content-Range %q, Content-Encoding %q", resp.StatusCode, b,
					resp.Header.Get("Content-Range"), resp.Header.Get("Content-Encoding"))
			}
			if tc.path == "/big" && !strings.Contains(resp.Header.Get("Vary"), "Accept-Encoding") {
				t.Fatalf("Vary %q", resp.Header.Get("Vary"))
			}
		})
	}
	req, _ := http.NewRequest("HEAD", n.url+"/r", nil)
	req.Header.Set("Range", "bytes=0-1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Range") != "" {
		t.Fatalf("HEAD with a Range: %d %v", resp.StatusCode, resp.Header)
	}
}
