package grip

import (
	"reflect"
	"testing"
)

func TestUnescapeCString(t *testing.T) {
	tests := []struct {
		in   string
		want string
		ok   bool
	}{
		{``, "", true},
		{`plain`, "plain", true},
		{`a\\b`, `a\b`, true},
		{`\r\n`, "\r\n", true},
		{`\x00\xfF\x41`, "\x00\xffA", true},
		{`\t\"x`, "x", true}, // unknown escapes vanish, as in Pushpin
		{`x\`, "", false},
		{`\x`, "", false},
		{`\x4`, "", false},
		{`\xg0`, "", false},
		{`\x0g`, "", false},
	}
	for _, tt := range tests {
		got, ok := unescapeCString(tt.in)
		if ok != tt.ok || (ok && string(got) != tt.want) {
			t.Errorf("unescapeCString(%q) = %q, %v", tt.in, got, ok)
		}
	}
}

func TestDecodeBase64(t *testing.T) {
	tests := []struct {
		in   string
		want []byte
		ok   bool
	}{
		{"", []byte{}, true},
		{"aGk=", []byte("hi"), true},
		{"aGk", []byte("hi"), true},
		{"aG\nk=", []byte("hi"), true},
		{"+/8=", []byte{0xfb, 0xff}, true},
		{"-_8", []byte{0xfb, 0xff}, true},
		{"a", nil, false},
		{"a*b=", nil, false},
	}
	for _, tt := range tests {
		got, ok := decodeBase64(tt.in)
		if ok != tt.ok || (ok && string(got) != string(tt.want)) {
			t.Errorf("decodeBase64(%q) = %v, %v", tt.in, got, ok)
		}
	}
}

func TestDecodeKeepAliveData(t *testing.T) {
	tests := []struct {
		val, format, want, reason string
	}{
		{`a\n`, "", `a\n`, ""},
		{`a\n`, "raw", `a\n`, ""},
		{`a\n`, "cstring", "a\n", ""},
		{"YQo=", "base64", "a\n", ""},
		{`a\`, "cstring", "", "failed to parse cstring format"},
		{"*", "base64", "", "failed to parse base64 format"},
		{"a", "RAW", "", "no such format 'RAW'"},
	}
	for _, tt := range tests {
		got, reason := decodeKeepAliveData(tt.val, tt.format)
		if reason != tt.reason || (reason == "" && string(got) != tt.want) {
			t.Errorf("decodeKeepAliveData(%q, %q) = %q, %q", tt.val, tt.format, got, reason)
		}
	}
}

func TestSplitList(t *testing.T) {
	tests := []struct {
		in    string
		angle bool
		want  []string
		ok    bool
	}{
		{"", false, nil, true},
		{"a, b ,,c,", false, []string{"a", "b", "c"}, true},
		{`a; x="1,2", b`, false, []string{`a; x="1,2"`, "b"}, true},
		{`a; x="q\",", b`, false, []string{`a; x="q\","`, "b"}, true},
		{`<u?a,b>; rel=next, <v>`, true, []string{"<u?a,b>; rel=next", "<v>"}, true},
		{`<u?a,b>`, false, []string{"<u?a", "b>"}, true},
		{`<u"a,b>, c`, true, []string{`<u"a,b>`, "c"}, true},
		{`a="x`, false, nil, false},
		{`a="x\`, false, nil, false},
	}
	for _, tt := range tests {
		got, ok := splitList(nil, tt.in, tt.angle)
		if ok != tt.ok || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("splitList(%q, %v) = %q, %v", tt.in, tt.angle, got, ok)
		}
	}
}

func TestParseParams(t *testing.T) {
	tests := []struct {
		in   string
		want []param
		ok   bool
	}{
		{"", nil, true},
		{" a = 1 ; b ;c=", []param{{"a", "1"}, {"b", ""}, {"c", ""}}, true},
		{`a="x;y" junk; b=2`, []param{{"a", "x;y"}, {"b", "2"}}, true},
		{`a= "q\"\\"`, []param{{"a", `q"\`}}, true},
		{`;;=v; a`, []param{{"a", ""}}, true},
		{`a="x`, nil, false},
		{`a="x\`, nil, false},
	}
	for _, tt := range tests {
		got, ok := parseParams(nil, tt.in)
		if ok != tt.ok || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseParams(%q) = %q, %v", tt.in, got, ok)
		}
	}
}
