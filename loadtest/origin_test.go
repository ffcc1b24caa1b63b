package loadtest

import (
	"net/http"
	"net/http/httptest"
	"testing"
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
