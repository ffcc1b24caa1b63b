package node

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgepush/edgepush/grip"
	"github.com/golang-jwt/jwt/v5"
)

// controlStatus sends method path with body and Authorization: auth to
// the control API and returns the status code.
func controlStatus(t *testing.T, n *testNode, method, path, body, auth string) int {
	t.Helper()
	req, _ := http.NewRequest(method, n.ctl+path, strings.NewReader(body))
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// signed returns "Bearer " and claims signed HS256 with key.
func signed(t *testing.T, key string, claims map[string]any) string {
	t.Helper()
	tok, err := grip.SignHS256(claims, []byte(key))
	if err != nil {
		t.Fatal(err)
	}
	return "Bearer " + tok
}

// TestPublishJWTLifetime: publish-key JWTs must carry an exp at most
// -publish-jwt-max-lifetime (default 1h) away, be HS256 and be signed with
// the key; anything else is 401 on every authenticated endpoint.
func TestPublishJWTLifetime(t *testing.T) {
	n := startNode(t, gripOrigin("x"), func(c *Config) { c.PublishKey = "pubkey" })
	now := time.Now().Unix()
	enc := base64.RawURLEncoding.EncodeToString
	payload := enc([]byte(`{"iss":"app","exp":` + strconv.FormatInt(now+600, 10) + `}`))
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	other := func(m jwt.SigningMethod, key any) string {
		tok, err := jwt.NewWithClaims(m, jwt.MapClaims{"iss": "app", "exp": now + 600}).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return "Bearer " + tok
	}
	for _, tc := range []struct {
		name, auth string
		code       int
	}{
		{"no exp", signed(t, "pubkey", map[string]any{"iss": "app"}), 401},
		{"exp in 2h", signed(t, "pubkey", map[string]any{"iss": "app", "exp": now + 7200}), 401},
		{"exp in the year 2500", signed(t, "pubkey", map[string]any{"iss": "app", "exp": time.Date(2500, 1, 1, 0, 0, 0, 0, time.UTC).Unix()}), 401},
		{"iat to exp over 1h", signed(t, "pubkey", map[string]any{"iat": now - 3000, "exp": now + 1200}), 401},
		{"expired beyond leeway", signed(t, "pubkey", map[string]any{"iss": "app", "exp": now - 120}), 401},
		{"wrong key", signed(t, "other", map[string]any{"iss": "app", "exp": now + 600}), 401},
		{"alg none", "Bearer " + enc([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + payload + ".", 401},
		{"alg HS512", other(jwt.SigningMethodHS512, []byte("pubkey")), 401},
		{"alg RS256", other(jwt.SigningMethodRS256, rsaKey), 401},
		{"exp in 10m (@fanoutio/grip)", signed(t, "pubkey", map[string]any{"iss": "app", "exp": now + 600}), 200},
		{"exp in 1h", signed(t, "pubkey", map[string]any{"iss": "app", "exp": now + 3600}), 200},
		{"iat and exp 1h apart", signed(t, "pubkey", map[string]any{"iat": now - 60, "exp": now + 3540}), 200},
		{"the key itself", "Bearer pubkey", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, r := range []struct{ method, path, body string }{
				{"POST", "/publish/", `{"items":[]}`},
				{"POST", "/purge/", `{"keys":["a"]}`},
				{"GET", "/status", ""},
			} {
				if got := controlStatus(t, n, r.method, r.path, r.body, tc.auth); got != tc.code {
					t.Errorf("%s %s: got %d, want %d", r.method, r.path, got, tc.code)
				}
			}
		})
	}
}

func TestPublishJWTMaxLifetimeFlag(t *testing.T) {
	n := startNode(t, gripOrigin("x"), func(c *Config) {
		c.PublishKey = "pubkey"
		c.PublishJWTMaxLifetime = 24 * time.Hour
	})
	now := time.Now().Unix()
	for _, tc := range []struct {
		name string
		exp  int64
		code int
	}{
		{"23h", now + 23*3600, 200},
		{"25h", now + 25*3600, 401},
	} {
		if got := controlStatus(t, n, "POST", "/publish/", `{"items":[]}`, signed(t, "pubkey", map[string]any{"exp": tc.exp})); got != tc.code {
			t.Errorf("%s: got %d, want %d", tc.name, got, tc.code)
		}
	}
	short := startNode(t, gripOrigin("x"), func(c *Config) {
		c.PublishKey = "pubkey"
		c.PublishJWTMaxLifetime = 5 * time.Minute
	})
	if got := controlStatus(t, short, "POST", "/publish/", `{"items":[]}`, signed(t, "pubkey", map[string]any{"exp": now + 600})); got != 401 {
		t.Errorf("10m token with a 5m maximum: got %d, want 401", got)
	}

	cfg := DefaultConfig()
	cfg.Origin = "http://127.0.0.1:1"
	cfg.PublishJWTMaxLifetime = -time.Second
	if _, err := New(cfg, nil); err == nil || !strings.Contains(err.Error(), "-publish-jwt-max-lifetime") {
		t.Errorf("negative max lifetime: err = %v", err)
	}
	if d := DefaultConfig().PublishJWTMaxLifetime; d != time.Hour {
		t.Errorf("default max lifetime = %v, want 1h", d)
	}
}
