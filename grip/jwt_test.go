package grip

import (
	"encoding/base64"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// pushpinToken is a Grip-Sig Pushpin 1.36 sent to an origin
// (PUSHPIN-OBSERVED.md), signed with Pushpin's default sig_key "changeme".
const pushpinToken = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJleHAiOjE3OTUzMjkzNDksImlzcyI6InB1c2hwaW4ifQ.1B7NachCshPwejl8KxGgkrfr8iVYnPWeTqXCG8xlv6I"

func TestVerifyPushpinToken(t *testing.T) {
	claims, err := VerifyHS256(pushpinToken, []byte("changeme"), time.Unix(1795329349-10, 0))
	if err != nil {
		t.Fatalf("VerifyHS256: %v", err)
	}
	if claims["iss"] != "pushpin" || claims["exp"] != float64(1795329349) {
		t.Errorf("claims = %v", claims)
	}
	if _, err := VerifyHS256(pushpinToken, []byte("changeme"), time.Unix(1795329349, 0)); !errors.Is(err, ErrTokenExpired) {
		t.Errorf("at exp: %v, want ErrTokenExpired", err)
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

func TestVerifyRejects(t *testing.T) {
	key := []byte("k")
	now := time.Unix(1_700_000_000, 0)
	sign := func(claims map[string]any) string {
		tok, err := SignHS256(claims, key)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	good := sign(map[string]any{"iss": "me"})
	parts := strings.Split(good, ".")
	enc := base64.RawURLEncoding.EncodeToString
	withHeader := func(h string) string {
		signed := enc([]byte(h)) + "." + parts[1]
		return signed + "." + enc(hs256(signed, key))
	}
	tests := []struct {
		name  string
		token string
		key   []byte
		want  error
	}{
		{"wrong key", good, []byte("other"), ErrTokenSignature},
		{"empty key", good, nil, ErrEmptyKey},
		{"tampered payload", parts[0] + "." + enc([]byte(`{"iss":"you"}`)) + "." + parts[2], key, ErrTokenSignature},
		{"tampered signature", parts[0] + "." + parts[1] + "." + enc([]byte("0123456789abcdef0123456789abcdef")), key, ErrTokenSignature},
		{"alg none", enc([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + ".", key, ErrTokenAlgorithm},
		{"alg none signed anyway", withHeader(`{"alg":"none"}`), key, ErrTokenAlgorithm},
		{"alg HS512", withHeader(`{"alg":"HS512"}`), key, ErrTokenAlgorithm},
		{"no alg", withHeader(`{"typ":"JWT"}`), key, ErrTokenMalformed},
		{"header not JSON", withHeader(`alg`), key, ErrTokenMalformed},
		{"two parts", parts[0] + "." + parts[1], key, ErrTokenMalformed},
		{"four parts", good + ".x", key, ErrTokenMalformed},
		{"bad base64 signature", parts[0] + "." + parts[1] + ".*", key, ErrTokenMalformed},
		{"bad base64 header", "*." + parts[1] + "." + parts[2], key, ErrTokenMalformed},
		{"expired", sign(map[string]any{"exp": now.Unix()}), key, ErrTokenExpired},
		{"not yet valid", sign(map[string]any{"nbf": now.Unix() + 1}), key, ErrTokenNotYetValid},
		{"exp not a number", sign(map[string]any{"exp": "soon"}), key, ErrTokenClaims},
		{"nbf not a number", sign(map[string]any{"nbf": true}), key, ErrTokenClaims},
		{"payload not an object", sign(nil), key, ErrTokenMalformed},
	}
	for _, tt := range tests {
		if _, err := VerifyHS256(tt.token, tt.key, now); !errors.Is(err, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, err, tt.want)
		}
	}
	if _, err := VerifyHS256(sign(map[string]any{"exp": now.Unix() + 1, "nbf": now.Unix()}), key, now); err != nil {
		t.Errorf("valid exp/nbf: %v", err)
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
	next := s.Token(now.Add(61 * time.Second))
	if next == tok {
		t.Error("token not refreshed after a minute")
	}
	if c, _ := VerifyHS256(next, []byte("changeme"), now); c["exp"] != float64(now.Unix()+61+3600) {
		t.Errorf("refreshed claims = %v", c)
	}
	if NewSigner("", []byte("k")).Token(now) != "" || NewSigner("iss", nil).Token(now) != "" {
		t.Error("signer without iss or key signed")
	}
}

func TestSignerConcurrent(t *testing.T) {
	s := NewSigner("iss", []byte("key"))
	start := time.Unix(1_700_000_000, 0)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				now := start.Add(time.Duration(i*g) * time.Second)
				if _, err := VerifyHS256(s.Token(now), []byte("key"), start); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}
