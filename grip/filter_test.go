package grip

import (
	"strings"
	"testing"
)

func TestFilterMessage(t *testing.T) {
	alice := map[string]string{"user": "alice"}
	tests := []struct {
		name    string
		filters []string
		fc      FilterContext
		content string
		want    string
		drop    bool
		err     string
	}{
		{"no filters", nil, FilterContext{}, "a %% b", "a %% b", false, ""},
		{"skip-self own message", []string{"skip-self"}, FilterContext{SubMeta: alice, PubMeta: map[string]string{"sender": "alice"}}, "x", "", true, ""},
		{"skip-self other sender", []string{"skip-self"}, FilterContext{SubMeta: alice, PubMeta: map[string]string{"sender": "bob"}}, "x", "x", false, ""},
		{"skip-self no user", []string{"skip-self"}, FilterContext{PubMeta: map[string]string{"sender": ""}}, "x", "x", false, ""},
		{"skip-users listed", []string{"skip-users"}, FilterContext{SubMeta: alice, PubMeta: map[string]string{"skip_users": "bob, alice"}}, "x", "", true, ""},
		{"skip-users not listed", []string{"skip-users"}, FilterContext{SubMeta: alice, PubMeta: map[string]string{"skip_users": "bob,carol"}}, "x", "x", false, ""},
		{"require-sub missing", []string{"require-sub"}, FilterContext{PubMeta: map[string]string{"require_sub": "b"}, LastIDs: map[string]string{"a": ""}}, "x", "", true, ""},
		{"require-sub present", []string{"require-sub"}, FilterContext{PubMeta: map[string]string{"require_sub": "b"}, LastIDs: map[string]string{"a": "", "b": ""}}, "x", "x", false, ""},
		{"var-subst", []string{"var-subst"}, FilterContext{SubMeta: alice}, "hi %(user)s, 100%%", "hi alice, 100%", false, ""},
		{"var-subst missing", []string{"var-subst"}, FilterContext{SubMeta: alice}, "hi %(nobody)s", "", false, "no such variable 'nobody'"},
		{"skip-self then var-subst", []string{"skip-self", "var-subst"}, FilterContext{SubMeta: alice, PubMeta: map[string]string{"sender": "bob"}}, "hello %(user)s", "hello alice", false, ""},
		{"build-id", []string{"build-id"}, FilterContext{SubMeta: map[string]string{"id_format": "time:%(events-time)s"}, LastIDs: map[string]string{"events-time": "42", "user-x": ""}}, "id: %I\ndata: 5%%\n\n", "id: time:42\ndata: 5%\n\n", false, ""},
		{"build-id hex", []string{"build-id"}, FilterContext{SubMeta: map[string]string{"id_format": "%(c)s", "id_encoding": "hex"}, LastIDs: map[string]string{"c": "C3PO"}}, "%I %(R2D2)I", "4333504f 52324432", false, ""},
		{"build-id no format", []string{"build-id"}, FilterContext{LastIDs: map[string]string{"c": "1"}}, "%I", "", false, "no sub meta 'id_format'"},
		{"build-id no ids", []string{"build-id"}, FilterContext{SubMeta: map[string]string{"id_format": "x"}}, "%I", "", false, "no default ID"},
		{"build-id bad directive", []string{"build-id"}, FilterContext{SubMeta: map[string]string{"id_format": "x"}, LastIDs: map[string]string{"c": "1"}}, "50% off", "", false, "unknown directive ' '"},
		{"build-id plain", []string{"build-id"}, FilterContext{}, "no directives", "no directives", false, ""},
		{"unknown filter ignored", []string{"http-check"}, FilterContext{}, "x", "x", false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, drop, err := FilterMessage(tc.filters, &tc.fc, []byte(tc.content))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || drop != tc.drop || string(out) != tc.want {
				t.Fatalf("got (%q, %v, %v), want (%q, %v)", out, drop, err, tc.want, tc.drop)
			}
		})
	}
}

// TestRenderFormat uses Pushpin's idformat test vectors.
func TestRenderFormat(t *testing.T) {
	vars := map[string]string{"name": "Alice", `food\fruit(type)`: "apples"}
	got, err := renderFormat([]byte(`My name is %(name)s and I eat %(food\\fruit(type\))s 10%% of the time.`),
		func(k byte, arg []byte, has bool) ([]byte, error) { return lookupVar(vars, k, arg, has) })
	if err != nil || string(got) != "My name is Alice and I eat apples 10% of the time." {
		t.Fatalf("got %q, %v", got, err)
	}
	for _, bad := range []string{"%", "%(", "%(x", "%(x)", `%(x\`, "%1"} {
		if _, err := renderFormat([]byte(bad), func(byte, []byte, bool) ([]byte, error) { return nil, nil }); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestFilterResponse(t *testing.T) {
	fc := &FilterContext{SubMeta: map[string]string{"id_format": "a:%(a)s"}, LastIDs: map[string]string{"a": "7"}}
	got, err := FilterResponse([]string{"skip-users", "build-id"}, fc, []byte("id: a:7\ndata: 1%%\n\n"))
	if err != nil || string(got) != "id: a:7\ndata: 1%\n\n" {
		t.Fatalf("got %q, %v", got, err)
	}
	got, err = FilterResponse([]string{"skip-users", "var-subst"}, fc, []byte("1%%"))
	if err != nil || string(got) != "1%%" {
		t.Fatalf("var-subst applied to a response: %q, %v", got, err)
	}
}

func TestContentFiltersMatch(t *testing.T) {
	sub := []string{"skip-users", "build-id"}
	if !ContentFiltersMatch(nil, sub) || !ContentFiltersMatch([]string{"build-id"}, sub) {
		t.Fatal("matching content filters refused")
	}
	if ContentFiltersMatch([]string{}, sub) || ContentFiltersMatch([]string{"build-id"}, []string{"skip-users"}) {
		t.Fatal("mismatched content filters accepted")
	}
}

func FuzzFilterMessage(f *testing.F) {
	f.Add("id: %I\ndata: %(user)s 5%%", "build-id,var-subst", "u:%(c)s")
	f.Add("%(a\\)b)I", "build-id", "%(c)s")
	f.Fuzz(func(t *testing.T, content, filters, idFormat string) {
		fc := &FilterContext{SubMeta: map[string]string{"user": "u", "id_format": idFormat},
			PubMeta: map[string]string{"sender": "s"}, LastIDs: map[string]string{"c": "1"}}
		out, drop, err := FilterMessage(strings.Split(filters, ","), fc, []byte(content))
		if err == nil && !drop && !strings.Contains(content, "%") && string(out) != content {
			t.Fatalf("content without directives changed: %q → %q", content, out)
		}
	})
}
