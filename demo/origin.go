package demo

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// MaxCounters bounds how many distinct counters one Origin keeps, so the
// demo's memory stays bounded whatever names clients invent.
const MaxCounters = 1000

// MaxNameLen is the longest accepted counter name. Names are 1 to MaxNameLen
// characters from [a-z0-9-].
const MaxNameLen = 32

// holdTimeout is the Grip-Timeout of long-polls and the keep-alive interval of
// streams, in seconds.
const holdTimeout = 20

// sseKeepAlive and lineKeepAlive make the node send an SSE comment or an
// empty line after holdTimeout idle seconds, so intermediaries and clients
// see the stream is alive.
const (
	sseKeepAlive  = `:\n\n; format=cstring; timeout=20`
	lineKeepAlive = `\n; format=cstring; timeout=20`
)

// cacheControl lets the node's shared cache keep the GRIP instructions and the
// initial value briefly (publishes carry the updates), and serve them for a
// day while the origin is down (stale-if-error, whatever the node's
// -stale-if-error): new connections still open, from the cache.
const cacheControl = "s-maxage=10, stale-if-error=86400"

// pageCacheControl makes browsers ask for the page every time (max-age=0)
// while the node caches it like the counters, so that a new tab opens while
// the origin is down.
const pageCacheControl = "max-age=0, " + cacheControl

// Config configures the demo origin.
type Config struct {
	// PublishURL is the node's Pushpin-compatible publish endpoint, e.g.
	// "http://127.0.0.1:5561/publish/". Increments POST their updates here.
	PublishURL string
	// PurgeKeys makes each update also purge the counter's surrogate key
	// (counter-<name>) in the same call: PublishURL is then the node's
	// /purge-publish/ endpoint, so cached counter values never lag.
	PurgeKeys bool
	// PublishKey, if set, is sent as "Authorization: Bearer <key>" on every
	// publish. Empty: no Authorization header.
	PublishKey string
	// Client sends the publishes. Nil: a client with a 5 s timeout.
	Client *http.Client
}

// Origin is the demo origin's state (counters). It is an http.Handler, safe
// for concurrent use; create it with New.
type Origin struct {
	cfg    Config
	client *http.Client
	mux    *http.ServeMux

	mu       sync.Mutex
	counters map[string]*counter // guarded by mu; at most MaxCounters entries
}

// counter is one named counter. pubMu serialises increment+publish so the
// node receives a counter's updates in value order; reads need no lock.
type counter struct {
	value atomic.Int64
	pubMu sync.Mutex
}

//go:embed page.html
var pageHTML []byte

// New returns a demo origin with all counters at zero.
func New(cfg Config) *Origin {
	o := &Origin{cfg: cfg, client: cfg.Client, counters: make(map[string]*counter)}
	if o.client == nil {
		o.client = &http.Client{Timeout: 5 * time.Second}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", o.servePage)
	mux.HandleFunc("GET /counters/{name}", o.withName(o.serveLongPoll))
	mux.HandleFunc("GET /counters/{name}/events", o.withName(o.serveEvents))
	mux.HandleFunc("GET /counters/{name}/stream", o.withName(o.serveStream))
	mux.HandleFunc("GET /counters/{name}/value", o.withName(o.serveValue))
	mux.HandleFunc("POST /counters/{name}/increment", o.withName(o.serveIncrement))
	mux.HandleFunc("GET /events", o.serveMultiEvents)
	o.mux = mux
	return o
}

// ServeHTTP routes r to the page or one of the counter endpoints. Unknown
// paths and invalid counter names get 404; a known path with the wrong
// method gets 405 with an Allow header.
func (o *Origin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o.mux.ServeHTTP(w, r)
}

// withName validates the {name} path value before calling h.
func (o *Origin) withName(h func(http.ResponseWriter, *http.Request, string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		if !validName(name) {
			writeError(w, http.StatusNotFound, "demo: counter name must match [a-z0-9-]{1,32}")
			return
		}
		h(w, r, name)
	}
}

func (o *Origin) servePage(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", pageCacheControl)
	_, _ = w.Write(pageHTML)
}

// serveEvents opens an SSE stream hold on sseChannel(name); the initial body
// is one event with the current value.
func (o *Origin) serveEvents(w http.ResponseWriter, r *http.Request, name string) {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	setCacheHeaders(h, name)
	h.Set("Grip-Hold", "stream")
	h.Set("Grip-Channel", sseChannel(name))
	h.Set("Grip-Keep-Alive", sseKeepAlive)
	_, _ = w.Write([]byte(sseEvent(valueJSON(name, o.value(name)))))
}

// MaxStreamCounters bounds how many counters one GET /events?counters=...
// stream may name.
const MaxStreamCounters = 8

// serveMultiEvents is serveEvents for several counters on one connection:
// GET /events?counters=a,b,c holds on each counter's SSE channel and starts
// with one event per counter. The page uses it because browsers allow only
// six HTTP/1.1 connections per host across all tabs; one EventSource per
// counter would exhaust them with two tabs and stall the +1 requests.
func (o *Origin) serveMultiEvents(w http.ResponseWriter, r *http.Request) {
	names, ok := parseNameList(r.URL.Query().Get("counters"))
	if !ok {
		writeError(w, http.StatusBadRequest, "demo: counters must be a comma-separated list of 1 to "+
			strconv.Itoa(MaxStreamCounters)+" names matching [a-z0-9-]{1,32}")
		return
	}
	var body strings.Builder
	channels := make([]string, len(names))
	keys := make([]string, len(names))
	for i, name := range names {
		channels[i] = sseChannel(name)
		keys[i] = channel(name)
		body.WriteString(sseEvent(valueJSON(name, o.value(name))))
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", cacheControl)
	h.Set("Surrogate-Key", strings.Join(keys, " "))
	h.Set("Grip-Hold", "stream")
	h.Set("Grip-Channel", strings.Join(channels, ", "))
	h.Set("Grip-Keep-Alive", sseKeepAlive)
	_, _ = io.WriteString(w, body.String())
}

// parseNameList splits a comma-separated list of counter names, dropping
// duplicates. It fails on an empty list, an invalid name or more than
// MaxStreamCounters names.
func parseNameList(list string) ([]string, bool) {
	var names []string
	for _, name := range strings.Split(list, ",") {
		if !validName(name) {
			return nil, false
		}
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	return names, len(names) <= MaxStreamCounters
}

// serveStream opens a plain HTTP stream hold (one JSON object per line) on
// channel(name).
func (o *Origin) serveStream(w http.ResponseWriter, r *http.Request, name string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	setCacheHeaders(h, name)
	h.Set("Grip-Hold", "stream")
	h.Set("Grip-Channel", channel(name))
	h.Set("Grip-Keep-Alive", lineKeepAlive)
	_, _ = w.Write([]byte(valueJSON(name, o.value(name)) + "\n"))
}

// serveLongPoll opens a response hold on channel(name). The body, the current
// value, is what the client receives if nothing is published before the
// Grip-Timeout.
func (o *Origin) serveLongPoll(w http.ResponseWriter, r *http.Request, name string) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	setCacheHeaders(h, name)
	h.Set("Grip-Hold", "response")
	h.Set("Grip-Channel", channel(name))
	h.Set("Grip-Timeout", strconv.Itoa(holdTimeout))
	_, _ = w.Write([]byte(valueJSON(name, o.value(name))))
}

// serveValue answers the current value with no GRIP instructions.
func (o *Origin) serveValue(w http.ResponseWriter, r *http.Request, name string) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	setCacheHeaders(h, name)
	_, _ = w.Write([]byte(valueJSON(name, o.value(name))))
}

// serveIncrement adds one to the counter and publishes the new value. The
// increment stands even if the publish fails (502). The publish is not tied
// to the client's request context: once counted, the update should reach the
// other subscribers even if this client goes away.
func (o *Origin) serveIncrement(w http.ResponseWriter, r *http.Request, name string) {
	v, err := o.increment(context.WithoutCancel(r.Context()), name)
	w.Header().Set("Cache-Control", "no-store")
	switch {
	case errors.Is(err, errTooManyCounters):
		writeError(w, http.StatusTooManyRequests, err.Error())
		return
	case err != nil:
		writeError(w, http.StatusBadGateway, "publish: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(valueJSON(name, v)))
}

// errTooManyCounters is increment's error when MaxCounters counters exist
// and name is not one of them.
var errTooManyCounters = errors.New("demo: too many counters (max " + strconv.Itoa(MaxCounters) + ")")

// increment adds one to the counter and publishes (with PurgeKeys, purges
// and publishes) the new value, which it returns. The increment stands even
// if the publish fails.
func (o *Origin) increment(ctx context.Context, name string) (int64, error) {
	c := o.counter(name)
	if c == nil {
		return 0, errTooManyCounters
	}
	c.pubMu.Lock()
	defer c.pubMu.Unlock()
	v := c.value.Add(1)
	update := counterUpdate(name, v)
	if o.cfg.PurgeKeys {
		update.Purge = &purgeSpec{Keys: []string{channel(name)}}
	}
	return v, o.publish(ctx, update)
}

// value returns the counter's current value; counters never incremented are 0
// and are not created by reading them.
func (o *Origin) value(name string) int64 {
	o.mu.Lock()
	c := o.counters[name]
	o.mu.Unlock()
	if c == nil {
		return 0
	}
	return c.value.Load()
}

// counter returns the named counter, creating it if there is room; nil when
// MaxCounters counters already exist.
func (o *Origin) counter(name string) *counter {
	o.mu.Lock()
	defer o.mu.Unlock()
	c := o.counters[name]
	if c == nil {
		if len(o.counters) >= MaxCounters {
			return nil
		}
		c = new(counter)
		o.counters[name] = c
	}
	return c
}

// validName reports whether name matches [a-z0-9-]{1,MaxNameLen}.
func validName(name string) bool {
	if len(name) == 0 || len(name) > MaxNameLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		b := name[i]
		if !(b >= 'a' && b <= 'z' || b >= '0' && b <= '9' || b == '-') {
			return false
		}
	}
	return true
}

// channel is the GRIP channel of the NDJSON stream, long-poll and WebSocket
// subscribers of a counter; it is also the counter's surrogate key.
func channel(name string) string { return "counter-" + name }

// sseChannel is the GRIP channel of a counter's SSE subscribers.
func sseChannel(name string) string { return "counter-" + name + "-sse" }

// valueJSON renders {"name":"<name>","value":<value>}.
func valueJSON(name string, value int64) string {
	b, _ := json.Marshal(struct {
		Name  string `json:"name"`
		Value int64  `json:"value"`
	}{name, value})
	return string(b)
}

// sseEvent wraps a one-line JSON payload as an SSE "value" event.
func sseEvent(data string) string { return "event: value\ndata: " + data + "\n\n" }

func setCacheHeaders(h http.Header, name string) {
	h.Set("Cache-Control", cacheControl)
	h.Set("Surrogate-Key", channel(name))
}

func writeError(w http.ResponseWriter, code int, msg string) {
	b, _ := json.Marshal(struct {
		Error string `json:"error"`
	}{msg})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}
