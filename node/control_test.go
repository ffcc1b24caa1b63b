package node

import (
	"encoding/base64"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/edgepush/edgepush/grip"
)

func TestPublishAPIBadInputs(t *testing.T) {
	n := startNode(t, gripOrigin("x"), func(c *Config) { c.MaxPublishBody = 1000 })
	for _, tc := range []struct {
		name, method, path, body, accept string
		code                             int
		want                             string
	}{
		{"not json", "POST", "/publish/", "{nope", "", 400, "Body is not valid JSON.\n"},
		{"no items", "POST", "/publish/", `{"foo":1}`, "", 400, "Invalid format: object does not contain 'items'\n"},
		{"items not array", "POST", "/publish/", `{"items":{}}`, "", 400, "Invalid format: object contains 'items' with wrong type\n"},
		{"no channel", "POST", "/publish/", `{"items":[{"formats":{"http-stream":{"content":"x"}}}]}`, "", 400, "channel"},
		{"no formats", "POST", "/publish/", `{"items":[{"channel":"c","formats":{}}]}`, "", 400, "formats"},
		{"bad base64", "POST", "/publish/", `{"items":[{"channel":"c","formats":{"http-stream":{"content-bin":"!!"}}}]}`, "", 400, ""},
		{"json error", "POST", "/publish/", `{"foo":1}`, "application/json", 400, `{"error":"Invalid format: object does not contain 'items'"}`},
		{"too large", "POST", "/publish/", `{"items":[{"channel":"c","formats":{"http-stream":{"content":"` + strings.Repeat("x", 2000) + `"}}}]}`, "", 413, ""},
		{"get", "GET", "/publish/", "", "", 405, "Method not allowed: GET.\n"},
		{"unknown path", "GET", "/nope", "", "", 404, "no such endpoint"},
		{"ok text", "POST", "/publish/", `{"items":[{"channel":"c","formats":{"http-stream":{"content":"x"}}}]}`, "", 200, "Published\n"},
		{"ok json", "POST", "/publish", `{"items":[{"channel":"c","formats":{"http-stream":{"content":"x"}}}]}`, "application/json", 200, `{"message":"Published"}`},
		{"double slash", "POST", "//publish/", `{"items":[]}`, "", 200, "Published\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, n.ctl+tc.path, strings.NewReader(tc.body))
			if tc.accept != "" {
				req.Header.Set("Accept", tc.accept)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			compact := strings.Join(strings.Fields(string(b)), " ")
			if resp.StatusCode != tc.code || !(strings.Contains(string(b), tc.want) || strings.Contains(compact, tc.want)) {
				t.Fatalf("got %d %q, want %d containing %q", resp.StatusCode, b, tc.code, tc.want)
			}
			if tc.code == 405 && resp.Header.Get("Allow") != "POST" {
				t.Fatalf("Allow = %q", resp.Header.Get("Allow"))
			}
		})
	}
}

func TestPublishKeyAuth(t *testing.T) {
	n := startNode(t, gripOrigin("x"), func(c *Config) { c.PublishKey = "pubkey" })
	jwt := func(key string, exp time.Duration) string {
		tok, err := grip.SignHS256(map[string]any{"iss": "app", "exp": time.Now().Add(exp).Unix()}, []byte(key))
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	basic := func(user, pass string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
	}
	for _, tc := range []struct {
		name, auth string
		code       int
	}{
		{"none", "", 401},
		{"bearer key", "Bearer pubkey", 200},
		{"bearer wrong key", "Bearer nope", 401},
		{"jwt", "Bearer " + jwt("pubkey", time.Minute), 200},
		{"jwt wrong key", "Bearer " + jwt("other", time.Minute), 401},
		{"jwt expired", "Bearer " + jwt("pubkey", -time.Minute), 401},
		{"basic", basic("anyone", "pubkey"), 200},
		{"basic wrong", basic("pubkey", "x"), 401},
		{"basic garbage", "Basic !!!", 401},
		{"other scheme", "Digest pubkey", 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", n.ctl+"/publish/", strings.NewReader(`{"items":[]}`))
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.code {
				t.Fatalf("got %d, want %d", resp.StatusCode, tc.code)
			}
		})
	}
	resp, err := http.Get(n.ctl + "/status")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("/status without key: %d", resp.StatusCode)
	}
}

func TestStatusCounts(t *testing.T) {
	n := startNode(t, gripOrigin("x\n", "Grip-Hold", "stream", "Grip-Channel", "s1, s2"))
	c := dialRaw(t, n.Addr())
	c.get(t, "/")
	n.waitSubscribers(t, "s2", 1)
	n.publish(t, streamItem("s1", "a\n"), streamItem("nobody", "b\n")) // "nobody" keeps history: 3 channels
	var st Status
	getJSON(t, n.ctl+"/status", &st)
	if st.Held != 1 || st.Hub.Channels != 3 || st.Hub.Subscriptions != 2 || st.Published != 2 || st.Hub.Delivered != 1 || st.Requests != 1 {
		t.Fatalf("status = %+v", st)
	}
}
