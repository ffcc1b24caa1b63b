package node

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/edgepush/edgepush/grip"
)

func TestPlainResponseIsRelayedUnchanged(t *testing.T) {
	n := startNode(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Custom", "yes")
		w.Header().Add("Set-Cookie", "a=1")
		w.Header().Add("Set-Cookie", "b=2")
		w.Header().Set("Grip-Channel", "ignored-without-hold")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.WriteHeader(http.StatusTeapot)
		io.WriteString(w, `{"plain":true}`)
	}))
	resp, err := http.Get(n.url + "/thing?x=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusTeapot || string(body) != `{"plain":true}` {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	if resp.Header.Get("Content-Type") != "application/json" || resp.Header.Get("X-Custom") != "yes" {
		t.Fatalf("headers not relayed: %v", resp.Header)
	}
	if got := resp.Header.Values("Set-Cookie"); len(got) != 2 {
		t.Fatalf("Set-Cookie = %v", got)
	}
	if resp.Header.Get("Grip-Channel") != "" || resp.Header.Get("Keep-Alive") != "" {
		t.Fatalf("Grip-*/hop-by-hop headers leaked: %v", resp.Header)
	}
}

func TestOriginSeesForwardedHeadersAndValidGripSig(t *testing.T) {
	seen := make(chan http.Header, 1)
	n := startNode(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Clone()
		h.Set("X-Test-Host", r.Host)
		h.Set("X-Test-URI", r.RequestURI)
		seen <- h
		io.WriteString(w, "ok")
	}), func(c *Config) { c.SigKey = "sekrit"; c.SigIss = "edge-test"; c.TrustXFF = "127.0.0.0/8" })
	req, _ := http.NewRequest("GET", n.url+"/path/a?b=c%20d", nil)
	req.Host = "api.example"
	req.Header.Set("Grip-Sig", "forged")
	req.Header.Set("Grip-Feature", "forged")
	req.Header.Set("X-Forwarded-For", "10.0.0.1")
	req.Header.Set("Connection", "keep-alive, X-Hop")
	req.Header.Set("X-Hop", "drop me")
	req.Header.Set("Accept-Encoding", "gzip")
	req.Header.Set("X-Keep", "kept")
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	h := <-seen
	if h.Get("X-Test-Host") != "api.example" || h.Get("X-Test-URI") != "/path/a?b=c%20d" {
		t.Fatalf("host/uri = %q %q", h.Get("X-Test-Host"), h.Get("X-Test-URI"))
	}
	if got := h.Get("X-Forwarded-For"); got != "10.0.0.1, 127.0.0.1" { // from a trusted proxy: appended
		t.Fatalf("X-Forwarded-For = %q", got)
	}
	if h.Get("X-Forwarded-Proto") != "http" || h.Get("X-Keep") != "kept" {
		t.Fatalf("headers = %v", h)
	}
	if h.Get("X-Hop") != "" || h.Get("Grip-Feature") != "" || h.Get("Accept-Encoding") != "" {
		t.Fatalf("headers that must not reach the origin did: %v", h)
	}
	claims, err := grip.VerifyHS256(h.Get("Grip-Sig"), []byte("sekrit"), time.Now())
	if err != nil {
		t.Fatalf("Grip-Sig %q: %v", h.Get("Grip-Sig"), err)
	}
	exp, _ := claims["exp"].(float64)
	if claims["iss"] != "edge-test" || time.Until(time.Unix(int64(exp), 0)) < 50*time.Minute {
		t.Fatalf("claims = %v", claims)
	}
}

func TestRequestBodyReachesOrigin(t *testing.T) {
	n := startNode(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", r.Header.Get("Content-Type"))
		io.WriteString(w, r.Method+":"+string(b))
	}))
	resp, err := http.Post(n.url+"/echo", "text/x-test", strings.NewReader("payload"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if string(b) != "POST:payload" || resp.Header.Get("Content-Type") != "text/x-test" {
		t.Fatalf("got %q %v", b, resp.Header)
	}
}

func TestOriginFailures(t *testing.T) {
	// An origin that accepts and never answers.
	hang := make(chan struct{})
	t.Cleanup(func() { close(hang) })
	slow := startNode(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}), func(c *Config) { c.OriginTimeout = 300 * time.Millisecond })
	down := startNode(t, gripOrigin("x"))
	down.stopOrigin(t)
	big := startNode(t, gripOrigin(strings.Repeat("x", 5000)), func(c *Config) { c.OriginMaxBody = 1000 })

	for _, tc := range []struct {
		name string
		url  string
		code int
		body string
	}{
		{"refused", down.url, 502, "edgepush: origin unavailable (no cached copy to serve)\n"},
		{"timeout", slow.url, 504, "edgepush: origin timed out (no cached copy to serve)\n"},
		{"too large", big.url, 502, "edgepush: origin response too large\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := http.Get(tc.url + "/x")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.code || string(b) != tc.body {
				t.Fatalf("got %d %q, want %d %q", resp.StatusCode, b, tc.code, tc.body)
			}
		})
	}
}

func TestInvalidInstructionsGive502(t *testing.T) {
	channels := make([]string, 21)
	for i := range channels {
		channels[i] = "c" + string(rune('a'+i))
	}
	for _, tc := range []struct {
		name    string
		headers []string
		body    string
		want    string
	}{
		{"bad hold", []string{"Grip-Hold", "forever", "Grip-Channel", "c"}, "", "Grip-Hold"},
		{"hold without channel", []string{"Grip-Hold", "stream"}, "", "Grip-Channel"},
		{"bad timeout", []string{"Grip-Hold", "response", "Grip-Channel", "c", "Grip-Timeout", "soon"}, "", "Grip-Timeout"},
		{"too many channels", []string{"Grip-Hold", "stream", "Grip-Channel", strings.Join(channels, ", ")}, "", "21 channels"},
		{"bad instruct json", []string{"Content-Type", "application/grip-instruct"}, "{not json", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := startNode(t, gripOrigin(tc.body, tc.headers...))
			resp, err := http.Get(n.url + "/")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 502 || !strings.HasPrefix(string(b), "edgepush: invalid GRIP instructions from origin: ") || !strings.Contains(string(b), tc.want) {
				t.Fatalf("got %d %q", resp.StatusCode, b)
			}
			var st Status
			getJSON(t, n.ctl+"/status", &st)
			if st.OriginReqs.InvalidInstructions != 1 {
				t.Fatalf("invalid_instructions = %d", st.OriginReqs.InvalidInstructions)
			}
		})
	}
}

func getJSON(tb testing.TB, url string, v any) {
	tb.Helper()
	resp, err := http.Get(url)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		tb.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		tb.Fatal(err)
	}
}
