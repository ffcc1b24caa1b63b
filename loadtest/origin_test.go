package loadtest

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/edgepush/edgepush/grip"
)

func TestOrigin(t *testing.T) {
	o := NewOrigin()
	tests := []struct {
		path, hold, channel, contentType, body, timeout string
	}{
		{"/stream?ch=news", "stream", "news", "text/plain; charset=utf-8", "open\n", ""},
		{"/sse?ch=a.b-c", "stream", "a.b-c", "text/event-stream", ": open\n\n", ""},
		{"/poll?ch=p", "response", "p", "text/plain; charset=utf-8", "timeout\n", "55"},
		{"/stream", "stream", "bench", "text/plain; charset=utf-8", "open\n", ""},
	}
	for _, tt := range tests {
		w := httptest.NewRecorder()
		o.ServeHTTP(w, httptest.NewRequest(http.MethodGet, tt.path, nil))
		h := w.Header()
		if w.Code != 200 || h.Get("Grip-Hold") != tt.hold || h.Get("Grip-Channel") != tt.channel ||
			h.Get("Surrogate-Key") != tt.channel || h.Get("Cache-Control") != "max-age=60" ||
			h.Get("Content-Type") != tt.contentType || h.Get("Grip-Timeout") != tt.timeout ||
			w.Body.String() != tt.body {
			t.Errorf("%s: %d %v %q", tt.path, w.Code, h, w.Body.String())
		}
	}
	for _, bad := range []string{"/stream?ch=a,b", "/sse?ch=a%20b", "/poll?ch=a;prev-id=1", "/stream?ch=%0d%0aX:1"} {
		w := httptest.NewRecorder()
		o.ServeHTTP(w, httptest.NewRequest(http.MethodGet, bad, nil))
		if w.Code != http.StatusBadRequest || w.Header().Get("Grip-Hold") != "" {
			t.Errorf("%s: %d %v", bad, w.Code, w.Header())
		}
	}
	w := httptest.NewRecorder()
	o.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/stream", nil))
	if w.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /stream: %d", w.Code)
	}
	w = httptest.NewRecorder()
	o.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/nope", nil))
	if w.Code != http.StatusNotFound {
		t.Errorf("GET /nope: %d", w.Code)
	}
}

func TestOriginWebSocketOverHTTP(t *testing.T) {
	o := NewOrigin()
	post := func(path, contentType string, evs ...grip.WSEvent) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(grip.AppendWSEvents(nil, evs...)))
		req.Header.Set("Content-Type", contentType)
		w := httptest.NewRecorder()
		o.ServeHTTP(w, req)
		return w
	}
	w := post("/ws?ch=news", grip.WebSocketEventsType, grip.WSEvent{Type: grip.WSEventOpen})
	want := "OPEN\r\n" + "TEXT 27\r\n" + `c:{"type":"subscribe","channel":"news"}` + "\r\n" + "TEXT 9\r\nm:welcome\r\n"
	h := w.Header()
	if w.Code != 200 || w.Body.String() != want || h.Get("Content-Type") != grip.WebSocketEventsType ||
		h.Get("Sec-WebSocket-Extensions") != "grip" || h.Get("Cache-Control") != "max-age=60" ||
		h.Get("Surrogate-Key") != "news" {
		t.Errorf("OPEN: %d %v %q", w.Code, h, w.Body.String())
	}
	evs, err := grip.ParseWSEvents(w.Body.Bytes())
	if err != nil || len(evs) != 3 || evs[0].Type != grip.WSEventOpen {
		t.Errorf("answer does not parse: %v %v", evs, err)
	}

	// cache=no: the same answer, uncacheable and without Surrogate-Key.
	w = post("/ws?ch=news&cache=no", grip.WebSocketEventsType, grip.WSEvent{Type: grip.WSEventOpen})
	h = w.Header()
	if w.Code != 200 || w.Body.String() != want || h.Get("Sec-WebSocket-Extensions") != "grip" ||
		h.Get("Cache-Control") != "no-store" || h.Get("Surrogate-Key") != "" {
		t.Errorf("OPEN, cache=no: %d %v %q", w.Code, h, w.Body.String())
	}

	// The default channel, and a content type with parameters.
	w = post("/ws", grip.WebSocketEventsType+"; charset=utf-8", grip.WSEvent{Type: grip.WSEventOpen})
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"channel":"bench"`) {
		t.Errorf("default channel: %d %q", w.Code, w.Body.String())
	}

	// Other events: an empty answer; CLOSE is acknowledged.
	for _, ev := range []grip.WSEvent{{Type: grip.WSEventText, Content: []byte("hi")}, {Type: grip.WSEventDisconnect},
		{Type: grip.WSEventPing}} {
		w = post("/ws?ch=news", grip.WebSocketEventsType, ev)
		if w.Code != 200 || w.Body.Len() != 0 || w.Header().Get("Content-Type") != grip.WebSocketEventsType ||
			w.Header().Get("Cache-Control") != "" {
			t.Errorf("%s: %d %v %q", ev.Type, w.Code, w.Header(), w.Body.String())
		}
	}
	w = post("/ws?ch=news", grip.WebSocketEventsType, grip.WSEvent{Type: grip.WSEventClose, Content: []byte{0x03, 0xe8}})
	if w.Code != 200 || w.Body.String() != "CLOSE 2\r\n\x03\xe8\r\n" {
		t.Errorf("CLOSE: %d %q", w.Code, w.Body.String())
	}

	// Refusals.
	if w = post("/ws?ch=news", "text/plain", grip.WSEvent{Type: grip.WSEventOpen}); w.Code != http.StatusUnsupportedMediaType {
		t.Errorf("text/plain: %d", w.Code)
	}
	if w = post("/ws?ch=a,b", grip.WebSocketEventsType, grip.WSEvent{Type: grip.WSEventOpen}); w.Code != http.StatusBadRequest {
		t.Errorf("bad channel: %d", w.Code)
	}
	req := httptest.NewRequest(http.MethodPost, "/ws", strings.NewReader("TEXT 99\r\nshort\r\n"))
	req.Header.Set("Content-Type", grip.WebSocketEventsType)
	w = httptest.NewRecorder()
	if o.ServeHTTP(w, req); w.Code != http.StatusBadRequest {
		t.Errorf("malformed events: %d", w.Code)
	}
	w = httptest.NewRecorder()
	if o.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/ws", nil)); w.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET /ws: %d", w.Code)
	}
}

func TestStartOrigin(t *testing.T) {
	if _, err := StartOrigin("192.0.2.1:0"); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Errorf("non-loopback address: %v", err)
	}
	if _, err := StartOrigin("nonsense"); err == nil {
		t.Error("bad address accepted")
	}
	o, err := StartOrigin("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{}, Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	resp, err := client.Get(o.URL() + "/stream?ch=x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("Grip-Channel") != "x" {
		t.Errorf("headers %v", resp.Header)
	}
	if err := o.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	if err := o.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
	if _, err := client.Get(o.URL() + "/stream"); err == nil {
		t.Error("the origin still answers after Close")
	}
}
