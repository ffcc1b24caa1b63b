package grip

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// headersFromText turns "Name: value" lines into headers.
func headersFromText(s string) []Header {
	var out []Header
	for line := range strings.SplitSeq(s, "\n") {
		name, value, _ := strings.Cut(line, ":")
		out = append(out, Header{Name: name, Value: strings.TrimSpace(value)})
	}
	return out
}

func FuzzParseInstruct(f *testing.F) {
	seeds := []struct {
		headers string
		status  int
		body    string
	}{
		{"Grip-Hold: stream\nGrip-Channel: updates; prev-id=3\nGrip-Keep-Alive: :\\n\\n; format=cstring; timeout=20", 200, "{}"},
		{"Grip-Hold: response\nGrip-Channel: a, b; filter=skip-self; filter=\"x,y\"\nGrip-Timeout: 120\nGrip-Set-Meta: user=\"a b\"", 200, ""},
		{"Grip-Link: </s?after=1,2>; rel=next; timeout=30, </g>; rel=gone\nGrip-Status: 404 Nope\nGrip-Expose-Headers: X-A", 200, ""},
		{"Grip-Keep-Alive: cGluZwo=; format=base64; mode=interval", 200, ""},
		{"Content-Type: application/grip-instruct", 200, `{"hold":{"mode":"stream","channels":[{"name":"c","filters":["f"]}],"keep-alive":{"content-bin":"AA==","timeout":0}},"response":{"code":202,"headers":[["a","b"]],"body":"x"}}`},
		{"Content-Type: application/grip-instruct\nGrip-Status: 201", 200, `{"response":{"headers":{"X":"y"},"body-bin":"aGk="}}`},
		{"Content-Type: application/grip-instruct", 500, "{}"},
		{"Grip-Hold: poll", 200, ""},
	}
	for _, s := range seeds {
		f.Add(s.headers, s.status, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, headerText string, status int, body []byte) {
		headers := headersFromText(headerText)
		in, err := ParseInstruct(headers, status, body)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Reason == "" || in != nil {
				t.Fatalf("bad error result: %v (%T), %+v", err, err, in)
			}
			return
		}
		checkInstruct(t, in, isGripInstruct(headers))
		again, err := ParseInstruct(headers, status, body)
		if err != nil || !reflect.DeepEqual(in, again) {
			t.Fatalf("not deterministic: %+v vs %+v, %v", in, again, err)
		}
	})
}

func checkInstruct(t *testing.T, in *Instruct, gripInstruct bool) {
	t.Helper()
	if in.Hold < HoldNone || in.Hold > HoldStream || in.Timeout < MinTimeout {
		t.Fatalf("bad hold/timeout: %+v", in)
	}
	for _, c := range in.Channels {
		if c.Name == "" || len(c.Filters) > MaxChannelFilters {
			t.Fatalf("bad channel %+v", c)
		}
	}
	if ka := in.KeepAlive; ka != nil && (len(ka.Data) == 0 || ka.Timeout < minKeepAliveTimeout || ka.Mode > KeepAliveInterval) {
		t.Fatalf("bad keep-alive %+v", ka)
	}
	if in.Status != 0 && !validStatus(in.Status) {
		t.Fatalf("bad status %d", in.Status)
	}
	if l := in.NextLink; l != nil && (l.URI == "" || l.Timeout < 0) {
		t.Fatalf("bad next link %+v", l)
	}
	if (in.Response != nil) != gripInstruct {
		t.Fatalf("Response = %+v with grip-instruct %v", in.Response, gripInstruct)
	}
	if r := in.Response; r != nil && (!validStatus(r.Code) || r.Reason == "") {
		t.Fatalf("bad response %+v", r)
	}
}

func FuzzParsePublish(f *testing.F) {
	for _, s := range []string{
		`{"items":[{"channel":"updates","formats":{"http-stream":{"content":"text\n"},"ws-message":{"content":"text"}}}]}`,
		`{"items":[{"channel":"c","id":"2","prev-id":"1","no-seq":true,"meta":{"sender":"a"},"size":3,"formats":{"http-response":{"code":409,"reason":"R","headers":{"A":"b"},"body-bin":"aGk=","content-filters":[]}}}]}`,
		`{"items":[{"channel":"c","http-response":{"headers":[["A","1"]],"body-patch":[{"op":"add","path":"/a","value":1}]}}]}`,
		`{"items":[{"channel":"c","formats":{"ws-message":{"action":"close","code":4001,"reason":"bye"},"http-stream":{"action":"close"}}}]}`,
		`{"items":[{"channel":"c","formats":{"ws-message":{"type":"ping"},"http-response":{"action":"hint"}}}]}`,
		`{"items":[{"channel":"c","formats":{"ws-message":{"content-bin":"AAEC"}}}]}`,
		`{"items":[{"channel":"c"}]}`,
		`{"items":{}}`,
		`[]`,
		``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := ParsePublish(body)
		if err != nil {
			var pe *PublishError
			if !errors.As(err, &pe) || req != nil ||
				!(pe.Reason == "Body is not valid JSON." || strings.HasPrefix(pe.Reason, "Invalid format")) {
				t.Fatalf("bad error result: %v (%T), %+v", err, err, req)
			}
			return
		}
		for _, it := range req.Items {
			checkItem(t, it)
		}
		// Encoding the items back to JSON and parsing again gives them back.
		again, err := ParsePublish(encodePublish(req))
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		if !reflect.DeepEqual(normalizeItems(req.Items), normalizeItems(again.Items)) {
			t.Fatalf("round trip:\n%+v\n%+v", req.Items, again.Items)
		}
	})
}

func checkItem(t *testing.T, it Item) {
	t.Helper()
	if it.Channel == "" || it.Size < 0 {
		t.Fatalf("bad item %+v", it)
	}
	if r := it.HTTPResponse; r != nil && r.Action == ActionSend &&
		(!validStatus(r.Code) || r.Reason == "" || (r.Body == nil) == (r.BodyPatch == nil)) {
		t.Fatalf("bad http-response %+v", r)
	}
	if s := it.HTTPStream; s != nil && s.Action == ActionSend && s.Content == nil {
		t.Fatalf("bad http-stream %+v", s)
	}
	if w := it.WSMessage; w != nil && (w.Code < 0 || w.Code > maxCloseCode) {
		t.Fatalf("bad ws-message %+v", w)
	}
}

// encodePublish writes items in Pushpin's JSON format (test helper).
func encodePublish(req *PublishRequest) []byte {
	items := make([]any, 0, len(req.Items))
	for _, it := range req.Items {
		items = append(items, encodeItem(it))
	}
	b, _ := json.Marshal(map[string]any{"items": items})
	return b
}

func encodeItem(it Item) map[string]any {
	formats := map[string]any{}
	if s := it.HTTPStream; s != nil {
		formats["http-stream"] = encodeFormat(s.Action, s.Content, s.ContentFilters)
	}
	if r := it.HTTPResponse; r != nil {
		m := encodeFormat(r.Action, r.Body, r.ContentFilters)
		if r.Action == ActionSend {
			m["code"], m["reason"], m["headers"] = r.Code, r.Reason, encodeHeaders(r.Headers)
			if r.BodyPatch != nil {
				m["body-patch"] = json.RawMessage(r.BodyPatch)
			}
			if r.Body != nil {
				m["body-bin"] = m["content-bin"]
			}
			delete(m, "content-bin")
		}
		formats["http-response"] = m
	}
	if w := it.WSMessage; w != nil {
		m := encodeFormat(w.Action, w.Content, w.ContentFilters)
		m["type"], m["code"], m["reason"] = w.Type.String(), w.Code, w.Reason
		formats["ws-message"] = m
	}
	m := map[string]any{"channel": it.Channel, "id": it.ID, "prev-id": it.PrevID,
		"no-seq": it.NoSeq, "size": it.Size, "formats": formats}
	if it.Meta != nil {
		m["meta"] = it.Meta
	}
	if len(formats) == 0 {
		formats["unknown"] = 1
	}
	return m
}

func encodeFormat(a Action, content []byte, filters []string) map[string]any {
	m := map[string]any{"action": a.String()}
	if content != nil {
		m["content-bin"] = base64.StdEncoding.EncodeToString(content)
	}
	if filters != nil {
		m["content-filters"] = filters
	}
	return m
}

func encodeHeaders(hs []Header) [][]string {
	out := make([][]string, 0, len(hs))
	for _, h := range hs {
		out = append(out, []string{h.Name, h.Value})
	}
	return out
}

// normalizeItems makes empty and nil slices and maps compare equal, and
// canonicalizes BodyPatch JSON.
func normalizeItems(items []Item) []Item {
	out := make([]Item, len(items))
	for i, it := range items {
		if len(it.Meta) == 0 {
			it.Meta = nil
		}
		if r := it.HTTPResponse; r != nil {
			c := *r
			if len(c.Headers) == 0 {
				c.Headers = nil
			}
			if c.BodyPatch != nil {
				var v any
				_ = json.Unmarshal(c.BodyPatch, &v)
				c.BodyPatch = rawJSON(v)
			}
			it.HTTPResponse = &c
		}
		out[i] = it
	}
	return out
}

func FuzzParseWSEvents(f *testing.F) {
	for _, s := range []string{
		"OPEN\r\nTEXT 2a\r\nc:{\"type\":\"subscribe\",\"channel\":\"updates\"}\r\n",
		"TEXT 0\r\n\r\nPING\r\nPONG 1\r\nx\r\nCLOSE 2\r\n\x03\xe8\r\nDISCONNECT\r\n",
		"BINARY A\r\n0123456789\r\n",
		"TEXT 5\r\nab\r\n",
		"OPEN",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		evs, err := ParseWSEvents(body)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || evs != nil {
				t.Fatalf("bad error result: %v (%T), %+v", err, err, evs)
			}
			return
		}
		enc := AppendWSEvents(nil, evs...)
		again, err := ParseWSEvents(enc)
		if err != nil || !wsEventsEqual(evs, again) {
			t.Fatalf("round trip of %q: %+v vs %+v, %v", body, evs, again, err)
		}
		if enc2 := AppendWSEvents(nil, again...); !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding not canonical: %q vs %q", enc, enc2)
		}
	})
}

func FuzzParseControlMessage(f *testing.F) {
	for _, s := range []string{
		`{"type":"subscribe","channel":"updates","filters":["skip-self"]}`,
		`{"type":"unsubscribe","channel":"c"}`,
		`{"type":"detach"}`,
		`{"type":"session","id":"s"}`,
		`{"type":"set-meta","name":"user","value":"a"}`,
		`{"type":"keep-alive","content-bin":"AA==","timeout":20,"mode":"interval"}`,
		`{"type":"send-delayed","content":"x","message-type":"pong","timeout":2}`,
		`{"type":"flush-delayed"}`,
		`{"type":"nope"}`,
		`[1]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseControlMessage(b)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || m != nil || pe.Reason == "" {
				t.Fatalf("bad error result: %v (%T), %+v", err, err, m)
			}
			return
		}
		checkControl(t, m)
	})
}

func checkControl(t *testing.T, m *ControlMessage) {
	t.Helper()
	if _, ok := controlParsers[m.Type]; !ok {
		t.Fatalf("unknown type %q", m.Type)
	}
	bad := m.HasContent != (m.Content != nil) || (!m.HasValue && m.Value != "")
	switch m.Type {
	case ControlSubscribe, ControlUnsubscribe:
		bad = bad || m.Channel == ""
	case ControlSetMeta:
		bad = bad || m.Name == ""
	case ControlKeepAlive, ControlSendDelayed:
		bad = bad || m.Timeout <= 0 || !strings.Contains(" text binary ping pong ", " "+m.MessageType+" ")
	}
	if bad {
		t.Fatalf("bad control message %+v", m)
	}
}

// jwtNow maps a fuzzed number to a time between 1970 and 9999, where
// now+1h neither overflows nor loses the hour in float64 exp claims.
func jwtNow(n int64) time.Time {
	const maxSec = 253402300799 // 9999-12-31T23:59:59Z
	if n < 0 {
		n = -(n + 1)
	}
	return time.Unix(n%(maxSec+1), 0)
}

// tokenSignedWith reports, without VerifyHS256's code, whether token's
// third part is the HMAC-SHA256 of its first two under key (base64url,
// '=' padding tolerated, as JWS producers differ on it).
func tokenSignedWith(token string, key []byte) bool {
	i := strings.LastIndexByte(token, '.')
	if i < 0 {
		return false
	}
	sig, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(token[i+1:], "="))
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(token[:i]))
	return hmac.Equal(sig, mac.Sum(nil))
}

// checkVerified checks what VerifyHS256 accepted: three parts, an HS256
// header, the signature of key, and the time claims of now.
func checkVerified(t *testing.T, token string, key []byte, now time.Time, claims map[string]any) {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 || !tokenSignedWith(token, key) {
		t.Fatalf("accepted %q, not signed with key %q", token, key)
	}
	hdr, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[0], "="))
	var h map[string]any
	if err != nil || json.Unmarshal(hdr, &h) != nil || h["alg"] != "HS256" {
		t.Fatalf("accepted %q with header %q", token, hdr)
	}
	sec := float64(now.Unix())
	leeway := DefaultJWTLeeway.Seconds()
	exp, ok := claims["exp"].(float64)
	if !ok || !(sec < exp+leeway) || exp-sec > (DefaultJWTMaxLifetime+DefaultJWTLeeway).Seconds() {
		t.Fatalf("accepted %q at %d with exp %v (required, within the leeway and the max lifetime)", token, now.Unix(), claims["exp"])
	}
	if nbf, ok := claims["nbf"]; ok && sec+leeway < nbf.(float64) {
		t.Fatalf("accepted %q at %d before nbf %v", token, now.Unix(), nbf)
	}
}

// FuzzVerifyHS256: an arbitrary token is accepted only if it is signed
// with the key (checked with crypto/hmac directly), has an HS256 header
// and is valid at now; the same token is never accepted under another
// key; every refusal is one of the package's errors.
func FuzzVerifyHS256(f *testing.F) {
	f.Add(pushpinToken, []byte("changeme"), int64(1795329349-10))
	f.Add(pushpinToken, []byte("changeme"), int64(1795329349))
	f.Add(pushpinToken, []byte("changemf"), int64(1795329349-10))
	f.Fuzz(func(t *testing.T, token string, key []byte, nowSec int64) {
		now := jwtNow(nowSec)
		claims, err := VerifyHS256(token, key, now)
		if err != nil {
			jwtErrors := []error{ErrEmptyKey, ErrTokenMalformed, ErrTokenAlgorithm, ErrTokenSignature,
				ErrTokenExpired, ErrTokenNotYetValid, ErrTokenClaims, ErrTokenNoExpiry, ErrTokenLifetime}
			if !slices.ContainsFunc(jwtErrors, func(e error) bool { return errors.Is(err, e) }) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		checkVerified(t, token, key, now, claims)
		other := bytes.Clone(key)
		other[0] ^= 1 // another HMAC key (appending a NUL would not be one)
		if _, err := VerifyHS256(token, other, now); !errors.Is(err, ErrTokenSignature) {
			t.Fatalf("%q accepted under key %q and %q: %v", token, key, other, err)
		}
	})
}

// FuzzSignVerify: a token from Signer, and one SignHS256 makes of any
// JSON claims with a future exp, verify with the key and give the claims
// back; changing one byte of either part the signature covers makes it
// fail; a changed signature passes only if it still decodes to the MAC.
// ParseKey gives back any key written as "base64:...".
func FuzzSignVerify(f *testing.F) {
	f.Add("pushpin", []byte("changeme"), int64(1_700_000_000), []byte(`{"iss":"pushpin"}`), uint(10), byte('x'))
	f.Add("edgepush", []byte("\x00\x01\x02secret"), int64(0), []byte(`{"sub":"u1","aud":["a","b"],"n":1.5,"nbf":1}`), uint(200), byte('='))
	f.Add("", []byte("k"), int64(253402300799), []byte(`{}`), uint(0), byte('.'))
	f.Fuzz(func(t *testing.T, iss string, key []byte, nowSec int64, claimsJSON []byte, pos uint, val byte) {
		if len(key) == 0 {
			return
		}
		now := jwtNow(nowSec)
		if k, err := ParseKey(base64KeyPrefix + base64.StdEncoding.EncodeToString(key)); err != nil || !bytes.Equal(k, key) {
			t.Fatalf("ParseKey of base64 %q: %q, %v", key, k, err)
		}
		if iss != "" {
			tok := NewSigner(iss, key).Token(now)
			c, err := VerifyHS256(tok, key, now)
			if err != nil {
				t.Fatalf("Signer(%q) token %q at %v: %v", iss, tok, now, err)
			}
			checkVerified(t, tok, key, now, c)
			if c["exp"] != float64(now.Unix()+3600) || (utf8.ValidString(iss) && c["iss"] != iss) {
				t.Fatalf("Signer(%q) claims %v at %d", iss, c, now.Unix())
			}
		}
		var claims map[string]any
		if json.Unmarshal(claimsJSON, &claims) != nil || claims == nil {
			return
		}
		claims["exp"] = float64(now.Unix() + 1 + int64(pos%100000))
		if nbf, ok := claims["nbf"].(float64); !ok || nbf > float64(now.Unix()) {
			delete(claims, "nbf")
		}
		tok, err := SignHS256(claims, key)
		if err != nil {
			t.Fatal(err)
		}
		got, err := VerifyHS256(tok, key, now)
		if err != nil || !reflect.DeepEqual(got, claims) {
			t.Fatalf("sign/verify %v: %v, %v", claims, got, err)
		}
		// One byte changed.
		b := []byte(tok)
		i := int(pos % uint(len(b)))
		if b[i] == val {
			return
		}
		b[i] = val
		changed := string(b)
		_, err = VerifyHS256(changed, key, now)
		signedPart := strings.LastIndexByte(tok, '.')
		if err == nil && (i <= signedPart || !tokenSignedWith(changed, key)) {
			t.Fatalf("changed byte %d of %q to %q: still accepted", i, tok, val)
		}
	})
}

// quoteParam writes s as a quoted-string parameter value.
func quoteParam(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := range len(s) {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String()
}

// FuzzParseGripExtension: any Sec-WebSocket-Extensions value from an
// origin parses; grip is enabled only if the value names it, and a
// message-prefix written as a quoted string after other extensions comes
// back as written.
func FuzzParseGripExtension(f *testing.F) {
	for _, s := range []struct{ value, prefix string }{
		{"grip", ""},
		{"grip; message-prefix=\"\"", "m:"},
		{"permessage-deflate; client_max_window_bits, grip; message-prefix=\"x,y;\\\"z\"", "c:"},
		{"grip; message-prefix=\"unterminated", "\\"},
		{"Grip, grip; message-prefix=a", "\"; grip"},
	} {
		f.Add(s.value, s.prefix)
	}
	f.Fuzz(func(t *testing.T, value, prefix string) {
		enabled, got := ParseGripExtension(value)
		if !enabled && got != "" || enabled && !strings.Contains(value, "grip") {
			t.Fatalf("%q: %v %q", value, enabled, got)
		}
		ext := "permessage-deflate; server_no_context_takeover, grip; message-prefix=" + quoteParam(prefix) + "; x=\"a,b\""
		if enabled, got := ParseGripExtension(ext); !enabled || got != prefix {
			t.Fatalf("%q: %v %q, want prefix %q", ext, enabled, got, prefix)
		}
	})
}
