package grip

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Errors returned by VerifyHS256 (and, for ErrEmptyKey, SignHS256).
var (
	// ErrEmptyKey: signing or verifying with an empty key is refused.
	ErrEmptyKey = errors.New("grip: empty JWT key")
	// ErrTokenMalformed: not three base64url parts, or bad JSON.
	ErrTokenMalformed = errors.New("grip: malformed JWT")
	// ErrTokenAlgorithm: the header's alg is not HS256 ("none" included).
	ErrTokenAlgorithm = errors.New("grip: JWT algorithm is not HS256")
	// ErrTokenSignature: the signature does not match the key.
	ErrTokenSignature = errors.New("grip: JWT signature mismatch")
	// ErrTokenExpired: now is at or after the exp claim.
	ErrTokenExpired = errors.New("grip: JWT expired")
	// ErrTokenNotYetValid: now is before the nbf claim.
	ErrTokenNotYetValid = errors.New("grip: JWT not valid yet")
	// ErrTokenClaims: exp or nbf is present but not a number.
	ErrTokenClaims = errors.New("grip: JWT exp or nbf is not a number")
)

const (
	// gripSigLifetime is how long a Grip-Sig token is valid (Pushpin: 3600s).
	gripSigLifetime = time.Hour
	// signerRefreshAfter is the age at which Signer signs a new token.
	signerRefreshAfter = time.Minute
	base64KeyPrefix    = "base64:"
)

// jwtHeaderHS256 is the encoded JOSE header of every token signed here.
var jwtHeaderHS256 = b64url([]byte(`{"alg":"HS256","typ":"JWT"}`))

func b64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// ParseKey decodes a key given on the command line or in a config file:
// "base64:..." is base64-decoded, anything else is taken as raw bytes.
func ParseKey(s string) ([]byte, error) {
	rest, ok := strings.CutPrefix(s, base64KeyPrefix)
	if !ok {
		return []byte(s), nil
	}
	key, ok := decodeBase64(rest)
	if !ok {
		return nil, errors.New("grip: invalid base64 key")
	}
	return key, nil
}

// SignHS256 returns a compact JWS of claims signed with HMAC-SHA256.
// Claims are encoded with sorted keys.
func SignHS256(claims map[string]any, key []byte) (string, error) {
	if len(key) == 0 {
		return "", ErrEmptyKey
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	signed := jwtHeaderHS256 + "." + b64url(payload)
	return signed + "." + b64url(hs256(signed, key)), nil
}

func hs256(signed string, key []byte) []byte {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(signed))
	return mac.Sum(nil)
}

// VerifyHS256 checks token's HS256 signature in constant time and, when
// present, its exp (now must be before it) and nbf (now must not be before
// it) claims, and returns the claims. Any algorithm but HS256, "none"
// included, is rejected.
func VerifyHS256(token string, key []byte, now time.Time) (map[string]any, error) {
	if len(key) == 0 {
		return nil, ErrEmptyKey
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, ErrTokenMalformed
	}
	if err := checkJWTHeader(parts[0]); err != nil {
		return nil, err
	}
	sig, err := decodeSegment(parts[2])
	if err != nil {
		return nil, ErrTokenMalformed
	}
	if !hmac.Equal(sig, hs256(parts[0]+"."+parts[1], key)) {
		return nil, ErrTokenSignature
	}
	var claims map[string]any
	payload, err := decodeSegment(parts[1])
	if err != nil || json.Unmarshal(payload, &claims) != nil || claims == nil {
		return nil, ErrTokenMalformed
	}
	return claims, checkTimes(claims, now)
}

func checkJWTHeader(seg string) error {
	raw, err := decodeSegment(seg)
	if err != nil {
		return ErrTokenMalformed
	}
	var h struct {
		Alg *string `json:"alg"`
	}
	if json.Unmarshal(raw, &h) != nil || h.Alg == nil {
		return ErrTokenMalformed
	}
	if *h.Alg != "HS256" {
		return ErrTokenAlgorithm
	}
	return nil
}

// decodeSegment decodes base64url with or without padding.
func decodeSegment(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}

func checkTimes(claims map[string]any, now time.Time) error {
	sec := float64(now.Unix())
	if v, ok := claims["exp"]; ok {
		exp, ok := v.(float64)
		if !ok {
			return ErrTokenClaims
		}
		if sec >= exp {
			return ErrTokenExpired
		}
	}
	if v, ok := claims["nbf"]; ok {
		nbf, ok := v.(float64)
		if !ok {
			return ErrTokenClaims
		}
		if sec < nbf {
			return ErrTokenNotYetValid
		}
	}
	return nil
}

// Signer makes Grip-Sig tokens {"iss": iss, "exp": now+1h}, as Pushpin does
// for requests to the origin. It caches the token and signs a new one when
// the cached one is a minute old. It is safe for concurrent use.
type Signer struct {
	iss string
	key []byte
	mu  sync.Mutex
	cur atomic.Pointer[signedToken]
}

type signedToken struct {
	token string
	at    time.Time
}

// NewSigner returns a Signer for iss and key. Like Pushpin, it signs
// nothing when iss or key is empty: Token then returns "".
func NewSigner(iss string, key []byte) *Signer {
	return &Signer{iss: iss, key: append([]byte(nil), key...)}
}

// Token returns a token valid for an hour from about now.
func (s *Signer) Token(now time.Time) string {
	if s.iss == "" || len(s.key) == 0 {
		return ""
	}
	if t := s.cur.Load(); t != nil && now.Sub(t.at) < signerRefreshAfter {
		return t.token
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.cur.Load(); t != nil && now.Sub(t.at) < signerRefreshAfter {
		return t.token
	}
	claims := map[string]any{"iss": s.iss, "exp": now.Add(gripSigLifetime).Unix()}
	token, err := SignHS256(claims, s.key)
	if err != nil {
		return ""
	}
	s.cur.Store(&signedToken{token: token, at: now})
	return token
}
