package grip

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// pushpinToken is a Grip-Sig Pushpin 1.36 sent to an origin
// (PUSHPIN-OBSERVED.md), signed with Pushpin's default sig_key "changeme".
const pushpinToken = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJleHAiOjE3OTUzMjkzNDksImlzcyI6InB1c2hwaW4ifQ.1B7NachCshPwejl8KxGgkrfr8iVYnPWeTqXCG8xlv6I"

const pushpinExp = 1795329349

func TestVerifyPushpinToken(t *testing.T) {
	claims, err := VerifyHS256(pushpinToken, []byte("changeme"), time.Unix(pushpinExp-10, 0))
	if err != nil {
		t.Fatalf("VerifyHS256: %v", err)
	}
	if claims["iss"] != "pushpin" || claims["exp"] != float64(pushpinExp) {
		t.Errorf("claims = %v", claims)
	}
	// Signed an hour before exp: the default maximum lifetime admits it.
	if _, err := VerifyHS256(pushpinToken, []byte("changeme"), time.Unix(pushpinExp-3600, 0)); err != nil {
		t.Errorf("at iat: %v", err)
	}
	// At exp it is still inside the leeway; at exp + leeway it is expired.
	if _, err := VerifyHS256(pushpinToken, []byte("changeme"), time.Unix(pushpinExp, 0)); err != nil {
		t.Errorf("at exp (within leeway): %v", err)
	}
	at := time.Unix(pushpinExp, 0).Add(DefaultJWTLeeway)
	if _, err := VerifyHS256(pushpinToken, []byte("changeme"), at); !errors.Is(err, ErrTokenExpired) {
		t.Errorf("at exp + leeway: %v, want ErrTokenExpired", err)
	}
}

func TestParseKey(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"changeme", "changeme", true},
		{"base64:c2VjcmV0", "secret", true},
		{"base64:c2VjcmV0IQ==", "secret!", true},
		{"base64:c2VjcmV0IQ", "secret!", true},
		{"base64:!!", "", false},
		{"Base64:c2VjcmV0", "Base64:c2VjcmV0", true},
	}
	for _, tt := range tests {
		got, err := ParseKey(tt.in)
		if (err == nil) != tt.ok || (tt.ok && string(got) != tt.want) {
			t.Errorf("ParseKey(%q) = %q, %v", tt.in, got, err)
		}
	}
}

func TestSignVerify(t *testing.T) {
	key := []byte("k")
	now := time.Unix(1_700_000_000, 0)
	tok, err := SignHS256(map[string]any{"iss": "me", "exp": now.Add(time.Minute).Unix()}, key)
	if err != nil {
		t.Fatal(err)
	}
	// The wire form origins verify: header and sorted claims as before.
	parts := strings.Split(tok, ".")
	dec := base64.RawURLEncoding.DecodeString
	header, _ := dec(parts[0])
	payload, _ := dec(parts[1])
	if len(parts) != 3 || string(header) != `{"alg":"HS256","typ":"JWT"}` || string(payload) != `{"exp":1700000060,"iss":"me"}` {
		t.Errorf("token = %s / %s", header, payload)
	}
	if sig, _ := dec(parts[2]); !hmac.Equal(sig, hs256(parts[0]+"."+parts[1], key)) {
		t.Error("signature is not HMAC-SHA256 of header.payload")
	}
	claims, err := VerifyHS256(tok, key, now)
	if err != nil || claims["iss"] != "me" {
		t.Fatalf("round trip: %v, %v", claims, err)
	}
	if _, err := SignHS256(map[string]any{}, nil); !errors.Is(err, ErrEmptyKey) {
		t.Errorf("empty key sign: %v", err)
	}
	if _, err := SignHS256(map[string]any{"f": func() {}}, key); err == nil {
		t.Error("unencodable claims: no error")
	}
}

// hs256 is HMAC-SHA256 of signed with key, for hand-made tokens.
func hs256(signed string, key []byte) []byte {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(signed))
	return mac.Sum(nil)
}

var b64 = base64.RawURLEncoding.EncodeToString

// handToken builds header.payload.HMAC-SHA256(key) from raw JSON, so tests
// can sign what SignHS256 would not (other algs, odd claims).
func handToken(header, payload string, key []byte) string {
	signed := b64([]byte(header)) + "." + b64([]byte(payload))
	return signed + "." + b64(hs256(signed, key))
}

// TestVerifyLifetime is the hardening issue's regression test: a token
// without exp, or whose exp is further away than the maximum lifetime,
// must be refused (the hand-written verifier accepted both).
func TestVerifyLifetime(t *testing.T) {
	key := []byte("k")
	now := time.Unix(1_700_000_000, 0)
	sign := func(claims map[string]any) string {
		tok, err := SignHS256(claims, key)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	unix := now.Unix()
	for _, tc := range []struct {
		name   string
		claims map[string]any
		want   error // nil: accepted
	}{
		{"no exp", map[string]any{"iss": "app"}, ErrTokenNoExpiry},
		{"no exp, nbf only", map[string]any{"nbf": unix}, ErrTokenNoExpiry},
		{"exp 0", map[string]any{"exp": 0}, ErrTokenNoExpiry},
		{"exp in 2h", map[string]any{"exp": unix + 7200}, ErrTokenLifetime},
		{"exp centuries away", map[string]any{"exp": time.Date(2500, 1, 1, 0, 0, 0, 0, time.UTC).Unix()}, ErrTokenLifetime},
		{"exp 2^62 s away", map[string]any{"exp": int64(1) << 62}, ErrTokenLifetime},
		{"exp just past max + leeway", map[string]any{"exp": unix + 3600 + 31}, ErrTokenLifetime},
		{"exp - iat over max", map[string]any{"iat": unix - 600, "exp": unix + 3600 - 599}, ErrTokenLifetime},
		{"exp 10m (@fanoutio/grip)", map[string]any{"iss": "app", "exp": unix + 600}, nil},
		{"exp 1h (Grip-Sig)", map[string]any{"iss": "app", "exp": unix + 3600}, nil},
		{"exp 1h + skew within leeway", map[string]any{"exp": unix + 3600 + 30}, nil},
		{"iat and exp 1h apart", map[string]any{"iat": unix - 600, "exp": unix + 3000}, nil},
		{"fractional exp", map[string]any{"exp": float64(unix) + 60.5}, nil},
	} {
		_, err := VerifyHS256(sign(tc.claims), key, now)
		if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
	// An exp beyond what fits in an int64 (max int64 as a float64 is just
	// past it, like 1e300) is refused whichever way the
	// platform converts it.
	for _, exp := range []string{"1e300", "9223372036854775807"} {
		_, err := VerifyHS256(handToken(`{"alg":"HS256"}`, `{"exp":`+exp+`}`, key), key, now)
		if !errors.Is(err, ErrTokenLifetime) && !errors.Is(err, ErrTokenExpired) {
			t.Errorf("exp %s: %v", exp, err)
		}
	}
}

func TestVerifierLimits(t *testing.T) {
	key := []byte("k")
	now := time.Unix(1_700_000_000, 0)
	tok := func(exp time.Duration) string {
		s, err := SignHS256(map[string]any{"exp": now.Add(exp).Unix()}, key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	for _, tc := range []struct {
		name string
		v    JWTVerifier
		tok  string
		want error
	}{
		{"max 24h admits 23h", JWTVerifier{Key: key, MaxLifetime: 24 * time.Hour}, tok(23 * time.Hour), nil},
		{"max 24h refuses 25h", JWTVerifier{Key: key, MaxLifetime: 24 * time.Hour}, tok(25 * time.Hour), ErrTokenLifetime},
		{"max 5m refuses 10m", JWTVerifier{Key: key, MaxLifetime: 5 * time.Minute}, tok(10 * time.Minute), ErrTokenLifetime},
		{"negative max is the default", JWTVerifier{Key: key, MaxLifetime: -1}, tok(2 * time.Hour), ErrTokenLifetime},
		{"default leeway admits 20s past exp", JWTVerifier{Key: key}, tok(-20 * time.Second), nil},
		{"expired beyond the leeway", JWTVerifier{Key: key}, tok(-31 * time.Second), ErrTokenExpired},
		{"leeway 2m admits 90s past exp", JWTVerifier{Key: key, Leeway: 2 * time.Minute}, tok(-90 * time.Second), nil},
		{"no leeway: expired at exp", JWTVerifier{Key: key, Leeway: -1}, tok(0), ErrTokenExpired},
		{"no leeway: max is exact", JWTVerifier{Key: key, Leeway: -1}, tok(time.Hour + time.Second), ErrTokenLifetime},
		{"no leeway: valid 1s before exp", JWTVerifier{Key: key, Leeway: -1}, tok(time.Second), nil},
	} {
		_, err := tc.v.Verify(tc.tok, now)
		if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestVerifyRejects(t *testing.T) {
	key := []byte("k")
	now := time.Unix(1_700_000_000, 0)
	exp := now.Unix() + 60
	sign := func(claims map[string]any) string {
		tok, err := SignHS256(claims, key)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	good := sign(map[string]any{"iss": "me", "exp": exp})
	parts := strings.Split(good, ".")
	withHeader := func(h string) string {
		signed := b64([]byte(h)) + "." + parts[1]
		return signed + "." + b64(hs256(signed, key))
	}
	hs512, err := jwt.NewWithClaims(jwt.SigningMethodHS512, jwt.MapClaims{"exp": exp}).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rs256, err := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"exp": exp}).SignedString(rsaKey)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		token string
		key   []byte
		want  error
	}{
		{"wrong key", good, []byte("other"), ErrTokenSignature},
		{"empty key", good, nil, ErrEmptyKey},
		{"tampered payload", parts[0] + "." + b64([]byte(`{"iss":"you","exp":`+strconv.FormatInt(exp, 10)+`}`)) + "." + parts[2], key, ErrTokenSignature},
		{"tampered signature", parts[0] + "." + parts[1] + "." + b64([]byte("0123456789abcdef0123456789abcdef")), key, ErrTokenSignature},
		{"alg none", b64([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + ".", key, ErrTokenAlgorithm},
		{"alg none signed anyway", withHeader(`{"alg":"none"}`), key, ErrTokenAlgorithm},
		{"alg HS512 signed with the key", hs512, key, ErrTokenAlgorithm},
		{"alg HS512 header, HS256 signature", withHeader(`{"alg":"HS512"}`), key, ErrTokenAlgorithm},
		{"alg RS256", rs256, key, ErrTokenAlgorithm},
		{"alg RS256 header, HMAC signature (alg confusion)", withHeader(`{"alg":"RS256","typ":"JWT"}`), key, ErrTokenAlgorithm},
		{"unknown alg", withHeader(`{"alg":"XY999"}`), key, ErrTokenAlgorithm},
		{"no alg", withHeader(`{"typ":"JWT"}`), key, ErrTokenMalformed},
		{"alg not a string", withHeader(`{"alg":256}`), key, ErrTokenMalformed},
		{"header not JSON", withHeader(`alg`), key, ErrTokenMalformed},
		{"empty", "", key, ErrTokenMalformed},
		{"two parts", parts[0] + "." + parts[1], key, ErrTokenMalformed},
		{"four parts", good + ".x", key, ErrTokenMalformed},
		{"bad base64 signature", parts[0] + "." + parts[1] + ".*", key, ErrTokenMalformed},
		{"bad base64 header", "*." + parts[1] + "." + parts[2], key, ErrTokenMalformed},
		{"expired", sign(map[string]any{"exp": now.Unix() - 31}), key, ErrTokenExpired},
		{"not yet valid", sign(map[string]any{"exp": exp, "nbf": now.Unix() + 31}), key, ErrTokenNotYetValid},
		{"issued in the future", sign(map[string]any{"exp": exp, "iat": now.Unix() + 31}), key, ErrTokenNotYetValid},
		{"exp not a number", sign(map[string]any{"exp": "soon"}), key, ErrTokenClaims},
		{"nbf not a number", sign(map[string]any{"exp": exp, "nbf": true}), key, ErrTokenClaims},
		{"iat not a number", sign(map[string]any{"exp": exp, "iat": "now"}), key, ErrTokenClaims},
		{"payload an array", handToken(`{"alg":"HS256"}`, `[1]`, key), key, ErrTokenMalformed},
		{"payload null", sign(nil), key, ErrTokenNoExpiry},
	}
	for _, tt := range tests {
		if _, err := VerifyHS256(tt.token, tt.key, now); !errors.Is(err, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, err, tt.want)
		}
	}
	if _, err := VerifyHS256(sign(map[string]any{"exp": exp, "nbf": now.Unix(), "iat": now.Unix()}), key, now); err != nil {
		t.Errorf("valid exp/nbf/iat: %v", err)
	}
	padded := parts[0] + "." + parts[1] + "." + base64.URLEncoding.EncodeToString(hs256(parts[0]+"."+parts[1], key))
	if _, err := VerifyHS256(padded, key, now); err != nil {
		t.Errorf("padded signature: %v", err)
	}
}

func TestSignerToken(t *testing.T) {
	s := NewSigner("pushpin", []byte("changeme"))
	now := time.Unix(1_700_000_000, 0)
	tok := s.Token(now)
	claims, err := VerifyHS256(tok, []byte("changeme"), now)
	if err != nil {
		t.Fatal(err)
	}
	if claims["iss"] != "pushpin" || claims["exp"] != float64(now.Unix()+3600) {
		t.Errorf("claims = %v", claims)
	}
	if got := s.Token(now.Add(59 * time.Second)); got != tok {
		t.Error("token not cached within a minute")
	}
	later := now.Add(61 * time.Second)
	next := s.Token(later)
	if next == tok {
		t.Error("token not refreshed after a minute")
	}
	if c, _ := VerifyHS256(next, []byte("changeme"), later); c["exp"] != float64(later.Unix()+3600) {
		t.Errorf("refreshed claims = %v", c)
	}
	if NewSigner("", []byte("k")).Token(now) != "" || NewSigner("iss", nil).Token(now) != "" {
		t.Error("signer without iss or key signed")
	}
}

func TestSignerConcurrent(t *testing.T) {
	s := NewSigner("iss", []byte("key"))
	start := time.Unix(1_700_000_000, 0)
	// Tokens signed up to 1393s after start, all checked at start.
	v := JWTVerifier{Key: []byte("key"), MaxLifetime: 2 * time.Hour}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				now := start.Add(time.Duration(i*g) * time.Second)
				if _, err := v.Verify(s.Token(now), start); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// FuzzJWTVerifierSentinels checks that whatever the token, Verify fails with one of
// the sentinels, or accepts only an HS256 token signed with the key whose
// exp is within the limits.
func FuzzJWTVerifierSentinels(f *testing.F) {
	key := []byte("k")
	now := time.Unix(1_700_000_000, 0)
	for _, claims := range []string{
		`{"iss":"app","exp":1700000600}`, `{"exp":1700003600,"iat":1699999999}`, `{"iss":"app"}`,
		`{"exp":1e300}`, `{"exp":"soon"}`, `{"exp":1700000600,"nbf":1800000000}`, `null`, `[]`,
	} {
		f.Add(handToken(`{"alg":"HS256","typ":"JWT"}`, claims, key))
		f.Add(handToken(`{"alg":"none"}`, claims, key))
	}
	f.Add(pushpinToken)
	f.Add("a.b.c")
	sentinels := []error{ErrTokenMalformed, ErrTokenAlgorithm, ErrTokenSignature, ErrTokenNoExpiry,
		ErrTokenExpired, ErrTokenLifetime, ErrTokenNotYetValid, ErrTokenClaims}
	f.Fuzz(func(t *testing.T, token string) {
		claims, err := VerifyHS256(token, key, now)
		if err != nil {
			n := 0
			for _, s := range sentinels {
				if errors.Is(err, s) {
					n++
				}
			}
			if n != 1 || claims != nil {
				t.Fatalf("error %v wraps %d sentinels, claims %v", err, n, claims)
			}
			return
		}
		parts := strings.Split(token, ".")
		header, _ := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[0], "="))
		var h struct{ Alg string }
		sig, _ := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[2], "="))
		if json.Unmarshal(header, &h) != nil || h.Alg != "HS256" || !hmac.Equal(sig, hs256(parts[0]+"."+parts[1], key)) {
			t.Fatalf("accepted a token not HS256-signed with the key: %q", token)
		}
		exp, ok := claims["exp"].(float64)
		if !ok || exp < float64(now.Add(-DefaultJWTLeeway).Unix()) || exp > float64(now.Add(DefaultJWTMaxLifetime+DefaultJWTLeeway).Unix()) {
			t.Fatalf("accepted exp %v (claims %v)", claims["exp"], claims)
		}
	})
}
