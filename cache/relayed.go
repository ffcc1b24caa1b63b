package cache

import "time"

// A response relayed by another cache (a tier member's shield) was
// fetched from the origin before the fetch that returned it: a purge
// this cache ran in between, which the other cache may not have run yet,
// applies to it. The purge clock only covers purges from the start of
// this cache's own fetch on, so the Fetcher asks PurgedSince about the
// time before it, and fetches again when told so.

// PurgedSince reports whether a purge this cache ran after t reached
// resp, a response for req's URL fetched from the origin at t (by its
// surrogate keys or URL), and when the newest such purge ran.
func (c *Cache) PurgedSince(req *Request, resp *Response, t time.Time) (time.Time, bool) {
	return c.purges.lastAfter(purgeNamesOf(resp, req.URL), t)
}
