package node

import (
	_ "embed"
	"encoding/json"
	"io"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// statusPageHTML is the control listener's status page: plain HTML with a
// little vanilla JavaScript that renders /status/events.
//
//go:embed statuspage.html
var statusPageHTML string

// Status events are pushed every statusEventsEvery; a stream ends after
// statusEventsMaxAge (the browser's EventSource reconnects at once), so
// no stream outlives a client that went away by long, whatever the
// shutdown order.
const (
	statusEventsEvery  = time.Second
	statusEventsMaxAge = 5 * time.Minute
)

// serveRoot is GET / on the control listener: the status page for
// browsers (Accept: text/html), the short plain-text answer for API
// clients and curl.
func (s *Server) serveRoot(ctx *fasthttp.RequestCtx) {
	if !strings.Contains(string(ctx.Request.Header.Peek("Accept")), "text/html") {
		ctx.SetContentType("text/plain")
		ctx.SetBodyString("edgepush API\n")
		return
	}
	if !s.pageAuthorized(ctx) {
		return
	}
	pageHeaders(ctx)
	ctx.SetContentType("text/html; charset=utf-8")
	ctx.SetBodyString(statusPageHTML)
}

// serveStatusEvents is GET /status/events: Server-Sent Events, each the
// /status JSON, the first at once and then every second.
func (s *Server) serveStatusEvents(ctx *fasthttp.RequestCtx) {
	if !s.pageAuthorized(ctx) {
		return
	}
	pageHeaders(ctx)
	ctx.SetContentType("text/event-stream")
	ctx.Response.Header.Set("X-Accel-Buffering", "no")
	ctx.SetBodyStream(&statusEvents{s: s, every: statusEventsEvery, until: time.Now().Add(statusEventsMaxAge)}, -1)
}

// pageAuthorized checks the publish key like /status; a browser without
// it is asked for Basic credentials (any user name, the key as password),
// which it then sends with the page's event stream too.
func (s *Server) pageAuthorized(ctx *fasthttp.RequestCtx) bool {
	if s.authorized(ctx) {
		return true
	}
	ctx.Response.Header.Set("WWW-Authenticate", `Basic realm="edgepush control", charset="UTF-8"`)
	controlError(ctx, fasthttp.StatusUnauthorized, "missing or invalid publish key")
	return false
}

func pageHeaders(ctx *fasthttp.RequestCtx) {
	ctx.Response.Header.Set("Cache-Control", "no-store")
	ctx.Response.Header.Set("X-Content-Type-Options", "nosniff")
	ctx.Response.Header.Set("Content-Security-Policy",
		"default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'")
}

// statusEvents is the body of a /status/events response. fasthttp reads
// it on the connection's own goroutine, so the stream costs no goroutine
// of ours: Read waits for the next tick and ends (io.EOF) when the node
// shuts down or the stream is old. A client that went away is noticed by
// the next write, at most a second later.
type statusEvents struct {
	s       *Server
	every   time.Duration
	until   time.Time
	buf     []byte // reused for each event
	pending []byte // what is left of buf to read
	started bool
}

// Read implements io.Reader.
func (e *statusEvents) Read(p []byte) (int, error) {
	if len(e.pending) == 0 {
		if err := e.next(); err != nil {
			return 0, err
		}
	}
	n := copy(p, e.pending)
	e.pending = e.pending[n:]
	return n, nil
}

// next waits for the next event and formats it into pending.
func (e *statusEvents) next() error {
	if e.started {
		wait := time.NewTimer(min(e.every, time.Until(e.until)))
		defer wait.Stop()
		select {
		case <-e.s.bgCtx.Done():
			return io.EOF
		case <-wait.C:
		}
		if !time.Now().Before(e.until) {
			return io.EOF
		}
	}
	data, err := json.Marshal(e.s.Status())
	if err != nil {
		return err
	}
	e.buf = e.buf[:0]
	if !e.started {
		e.buf = append(e.buf, "retry: 1000\n"...)
		e.started = true
	}
	e.buf = append(e.buf, "data: "...)
	e.buf = append(e.buf, data...)
	e.pending = append(e.buf, "\n\n"...)
	e.buf = e.pending
	return nil
}

// durationSum counts and sums durations: the origin requests' for the
// status page's latency chart (Status.OriginReqs).
type durationSum struct {
	count atomic.Uint64
	nanos atomic.Int64
}

// add counts one duration.
func (d *durationSum) add(x time.Duration) {
	d.nanos.Add(int64(x))
	d.count.Add(1)
}

// load returns the count and the sum in seconds. The two are read one
// after the other: a duration added in between may be in the sum and not
// yet in the count.
func (d *durationSum) load() (uint64, float64) {
	n := d.count.Load()
	return n, time.Duration(d.nanos.Load()).Seconds()
}

// nodeName is the node's name: -node-name, or the host name (as the tier
// names it).
func (s *Server) nodeName() string {
	if s.cfg.NodeName != "" {
		return s.cfg.NodeName
	}
	name, _ := os.Hostname()
	return name
}
