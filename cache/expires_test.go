package cache

import "testing"

// TestStrictExpiresAndAgeLists: an Expires that is not an exact
// HTTP-date (but for letter case and the day-name), or given twice,
// makes the response stale at once; an Age list counts by its first
// member.
func TestStrictExpiresAndAgeLists(t *testing.T) {
	for _, tc := range []struct {
		headers []string
		hit     bool
	}{
		{[]string{"Expires", "Thu, 18 Aug 2050 02:01:18 GMT"}, true},
		{[]string{"Expires", "Thu, 18  Aug  2050 02:01:18 GMT"}, false},
		{[]string{"Expires", "Thu, 18 Aug 2050 2:01:18 GMT"}, false},
		{[]string{"Expires", "Thu, 18 Aug 2050 02:01:18 GMT", "Expires", "Thu, 18 Aug 2050 02:01:18 GMT"}, false},
		{[]string{"Expires", "Thursday, 18-Aug-50 02:01:18 GMT"}, true},
		{[]string{"Expires", "Thu Aug 18 02:01:18 2050"}, true},
		{[]string{"Expires", "Thu Aug  8 02:01:18 2050"}, true}, // a Monday: the day-name is not checked
		{[]string{"Expires", "THU, 18 AUG 2050 02:01:18 gMT"}, true},
		{[]string{"Expires", "Thu, 18 Aug 2050 02:01:18 UTC"}, false},
		{[]string{"Expires", "Thursday, 18-Aug-50 02:01:18 UTC"}, false},
		{[]string{"Expires", "Thu, 18 Aug 2050 02:01:18 AEST"}, false},
		{[]string{"Expires", "Thu 18 Aug 2050 02:01:18 GMT"}, false},
		{[]string{"Expires", "Thu, 18 Aug 50 02:01:18 GMT"}, false},
		{[]string{"Expires", "Xyz, 18 Aug 2050 02:01:18 GMT"}, false},
		{[]string{"Cache-Control", "max-age=3600", "Age", "7200, 0"}, false},
		{[]string{"Cache-Control", "max-age=3600", "Age", "0, 7200"}, true},
	} {
		c, _ := newCache(t)
		o := &origin{}
		o.set("x", tc.headers...)
		get(t, c, o, greq("http://h/e"))
		if _, res := get(t, c, o, greq("http://h/e")); (res == Hit) != tc.hit {
			t.Errorf("%q: second get %v, want hit=%v", tc.headers, res, tc.hit)
		}
	}
}
