package node

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/edgepush/edgepush/cache"
	"github.com/edgepush/edgepush/grip"
	"github.com/valyala/fasthttp"
)

// Range requests (RFC 9110 §14). A cacheable request goes to the origin
// without its Range (the stored copy is the whole response), and the node
// answers the range itself from the whole response: one byte range of a
// 200, on the identity body (no compressed variant), as 206 with
// Content-Range, or 416 when it starts past the end. Several ranges, an
// If-Range that does not match, or anything unparsable get the whole 200,
// as RFC 9110 §14.2 allows a server to.

// ranged returns hr, the whole 200 for a cacheable GET, cut to the
// client's Range when one applies (ok), else ok false. e's compressed
// variants are not used for a range, but the response still varies on
// Accept-Encoding when e has them.
func ranged(req *fasthttp.RequestHeader, e *cache.Entry, hr heldResponse) (out heldResponse, ok bool) {
	spec := string(req.Peek("Range"))
	if spec == "" || hr.code != fasthttp.StatusOK || !req.IsGet() || !ifRangeMatches(string(req.Peek("If-Range")), hr) {
		return hr, false
	}
	size := int64(len(hr.body))
	first, last, satisfiable, ok := parseByteRange(spec, size)
	if !ok {
		return hr, false
	}
	out = hr
	out.headers = make([]grip.Header, 0, len(hr.headers)+2)
	for _, h := range hr.headers {
		if !strings.EqualFold(h.Name, "Content-Range") {
			out.headers = append(out.headers, h)
		}
	}
	if e.HasVariants() {
		out.headers = appendVary(out.headers, "Accept-Encoding")
	}
	total := strconv.FormatInt(size, 10)
	if !satisfiable {
		out.code, out.reason, out.body = fasthttp.StatusRequestedRangeNotSatisfiable, grip.StatusText(fasthttp.StatusRequestedRangeNotSatisfiable), nil
		out.headers = append(out.headers, grip.Header{Name: "Content-Range", Value: "bytes */" + total})
		return out, true
	}
	out.code, out.reason, out.body = fasthttp.StatusPartialContent, grip.StatusText(fasthttp.StatusPartialContent), hr.body[first:last+1]
	out.headers = append(out.headers, grip.Header{Name: "Content-Range",
		Value: "bytes " + strconv.FormatInt(first, 10) + "-" + strconv.FormatInt(last, 10) + "/" + total})
	return out, true
}

// parseByteRange parses a Range value of one byte range for a body of
// size bytes: first and last byte (last clipped to the end), whether it
// is satisfiable (RFC 9110 §14.1.1: it starts before the end), and ok
// false when the value is not one byte range (other units, several
// ranges, syntax) or the body is empty: then the whole body is sent.
func parseByteRange(v string, size int64) (first, last int64, satisfiable, ok bool) {
	unit, set, found := strings.Cut(v, "=")
	set = strings.TrimSpace(set)
	if !found || !strings.EqualFold(strings.TrimSpace(unit), "bytes") || strings.Contains(set, ",") || size == 0 {
		return 0, 0, false, false
	}
	from, to, found := strings.Cut(set, "-")
	if !found {
		return 0, 0, false, false
	}
	from, to = strings.TrimSpace(from), strings.TrimSpace(to)
	if from == "" { // suffix: the last n bytes
		n, err := strconv.ParseInt(to, 10, 64)
		if err != nil || n < 0 || !digits(to) {
			return 0, 0, false, false
		}
		if n == 0 {
			return 0, 0, false, true
		}
		return max(size-n, 0), size - 1, true, true
	}
	first, err := strconv.ParseInt(from, 10, 64)
	if err != nil || !digits(from) {
		return 0, 0, false, false
	}
	last = size - 1
	if to != "" {
		l, err := strconv.ParseInt(to, 10, 64)
		if err != nil || !digits(to) || l < first {
			return 0, 0, false, false
		}
		last = min(l, size-1)
	}
	if first >= size {
		return 0, 0, false, true
	}
	return first, last, true, true
}

// digits reports whether s is all ASCII digits (ParseInt also takes a
// sign).
func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// ifRangeMatches reports whether a client's If-Range (empty: none)
// allows a range of hr (RFC 9110 §13.1.5): a strong entity tag equal to
// hr's ETag, or a date equal to its Last-Modified.
func ifRangeMatches(ifRange string, hr heldResponse) bool {
	ifRange = strings.TrimSpace(ifRange)
	switch {
	case ifRange == "":
		return true
	case strings.HasPrefix(ifRange, `"`):
		etag := headerValue(hr.headers, "ETag")
		return etag == ifRange
	case strings.HasPrefix(ifRange, "W/"):
		return false
	}
	t, err := http.ParseTime(ifRange)
	lm, err2 := http.ParseTime(headerValue(hr.headers, "Last-Modified"))
	return err == nil && err2 == nil && t.Equal(lm)
}
