package node

import (
	"testing"

	"github.com/valyala/fasthttp"
)

// BenchmarkServeCachedGet measures the client request path end to end for
// a cache hit: a kept-alive client GET, route selection, cache lookup and
// the relayed answer.
func BenchmarkServeCachedGet(b *testing.B) {
	n := startNode(b, gripOrigin("hello\n", "Cache-Control", "max-age=600"))
	c := &fasthttp.HostClient{Addr: n.Addr().String()}
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(n.url + "/v1/items?x=1")
	if err := c.Do(req, resp); err != nil || resp.StatusCode() != 200 {
		b.Fatalf("warm-up: %v %d", err, resp.StatusCode())
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := c.Do(req, resp); err != nil || resp.StatusCode() != 200 {
			b.Fatalf("%v %d", err, resp.StatusCode())
		}
	}
}
