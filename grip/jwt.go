package grip

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Errors returned by JWTVerifier.Verify and VerifyHS256 (and, for
// ErrEmptyKey, SignHS256). Each error they return wraps exactly one of
// these, and with it the error of github.com/golang-jwt/jwt/v5 that it was
// mapped from, if any.
var (
	// ErrEmptyKey: signing or verifying with an empty key is refused.
	ErrEmptyKey = errors.New("grip: empty JWT key")
	// ErrTokenMalformed: not three base64url parts, bad JSON, or no alg.
	ErrTokenMalformed = errors.New("grip: malformed JWT")
	// ErrTokenAlgorithm: the header's alg is not HS256 ("none" included).
	ErrTokenAlgorithm = errors.New("grip: JWT algorithm is not HS256")
	// ErrTokenSignature: the signature does not match the key.
	ErrTokenSignature = errors.New("grip: JWT signature mismatch")
	// ErrTokenNoExpiry: the exp claim is missing (or 0). Every token must
	// expire.
	ErrTokenNoExpiry = errors.New("grip: JWT has no exp claim")
	// ErrTokenExpired: now is at or after exp plus the leeway.
	ErrTokenExpired = errors.New("grip: JWT expired")
	// ErrTokenLifetime: exp is further than the maximum lifetime (plus
	// the leeway) from now, or further than it from iat.
	ErrTokenLifetime = errors.New("grip: JWT lifetime exceeds the maximum")
	// ErrTokenNotYetValid: now is before nbf or iat minus the leeway.
	ErrTokenNotYetValid = errors.New("grip: JWT not valid yet")
	// ErrTokenClaims: exp, nbf or iat is present but not a number.
	ErrTokenClaims = errors.New("grip: JWT exp, nbf or iat is not a number")
)

const (
	// DefaultJWTMaxLifetime is the longest a token may be valid for by
	// default: exp at most this far after now (and after iat, when
	// present). @fanoutio/grip 4.x signs publish tokens valid for 10
	// minutes; Grip-Sig tokens (Signer) are valid for an hour.
	DefaultJWTMaxLifetime = time.Hour
	// DefaultJWTLeeway is the clock skew allowed by default between the
	// token's signer and the verifier, applied to exp, nbf, iat and the
	// maximum lifetime.
	DefaultJWTLeeway = 30 * time.Second

	// gripSigLifetime is how long a Grip-Sig token is valid (Pushpin: 3600s).
	gripSigLifetime = time.Hour
	// signerRefreshAfter is the age at which Signer signs a new token.
	signerRefreshAfter = time.Minute
	base64KeyPrefix    = "base64:"
	// algHS256 is the only algorithm signed or accepted here.
	algHS256 = "HS256"
)

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

// SignHS256 returns a compact JWS of claims signed with HMAC-SHA256, with
// the header {"alg":"HS256","typ":"JWT"}. Claims are encoded with sorted
// keys.
func SignHS256(claims map[string]any, key []byte) (string, error) {
	if len(key) == 0 {
		return "", ErrEmptyKey
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims(claims)).SignedString(key)
}

// JWTVerifier verifies HS256 JWTs signed with Key. A token is accepted
// only if its alg is HS256 (anything else, "none" included, is refused),
// its signature matches Key, it has an exp claim, and, allowing Leeway of
// clock skew, now is before exp, not before nbf or iat (when present), and
// exp is at most MaxLifetime after now (and, when iat is present, at most
// MaxLifetime after iat). The zero limits mean the defaults.
type JWTVerifier struct {
	// Key is the HMAC key. Empty: every token is refused (ErrEmptyKey).
	Key []byte
	// MaxLifetime is the longest validity accepted. Zero or negative:
	// DefaultJWTMaxLifetime.
	MaxLifetime time.Duration
	// Leeway is the clock skew allowed. Zero: DefaultJWTLeeway; negative:
	// none.
	Leeway time.Duration
}

// limits returns the maximum lifetime and leeway in force.
func (v JWTVerifier) limits() (maxLifetime, leeway time.Duration) {
	maxLifetime, leeway = v.MaxLifetime, v.Leeway
	if maxLifetime <= 0 {
		maxLifetime = DefaultJWTMaxLifetime
	}
	switch {
	case leeway == 0:
		leeway = DefaultJWTLeeway
	case leeway < 0:
		leeway = 0
	}
	return maxLifetime, leeway
}

// Verify checks token as of now (see JWTVerifier) and returns its claims,
// numbers as float64. Every error wraps one of the ErrToken* errors or
// ErrEmptyKey.
func (v JWTVerifier) Verify(token string, now time.Time) (map[string]any, error) {
	if len(v.Key) == 0 {
		return nil, ErrEmptyKey
	}
	maxLifetime, leeway := v.limits()
	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{algHS256}),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(leeway),
		jwt.WithTimeFunc(func() time.Time { return now }),
		jwt.WithPaddingAllowed(), // as the hand-written verifier did
	)
	claims := jwt.MapClaims{}
	tok, err := parser.ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) {
		// WithValidMethods already refused any other alg; this keeps the
		// key from ever reaching another method.
		if t.Method != jwt.SigningMethodHS256 {
			return nil, ErrTokenAlgorithm
		}
		return v.Key, nil
	})
	if err != nil {
		return nil, verifyError(tok, err)
	}
	if err := checkLifetime(claims, now, maxLifetime, leeway); err != nil {
		return nil, err
	}
	return claims, nil
}

// verifyError maps an error of jwt/v5's parser to the sentinel it means,
// wrapping both.
func verifyError(tok *jwt.Token, err error) error {
	var alg any
	if tok != nil {
		alg = tok.Header["alg"]
	}
	_, algIsString := alg.(string)
	var sentinel error
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed), tok == nil, !algIsString:
		sentinel = ErrTokenMalformed
	case alg != algHS256:
		sentinel = ErrTokenAlgorithm
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		sentinel = ErrTokenSignature
	case errors.Is(err, jwt.ErrInvalidType):
		sentinel = ErrTokenClaims
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		sentinel = ErrTokenNoExpiry
	case errors.Is(err, jwt.ErrTokenExpired):
		sentinel = ErrTokenExpired
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		sentinel = ErrTokenNotYetValid
	default:
		sentinel = ErrTokenMalformed
	}
	return fmt.Errorf("%w: %w", sentinel, err)
}

// checkLifetime refuses a token whose exp (present: the parser required
// it) is more than maxLifetime plus leeway after now, or more than
// maxLifetime after its iat. The second check needs no leeway: both
// times come from the signer's clock.
func checkLifetime(claims jwt.MapClaims, now time.Time, maxLifetime, leeway time.Duration) error {
	exp, err := claims.GetExpirationTime()
	if err != nil || exp == nil {
		return ErrTokenNoExpiry // unreachable after the parser's checks
	}
	if exp.After(now.Add(maxLifetime).Add(leeway)) {
		return fmt.Errorf("%w: exp %s is more than %v after now (%s)", ErrTokenLifetime,
			exp.UTC().Format(time.RFC3339), maxLifetime, now.UTC().Format(time.RFC3339))
	}
	iat, err := claims.GetIssuedAt()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrTokenClaims, err) // unreachable after the parser's checks
	}
	if iat != nil && exp.Sub(iat.Time) > maxLifetime {
		return fmt.Errorf("%w: exp is %v after iat, more than %v", ErrTokenLifetime, exp.Sub(iat.Time), maxLifetime)
	}
	return nil
}

// VerifyHS256 verifies token with key as of now, with the default maximum
// lifetime and leeway: JWTVerifier{Key: key}.Verify(token, now).
func VerifyHS256(token string, key []byte, now time.Time) (map[string]any, error) {
	return JWTVerifier{Key: key}.Verify(token, now)
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
