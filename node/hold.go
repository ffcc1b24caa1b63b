package node

import (
	"errors"
	"net"
	"strconv"
	"sync/atomic"

	"github.com/edgepush/edgepush/cache"
	"github.com/edgepush/edgepush/fanout"
	"github.com/edgepush/edgepush/grip"
	"github.com/valyala/fasthttp"
)

// Frame kinds cached on each fanout.Message, one per wire encoding.
const (
	frameChunked = iota // http-stream content as an HTTP/1.1 chunk
	frameRaw            // http-stream content as is (HTTP/1.0 client)
)

// streamTransport is a Grip-Hold: stream connection (HTTP streaming and
// SSE): http-stream content is written as chunks (raw for HTTP/1.0).
type streamTransport struct {
	heldConn
	chunked bool
	session *streamSession // nil: the shared fast path
}

var _ fanout.Transport = (*streamTransport)(nil)

func (t *streamTransport) Frame(m *fanout.Message) ([]byte, bool) {
	if t.session != nil {
		return t.session.frame(m)
	}
	if f := m.Item.(*grip.Item).HTTPStream; f != nil && !plainDelivers(f.ContentFilters) {
		return nil, false
	}
	if t.chunked {
		return m.Frame(frameChunked, encodeChunked)
	}
	return m.Frame(frameRaw, encodeRaw)
}

func encodeChunked(m *fanout.Message) ([]byte, bool) {
	f := m.Item.(*grip.Item).HTTPStream
	switch {
	case f == nil:
		return nil, false
	case f.Action == grip.ActionClose:
		return lastChunk, true
	case f.Action != grip.ActionSend || len(f.Content) == 0:
		return nil, false
	}
	return appendChunk(make([]byte, 0, len(f.Content)+12), f.Content), false
}

func encodeRaw(m *fanout.Message) ([]byte, bool) {
	f := m.Item.(*grip.Item).HTTPStream
	switch {
	case f == nil:
		return nil, false
	case f.Action == grip.ActionClose:
		return nil, true
	case f.Action != grip.ActionSend:
		return nil, false
	}
	return f.Content, false
}

// encode frames content written for this connection alone.
func (t *streamTransport) encode(p []byte) []byte {
	if t.chunked {
		return appendChunk(make([]byte, 0, len(p)+12), p)
	}
	return p
}

// endFrame is what ends the response: the last chunk, or nothing (the
// connection closes) for an HTTP/1.0 client.
func (t *streamTransport) endFrame() []byte {
	if t.chunked {
		return lastChunk
	}
	return nil
}

func (t *streamTransport) Closed(reason error) {
	if t.session != nil {
		t.session.close()
	}
	t.markClosed(reason)
	if t.chunked && (reason == nil || errors.Is(reason, fanout.ErrShutdown)) {
		if reason != nil { // shutdown: end the body cleanly, best effort
			t.farewell(lastChunk)
		}
	}
	t.conn.Close()
}

// holdStream answers with the response head and initial body, then holds
// the connection for http-stream publishes. lf makes its link requests
// (nil when it has none); with paging, the answer was not a hold but has
// a next link: the next page follows at once on the same response.
func (s *Server) holdStream(ctx *fasthttp.RequestCtx, hr heldResponse, in *grip.Instruct, since uint64,
	lf *linkFetcher, paging bool) {
	chunked := ctx.Request.Header.IsHTTP11()
	var session *streamSession
	if paging || needsSession(in) {
		session = s.newStreamSession(nil, in, lf)
		body, err := session.subs.filterResponse(hr.body)
		if err != nil {
			clientError(ctx, fasthttp.StatusBadGateway, "GRIP filter failed on the origin's answer: "+err.Error())
			return
		}
		hr.body = body
	}
	head := appendHead(nil, hr.code, hr.reason, hr.headers)
	if chunked {
		head = append(head, "Transfer-Encoding: chunked\r\n\r\n"...)
		if len(hr.body) > 0 {
			head = appendChunk(head, hr.body)
		}
	} else {
		head = append(head, "Connection: close\r\n\r\n"...)
		head = append(head, hr.body...)
	}
	opts := fanout.ConnOptions{}
	if ka := in.KeepAlive; ka != nil {
		opts.KeepAlive = ka.Data
		if chunked {
			opts.KeepAlive = appendChunk(nil, ka.Data)
		}
		opts.KeepAliveEvery = ka.Timeout
		opts.KeepAliveInterval = ka.Mode == grip.KeepAliveInterval
	}
	channels := channelNames(in)
	acc := s.access.held(ctx, transportStream, hr.code)
	s.hijack(ctx, func(c net.Conn) {
		t := &streamTransport{heldConn: s.newHeldConn(c, channels, kindStream), chunked: chunked, session: session}
		t.acc = acc
		if session != nil {
			session.t = t
		}
		if t.connWriter == nil {
			c.Close()
			return
		}
		if fc := s.hold(t, &t.heldConn, since, opts, head); fc != nil && session != nil {
			session.started(fc, paging)
		}
	})
}

// responseTransport is a Grip-Hold: response connection (long-poll): the
// first http-response publish, or the held response at the timeout, is
// the answer; then the connection goes back to serving requests.
type responseTransport struct {
	heldConn
	hj        net.Conn // fasthttp's hijacked connection, to serve it again
	held      heldResponse
	keepAlive bool
	refetch   func() (*cache.Entry, error) // for hints
	hinting   atomic.Bool
	subs      *connSubs    // nil: no filters, prev-ids or meta
	links     *linkFetcher // for a sequenced long-poll's retry and the gone link; nil: none
	goneLink  *grip.Link   // Grip-Link rel=gone, told when the long-poll ends
}

var _ fanout.Transport = (*responseTransport)(nil)

func (t *responseTransport) Frame(m *fanout.Message) ([]byte, bool) {
	item := m.Item.(*grip.Item)
	f := item.HTTPResponse
	if f == nil {
		return nil, false
	}
	body := f.Body
	if t.subs != nil {
		var ok bool
		if body, ok = t.forConn(m.Channel, item, f); !ok {
			return nil, false
		}
	} else if !plainDelivers(f.ContentFilters) {
		return nil, false
	}
	if f.Action == grip.ActionHint {
		t.hint()
		return nil, false
	}
	if f.Action != grip.ActionSend {
		return nil, false
	}
	hr := heldResponse{code: f.Code, reason: f.Reason, headers: mergeHeaders(t.held.headers, f.Headers), body: body}
	return appendResponse(nil, hr, t.keepAlive), true
}

// forConn applies sequencing and filters to an http-response message:
// a message that does not follow the connection's last id on a
// sequenced channel makes the node ask the origin again, with Grip-Last,
// as Pushpin retries such a long-poll. It returns the body for this
// connection and whether it is delivered.
func (t *responseTransport) forConn(channel string, item *grip.Item, f *grip.HTTPResponseFormat) ([]byte, bool) {
	t.subs.mu.Lock()
	defer t.subs.mu.Unlock()
	c := t.subs.chans[channel]
	if c == nil {
		return nil, false
	}
	if c.tracked && item.PrevID != c.lastID {
		t.retry(t.subs.gripLast())
		return nil, false
	}
	if c.tracked {
		c.lastID = item.ID
	}
	if f.Action != grip.ActionSend {
		return nil, true
	}
	return t.subs.filter(t.s, channel, item, f.ContentFilters, f.Body)
}

// retry asks the origin again for the held request, with Grip-Last: an
// answer that is not a hold goes to the client; a hold goes on waiting,
// from the last ids it gives. It runs under the Hub's lock, so the work
// is in a goroutine.
func (t *responseTransport) retry(gripLast []string) {
	if t.links == nil || !t.hinting.CompareAndSwap(false, true) {
		return
	}
	t.s.bg.Go(func() {
		defer t.hinting.Store(false)
		p, err := t.links.again(gripLast)
		if err != nil {
			t.s.log.Debug("long-poll retry failed", "err", err)
			return
		}
		if p.in.Hold != grip.HoldNone {
			t.subs.mu.Lock()
			for _, ch := range p.in.Channels {
				if c := t.subs.chans[ch.Name]; c != nil && c.tracked && ch.PrevID != "" {
					c.lastID = ch.PrevID
				}
			}
			t.subs.mu.Unlock()
			return
		}
		t.answer(p.hr)
	})
}

// answer ends the long-poll with hr.
func (t *responseTransport) answer(hr heldResponse) {
	t.mu.Lock()
	fc := t.fc
	t.mu.Unlock()
	if fc != nil {
		fc.Send(appendResponse(nil, hr, t.keepAlive), true)
	}
}

// hint asks again for the held request ("the data changed, go fetch
// it"): through the cache, so held long-polls of one URL make one origin
// request. An answer that is not a hold goes to the client; a hold keeps
// waiting. It runs under the Hub's lock, so the work is in a goroutine.
func (t *responseTransport) hint() {
	if t.refetch == nil || !t.hinting.CompareAndSwap(false, true) {
		return
	}
	t.s.bg.Go(func() {
		defer t.hinting.Store(false)
		e, err := t.refetch()
		if err != nil {
			t.s.log.Debug("hint: refetch failed", "err", err)
			return
		}
		p := e.Value.(*parsed)
		if p.err != nil || p.in.Hold != grip.HoldNone {
			return
		}
		t.answer(p.hr)
	})
}

// ChooseReplay answers a long-poll opened from older data with the newest
// http-response published since.
func (t *responseTransport) ChooseReplay(msgs []*fanout.Message) []*fanout.Message {
	for i := len(msgs) - 1; i >= 0; i-- {
		if f := msgs[i].Item.(*grip.Item).HTTPResponse; f != nil && f.Action == grip.ActionSend {
			return msgs[i : i+1]
		}
	}
	return nil
}

func (t *responseTransport) Closed(reason error) {
	t.markClosed(reason)
	if t.links != nil {
		if gone := t.links.resolve(t.goneLink, nil); gone != nil {
			t.links.gone(gone)
		}
	}
	if reason == nil && t.keepAlive && !t.s.draining.Load() {
		t.s.serveAgain(t.hj)
		return
	}
	if errors.Is(reason, fanout.ErrShutdown) {
		t.farewell(appendResponse(nil, t.held, false))
	}
	t.conn.Close()
}

// holdResponse subscribes the connection and answers it later.
// hr is the held response that publishes merge with, onTimeout what the
// client gets at the timeout (hr, possibly compressed).
func (s *Server) holdResponse(ctx *fasthttp.RequestCtx, hr, onTimeout heldResponse, in *grip.Instruct, since uint64,
	refetch func() (*cache.Entry, error), lf *linkFetcher) {
	keepAlive := !ctx.Request.Header.ConnectionClose() && ctx.Request.Header.IsHTTP11()
	opts := fanout.ConnOptions{Timeout: in.Timeout, TimeoutFrame: appendResponse(nil, onTimeout, keepAlive)}
	channels := channelNames(in)
	acc := s.access.held(ctx, transportLongPoll, onTimeout.code)
	s.hijack(ctx, func(c net.Conn) {
		t := &responseTransport{heldConn: s.newHeldConn(c, channels, kindResponse), hj: c, held: hr, keepAlive: keepAlive,
			refetch: refetch, subs: newConnSubs(in), links: lf, goneLink: in.GoneLink}
		t.acc = acc
		if t.connWriter == nil {
			c.Close()
			return
		}
		s.hold(t, &t.heldConn, since, opts)
	})
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
