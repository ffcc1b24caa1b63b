package node

import (
	"bytes"
	"fmt"
	"net/netip"

	"github.com/valyala/fasthttp"
)

// routeFor picks the route of a client request. When the request has
// looped back to this CDN (its CDN-Loop names this node's token) or no
// route takes it, it answers the client (508, 404) and returns nil.
func (s *Server) routeFor(ctx *fasthttp.RequestCtx) *route {
	if s.looped(ctx) {
		s.log.Warn("request loop", "host", string(ctx.Request.Header.Host()), "path", string(ctx.Path()),
			"cdn_loop", string(ctx.Request.Header.Peek("CDN-Loop")))
		clientError(ctx, fasthttp.StatusLoopDetected, "loop detected: this request already passed through this CDN (CDN-Loop: "+
			s.cfg.CDNLoop+"); a route's origin leads back to it")
		return nil
	}
	path := requestTarget(ctx)
	if i := bytes.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	if hasDotSegment(path) {
		// "/public/../admin" would be matched by one route and name
		// another route's resource: refused, as browsers never send it.
		clientError(ctx, fasthttp.StatusBadRequest, "request path with dot-segments (/./ or /../)")
		return nil
	}
	rt := s.routes.match(ctx.Request.Header.Host(), path)
	if rt == nil {
		clientError(ctx, fasthttp.StatusNotFound, fmt.Sprintf("no route for host %q and path %q", ctx.Request.Header.Host(), path))
	}
	return rt
}

// hasDotSegment reports whether path has a "." or ".." segment, literal
// or percent-encoded.
func hasDotSegment(path []byte) bool {
	for len(path) > 0 {
		seg := path
		if i := bytes.IndexByte(path, '/'); i >= 0 {
			seg, path = path[:i], path[i+1:]
		} else {
			path = nil
		}
		if len(seg) == 0 || len(seg) > 6 {
			continue
		}
		dots := 0
		for len(seg) > 0 {
			switch {
			case seg[0] == '.':
				seg = seg[1:]
			case len(seg) >= 3 && seg[0] == '%' && seg[1] == '2' && (seg[2] == 'e' || seg[2] == 'E'):
				seg = seg[3:]
			default:
				dots = 3 // not a dot: not a dot-segment
				seg = nil
				continue
			}
			dots++
		}
		if dots == 1 || dots == 2 {
			return true
		}
	}
	return false
}

// requestTarget is the request target as the client sent it (path and
// query), what routes match and what goes to the origin.
func requestTarget(ctx *fasthttp.RequestCtx) []byte {
	if t := ctx.Request.Header.RequestURI(); len(t) > 0 && t[0] == '/' {
		return t
	}
	return ctx.Request.RequestURI() // absolute-form: the parsed URI's
}

// setTarget sets req's request URI for the client's target: strip-prefix
// removed, the origins' path prepended.
func (rt *route) setTarget(req *fasthttp.Request, target []byte) {
	slash := false
	if rt.strip != "" && bytes.HasPrefix(target, []byte(rt.strip)) {
		target = target[len(rt.strip):]
		slash = len(target) == 0 || target[0] != '/'
	}
	if rt.prefix == "" && !slash {
		req.SetRequestURIBytes(target)
		return
	}
	var buf [256]byte
	b := append(buf[:0], rt.prefix...)
	if slash {
		b = append(b, '/')
	}
	req.SetRequestURIBytes(append(b, target...))
}

// originTarget is setTarget's result as a string, for WebSocket sessions.
func (rt *route) originTarget(target []byte) string {
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	rt.setTarget(req, target)
	return string(req.Header.RequestURI())
}

// setHost sets the Host header the origin sees: the route's
// host-rewrite, else the client's, else (HTTP/1.0 without Host) the
// first origin's address.
func (rt *route) setHost(req *fasthttp.Request, clientHost []byte) {
	switch {
	case rt.hostRewrite != "":
		req.Header.SetHost(rt.hostRewrite)
	case len(clientHost) > 0:
		req.Header.SetHostBytes(clientHost)
	default:
		req.Header.SetHost(rt.origins[0].client.hc.Addr)
	}
}

// forwardedFor appends the X-Forwarded-For value for the origin to dst:
// the client's address, after the incoming X-Forwarded-For when the
// client is a trusted proxy. From anyone else an incoming value is
// dropped: it could be forged.
func (rt *route) forwardedFor(dst []byte, ctx *fasthttp.RequestCtx) []byte {
	ip, _ := netip.AddrFromSlice(ctx.RemoteIP())
	ip = ip.Unmap()
	if rt.trusts(ip) {
		for _, v := range ctx.Request.Header.PeekAll("X-Forwarded-For") {
			if v = bytes.TrimSpace(v); len(v) > 0 {
				dst = append(append(dst, v...), ", "...)
			}
		}
	}
	return ip.AppendTo(dst)
}

// trusts reports whether ip is one of the route's trusted proxies.
func (rt *route) trusts(ip netip.Addr) bool {
	for _, p := range rt.trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// looped reports whether the request's CDN-Loop header (RFC 8586) names
// this node's token.
func (s *Server) looped(ctx *fasthttp.RequestCtx) bool {
	for _, v := range ctx.Request.Header.PeekAll("CDN-Loop") {
		if cdnLoopHas(v, s.cfg.CDNLoop) {
			return true
		}
	}
	return false
}

// cdnLoopHas reports whether a CDN-Loop value ("a, b; p=1, c") lists the
// CDN id token, compared without ASCII case.
func cdnLoopHas(v []byte, token string) bool {
	for len(v) > 0 {
		item := v
		if i := bytes.IndexByte(v, ','); i >= 0 {
			item, v = v[:i], v[i+1:]
		} else {
			v = nil
		}
		if i := bytes.IndexByte(item, ';'); i >= 0 {
			item = item[:i]
		}
		if equalFoldASCII(bytes.TrimSpace(item), token) {
			return true
		}
	}
	return false
}

func equalFoldASCII(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// validCDNLoopToken reports whether t can stand in a CDN-Loop header: an
// HTTP token, or host:port.
func validCDNLoopToken(t string) bool {
	if t == "" {
		return false
	}
	for i := range len(t) {
		c := t[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case bytes.IndexByte([]byte("!#$%&'*+-.^_`|~:[]"), c) >= 0:
		default:
			return false
		}
	}
	return true
}
