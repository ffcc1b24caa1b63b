package loadtest

import (
	"io"
	"net/http"
	"net/url"
)

// OriginHoldTimeout is the Grip-Timeout, in seconds, of the origin's
// long-poll holds.
const OriginHoldTimeout = "55"

// maxChannelLen bounds the channel names the origin accepts.
const maxChannelLen = 128

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
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "edgepush-loadtest GRIP origin\n"+
			"GET /stream?ch=C  HTTP stream hold on channel C\n"+
			"GET /sse?ch=C     SSE stream hold on channel C\n"+
			"GET /poll?ch=C    long-poll hold on channel C\n")
	})
	return mux
}

// hold answers with GRIP hold instructions for the request's channel
// (and a Grip-Timeout unless timeout is empty).
func hold(w http.ResponseWriter, r *http.Request, mode, timeout, contentType, body string) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		http.Error(w, "bad query", http.StatusBadRequest)
		return
	}
	ch := q.Get("ch")
	if ch == "" {
		ch = DefaultChannel
	}
	if !validChannel(ch) {
		http.Error(w, "bad channel name", http.StatusBadRequest)
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
