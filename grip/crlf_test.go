package grip

import (
	"errors"
	"strings"
	"testing"
)

// TestHTTPResponseHeaderInjectionRefused: a published http-response (or
// an origin's grip-instruct response) whose header or reason carries CR or
// LF would be written raw to held long-polls, injecting headers or a
// second response; it is refused.
func TestHTTPResponseHeaderInjectionRefused(t *testing.T) {
	for _, body := range []string{
		`{"items":[{"channel":"c","formats":{"http-response":{"body":"x","headers":{"X-A":"1\r\nSet-Cookie: evil=1"}}}}]}`,
		`{"items":[{"channel":"c","formats":{"http-response":{"body":"x","headers":[["X-A","1\nX-B: 2"]]}}}]}`,
		`{"items":[{"channel":"c","formats":{"http-response":{"body":"x","headers":[["X-A\r\nX-B","1"]]}}}]}`,
		`{"items":[{"channel":"c","formats":{"http-response":{"body":"x","headers":[["Bad Name","1"]]}}}]}`,
		`{"items":[{"channel":"c","formats":{"http-response":{"code":200,"reason":"OK\r\n\r\nHTTP/1.1 200 OK","body":"x"}}}]}`,
	} {
		_, err := ParsePublish([]byte(body))
		var pe *PublishError
		if !errors.As(err, &pe) {
			t.Errorf("%s: %v, want a PublishError", body, err)
		}
	}
	ok := `{"items":[{"channel":"c","formats":{"http-response":{"body":"x","headers":{"X-A":"1, 2"},"reason":"Fine"}}}]}`
	if _, err := ParsePublish([]byte(ok)); err != nil {
		t.Fatalf("plain headers refused: %v", err)
	}
	for _, body := range []string{
		`{"hold":{"mode":"response","channels":[{"name":"c"}]},"response":{"headers":{"X-A":"a\r\nb"},"body":"x"}}`,
		`{"hold":{"mode":"response","channels":[{"name":"c"}]},"response":{"code":200,"reason":"OK\nX: y","body":"x"}}`,
	} {
		hs := []Header{{Name: "Content-Type", Value: "application/grip-instruct"}}
		if _, err := ParseInstruct(hs, 200, []byte(body)); err == nil || !strings.Contains(err.Error(), "CR, LF") {
			t.Errorf("instruct %s: %v", body, err)
		}
	}
}
