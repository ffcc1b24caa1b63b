package grip

import (
	"encoding/json"
	"errors"
	"net/http"
)

// PublishRequest is the body of a publish request (POST /publish/).
type PublishRequest struct {
	// Items are in the order given.
	Items []Item
}

// Item is one published message. At least one of the format fields is set
// unless the item only carried format names this package does not know,
// which Pushpin accepts and ignores too.
type Item struct {
	// Channel is never empty.
	Channel string
	// ID and PrevID order messages for reliable delivery; empty when not
	// given.
	ID, PrevID string
	// NoSeq disables reordering by PrevID.
	NoSeq bool
	// Meta is matched by subscription filters; nil when not given.
	Meta map[string]string
	// Size is the publisher's size hint for stats; 0 when not given.
	Size int

	// HTTPStream is the content for stream holds; nil when not given.
	HTTPStream *HTTPStreamFormat
	// HTTPResponse is the response for response holds; nil when not given.
	HTTPResponse *HTTPResponseFormat
	// WSMessage is the message for WebSocket connections; nil when not given.
	WSMessage *WSMessageFormat
}

// Action says what a format tells held connections to do.
type Action int

const (
	// ActionSend delivers the content (the default).
	ActionSend Action = iota
	// ActionHint says the data changed: the proxy re-fetches from the
	// origin (response holds) or fetches the next link (streams).
	ActionHint
	// ActionClose ends the stream or closes the WebSocket.
	ActionClose
	// ActionRefresh makes a WebSocket-over-HTTP connection call the origin.
	ActionRefresh
)

// String returns "send", "hint", "close" or "refresh".
func (a Action) String() string {
	switch a {
	case ActionHint:
		return "hint"
	case ActionClose:
		return "close"
	case ActionRefresh:
		return "refresh"
	}
	return "send"
}

// HTTPStreamFormat is an item's "http-stream" format.
type HTTPStreamFormat struct {
	// Action is what to do; only ActionSend carries content.
	Action Action
	// Content is set (possibly empty) for ActionSend.
	Content []byte
	// ContentFilters, when non-nil, are the content-changing filters
	// (build-id, var-subst) this content was written for: the message goes
	// only to subscriptions whose content filters are exactly these (see
	// ContentFiltersMatch), as in Pushpin.
	ContentFilters []string
}

// HTTPResponseFormat is an item's "http-response" format.
type HTTPResponseFormat struct {
	// Action is what to do; only ActionSend carries a response.
	Action Action
	// Code defaults to 200 for ActionSend.
	Code int
	// Reason defaults to StatusText(Code) for ActionSend.
	Reason string
	// Headers are sent as given, in order.
	Headers []Header
	// Body is the response body; nil when BodyPatch is given instead.
	Body []byte
	// BodyPatch is the raw JSON array given as "body-patch" (a JSON Patch
	// for the held response's body); nil when not given. Body is nil then.
	BodyPatch []byte
	// ContentFilters: see HTTPStreamFormat.
	ContentFilters []string
}

// WSType is the type of a WebSocket message.
type WSType int

const (
	// WSText is a text message (the default, and the type for "content").
	WSText WSType = iota
	// WSBinary is a binary message (the default for "content-bin").
	WSBinary
	// WSPing is a ping frame.
	WSPing
	// WSPong is a pong frame.
	WSPong
)

// String returns "text", "binary", "ping" or "pong".
func (t WSType) String() string {
	switch t {
	case WSBinary:
		return "binary"
	case WSPing:
		return "ping"
	case WSPong:
		return "pong"
	}
	return "text"
}

// WSMessageFormat is an item's "ws-message" format.
type WSMessageFormat struct {
	// Action is what to do: send, close or refresh.
	Action Action
	// Type is the message type for ActionSend.
	Type WSType
	// Content is the message; nil only for a ping or pong without payload.
	Content []byte
	// Code and Reason are the close frame's, for ActionClose; Code is 0
	// when not given.
	Code   int
	Reason string
	// ContentFilters: see HTTPStreamFormat.
	ContentFilters []string
}

// ParsePublish parses a publish request body: {"items": [ITEM, ...]}.
// Formats may sit under "formats" or, as legacy, at the item's top level.
// Errors are *PublishError with Pushpin's texts.
func ParsePublish(body []byte) (*PublishRequest, error) {
	var doc any
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, &PublishError{Reason: "Body is not valid JSON."}
	}
	obj, ok := doc.(map[string]any)
	if !ok {
		return nil, &PublishError{Reason: "Invalid format."}
	}
	v, ok := obj["items"]
	if !ok {
		return nil, invalidFormat("object does not contain 'items'")
	}
	list, ok := v.([]any)
	if !ok {
		return nil, invalidFormat("object contains 'items' with wrong type")
	}
	req := &PublishRequest{Items: make([]Item, 0, len(list))}
	for _, v := range list {
		item, err := parseItem(v)
		if err != nil {
			var fe *fieldError
			if errors.As(err, &fe) {
				return nil, invalidFormat(fe.msg)
			}
			return nil, err
		}
		req.Items = append(req.Items, item)
	}
	return req, nil
}

func invalidFormat(msg string) error {
	return &PublishError{Reason: "Invalid format: " + msg}
}

// StatusText returns the default reason phrase for an HTTP status code, or
// "Undefined Reason" (Pushpin's text) for codes it does not know.
func StatusText(code int) string {
	if s := http.StatusText(code); s != "" {
		return s
	}
	return "Undefined Reason"
}
