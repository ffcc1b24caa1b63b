package grip

import (
	"strconv"
	"time"
)

// Timeouts and limits of GRIP instructions (Pushpin's instruct.cpp and
// filter.h).
const (
	// DefaultTimeout is the response hold timeout when none is given.
	DefaultTimeout = 55 * time.Second
	// MinTimeout is the smallest response hold timeout; smaller values are
	// raised to it.
	MinTimeout = 5 * time.Second
	// DefaultNextLinkTimeout is the Grip-Link rel=next timeout when none is
	// given.
	DefaultNextLinkTimeout = 120 * time.Second
	// MaxChannelFilters is the most filters one channel subscription may
	// have (Pushpin's MESSAGEFILTERSTACK_SIZE_MAX).
	MaxChannelFilters = 5
)

// HoldMode says how a request is held.
type HoldMode int

const (
	// HoldNone means the response is not held.
	HoldNone HoldMode = iota
	// HoldResponse holds the request until one message or the timeout
	// (long-polling).
	HoldResponse
	// HoldStream keeps the response open and appends messages (streaming).
	HoldStream
)

// String returns "none", "response" or "stream".
func (m HoldMode) String() string {
	switch m {
	case HoldResponse:
		return "response"
	case HoldStream:
		return "stream"
	}
	return "none"
}

// Channel is one channel a held request subscribes to.
type Channel struct {
	// Name is never empty.
	Name string
	// PrevID is the ID of the last message the client has, for reliable
	// delivery; empty when not given.
	PrevID string
	// Filters are message filter names, at most MaxChannelFilters.
	Filters []string
}

// Link is a Grip-Link target.
type Link struct {
	// URI is absolute or relative to the request URI, as given.
	URI string
	// Timeout is the rel=next timeout; zero for rel=gone.
	Timeout time.Duration
}

// Response is a complete HTTP response given in instructions
// (grip-instruct "response") or a publish.
type Response struct {
	// Code is the status code, 100-999.
	Code int
	// Reason is the reason phrase; never empty.
	Reason string
	// Headers are sent as given, in order.
	Headers []Header
	// Body is the response body.
	Body []byte
}

// Instruct is what an origin response tells the proxy to do.
type Instruct struct {
	// Hold is HoldNone when the response is passed through.
	Hold HoldMode
	// Channels are the channels to subscribe to, header ones first.
	Channels []Channel
	// Timeout is the response hold timeout: DefaultTimeout unless given,
	// and at least MinTimeout.
	Timeout time.Duration
	// KeepAlive is nil when there is none.
	KeepAlive *KeepAlive
	// Meta is the subscription meta (Grip-Set-Meta, hold.meta); nil when
	// none was given.
	Meta map[string]string
	// Status is the Grip-Status code, 0 when not set.
	Status int
	// Reason is the Grip-Status reason; "" means StatusText(Status).
	Reason string
	// ExposeHeaders lists Grip-Expose-Headers; see ClientHeaders.
	ExposeHeaders []string
	// NextLink is Grip-Link rel=next (Timeout defaults to
	// DefaultNextLinkTimeout); nil when not given.
	NextLink *Link
	// GoneLink is Grip-Link rel=gone; nil when not given.
	GoneLink *Link
	// Response is set when the body was application/grip-instruct: it
	// replaces the origin response and already includes Grip-Status.
	Response *Response
}

// instructStep parses one kind of GRIP header into in.
type instructStep func(in *Instruct, headers []Header) error

// instructSteps run in Pushpin's order, so the first error reported is the
// one Pushpin would report.
var instructSteps = []instructStep{
	parseHold, parseChannels, parseTimeout, parseExposeHeaders,
	parseKeepAliveHeader, parseSetMeta, parseStatus, parseLinks,
}

// ParseInstruct parses the GRIP instructions in an origin response: its
// headers (any case), status code and body. The result has Hold == HoldNone
// when there is nothing to hold. A Content-Type of application/grip-instruct
// is honoured only with status 200, as in Pushpin; its JSON then adds to and
// overrides what the headers say. Errors are *ParseError.
func ParseInstruct(headers []Header, status int, body []byte) (*Instruct, error) {
	in := &Instruct{Timeout: DefaultTimeout}
	for _, step := range instructSteps {
		if err := step(in, headers); err != nil {
			return nil, err
		}
	}
	if isGripInstruct(headers) {
		if err := in.applyJSON(status, body); err != nil {
			return nil, err
		}
	}
	in.Timeout = max(in.Timeout, MinTimeout)
	return in, nil
}

func isGripInstruct(headers []Header) bool {
	ct, _ := firstHeader(headers, "Content-Type")
	ct, _ = cutFirst(ct, false)
	return nameIs(ct, "application/grip-instruct")
}

func parseHold(in *Instruct, headers []Header) error {
	v, ok := firstHeader(headers, "Grip-Hold")
	if !ok {
		return nil
	}
	switch trimOWS(v) {
	case "response":
		in.Hold = HoldResponse
	case "stream":
		in.Hold = HoldStream
	default:
		return parseErr("Grip-Hold", "must be set to either 'response' or 'stream'")
	}
	return nil
}

func parseChannels(in *Instruct, headers []Header) error {
	var buf [8]string
	elems, ok := listElements(buf[:0], headers, "Grip-Channel", false)
	if !ok {
		return parseErr("Grip-Channel", "unterminated quoted string")
	}
	for _, e := range elems {
		c, err := parseChannel(e)
		if err != nil {
			return err
		}
		in.Channels = append(in.Channels, c)
	}
	return nil
}

// parseChannel parses "name; prev-id=ID; filter=F; filter=G".
func parseChannel(elem string) (Channel, error) {
	name, rest := cutFirst(elem, false)
	var buf [8]param
	params, ok := parseParams(buf[:0], rest)
	if !ok || name == "" {
		return Channel{}, parseErr("Grip-Channel", "failed to parse '"+elem+"'")
	}
	c := Channel{Name: name}
	c.PrevID, _ = paramValue(params, "prev-id")
	for _, p := range params {
		if nameIs(p.name, "filter") {
			c.Filters = append(c.Filters, p.value)
		}
	}
	if len(c.Filters) > MaxChannelFilters {
		return Channel{}, parseErr("Grip-Channel", "too many filters for channel '"+name+"'")
	}
	return c, nil
}

// parseSeconds parses a non-negative 32-bit decimal integer, as Qt's toInt
// does for Pushpin (surrounding whitespace and a '+' sign allowed).
func parseSeconds(s string) (n int, reason string) {
	n64, err := strconv.ParseInt(trimOWS(s), 10, 32)
	if err != nil {
		return 0, "failed to parse"
	}
	if n64 < 0 {
		return 0, "has invalid value"
	}
	return int(n64), ""
}

func parseTimeout(in *Instruct, headers []Header) error {
	v, ok := firstHeader(headers, "Grip-Timeout")
	if !ok {
		return nil
	}
	secs, reason := parseSeconds(v)
	if reason != "" {
		return parseErr("Grip-Timeout", reason)
	}
	in.Timeout = time.Duration(secs) * time.Second
	return nil
}
