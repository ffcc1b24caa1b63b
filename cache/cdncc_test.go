package cache

import "testing"

// TestCDNCacheControlReplacesCacheControl: a CDN obeys CDN-Cache-Control
// (RFC 9213) instead of Cache-Control: its private and no-store keep an
// answer out even when Cache-Control allows it, and its max-age stores
// one that Cache-Control keeps out of other caches.
func TestCDNCacheControlReplacesCacheControl(t *testing.T) {
	for _, tc := range []struct {
		headers []string
		stored  bool
	}{
		{[]string{"Cache-Control", "max-age=600", "CDN-Cache-Control", "private"}, false},
		{[]string{"Cache-Control", "max-age=600", "CDN-Cache-Control", "no-store"}, false},
		{[]string{"Cache-Control", "no-store", "CDN-Cache-Control", "max-age=600"}, true},
		{[]string{"Cache-Control", "max-age=600", "CDN-Cache-Control", "max-age=0"}, true},
		{[]string{"Cache-Control", "max-age=600"}, true},
		// Invalid CDN-Cache-Control is ignored: Cache-Control rules.
		{[]string{"Cache-Control", "no-store", "CDN-Cache-Control", "max-age=10000, &&&&&"}, false},
		{[]string{"Cache-Control", "no-store", "CDN-Cache-Control", `max-age="10000"`}, false},
		{[]string{"Cache-Control", "max-age=600", "CDN-Cache-Control", "Max-Age=0"}, true},
	} {
		c, _ := newCache(t)
		o := &origin{}
		o.set("x", tc.headers...)
		get(t, c, o, greq("http://h/cdn"))
		_, res := get(t, c, o, greq("http://h/cdn"))
		if got := res == Hit; got != tc.stored && tc.headers[len(tc.headers)-1] != "max-age=0" {
			t.Errorf("%v: second get %v, want stored=%v", tc.headers, res, tc.stored)
		}
		if tc.headers[len(tc.headers)-1] == "max-age=0" && res == Hit {
			t.Errorf("%v: a CDN-Cache-Control max-age=0 answer was served fresh", tc.headers)
		}
	}
}
