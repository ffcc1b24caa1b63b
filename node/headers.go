package node

import (
	"bufio"
	"bytes"
	"net/netip"
	"strings"
	"time"

	"github.com/edgepush/edgepush/grip"
	"github.com/valyala/fasthttp"
)

// The header rules, in one place: what of a client's request reaches the
// origin (plain requests and WebSocket-over-HTTP alike, see
// originRequest), what the node adds to every origin request, and what of
// an origin's answer reaches the client.

// hopHeaders are the hop-by-hop headers a proxy must not forward (RFC 9110
// §7.6.1), plus the framing headers the node sets itself.
var hopHeaders = []string{
	"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate",
	"Proxy-Authorization", "TE", "Trailer", "Transfer-Encoding", "Upgrade",
}

// isHopHeader reports whether name is hop-by-hop: a standard one or one
// the message's Connection header lists (connTokens).
func isHopHeader(name string, connTokens []string) bool {
	for _, h := range hopHeaders {
		if strings.EqualFold(name, h) {
			return true
		}
	}
	for _, t := range connTokens {
		if strings.EqualFold(name, t) {
			return true
		}
	}
	return false
}

// connectionTokens returns the header names listed in a Connection header.
func connectionTokens(v []byte) []string {
	if len(v) == 0 {
		return nil
	}
	var out []string
	for _, t := range strings.Split(string(v), ",") {
		if t = strings.TrimSpace(t); t != "" {
			out = append(out, t)
		}
	}
	return out
}

// skipToOrigin names request headers the node sets or must not pass:
// Host and framing are set by the client library, X-Forwarded-* are
// rewritten, and Accept-Encoding is dropped because a compressed initial
// body could not be followed by uncompressed pushed data (Pushpin does the
// same).
func skipToOrigin(name string) bool {
	for _, h := range []string{"Host", "Content-Length", "Accept-Encoding", "Expect", "X-Forwarded-For", "X-Forwarded-Proto"} {
		if strings.EqualFold(name, h) {
			return true
		}
	}
	return false
}

// clientForwarding names the headers by which a proxy in front of the
// node tells the origin about the client (its host, scheme, port and
// address) or asks the origin to treat the request as another (URL and
// method overrides). From a client that is not a trusted proxy (the
// route's trust-xff) they could be forged, so they are dropped;
// X-Forwarded-For and -Proto are always set by the node itself.
var clientForwarding = []string{"Forwarded", "X-Forwarded-Host", "X-Forwarded-Port", "X-Forwarded-Scheme",
	"X-Forwarded-Server", "X-Forwarded-Ssl", "X-Real-IP", "X-Client-IP", "X-Original-URL", "X-Rewrite-URL",
	"X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override"}

// conditionalHeaders are the validators and range of a client request.
// A cacheable request goes to the origin without them: what the node
// stores is the complete response to a plain request, and the client's
// conditional is answered from it (notModified).
var conditionalHeaders = []string{"If-None-Match", "If-Modified-Since", "If-Match", "If-Unmodified-Since", "If-Range", "Range"}

// originHeaderRules say which client headers go to the origin.
type originHeaderRules struct {
	trusted   bool // the client is a trusted proxy: keep clientForwarding
	cacheable bool // drop conditionalHeaders
}

// copyToOrigin adds the client's request headers that go to the origin:
// all but hop-by-hop ones, client-sent Grip-*, those skipToOrigin names,
// WebSocket-over-HTTP's Meta-* and Connection-Id (only the node speaks
// for a WebSocket connection), and as the rules say clientForwarding and
// conditionalHeaders.
func copyToOrigin(dst, src *fasthttp.RequestHeader, rules originHeaderRules) {
	tokens := connectionTokens(src.Peek("Connection"))
	for k, v := range src.All() {
		name := string(k)
		switch {
		case isHopHeader(name, tokens), grip.IsGripHeader(name), skipToOrigin(name), isWSOverHTTPHeader(name),
			!rules.trusted && inList(clientForwarding, name),
			rules.cacheable && inList(conditionalHeaders, name):
			continue
		}
		dst.AddBytesKV(k, v)
	}
}

// isWSOverHTTPHeader reports whether name is a header WebSocket-over-HTTP
// gives a meaning to on requests (Meta-*, Connection-Id).
func isWSOverHTTPHeader(name string) bool {
	return strings.EqualFold(name, "Connection-Id") || len(name) > 5 && strings.EqualFold(name[:5], "Meta-")
}

func inList(list []string, name string) bool {
	for _, h := range list {
		if strings.EqualFold(name, h) {
			return true
		}
	}
	return false
}

// wsHandshakeOnly names the headers of a WebSocket handshake that belong
// to the client's hop or that each WebSocket-over-HTTP request sets
// itself; they are removed from the handshake's origin request.
var wsHandshakeOnly = []string{"Sec-WebSocket-Key", "Sec-WebSocket-Version", "Sec-WebSocket-Extensions",
	"Content-Type", "Accept"}

// stripWSHandshake removes wsHandshakeOnly from a handshake's origin
// request.
func stripWSHandshake(h *fasthttp.RequestHeader) {
	for _, name := range wsHandshakeOnly {
		h.Del(name)
	}
}

// joinedHeader returns a lookup of h's values as the origin reads them:
// every line of a header sent more than once, joined with ", ". The cache
// keys on it, so a stored answer is found only by requests that would
// have made the origin see the same.
func joinedHeader(h *fasthttp.RequestHeader) func(name string) string {
	return func(name string) string {
		vs := h.PeekAll(name)
		switch len(vs) {
		case 0:
			return ""
		case 1:
			return string(vs[0])
		}
		return string(bytes.Join(vs, []byte(", ")))
	}
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
	ip := clientIP(ctx)
	if rt.trusts(ip) {
		for _, v := range ctx.Request.Header.PeekAll("X-Forwarded-For") {
			if v = bytes.TrimSpace(v); len(v) > 0 {
				dst = append(append(dst, v...), ", "...)
			}
		}
	}
	return ip.AppendTo(dst)
}

// clientIP is the address of the client's end of the connection.
func clientIP(ctx *fasthttp.RequestCtx) netip.Addr {
	ip, _ := netip.AddrFromSlice(ctx.RemoteIP())
	return ip.Unmap()
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

// setProxyHeaders sets what the node adds to every request it sends to
// rt's origins, the client's or its own (probes): X-Forwarded-For and
// -Proto when there is a client (xff non-empty), CDN-Loop appended, a
// fresh Grip-Sig.
func (s *Server) setProxyHeaders(req *fasthttp.Request, rt *route, xff []byte, isTLS bool) {
	if len(xff) > 0 {
		req.Header.SetBytesV("X-Forwarded-For", xff)
		req.Header.Set("X-Forwarded-Proto", map[bool]string{true: "https", false: "http"}[isTLS])
	}
	req.Header.Add("CDN-Loop", s.cfg.CDNLoop)
	signRequest(req, rt)
}

// signRequest sets a fresh Grip-Sig, signed with rt's key.
func signRequest(req *fasthttp.Request, rt *route) {
	req.Header.Set("Grip-Sig", rt.signer.Token(time.Now()))
}

// withDate returns an origin response's headers with a Date, the time it
// was received, when the origin sent none (RFC 9110 §6.6.1: a recipient
// with a clock adds one to a response it caches or forwards). Stored
// responses, hits included, are then served with the Date they were
// stored with.
func withDate(hs []grip.Header) []grip.Header {
	if hasHeader(hs, "Date") {
		return hs
	}
	return append(hs, grip.Header{Name: "Date", Value: string(fasthttp.AppendHTTPDate(nil, time.Now()))})
}

// setDate makes date (an HTTP-date; "": now) h's Date header. fasthttp's
// setters drop Date: its server writes its own, unless NoDefaultDate, as
// the client server is set up so that a stored Date is served as stored.
// Only a parsed head keeps a Date of its own, so h is read from a head
// holding the Date alone: call setDate before setting anything else on h.
// (A response reset, as clientError does, gets the server's Date again.)
func setDate(h *fasthttp.ResponseHeader, date string) {
	for range 2 {
		if date == "" {
			date = string(fasthttp.AppendHTTPDate(nil, time.Now()))
		}
		head := "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nDate: " + date + "\r\n\r\n"
		if h.Read(bufio.NewReaderSize(strings.NewReader(head), len(head)+16)) == nil {
			return
		}
		date = "" // not a valid header value: now instead
	}
}

// originHeaders copies the origin response's headers.
func originHeaders(resp *fasthttp.Response) []grip.Header {
	n := 0
	for range resp.Header.All() {
		n++
	}
	hs := make([]grip.Header, 0, n)
	for k, v := range resp.Header.All() {
		hs = append(hs, grip.Header{Name: string(k), Value: string(v)})
	}
	return hs
}

// clientHeaders drops Grip-* (but those instructions expose), hop-by-hop,
// Content-Length and the CDN's own headers (Surrogate-Key, Surrogate-
// Control: for this node only, as Fastly and Varnish setups strip them)
// from an origin response.
func clientHeaders(hs []grip.Header, expose []string) []grip.Header {
	var tokens []string
	for _, h := range hs {
		if strings.EqualFold(h.Name, "Connection") {
			tokens = append(tokens, connectionTokens([]byte(h.Value))...)
		}
	}
	out := grip.ClientHeaders(hs, expose)
	kept := out[:0]
	for _, h := range out {
		if isHopHeader(h.Name, tokens) || strings.EqualFold(h.Name, "Content-Length") || inList(cdnOnlyHeaders, h.Name) {
			continue
		}
		kept = append(kept, h)
	}
	return kept
}

// cdnOnlyHeaders are origin response headers meant for the CDN alone.
var cdnOnlyHeaders = []string{"Surrogate-Key", "Surrogate-Control"}

// mergeHeaders returns held with every header named in pushed replaced by
// pushed's values, Grip-* dropped: how a published http-response combines
// with the held response (as in Pushpin).
func mergeHeaders(held, pushed []grip.Header) []grip.Header {
	out := make([]grip.Header, 0, len(held)+len(pushed))
	for _, h := range held {
		if !hasHeader(pushed, h.Name) {
			out = append(out, h)
		}
	}
	for _, h := range pushed {
		if !grip.IsGripHeader(h.Name) && !strings.EqualFold(h.Name, "Content-Length") {
			out = append(out, h)
		}
	}
	return out
}

func hasHeader(hs []grip.Header, name string) bool {
	for _, h := range hs {
		if strings.EqualFold(h.Name, name) {
			return true
		}
	}
	return false
}

// upgradeHeaders returns the origin's OPEN response headers the client's
// 101 response carries: not hop-by-hop, Grip-*, framing, or the
// WebSocket-over-HTTP headers the node acts on itself.
func upgradeHeaders(hs []grip.Header) []grip.Header {
	n := 0
	for _, h := range hs {
		if upgradeHeader(h.Name) {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	out := make([]grip.Header, 0, n)
	for _, h := range hs {
		if upgradeHeader(h.Name) {
			out = append(out, h)
		}
	}
	return out
}

// upgradeHeader reports whether an origin answer's header goes on to the
// client's 101 response.
func upgradeHeader(name string) bool {
	switch {
	case isHopHeader(name, nil) || grip.IsGripHeader(name),
		strings.EqualFold(name, "Content-Type"), strings.EqualFold(name, "Content-Length"),
		strings.EqualFold(name, "Keep-Alive-Interval"), strings.EqualFold(name, "Sec-WebSocket-Extensions"),
		strings.EqualFold(name, "Sec-WebSocket-Accept"),
		isSetMeta(name):
		return false
	}
	return true
}

// isSetMeta reports whether name is a Set-Meta-* header.
func isSetMeta(name string) bool {
	return len(name) > 9 && strings.EqualFold(name[:9], "Set-Meta-")
}

// appendVary adds name to a response's Vary header.
func appendVary(hs []grip.Header, name string) []grip.Header {
	for i, h := range hs {
		if strings.EqualFold(h.Name, "Vary") {
			hs[i].Value = h.Value + ", " + name
			return hs
		}
	}
	return append(hs, grip.Header{Name: "Vary", Value: name})
}
