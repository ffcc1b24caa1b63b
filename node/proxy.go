package node

import (
	"strconv"
	"strings"
	"time"

	"github.com/edgepush/edgepush/grip"
	"github.com/valyala/fasthttp"
)

// originRequest fills req with the client request as it goes to rt's
// origins: target rewritten (origin path, strip-prefix), Host as the
// route says, hop-by-hop and client-sent Grip-* headers removed,
// X-Forwarded-For/-Proto set, CDN-Loop appended, Grip-Sig added.
func (s *Server) originRequest(ctx *fasthttp.RequestCtx, req *fasthttp.Request, rt *route) {
	in := &ctx.Request
	req.Header.SetMethodBytes(in.Header.Method())
	rt.setTarget(req, requestTarget(ctx))
	req.UseHostHeader = true
	rt.setHost(req, in.Header.Host())
	tokens := connectionTokens(in.Header.Peek("Connection"))
	for k, v := range in.Header.All() {
		name := string(k)
		if isHopHeader(name, tokens) || grip.IsGripHeader(name) || skipToOrigin(name) {
			continue
		}
		req.Header.AddBytesKV(k, v)
	}
	var buf [64]byte
	req.Header.SetBytesV("X-Forwarded-For", rt.forwardedFor(buf[:0], ctx))
	req.Header.Set("X-Forwarded-Proto", map[bool]string{true: "https", false: "http"}[ctx.IsTLS()])
	req.Header.Add("CDN-Loop", s.cfg.CDNLoop)
	req.Header.Set("Grip-Sig", rt.signer.Token(time.Now()))
	if body := in.Body(); len(body) > 0 {
		req.SetBodyRaw(body)
	}
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

// originHeaders copies the origin response's headers.
func originHeaders(resp *fasthttp.Response) []grip.Header {
	hs := make([]grip.Header, 0, 12)
	for k, v := range resp.Header.All() {
		hs = append(hs, grip.Header{Name: string(k), Value: string(v)})
	}
	return hs
}

// heldResponse is the response a held connection was opened with: the
// stream's head and initial body, or a long-poll's timeout answer.
type heldResponse struct {
	code    int
	reason  string
	headers []grip.Header // client-visible: no Grip-*, hop-by-hop or Content-Length
	body    []byte
}

// responseFor computes what the client sees of an origin response under
// its instructions.
func responseFor(code int, reason string, headers []grip.Header, body []byte, in *grip.Instruct) heldResponse {
	hr := heldResponse{code: code, reason: reason, headers: headers, body: body}
	if r := in.Response; r != nil {
		hr = heldResponse{code: r.Code, reason: r.Reason, headers: r.Headers, body: r.Body}
	} else if in.Status != 0 {
		hr.code, hr.reason = in.Status, in.Reason
	}
	if hr.reason == "" {
		hr.reason = grip.StatusText(hr.code)
	}
	hr.headers = clientHeaders(hr.headers, in.ExposeHeaders)
	return hr
}

// clientHeaders drops Grip-*, hop-by-hop and Content-Length headers.
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
		if isHopHeader(h.Name, tokens) || strings.EqualFold(h.Name, "Content-Length") {
			continue
		}
		kept = append(kept, h)
	}
	return kept
}

// relay answers the client with a response that is not held.
func relay(ctx *fasthttp.RequestCtx, hr heldResponse) {
	ctx.SetStatusCode(hr.code)
	if hr.reason != grip.StatusText(hr.code) {
		ctx.Response.Header.SetStatusMessage([]byte(hr.reason))
	}
	for _, h := range hr.headers {
		ctx.Response.Header.Add(h.Name, h.Value)
	}
	ctx.SetBody(hr.body)
}

// appendHead appends an HTTP/1.1 status line and headers, without the
// blank line that ends them.
func appendHead(b []byte, code int, reason string, headers []grip.Header) []byte {
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, ' ')
	b = append(b, reason...)
	b = append(b, "\r\n"...)
	for _, h := range headers {
		b = append(b, h.Name...)
		b = append(b, ": "...)
		b = append(b, h.Value...)
		b = append(b, "\r\n"...)
	}
	return b
}

// appendResponse appends a complete response with a Content-Length body.
func appendResponse(b []byte, hr heldResponse, keepAlive bool) []byte {
	b = appendHead(b, hr.code, hr.reason, hr.headers)
	b = append(b, "Content-Length: "...)
	b = strconv.AppendInt(b, int64(len(hr.body)), 10)
	if !keepAlive {
		b = append(b, "\r\nConnection: close"...)
	}
	b = append(b, "\r\n\r\n"...)
	return append(b, hr.body...)
}

// appendChunk appends p as one HTTP/1.1 chunk; p must not be empty (an
// empty chunk ends the body).
func appendChunk(b, p []byte) []byte {
	b = strconv.AppendInt(b, int64(len(p)), 16)
	b = append(b, "\r\n"...)
	b = append(b, p...)
	return append(b, "\r\n"...)
}

// lastChunk ends a chunked body.
var lastChunk = []byte("0\r\n\r\n")

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
