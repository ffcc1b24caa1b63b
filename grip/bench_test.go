package grip

import (
	"testing"
	"time"
)

// streamHoldHeaders is what a typical reliable SSE origin answers.
var streamHoldHeaders = []Header{
	{"Server", "origin/1.0"},
	{"Date", "Sun, 22 Nov 2026 05:31:28 GMT"},
	{"Content-Type", "text/event-stream"},
	{"Cache-Control", "max-age=60"},
	{"Grip-Hold", "stream"},
	{"Grip-Channel", "updates; prev-id=42"},
	{"Grip-Keep-Alive", `:\n\n; format=cstring; timeout=20`},
	{"Grip-Link", "</stream?after=42&reliable=1>; rel=next"},
}

func BenchmarkParseInstruct(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseInstruct(streamHoldHeaders, 200, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParsePublish(b *testing.B) {
	body := []byte(`{"items":[{"channel":"updates","id":"43","prev-id":"42","formats":{` +
		`"http-stream":{"content":"event: update\ndata: {\"value\": 43}\n\n"},` +
		`"ws-message":{"content":"{\"value\": 43}"}}}]}`)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParsePublish(body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSignerToken(b *testing.B) {
	s := NewSigner("pushpin", []byte("changeme"))
	now := time.Unix(1_700_000_000, 0)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if s.Token(now) == "" {
				b.Fatal("no token")
			}
		}
	})
}
