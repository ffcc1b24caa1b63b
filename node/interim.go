package node

import (
	"bufio"
	"bytes"
	"errors"
	"sync"
	"time"

	"github.com/edgepush/edgepush/grip"
	"github.com/valyala/fasthttp"
)

// Interim responses (1xx, RFC 9110 §15.2): a proxy forwards those the
// origin sends before its final answer. fasthttp's client reads and drops
// them, so the origin clients' round trip (interimTransport) reads them
// itself for the origin requests made for a client (a miss's or a
// revalidation's, by the request that leads the fetch) and passes 102,
// 103 and any other but 100 and 101 on to that client at once
// (writeInterim), to HTTP/1.1 clients only. Requests made for no client
// (background refreshes, hints, links, WebSocket-over-HTTP) go through
// fasthttp's own round trip. An interim response is never stored: its
// headers are read apart from the final response's, which alone the
// cache sees, and clients served from the cache get none.

// interimHooks maps an origin request in flight to where its interim
// responses go.
type interimHooks struct {
	m sync.Map // *fasthttp.Request → func(*fasthttp.ResponseHeader)
}

// relay sends req's interim responses to ctx's client until forget.
func (h *interimHooks) relay(req *fasthttp.Request, ctx *fasthttp.RequestCtx) {
	h.m.Store(req, func(head *fasthttp.ResponseHeader) { writeInterim(ctx, head) })
}

// forget ends relay.
func (h *interimHooks) forget(req *fasthttp.Request) { h.m.Delete(req) }

func (h *interimHooks) hook(req *fasthttp.Request) func(*fasthttp.ResponseHeader) {
	f, ok := h.m.Load(req)
	if !ok {
		return nil
	}
	return f.(func(*fasthttp.ResponseHeader))
}

// relayInterims makes every origin client of the table read interim
// responses for the requests hooks has a client for.
func (t *routeTable) relayInterims(hooks *interimHooks) {
	for _, rt := range t.all {
		for _, o := range rt.origins {
			o.client.hc.Transport = interimTransport{hooks: hooks}
		}
	}
}

// maxInterims bounds the interim responses read before a final one.
const maxInterims = 100

var errTooManyInterims = errors.New("origin sent too many interim (1xx) responses")

// interimTransport is an origin client's round trip: fasthttp's own for
// requests no client waits for; for the others, one that reads the
// origin's interim responses and hands them to the request's hook.
type interimTransport struct {
	hooks *interimHooks
}

// RoundTrip sends req on one of hc's connections and reads its answer
// into resp, as fasthttp's own round trip does (retry: whether a failed
// idempotent request may be sent again), passing interim responses on.
func (t interimTransport) RoundTrip(hc *fasthttp.HostClient, req *fasthttp.Request, resp *fasthttp.Response) (retry bool, err error) {
	hook := t.hooks.hook(req)
	if hook == nil {
		return fasthttp.DefaultTransport.RoundTrip(hc, req, resp)
	}
	cc, err := hc.AcquireConn(hc.ReadTimeout, req.ConnectionClose())
	if err != nil {
		return false, err
	}
	conn := cc.Conn()
	resp.ParseNetConn(conn)
	// The deadlines are set for this request and cleared before the
	// connection goes back to the pool, where fasthttp's round trip,
	// which clears only its own, may take it.
	if hc.WriteTimeout > 0 {
		conn.SetWriteDeadline(time.Now().Add(hc.WriteTimeout))
	}
	bw := hc.AcquireWriter(conn)
	err = req.Write(bw)
	if err == nil {
		err = bw.Flush()
	}
	hc.ReleaseWriter(bw)
	if err != nil {
		hc.CloseConn(cc)
		return true, asTimeout(err)
	}
	if hc.ReadTimeout > 0 {
		conn.SetReadDeadline(time.Now().Add(hc.ReadTimeout))
	}
	if req.Header.IsHead() {
		resp.SkipBody = true
	}
	if hc.DisableHeaderNamesNormalizing {
		resp.Header.DisableNormalizing()
	}
	br := hc.AcquireReader(conn)
	err = readInterims(br, hook)
	if err == nil {
		err = resp.ReadLimitBody(br, hc.MaxResponseBodySize)
	}
	hc.ReleaseReader(br)
	if err != nil {
		hc.CloseConn(cc)
		// As fasthttp's: retried, but not when the answer would be the
		// same again.
		return !errors.Is(err, fasthttp.ErrBodyTooLarge) && !errors.Is(err, errTooManyInterims), err
	}
	if req.ConnectionClose() || resp.ConnectionClose() {
		hc.CloseConn(cc)
		return false, nil
	}
	conn.SetDeadline(time.Time{})
	hc.ReleaseConn(cc)
	return false, nil
}

// asTimeout is err, or fasthttp.ErrTimeout for any timeout (as
// fasthttp's round trip reports a write that timed out).
func asTimeout(err error) error {
	if te, ok := err.(interface{ Timeout() bool }); ok && te.Timeout() {
		return fasthttp.ErrTimeout
	}
	return err
}

// readInterims reads the interim responses at the head of br, passing
// each to hook, and stops before the final response (101 Switching
// Protocols included), or at anything it cannot make out: the final
// response's read reports that.
func readInterims(br *bufio.Reader, hook func(*fasthttp.ResponseHeader)) error {
	for n := 0; ; n++ {
		b, err := br.Peek(len("HTTP/1.1 100"))
		if err != nil || !isInterim(b) {
			return nil
		}
		if n == maxInterims {
			return errTooManyInterims
		}
		var head fasthttp.ResponseHeader
		head.SetNoDefaultContentType(true) // All would list one it does not have
		if err := head.Read(br); err != nil {
			return err
		}
		hook(&head)
	}
}

// isInterim reports whether b, the start of a response, is the status
// line of an interim response other than 101.
func isInterim(b []byte) bool {
	return len(b) == 12 && bytes.HasPrefix(b, []byte("HTTP/1.")) && b[8] == ' ' && b[9] == '1' &&
		'0' <= b[10] && b[10] <= '9' && '0' <= b[11] && b[11] <= '9' && string(b[9:12]) != "101"
}

// writeInterim sends an origin's interim response to ctx's client at
// once, ahead of the final response (which fasthttp writes when the
// handler returns: the client server flushes every response, so nothing
// of an earlier one is still buffered). Not 100 Continue (the node never
// asks the origin for one: Expect is not forwarded), and only to HTTP/1.1
// clients (RFC 9110 §15.2). Its headers are those a client sees of any
// origin response (clientHeaders).
func writeInterim(ctx *fasthttp.RequestCtx, head *fasthttp.ResponseHeader) {
	code := head.StatusCode()
	if code == fasthttp.StatusContinue || !ctx.Request.Header.IsHTTP11() {
		return
	}
	var headers []grip.Header
	for k, v := range head.All() {
		headers = append(headers, grip.Header{Name: string(k), Value: string(v)})
	}
	headers = clientHeaders(headers, nil)
	reason := string(head.StatusMessage())
	if reason == "" {
		reason = grip.StatusText(code)
	}
	b := appendHead(nil, code, reason, headers)
	b = append(b, "\r\n"...)
	ctx.SetWriteDeadline(time.Now().Add(interimWriteTimeout)) // cleared by fasthttp after the handler
	ctx.Conn().Write(b)
}

// interimWriteTimeout bounds the write of an interim response to a client
// that does not read.
const interimWriteTimeout = 10 * time.Second
