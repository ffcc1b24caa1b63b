package purge

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Request is the body of POST /purge/ and the "purge" part of
// /purge-publish/.
type Request struct {
	// Keys are surrogate keys (the origin's Surrogate-Key header values).
	Keys []string `json:"keys"`
	// URLs are scheme://host/path?query, as clients requested them.
	URLs []string `json:"urls"`
	// Soft is true unless given false: soft purges leave entries stale
	// (revalidated before use, still served while the origin is down);
	// hard purges remove them.
	Soft *bool `json:"soft"`
}

// Targets lists the request's purges.
func (r *Request) Targets() []Target {
	out := make([]Target, 0, len(r.Keys)+len(r.URLs))
	for _, k := range r.Keys {
		out = append(out, Target{Key: k})
	}
	for _, u := range r.URLs {
		out = append(out, Target{URL: u})
	}
	return out
}

// IsSoft reports whether the purges are soft (the default).
func (r *Request) IsSoft() bool { return r.Soft == nil || *r.Soft }

// PurgePublish is the body of POST /purge-publish/: purges and Pushpin
// publish items in one call.
type PurgePublish struct {
	Purge Request         `json:"purge"`
	Items json.RawMessage `json:"items"`
}

// ErrEmpty is returned for a request that names nothing to do.
var ErrEmpty = errors.New("nothing to purge or publish")

// decodeStrict decodes JSON rejecting unknown fields and trailing data.
func decodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("invalid JSON body: %w", err)
	}
	// Not dec.More: it is false before a stray '}' or ']', and a body
	// with one is not JSON, which the tier will not carry.
	if rest := bytes.Trim(body[dec.InputOffset():], " \t\r\n"); len(rest) > 0 {
		return errors.New("invalid JSON body: data after the object")
	}
	return nil
}

// ParsePurge reads a /purge/ request: a JSON body, Fastly's shape (the
// keys in a Surrogate-Key request header, space-separated), or both.
func ParsePurge(body []byte, surrogateKeyHeader string) (*Request, error) {
	r := &Request{}
	if len(bytes.TrimSpace(body)) > 0 {
		if err := decodeStrict(body, r); err != nil {
			return nil, err
		}
	}
	r.Keys = append(r.Keys, strings.Fields(surrogateKeyHeader)...)
	if err := r.check(); err != nil {
		return nil, err
	}
	if len(r.Keys)+len(r.URLs) == 0 {
		return nil, ErrEmpty
	}
	return r, nil
}

// ParsePurgePublish reads a /purge-publish/ body. Items, if any, are
// returned as the JSON of a Pushpin publish body ({"items": [...]}) for the
// publish parser.
func ParsePurgePublish(body []byte) (*Request, []byte, error) {
	var pp PurgePublish
	if err := decodeStrict(body, &pp); err != nil {
		return nil, nil, err
	}
	if err := pp.Purge.check(); err != nil {
		return nil, nil, err
	}
	items := bytes.TrimSpace(pp.Items)
	if len(items) == 0 || bytes.Equal(items, []byte("null")) {
		items = nil
	}
	if len(pp.Purge.Keys)+len(pp.Purge.URLs) == 0 && items == nil {
		return nil, nil, ErrEmpty
	}
	var publish []byte
	if items != nil {
		publish = append(append([]byte(`{"items":`), items...), '}')
	}
	return &pp.Purge, publish, nil
}

// maxTargets bounds one request's purges.
const maxTargets = 256

func (r *Request) check() error {
	if n := len(r.Keys) + len(r.URLs); n > maxTargets {
		return fmt.Errorf("%d purges in one request, at most %d", n, maxTargets)
	}
	for _, k := range r.Keys {
		// Not UTF-8: the tier carries keys in JSON, which would turn the
		// bytes into U+FFFD, so peers would purge another key.
		if strings.TrimSpace(k) == "" || strings.ContainsAny(k, " \t\r\n") || !utf8.ValidString(k) {
			return fmt.Errorf("invalid surrogate key %q", k)
		}
	}
	for _, u := range r.URLs {
		if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
			return fmt.Errorf("invalid URL %q: want http://host/path or https://host/path", u)
		}
	}
	return nil
}

// Response is the answer to /purge/ and /purge-publish/.
type Response struct {
	// Published is how many items were published.
	Published int `json:"published"`
	// Purged lists the purges that ran now.
	Purged []Outcome `json:"purged"`
	// Deferred lists the purges that will run at their At, folded with
	// others of the same target.
	Deferred []Outcome `json:"deferred"`
}

// Add records an outcome.
func (r *Response) Add(o Outcome) {
	if o.Ran {
		r.Purged = append(r.Purged, o)
		return
	}
	r.Deferred = append(r.Deferred, o)
}
