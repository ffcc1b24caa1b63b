package grip

import (
	"bytes"
	"strconv"
)

// WebSocketEventsType is the content type of WebSocket-over-HTTP bodies.
const WebSocketEventsType = "application/websocket-events"

// WSEventType is the type of a WebSocket-over-HTTP event.
type WSEventType string

// The event types Pushpin sends and understands. ParseWSEvents accepts
// other types too, as Pushpin does (it then ignores them).
const (
	// WSEventOpen opens the connection; the origin must answer the first
	// request with it.
	WSEventOpen WSEventType = "OPEN"
	// WSEventText is a text message.
	WSEventText WSEventType = "TEXT"
	// WSEventBinary is a binary message.
	WSEventBinary WSEventType = "BINARY"
	// WSEventPing is a ping frame.
	WSEventPing WSEventType = "PING"
	// WSEventPong is a pong frame.
	WSEventPong WSEventType = "PONG"
	// WSEventClose is a close frame (content: see CloseEventContent).
	WSEventClose WSEventType = "CLOSE"
	// WSEventDisconnect ends the connection without a close handshake.
	WSEventDisconnect WSEventType = "DISCONNECT"
)

// maxWSEventLength bounds an event's declared length (8 hex digits).
const maxWSEventLength = 1<<31 - 1

// WSEvent is one WebSocket-over-HTTP event.
type WSEvent struct {
	Type WSEventType
	// Content is the message, or for CLOSE the 2-byte big-endian close code
	// followed by the reason (see CloseEventContent).
	Content []byte
}

// AppendWSEvents appends the encoding of evs to dst: "TYPE LEN\r\nCONTENT\r\n"
// with LEN in lowercase hex, or "TYPE\r\n" for an event without content.
// As in Pushpin, TEXT and BINARY always carry a length ("TEXT 0\r\n\r\n"),
// other types only when their content is not empty.
func AppendWSEvents(dst []byte, evs ...WSEvent) []byte {
	for _, e := range evs {
		dst = append(dst, e.Type...)
		if len(e.Content) > 0 || e.Type == WSEventText || e.Type == WSEventBinary {
			dst = append(dst, ' ')
			dst = strconv.AppendInt(dst, int64(len(e.Content)), 16)
			dst = append(dst, "\r\n"...)
			dst = append(dst, e.Content...)
		}
		dst = append(dst, "\r\n"...)
	}
	return dst
}

// ParseWSEvents parses an application/websocket-events body. An empty body
// has no events. Content slices alias body. Errors are *ParseError.
//
// It is stricter than Pushpin, which tolerates a content length running past
// the body and does not check the CRLF after content: both are errors here.
func ParseWSEvents(body []byte) ([]WSEvent, error) {
	// Every event has a CRLF-ended line: room for one event per CRLF, up
	// to 8 (content with CRLFs of its own may make it more than needed).
	n := 0
	for rest := body; n < 8; n++ {
		i := bytes.Index(rest, []byte("\r\n"))
		if i < 0 {
			break
		}
		rest = rest[i+2:]
	}
	evs := make([]WSEvent, 0, n)
	for len(body) > 0 {
		ev, rest, reason := nextWSEvent(body)
		if reason != "" {
			return nil, parseErr(WebSocketEventsType, reason)
		}
		evs, body = append(evs, ev), rest
	}
	return evs, nil
}

// nextWSEvent parses the event at the start of b.
func nextWSEvent(b []byte) (ev WSEvent, rest []byte, reason string) {
	i := bytes.Index(b, []byte("\r\n"))
	if i < 0 {
		return ev, nil, "event line not terminated by CRLF"
	}
	line, b := b[:i], b[i+2:]
	typ, hexLen, hasLen := bytes.Cut(line, []byte(" "))
	if !validEventType(typ) {
		return ev, nil, "invalid event type"
	}
	ev.Type = eventType(typ)
	if !hasLen {
		return ev, b, ""
	}
	n, ok := parseHexLength(hexLen)
	if !ok {
		return ev, nil, "invalid content length"
	}
	if n > len(b) || !bytes.HasPrefix(b[n:], []byte("\r\n")) {
		return ev, nil, "content not followed by CRLF"
	}
	ev.Content = b[:n:n]
	return ev, b[n+2:], ""
}

// eventType is typ as a WSEventType, without an allocation for the
// types the protocol defines.
func eventType(typ []byte) WSEventType {
	for _, t := range [...]WSEventType{WSEventOpen, WSEventText, WSEventBinary, WSEventPing, WSEventPong, WSEventClose, WSEventDisconnect} {
		if string(typ) == string(t) {
			return t
		}
	}
	return WSEventType(typ)
}

// validEventType requires a non-empty run of printable ASCII without spaces.
func validEventType(t []byte) bool {
	if len(t) == 0 {
		return false
	}
	for _, c := range t {
		if c <= ' ' || c > '~' {
			return false
		}
	}
	return true
}

func parseHexLength(s []byte) (int, bool) {
	if len(s) == 0 || len(s) > 8 {
		return 0, false
	}
	n := 0
	for _, c := range s {
		d := unhex(c)
		if d < 0 {
			return 0, false
		}
		n = n<<4 | d
	}
	return n, n <= maxWSEventLength
}

// CloseEventContent returns CLOSE event content: code as 2 big-endian bytes
// followed by reason.
func CloseEventContent(code int, reason string) []byte {
	b := make([]byte, 2, 2+len(reason))
	b[0], b[1] = byte(code>>8), byte(code)
	return append(b, reason...)
}

// ParseCloseContent splits CLOSE event content into code and reason. Code
// is 0 (no status) when b is shorter than 2 bytes.
func ParseCloseContent(b []byte) (code int, reason string) {
	if len(b) < 2 {
		return 0, ""
	}
	return int(b[0])<<8 | int(b[1]), string(b[2:])
}
