package purge

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// checkOp checks what a decoding accepted: the kind's shape, at most
// maxTargets well-formed targets, and something to do.
func checkOp(t *testing.T, op *Op, kind Kind) {
	t.Helper()
	if op.Kind != kind || (op.Purge == nil) != (kind == KindPublish) || (kind == KindPurge && op.Items != nil) {
		t.Fatalf("%s decoded as %+v", kind, op)
	}
	if op.Purge == nil {
		return
	}
	targets := op.Purge.Targets()
	if len(targets) > maxTargets || (len(targets) == 0 && (kind == KindPurge || op.Items == nil)) {
		t.Fatalf("%s with %d targets, %d items", kind, len(targets), len(op.Items))
	}
	for _, tg := range targets {
		if (tg.Key == "") == (tg.URL == "") || strings.ContainsAny(tg.Key, " \t\r\n") ||
			tg.URL != "" && !strings.HasPrefix(tg.URL, "http://") && !strings.HasPrefix(tg.URL, "https://") {
			t.Fatalf("bad target %+v", tg)
		}
	}
}

// FuzzDecode: a publish, purge or purge-publish request either fails or
// gives an Op whose wire form (what the tier carries) is JSON and decodes,
// on a peer, to the same kind, targets, softness and items; the same
// holds for its purge part (what the tier's log replays).
func FuzzDecode(f *testing.F) {
	for _, s := range []struct {
		kind          byte
		body, surrKey string
	}{
		{0, `{"items":[{"channel":"test","formats":{"http-stream":{"content":"hello there\n"}}}]}`, ""},
		{1, `{"keys":["article-42","home"],"urls":["https://example.com/a?x=1"],"soft":false}`, ""},
		{1, ``, "article-42 home  list\tx"},
		{1, `{"keys":["a"]}`, "b"},
		{1, `{"urls":["ftp://x"]}`, ""},
		{1, `{"keys":["a"],"extra":1}`, ""},
		{2, `{"purge":{"keys":["article-42"]},"items":[{"channel":"article-42","formats":{"http-response":{"body":"v2\n"}}}]}`, ""},
		{2, `{"purge":{"urls":["http://example.com/live"],"soft":true}}`, ""},
		{2, `{"items":null}`, ""},
		{2, `{"purge":{"keys":["a"]}} {}`, ""},
		{3, `{}`, ""},
	} {
		f.Add(s.kind, []byte(s.body), s.surrKey)
	}
	f.Fuzz(func(t *testing.T, k byte, body []byte, surrogateKey string) {
		kinds := []Kind{KindPublish, KindPurge, KindPurgePublish, "nope"}
		kind := kinds[int(k)%len(kinds)]
		var op *Op
		var err error
		if kind == KindPurge {
			op, err = DecodePurge(body, surrogateKey)
		} else {
			op, err = Decode(kind, body)
		}
		if err != nil {
			if op != nil || err.Error() == "" {
				t.Fatalf("error %v with %+v", err, op)
			}
			return
		}
		if kind == "nope" {
			t.Fatalf("unknown kind decoded: %+v", op)
		}
		checkOp(t, op, kind)
		sameOnPeer(t, op)
		if p, ok := op.PurgePart(); ok {
			if p.Kind != KindPurge || p.Items != nil || !slices.Equal(p.Purge.Targets(), op.Purge.Targets()) || p.Purge.IsSoft() != op.Purge.IsSoft() {
				t.Fatalf("purge part of %+v: %+v", op, p)
			}
			sameOnPeer(t, p)
		} else if op.Purge != nil && len(op.Purge.Targets()) > 0 {
			t.Fatalf("no purge part for %+v", op.Purge)
		}
	})
}

// sameOnPeer decodes op's wire form as a peer does and compares.
func sameOnPeer(t *testing.T, op *Op) {
	t.Helper()
	wire := op.Encode()
	if !json.Valid(wire) {
		t.Fatalf("%s: wire form %q is not JSON: the tier would not carry it", op.Kind, wire)
	}
	again, err := Decode(op.Kind, wire)
	if err != nil {
		t.Fatalf("%s: wire form %q does not decode: %v", op.Kind, wire, err)
	}
	if again.Kind != op.Kind || len(again.Items) != len(op.Items) || !reflect.DeepEqual(again.Items, op.Items) {
		t.Fatalf("%s: items differ on a peer: %+v vs %+v", op.Kind, again.Items, op.Items)
	}
	if op.Purge != nil && (!slices.Equal(again.Purge.Targets(), op.Purge.Targets()) || again.Purge.IsSoft() != op.Purge.IsSoft()) {
		t.Fatalf("%s: purges differ on a peer: %+v vs %+v (wire %q)", op.Kind, again.Purge, op.Purge, wire)
	}
}

// TestPurgeKeyNotUTF8IsRefused: a Surrogate-Key header that is not UTF-8
// (found by FuzzDecode) was purged here as sent and on the tier's other
// members as U+FFFD, the form JSON gave it; such keys are refused.
func TestPurgeKeyNotUTF8IsRefused(t *testing.T) {
	for _, hdr := range []string{"\xfc", "ok \xe2\x82"} {
		if op, err := DecodePurge(nil, hdr); err == nil || !strings.Contains(err.Error(), "invalid surrogate key") {
			t.Errorf("Surrogate-Key %q: %+v, %v", hdr, op, err)
		}
	}
	if op, err := DecodePurge(nil, "caf\u00e9"); err != nil || op.Purge.Keys[0] != "caf\u00e9" {
		t.Errorf("UTF-8 key: %+v, %v", op, err)
	}
}

// TestDataAfterTheObjectIsRefused: a purge-publish body with a stray '}'
// or ']' after the object was accepted (json.Decoder.More is false before
// them) though it is not JSON, so the tier refused to forward it and the
// other members never purged; every body with data after the object is
// refused.
func TestDataAfterTheObjectIsRefused(t *testing.T) {
	for _, tail := range []string{"}", "]", " ]", "x", "{}", "\n}"} {
		body := `{"purge":{"keys":["a"]}}` + tail
		if op, err := DecodePurgePublish([]byte(body)); err == nil || !strings.Contains(err.Error(), "data after the object") {
			t.Errorf("%q: %+v, %v", body, op, err)
		}
		if op, err := DecodePurge([]byte(`{"keys":["a"]}`+tail), ""); err == nil {
			t.Errorf("purge %q: %+v", body, op)
		}
	}
	if _, err := DecodePurgePublish([]byte("{\"purge\":{\"keys\":[\"a\"]}} \r\n\t")); err != nil {
		t.Errorf("trailing whitespace: %v", err)
	}
}
