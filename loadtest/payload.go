package loadtest

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
)

var (
	seqKey = []byte(`"seq":`)
	tsKey  = []byte(`"ts":`)
)

// ParseMessage extracts the sequence number and publish timestamp from one
// received line (or long-poll body) of the form {"seq":N,"ts":UNIXNANO},
// wherever it sits in the line: an SSE "data: " prefix, a trailing newline
// or other fields around it are ignored. ok is false when either field is
// missing or not a non-negative integer. It does not allocate.
func ParseMessage(line []byte) (seq, ts int64, ok bool) {
	seq, ok = intAfter(line, seqKey)
	if !ok {
		return 0, 0, false
	}
	ts, ok = intAfter(line, tsKey)
	if !ok {
		return 0, 0, false
	}
	return seq, ts, true
}

// intAfter parses the non-negative decimal integer that follows key in b
// (spaces after the key are skipped).
func intAfter(b, key []byte) (int64, bool) {
	i := bytes.Index(b, key)
	if i < 0 {
		return 0, false
	}
	b = b[i+len(key):]
	for len(b) > 0 && b[0] == ' ' {
		b = b[1:]
	}
	var n int64
	digits := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			break
		}
		d := int64(c - '0')
		if n > (math.MaxInt64-d)/10 {
			return 0, false
		}
		n = n*10 + d
		digits++
	}
	return n, digits > 0
}

// AppendMessage appends the message line {"seq":N,"ts":TS} (without a
// newline) to dst.
func AppendMessage(dst []byte, seq, ts int64) []byte {
	dst = append(dst, `{"seq":`...)
	dst = strconv.AppendInt(dst, seq, 10)
	dst = append(dst, `,"ts":`...)
	dst = strconv.AppendInt(dst, ts, 10)
	return append(dst, '}')
}

// publishBody builds the publish API request bodies of one run: one item on
// one channel per request, in the format the run's transport receives.
type publishBody struct {
	prefix []byte // up to the opening quote of the content string
	pre    []byte // JSON-escaped text before the message (SSE "data: ")
	post   []byte // JSON-escaped text after the message
	suffix []byte // from the closing quote of the content string
}

// newPublishBody prepares the bodies for channel and the publish format
// ("http-stream" or "http-response") with the given text around each
// message. pre and post must not need JSON escaping except for newlines.
func newPublishBody(channel, format, field, pre, post string) *publishBody {
	ch, _ := json.Marshal(channel) // a Go string always marshals
	p := &publishBody{}
	p.prefix = append(p.prefix, `{"items":[{"channel":`...)
	p.prefix = append(p.prefix, ch...)
	p.prefix = append(p.prefix, `,"formats":{"`...)
	p.prefix = append(p.prefix, format...)
	p.prefix = append(p.prefix, `":{"`...)
	p.prefix = append(p.prefix, field...)
	p.prefix = append(p.prefix, `":"`...)
	p.pre = jsonEscapeNewlines(pre)
	p.post = jsonEscapeNewlines(post)
	p.suffix = []byte(`"}}}]}`)
	return p
}

// jsonEscapeNewlines escapes the characters of s that our fixed texts use
// and JSON strings cannot hold raw.
func jsonEscapeNewlines(s string) []byte {
	var b []byte
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\n':
			b = append(b, `\n`...)
		case '"':
			b = append(b, `\"`...)
		case '\\':
			b = append(b, `\\`...)
		default:
			b = append(b, s[i])
		}
	}
	return b
}

// append appends the publish body of message seq stamped ts to dst.
func (p *publishBody) append(dst []byte, seq, ts int64) []byte {
	dst = append(dst, p.prefix...)
	dst = append(dst, p.pre...)
	dst = append(dst, `{\"seq\":`...)
	dst = strconv.AppendInt(dst, seq, 10)
	dst = append(dst, `,\"ts\":`...)
	dst = strconv.AppendInt(dst, ts, 10)
	dst = append(dst, '}')
	dst = append(dst, p.post...)
	return append(dst, p.suffix...)
}
