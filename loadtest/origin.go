package loadtest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/edgepush/edgepush/grip"
)

// OriginHoldTimeout is the Grip-Timeout, in seconds, of the origin's
// long-poll holds.
const OriginHoldTimeout = "55"

// maxChannelLen bounds the channel names the origin accepts.
const maxChannelLen = 128

// maxWSBody bounds the WebSocket-over-HTTP request bodies the origin reads.
const maxWSBody = 64 << 10

// NewOrigin returns a GRIP test origin for load tests: put the proxy under
// test (edgepush or Pushpin) in front of it. Every answer names its channel
// in Grip-Channel and in Surrogate-Key, and carries Cache-Control:
// max-age=60 so caching proxies may reuse it. The channel is the "ch" query
// parameter (default "bench"); it may hold up to 128 printable ASCII
// characters other than space, comma, semicolon and quotes.
//
//	GET /stream?ch=C  Grip-Hold: stream, text/plain, body "open\n"
//	GET /sse?ch=C     Grip-Hold: stream, text/event-stream, body ": open\n\n"
//	GET /poll?ch=C    Grip-Hold: response, Grip-Timeout: 55, text/plain,
//	                  body "timeout\n" (what the client gets if nothing is
//	                  published in time)
//	POST /ws?ch=C     WebSocket-over-HTTP (application/websocket-events):
//	                  OPEN is answered with OPEN, TEXT
//	                  c:{"type":"subscribe","channel":"C"} and TEXT
//	                  m:welcome, with Sec-WebSocket-Extensions: grip (the
//	                  only answer with Cache-Control and Surrogate-Key);
//	                  CLOSE with CLOSE (same code), as the protocol asks;
//	                  other events with no events
//	POST /ws?ch=C&cache=no  the same, but the OPEN answer is uncacheable
//	                  (Cache-Control: no-store, no Surrogate-Key): a
//	                  caching proxy asks the origin for every session, so
//	                  the session setup rate includes one origin round trip
//	GET /             a short text listing these endpoints
//
// The handler keeps no state and is safe for concurrent use.
func NewOrigin() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /stream", func(w http.ResponseWriter, r *http.Request) {
		hold(w, r, "stream", "", "text/plain; charset=utf-8", "open\n")
	})
	mux.HandleFunc("GET /sse", func(w http.ResponseWriter, r *http.Request) {
		hold(w, r, "stream", "", "text/event-stream", ": open\n\n")
	})
	mux.HandleFunc("GET /poll", func(w http.ResponseWriter, r *http.Request) {
		hold(w, r, "response", OriginHoldTimeout, "text/plain; charset=utf-8", "timeout\n")
	})
	mux.HandleFunc("POST /ws", wsOverHTTP)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "edgepush-loadtest GRIP origin\n"+
			"GET /stream?ch=C  HTTP stream hold on channel C\n"+
			"GET /sse?ch=C     SSE stream hold on channel C\n"+
			"GET /poll?ch=C    long-poll hold on channel C\n"+
			"POST /ws?ch=C     WebSocket-over-HTTP, subscribed to channel C\n"+
			"POST /ws?ch=C&cache=no  the same, OPEN answered with Cache-Control: no-store\n")
	})
	return mux
}

// channelOf returns the request's channel ("ch", default "bench"), or
// answers 400 and returns false.
func channelOf(w http.ResponseWriter, r *http.Request) (string, bool) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		http.Error(w, "bad query", http.StatusBadRequest)
		return "", false
	}
	ch := q.Get("ch")
	if ch == "" {
		ch = DefaultChannel
	}
	if !validChannel(ch) {
		http.Error(w, "bad channel name", http.StatusBadRequest)
		return "", false
	}
	return ch, true
}

// wsOverHTTP answers one WebSocket-over-HTTP request: OPEN subscribes the
// connection to the channel and greets it, CLOSE is acknowledged.
func wsOverHTTP(w http.ResponseWriter, r *http.Request) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != grip.WebSocketEventsType {
		http.Error(w, "want Content-Type: "+grip.WebSocketEventsType, http.StatusUnsupportedMediaType)
		return
	}
	ch, ok := channelOf(w, r)
	if !ok {
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxWSBody))
	if err != nil {
		http.Error(w, "bad body: "+err.Error(), http.StatusBadRequest)
		return
	}
	evs, err := grip.ParseWSEvents(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var out []grip.WSEvent
	opened := false
	for _, ev := range evs {
		switch ev.Type {
		case grip.WSEventOpen:
			chJSON, _ := json.Marshal(ch) // a Go string always marshals
			out = append(out, grip.WSEvent{Type: grip.WSEventOpen},
				grip.WSEvent{Type: grip.WSEventText,
					Content: fmt.Appendf(nil, `c:{"type":"subscribe","channel":%s}`, chJSON)},
				grip.WSEvent{Type: grip.WSEventText, Content: []byte("m:welcome")})
			opened = true
		case grip.WSEventClose:
			out = append(out, grip.WSEvent{Type: grip.WSEventClose, Content: ev.Content})
		}
	}
	h := w.Header()
	h.Set("Content-Type", grip.WebSocketEventsType)
	switch {
	case opened && r.URL.Query().Get("cache") == "no":
		h.Set("Sec-WebSocket-Extensions", "grip")
		h.Set("Cache-Control", "no-store")
	case opened:
		h.Set("Sec-WebSocket-Extensions", "grip")
		h.Set("Cache-Control", "max-age=60")
		h.Set("Surrogate-Key", ch)
	}
	w.Write(grip.AppendWSEvents(nil, out...))
}

// hold answers with GRIP hold instructions for the request's channel
// (and a Grip-Timeout unless timeout is empty).
func hold(w http.ResponseWriter, r *http.Request, mode, timeout, contentType, body string) {
	ch, ok := channelOf(w, r)
	if !ok {
		return
	}
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Cache-Control", "max-age=60")
	h.Set("Surrogate-Key", ch)
	h.Set("Grip-Hold", mode)
	h.Set("Grip-Channel", ch)
	if timeout != "" {
		h.Set("Grip-Timeout", timeout)
	}
	io.WriteString(w, body)
}

// validChannel reports whether ch can go into Grip-Channel and
// Surrogate-Key unquoted.
func validChannel(ch string) bool {
	if len(ch) == 0 || len(ch) > maxChannelLen {
		return false
	}
	for i := 0; i < len(ch); i++ {
		c := ch[i]
		if c <= ' ' || c >= 0x7f || c == ',' || c == ';' || c == '"' || c == '\'' || c == '\\' {
			return false
		}
	}
	return true
}

// OriginServer is the test origin (NewOrigin) served on a loopback
// address, e.g. inside the load-test process so that a run can take it
// down (Config.OriginDown).
type OriginServer struct {
	srv  *http.Server
	ln   net.Listener
	done chan struct{} // closed when Serve has returned

	closeOnce sync.Once
	closeErr  error
}

// StartOrigin serves NewOrigin on addr (host:port, a loopback host; port
// 0 picks a free one) until Close.
func StartOrigin(addr string) (*OriginServer, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("loadtest: origin address %q: %w", addr, err)
	}
	if !isLoopbackHost(host) {
		return nil, fmt.Errorf("loadtest: origin address %q: the host must be a loopback address", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("loadtest: origin: %w", err)
	}
	o := &OriginServer{
		srv:  &http.Server{Handler: NewOrigin(), ReadHeaderTimeout: 10 * time.Second},
		ln:   ln,
		done: make(chan struct{}),
	}
	go func() {
		defer close(o.done)
		o.srv.Serve(ln) // returns ErrServerClosed after Close
	}()
	return o, nil
}

// Addr is the address the origin listens on.
func (o *OriginServer) Addr() net.Addr { return o.ln.Addr() }

// URL is the origin's base URL, e.g. "http://127.0.0.1:8080".
func (o *OriginServer) URL() string { return "http://" + o.ln.Addr().String() }

// Close stops the origin at once: the listener closes (new connections
// are refused) and so do the connections it has. It waits for the server
// to stop and is idempotent.
func (o *OriginServer) Close() error {
	o.closeOnce.Do(func() {
		o.closeErr = o.srv.Close()
		<-o.done
		if errors.Is(o.closeErr, http.ErrServerClosed) {
			o.closeErr = nil
		}
	})
	return o.closeErr
}
