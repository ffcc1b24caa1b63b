package grip

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
)

func TestAppendWSEvents(t *testing.T) {
	tests := []struct {
		ev   WSEvent
		want string
	}{
		{WSEvent{Type: WSEventOpen}, "OPEN\r\n"},
		{WSEvent{Type: WSEventText, Content: []byte("hello")}, "TEXT 5\r\nhello\r\n"},
		{WSEvent{Type: WSEventText}, "TEXT 0\r\n\r\n"},
		{WSEvent{Type: WSEventBinary, Content: []byte{}}, "BINARY 0\r\n\r\n"},
		{WSEvent{Type: WSEventBinary, Content: []byte(strings.Repeat("x", 26))}, "BINARY 1a\r\n" + strings.Repeat("x", 26) + "\r\n"},
		{WSEvent{Type: WSEventPing}, "PING\r\n"},
		{WSEvent{Type: WSEventPong, Content: []byte("p")}, "PONG 1\r\np\r\n"},
		{WSEvent{Type: WSEventClose}, "CLOSE\r\n"},
		{WSEvent{Type: WSEventClose, Content: CloseEventContent(1000, "bye")}, "CLOSE 5\r\n\x03\xe8bye\r\n"},
		{WSEvent{Type: WSEventDisconnect}, "DISCONNECT\r\n"},
	}
	for _, tt := range tests {
		if got := string(AppendWSEvents(nil, tt.ev)); got != tt.want {
			t.Errorf("AppendWSEvents(%+v) = %q, want %q", tt.ev, got, tt.want)
		}
	}
	got := AppendWSEvents([]byte("pre:"), WSEvent{Type: WSEventOpen}, WSEvent{Type: WSEventText, Content: []byte("a")})
	if string(got) != "pre:OPEN\r\nTEXT 1\r\na\r\n" {
		t.Errorf("append several = %q", got)
	}
}

func TestParseWSEvents(t *testing.T) {
	// The body an origin sent Pushpin in PUSHPIN-OBSERVED.md.
	sub := `c:{"type":"subscribe","channel":"updates"}`
	tests := []struct {
		body string
		want []WSEvent
	}{
		{"", nil},
		{"OPEN\r\nTEXT 2a\r\n" + sub + "\r\n", []WSEvent{{Type: WSEventOpen}, {Type: WSEventText, Content: []byte(sub)}}},
		{"TEXT A\r\n0123456789\r\n", []WSEvent{{Type: WSEventText, Content: []byte("0123456789")}}},
		{"TEXT 4\r\na\r\nb\r\n", []WSEvent{{Type: WSEventText, Content: []byte("a\r\nb")}}},
		{"TEXT\r\nPING 0\r\n\r\n", []WSEvent{{Type: WSEventText}, {Type: WSEventPing, Content: []byte{}}}},
		{"CLOSE 2\r\n\x03\xe8\r\nDISCONNECT\r\n", []WSEvent{{Type: WSEventClose, Content: []byte{3, 0xe8}}, {Type: WSEventDisconnect}}},
		{"FUTURE-EVENT\r\n", []WSEvent{{Type: "FUTURE-EVENT"}}},
	}
	for _, tt := range tests {
		got, err := ParseWSEvents([]byte(tt.body))
		if err != nil {
			t.Errorf("ParseWSEvents(%q): %v", tt.body, err)
			continue
		}
		if !wsEventsEqual(got, tt.want) {
			t.Errorf("ParseWSEvents(%q) = %+v, want %+v", tt.body, got, tt.want)
		}
	}
}

func TestParseWSEventsErrors(t *testing.T) {
	tests := []struct{ body, reason string }{
		{"OPEN", "event line not terminated by CRLF"},
		{"OPEN\r\nTEXT 1\n", "event line not terminated by CRLF"},
		{"\r\n", "invalid event type"},
		{" 1\r\nx\r\n", "invalid event type"},
		{"TE\x00XT\r\n", "invalid event type"},
		{"TEXT \r\n", "invalid content length"},
		{"TEXT zz\r\n", "invalid content length"},
		{"TEXT -1\r\n", "invalid content length"},
		{"TEXT 0x1\r\na\r\n", "invalid content length"},
		{"TEXT 1 2\r\n", "invalid content length"},
		{"TEXT 123456789\r\n", "invalid content length"},
		{"TEXT 5\r\nab\r\n", "content not followed by CRLF"},
		{"TEXT 2\r\nabXY", "content not followed by CRLF"},
		{"TEXT 2\r\nab", "content not followed by CRLF"},
		{"TEXT 7fffffff\r\n", "content not followed by CRLF"},
		{"TEXT ffffffff\r\n", "invalid content length"},
	}
	for _, tt := range tests {
		got, err := ParseWSEvents([]byte(tt.body))
		checkParseError(t, got, err, WebSocketEventsType+": "+tt.reason)
	}
}

func TestWSEventsRoundTrip(t *testing.T) {
	evs := []WSEvent{
		{Type: WSEventOpen},
		{Type: WSEventText, Content: []byte("héllo\r\n")},
		{Type: WSEventBinary, Content: bytes.Repeat([]byte{0, 0xff, '\r', '\n'}, 100)},
		{Type: WSEventPing, Content: []byte("p")},
		{Type: WSEventPong},
		{Type: WSEventClose, Content: CloseEventContent(4001, "gone away")},
		{Type: WSEventDisconnect},
	}
	got, err := ParseWSEvents(AppendWSEvents(nil, evs...))
	if err != nil {
		t.Fatal(err)
	}
	if !wsEventsEqual(got, evs) {
		t.Errorf("round trip: got %+v", got)
	}
}

// wsEventsEqual compares events treating nil and empty content as equal.
func wsEventsEqual(a, b []WSEvent) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Type != b[i].Type || !bytes.Equal(a[i].Content, b[i].Content) {
			return false
		}
	}
	return true
}

func TestCloseContent(t *testing.T) {
	b := CloseEventContent(1001, "going")
	if !reflect.DeepEqual(b, []byte{0x03, 0xe9, 'g', 'o', 'i', 'n', 'g'}) {
		t.Errorf("CloseEventContent = %v", b)
	}
	if code, reason := ParseCloseContent(b); code != 1001 || reason != "going" {
		t.Errorf("ParseCloseContent = %d, %q", code, reason)
	}
	if code, reason := ParseCloseContent(CloseEventContent(65535, "")); code != 65535 || reason != "" {
		t.Errorf("max code = %d, %q", code, reason)
	}
	for _, short := range [][]byte{nil, {3}} {
		if code, reason := ParseCloseContent(short); code != 0 || reason != "" {
			t.Errorf("ParseCloseContent(%v) = %d, %q", short, code, reason)
		}
	}
}

// The events' slice is sized by the CRLFs in the body, at most 8: content
// with many lines of its own does not make it large.
func TestParseWSEventsCapacity(t *testing.T) {
	content := strings.Repeat("line\r\n", 1000)
	body := AppendWSEvents(nil, WSEvent{Type: WSEventOpen}, WSEvent{Type: WSEventText, Content: []byte(content)})
	evs, err := ParseWSEvents(body)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 || evs[0].Type != WSEventOpen || string(evs[1].Content) != content {
		t.Fatalf("parsed %d events", len(evs))
	}
	if cap(evs) > 8 {
		t.Errorf("capacity %d for 2 events", cap(evs))
	}
}
