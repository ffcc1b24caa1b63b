package grip

import (
	"encoding/json"
	"errors"
	"time"
)

// Control message types (the "type" of a "c:" message).
const (
	// ControlSubscribe subscribes the connection to Channel.
	ControlSubscribe = "subscribe"
	// ControlUnsubscribe unsubscribes the connection from Channel.
	ControlUnsubscribe = "unsubscribe"
	// ControlDetach stops relaying client messages to the origin.
	ControlDetach = "detach"
	// ControlSession sets (or with an empty ID clears) the session ID.
	ControlSession = "session"
	// ControlSetMeta sets or deletes a connection meta value.
	ControlSetMeta = "set-meta"
	// ControlKeepAlive sets up (or without content disables) keep-alives.
	ControlKeepAlive = "keep-alive"
	// ControlSendDelayed sends Content after Timeout unless flushed first.
	ControlSendDelayed = "send-delayed"
	// ControlFlushDelayed sends a pending delayed message now.
	ControlFlushDelayed = "flush-delayed"
)

// DefaultMessagePrefix is the prefix of messages the proxy relays to the
// client when the grip WebSocket extension gives none.
const DefaultMessagePrefix = "m:"

// controlPN is how Pushpin names a control message in its errors.
const controlPN = "grip control object"

// ControlMessage is a GRIP control message an origin sends over a
// WebSocket(-over-HTTP) connection as a text message "c:" + JSON.
type ControlMessage struct {
	// Type is one of the Control* constants.
	Type string
	// Channel is the subscribe/unsubscribe channel; never empty for them.
	// Callers should refuse subscriptions with more than MaxChannelFilters
	// Filters, as Pushpin does (it closes the connection).
	Channel string
	Filters []string
	// ID is the session ID ("session"); empty clears the session.
	ID string
	// Name and Value are the set-meta pair; HasValue is false when the
	// value was omitted, which deletes the meta entry.
	Name, Value string
	HasValue    bool
	// Content is the keep-alive or send-delayed message; HasContent is
	// false when none was given, which for keep-alive disables it.
	Content    []byte
	HasContent bool
	// MessageType is "text", "binary", "ping" or "pong": as given, else
	// "binary" for content-bin, else "text".
	MessageType string
	// Timeout is the keep-alive (default DefaultKeepAliveTimeout) or
	// send-delayed (default 1s) timeout.
	Timeout time.Duration
	// Mode is the keep-alive mode: interval when "mode" is "interval",
	// otherwise idle (Pushpin treats unknown modes as idle).
	Mode KeepAliveMode
}

// controlParsers parse the fields of each message type.
var controlParsers = map[string]func(*ControlMessage, map[string]any) error{
	ControlSubscribe:    controlChannel,
	ControlUnsubscribe:  controlChannel,
	ControlDetach:       func(*ControlMessage, map[string]any) error { return nil },
	ControlSession:      controlSession,
	ControlSetMeta:      controlSetMeta,
	ControlKeepAlive:    controlContent,
	ControlSendDelayed:  controlContent,
	ControlFlushDelayed: func(*ControlMessage, map[string]any) error { return nil },
}

// ParseControlMessage parses the JSON after "c:" in a control message.
// Errors are *ParseError carrying Pushpin's texts.
func ParseControlMessage(b []byte) (*ControlMessage, error) {
	var doc any
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, parseErr("", "grip control message is not valid json")
	}
	obj, ok := doc.(map[string]any)
	if !ok {
		return nil, parseErr("", "grip control packet is not an object")
	}
	m, err := parseControlObject(obj)
	var fe *fieldError
	if errors.As(err, &fe) {
		return nil, parseErr("", fe.msg)
	}
	return m, err
}

func parseControlObject(obj map[string]any) (*ControlMessage, error) {
	typ, err := reqString(obj, controlPN, "type")
	if err != nil {
		return nil, err
	}
	parse, ok := controlParsers[typ]
	if !ok {
		return nil, fieldErrorf("'type' contains unknown value: %s", typ)
	}
	m := &ControlMessage{Type: typ}
	if err := parse(m, obj); err != nil {
		return nil, err
	}
	return m, nil
}

func controlChannel(m *ControlMessage, obj map[string]any) (err error) {
	if m.Channel, err = reqString(obj, controlPN, "channel"); err != nil {
		return err
	}
	if m.Channel == "" {
		return invalidValue(controlPN, "channel")
	}
	if m.Type == ControlSubscribe {
		m.Filters, _, err = optStringList(obj, controlPN, "filters", "filters contains value with wrong type")
	}
	return err
}

func controlSession(m *ControlMessage, obj map[string]any) (err error) {
	m.ID, _, err = optString(obj, controlPN, "id")
	return err
}

func controlSetMeta(m *ControlMessage, obj map[string]any) (err error) {
	if m.Name, err = reqString(obj, controlPN, "name"); err != nil {
		return err
	}
	if m.Name == "" {
		return invalidValue(controlPN, "name")
	}
	m.Value, m.HasValue, err = optString(obj, controlPN, "value")
	return err
}

// controlContent parses keep-alive and send-delayed messages.
func controlContent(m *ControlMessage, obj map[string]any) (err error) {
	if m.MessageType, err = controlMessageType(obj); err != nil {
		return err
	}
	if m.Content, m.HasContent, err = optBytes(obj, controlPN, "content-bin", "content"); err != nil {
		return err
	}
	if _, isBin := lookup(obj, "content-bin"); isBin && m.MessageType == "" {
		m.MessageType = "binary"
	}
	if m.MessageType == "" {
		m.MessageType = "text"
	}
	if err := controlTimeout(m, obj); err != nil {
		return err
	}
	if m.Type == ControlKeepAlive {
		mode, _, err := optString(obj, controlPN, "mode")
		if mode == "interval" {
			m.Mode = KeepAliveInterval
		}
		return err
	}
	return nil
}

// controlMessageType returns "message-type", or "" when not given.
func controlMessageType(obj map[string]any) (string, error) {
	s, ok, err := optString(obj, controlPN, "message-type")
	if err != nil || !ok {
		return "", err
	}
	switch s {
	case "text", "binary", "ping", "pong":
		return s, nil
	}
	return "", fieldErrorf("%s contains 'message-type' with unknown value", controlPN)
}

// controlTimeout reads "timeout", which Pushpin only looks at when there is
// content; zero or absent means the type's default.
func controlTimeout(m *ControlMessage, obj map[string]any) error {
	m.Timeout = DefaultKeepAliveTimeout
	if m.Type == ControlSendDelayed {
		m.Timeout = defaultSendDelayedTimeout
	}
	if !m.HasContent {
		return nil
	}
	secs, _, err := optNonNegInt(obj, controlPN, "timeout")
	if secs > 0 {
		m.Timeout = time.Duration(secs) * time.Second
	}
	return err
}

// ParseGripExtension looks for the grip extension in a
// Sec-WebSocket-Extensions value from the origin (a comma-separated list;
// join several header lines with ", "). It returns whether grip is enabled
// and the prefix of messages to relay to the client: the message-prefix
// parameter, or DefaultMessagePrefix. As in Pushpin, only the first grip
// element counts and unparsable parameters disable it.
func ParseGripExtension(value string) (enabled bool, prefix string) {
	elems, ok := splitList(nil, value, false)
	if !ok {
		return false, ""
	}
	for _, e := range elems {
		name, rest := cutFirst(e, false)
		if name != "grip" {
			continue
		}
		var buf [4]param
		params, ok := parseParams(buf[:0], rest)
		if !ok {
			return false, ""
		}
		for _, p := range params {
			if nameIs(p.name, "message-prefix") {
				return true, p.value
			}
		}
		return true, DefaultMessagePrefix
	}
	return false, ""
}
