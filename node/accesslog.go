package node

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/edgepush/edgepush/cache"
	"github.com/valyala/fasthttp"
)

// accessLog writes one JSON line per client request answered at once,
// and one per held connection (stream, long-poll, WebSocket) when it
// ends. A nil *accessLog is off: its methods return at once, so the hot
// path pays one branch.
type accessLog struct {
	log  *slog.Logger
	file *os.File // nil for stderr
}

// openAccessLog opens the -access-log destination: "" is off (nil), "-"
// is stderr, anything else a file opened for append.
func openAccessLog(path string) (*accessLog, error) {
	switch path {
	case "":
		return nil, nil
	case "-":
		return newAccessLog(os.Stderr, nil), nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("config: -access-log: %w", err)
	}
	return newAccessLog(f, f), nil
}

// checkAccessLog reports, at New, whether openAccessLog will succeed:
// the file is opened (created) and closed again.
func checkAccessLog(path string) error {
	a, err := openAccessLog(path)
	a.close()
	return err
}

func newAccessLog(w *os.File, owned *os.File) *accessLog {
	h := slog.NewJSONHandler(w, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.LevelKey {
				return slog.Attr{} // every line is the same level
			}
			return a
		},
	})
	return &accessLog{log: slog.New(h), file: owned}
}

// close closes the log file, if the log owns one.
func (a *accessLog) close() {
	if a != nil && a.file != nil {
		a.file.Close()
	}
}

// accessCacheKey is the RequestCtx user value that holds the request's
// cache.Result, set only while the access log is on.
type accessCacheKey struct{}

// noteCache remembers how the cache answered the request, for its line.
func (a *accessLog) noteCache(ctx *fasthttp.RequestCtx, r cache.Result) {
	if a != nil {
		ctx.SetUserValue(accessCacheKey{}, r)
	}
}

// accessRecord is what a line says of the request.
type accessRecord struct {
	start                                         time.Time
	id                                            uint64
	method, host, path, client, requestID, cached string
}

func newAccessRecord(ctx *fasthttp.RequestCtx) accessRecord {
	r := accessRecord{
		start:     ctx.Time(),
		id:        ctx.ID(),
		method:    string(ctx.Method()),
		host:      string(ctx.Host()),
		path:      string(ctx.Path()),
		client:    ctx.RemoteAddr().String(),
		requestID: string(ctx.Request.Header.Peek("X-Request-Id")),
	}
	if res, ok := ctx.UserValue(accessCacheKey{}).(cache.Result); ok {
		r.cached = cacheStatus(res)
	}
	return r
}

// write logs one line.
func (a *accessLog) write(r *accessRecord, transport string, status int, bytes int64, channels []string, end string) {
	attrs := make([]slog.Attr, 0, 14)
	attrs = append(attrs,
		slog.String("id", strconv.FormatUint(r.id, 16)),
		slog.String("method", r.method),
		slog.String("host", r.host),
		slog.String("path", r.path),
		slog.Int("status", status),
		slog.Int64("bytes", bytes),
		slog.Float64("duration_ms", float64(time.Since(r.start).Microseconds())/1000),
		slog.String("transport", transport),
		slog.String("client", r.client),
	)
	if len(channels) > 0 {
		attrs = append(attrs, slog.Any("channels", channels))
	}
	if r.cached != "" {
		attrs = append(attrs, slog.String("cache", r.cached))
	}
	if r.requestID != "" {
		attrs = append(attrs, slog.String("request_id", r.requestID))
	}
	if end != "" {
		attrs = append(attrs, slog.String("end", end))
	}
	a.log.LogAttrs(context.Background(), slog.LevelInfo, "access", attrs...)
}

// request logs a client request answered at once; a hijacked one (held,
// WebSocket) is logged when its connection ends.
func (a *accessLog) request(ctx *fasthttp.RequestCtx) {
	if a == nil || ctx.Hijacked() {
		return
	}
	r := newAccessRecord(ctx)
	a.write(&r, transportPlain, ctx.Response.StatusCode(), int64(len(ctx.Response.Body())), nil, "")
}

// heldAccess is the access-log record of a held connection, written when
// the connection ends. The writer goroutines update it concurrently.
type heldAccess struct {
	accessRecord
	transport string
	channels  func() []string // the WebSocket's, read at the end
	status    atomic.Int32    // what the client got (a long-poll's answer)
	bytes     atomic.Int64    // written to the socket by the node
}

// held starts the record of a connection about to be held; ctx must still
// be valid (before the hijack). status is the response the connection
// opens with.
func (a *accessLog) held(ctx *fasthttp.RequestCtx, transport string, status int) *heldAccess {
	if a == nil {
		return nil
	}
	h := &heldAccess{accessRecord: newAccessRecord(ctx), transport: transport}
	h.status.Store(int32(status))
	return h
}

// heldWS starts the record of a WebSocket about to be upgraded.
func (a *accessLog) heldWS(ctx *fasthttp.RequestCtx, ws *wsSession) *heldAccess {
	h := a.held(ctx, transportWS, fasthttp.StatusSwitchingProtocols)
	if h != nil {
		h.channels = ws.channelList
	}
	return h
}

// heldEnded logs a held connection that ended for reason (nil: normally).
func (a *accessLog) heldEnded(h *heldConn, reason error) {
	if a == nil || h.acc == nil {
		return
	}
	r := h.acc
	channels := h.channelList()
	if r.channels != nil {
		channels = r.channels()
	}
	a.write(&r.accessRecord, r.transport, int(r.status.Load()), r.bytes.Load(), channels, errString(reason))
}

// wrote counts bytes written to a held connection; the status of a
// long-poll's answer is read from its first bytes.
func (r *heldAccess) wrote(bufs [][]byte, n int) {
	r.bytes.Add(int64(n))
	if r.transport == transportLongPoll && len(bufs) > 0 {
		if code := statusOf(bufs[0]); code != 0 {
			r.status.Store(int32(code))
		}
	}
}

// statusOf returns the status code of an HTTP/1.x status line at the
// start of b, or 0.
func statusOf(b []byte) int {
	if len(b) < 12 || string(b[:7]) != "HTTP/1." || b[8] != ' ' {
		return 0
	}
	code, err := strconv.Atoi(string(b[9:12]))
	if err != nil {
		return 0
	}
	return code
}

// channelList returns the WebSocket's channels, sorted.
func (ws *wsSession) channelList() []string {
	ws.mu.Lock()
	out := append(make([]string, 0, len(ws.channels)), ws.channels...)
	ws.mu.Unlock()
	slices.Sort(out)
	return out
}
