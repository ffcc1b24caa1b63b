package cache

import "testing"

// TestVaryNormalisesListsAndLanguageCase: a Vary'd header's value is
// compared without the whitespace around a list's commas, and
// Accept-Language without case; order and content still count.
func TestVaryNormalisesListsAndLanguageCase(t *testing.T) {
	for _, tc := range []struct {
		name, stored, asked string
		hit                 bool
	}{
		{"Foo", "1,2", " 1, 2 ", true},
		{"Foo", "1,2", "1 2", false},
		{"Foo", "a b", "a  b", true},
		{"Foo", "A", "a", false},
		{"Accept-Language", "en, de", "eN ,De", true},
		{"Accept-Language", "en, de", " en ,   de", true},
		{"Accept-Language", "en, de", "de, en", false},
	} {
		c, _ := newCache(t)
		o := &origin{}
		o.set("x", "Cache-Control", "max-age=60", "Vary", tc.name)
		get(t, c, o, &Request{Method: "GET", URL: "http://h/v", Header: headerMap(map[string]string{tc.name: tc.stored})})
		_, res := get(t, c, o, &Request{Method: "GET", URL: "http://h/v", Header: headerMap(map[string]string{tc.name: tc.asked})})
		if (res == Hit) != tc.hit {
			t.Errorf("%s %q then %q: %v, want hit=%v", tc.name, tc.stored, tc.asked, res, tc.hit)
		}
	}
}

// TestMustUnderstand: with must-understand, a response with a status
// code the cache knows is stored despite no-store; one with an unknown
// status code is not.
func TestMustUnderstand(t *testing.T) {
	for _, tc := range []struct {
		status int
		stored bool
	}{{200, true}, {404, true}, {299, false}} {
		c, _ := newCache(t)
		o := &origin{}
		o.set("x", "Cache-Control", "max-age=60, no-store, must-understand")
		o.resp.Status = tc.status
		get(t, c, o, greq("http://h/mu"))
		if _, res := get(t, c, o, greq("http://h/mu")); (res == Hit) != tc.stored {
			t.Errorf("%d: %v, want stored=%v", tc.status, res, tc.stored)
		}
	}
}
