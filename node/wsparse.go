package node

import (
	"bytes"
	"encoding/binary"
	"io"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/klauspost/compress/flate"
)

// Client frames (RFC 6455 §5): a parser fed the bytes read from a client,
// whatever their cut, that hands on complete messages and control frames.
// It keeps bytes only while a frame or a fragmented message is
// incomplete, so an idle session holds no buffer.

// Close codes for the client's mistakes (RFC 6455 §7.4.1).
const (
	closeProtocolError = 1002
	closeInvalidData   = 1007
	closeTooBig        = 1009
)

// opContinuation is the opcode of a message's later frames.
const opContinuation = 0

// wsCloseError ends a client's side with a close frame: a protocol error
// (1002), bad data (1007) or a message over the read limit (1009).
type wsCloseError struct {
	code   int
	reason string
}

func (e *wsCloseError) Error() string {
	return "websocket: close " + strconv.Itoa(e.code) + " " + e.reason
}

func protocolError(reason string) *wsCloseError {
	return &wsCloseError{code: closeProtocolError, reason: reason}
}

var errWSTooBig = &wsCloseError{code: closeTooBig, reason: "message too big"}

// wsParser reads client frames. Its zero value is not ready: limit is
// the largest message (as inflated), deflate whether permessage-deflate
// was negotiated.
type wsParser struct {
	limit   int
	deflate bool

	partial []byte // an incomplete frame's bytes, nil between frames
	op      byte   // the fragmented message in progress (0: none)
	rsv1    bool   // the message in progress is compressed
	msg     []byte // its payload so far
}

// wsEmit receives a complete message or control frame: op is its opcode,
// p its payload (owned: p is the callee's to keep; else it is valid only
// during the call). It returns false to stop reading (after a close
// frame).
type wsEmit func(op byte, p []byte, owned bool) bool

// feed parses data, the next bytes from the client, after what earlier
// feeds left incomplete; it calls emit for each complete message and
// control frame in order. It returns done when emit stopped it, and a
// *wsCloseError when the client broke the protocol or a limit. Masked
// payloads are unmasked in data, which feed may modify.
func (p *wsParser) feed(data []byte, emit wsEmit) (done bool, err error) {
	buf := data
	if p.partial != nil {
		p.partial = append(p.partial, data...)
		buf = p.partial
	}
	consumed := 0
	for len(buf) > 0 {
		f, n, err := p.parseFrame(buf)
		if err != nil {
			p.release()
			return true, err
		}
		if n == 0 {
			break
		}
		buf = buf[n:]
		consumed += n
		if ok, err := p.frame(f, emit); err != nil || !ok {
			p.release()
			return true, err
		}
	}
	p.keep(buf, consumed)
	return false, nil
}

// keep holds rest, the bytes of an incomplete frame, until the next feed.
func (p *wsParser) keep(rest []byte, consumed int) {
	switch {
	case len(rest) == 0:
		p.partial = nil
	case p.partial == nil:
		p.partial = bytes.Clone(rest)
	case consumed > 0 && cap(p.partial) > 4096 && cap(p.partial) > 4*len(rest):
		p.partial = bytes.Clone(rest) // a large buffer for a small rest
	case consumed > 0:
		p.partial = p.partial[:copy(p.partial, rest)]
	}
}

// idle reports whether the parser is between messages: it holds nothing.
func (p *wsParser) idle() bool {
	return p.partial == nil && p.op == 0
}

// release drops every buffer: the client's side is over.
func (p *wsParser) release() {
	p.partial, p.msg, p.op = nil, nil, 0
}

// wsClientFrame is one parsed client frame, its payload unmasked.
type wsClientFrame struct {
	fin     bool
	rsv1    bool
	op      byte
	payload []byte
}

// parseFrame parses the frame at the start of b: n is its length, 0 when
// b does not hold all of it yet. The header is checked as soon as it is
// there: a frame too large is refused before its payload arrives.
func (p *wsParser) parseFrame(b []byte) (f wsClientFrame, n int, err error) {
	if len(b) < 2 {
		return f, 0, nil
	}
	f.fin = b[0]&0x80 != 0
	f.rsv1 = b[0]&0x40 != 0
	f.op = b[0] & 0x0f
	control := f.op >= opClose
	switch {
	case b[0]&0x30 != 0:
		return f, 0, protocolError("RSV2 or RSV3 set")
	case f.op > opBinary && (f.op < opClose || f.op > opPong):
		return f, 0, protocolError("bad opcode " + strconv.Itoa(int(f.op)))
	case b[1]&0x80 == 0:
		return f, 0, protocolError("frame not masked")
	case f.rsv1 && (!p.deflate || control || f.op == opContinuation):
		return f, 0, protocolError("RSV1 set")
	case control && !f.fin:
		return f, 0, protocolError("fragmented control frame")
	case control && b[1]&0x7f > 125:
		return f, 0, protocolError("control frame over 125 bytes")
	case f.op == opContinuation && p.op == 0:
		return f, 0, protocolError("continuation without a message")
	case (f.op == opText || f.op == opBinary) && p.op != 0:
		return f, 0, protocolError("message before the last one's final frame")
	}
	size := uint64(b[1] & 0x7f)
	hdr := 2
	switch size {
	case 126:
		if len(b) < 4 {
			return f, 0, nil
		}
		size, hdr = uint64(binary.BigEndian.Uint16(b[2:])), 4
	case 127:
		if len(b) < 10 {
			return f, 0, nil
		}
		size, hdr = binary.BigEndian.Uint64(b[2:]), 10
	}
	if !control && size > uint64(p.limit-len(p.msg)) {
		return f, 0, errWSTooBig // also a length with its top bit set
	}
	total := hdr + 4 + int(size)
	if len(b) < total {
		return f, 0, nil
	}
	key := b[hdr : hdr+4]
	f.payload = b[hdr+4 : total]
	maskWS(f.payload, key)
	return f, total, nil
}

// maskWS applies a client's masking key (RFC 6455 §5.3) in place.
func maskWS(p, key []byte) {
	k := binary.LittleEndian.Uint32(key)
	k64 := uint64(k) | uint64(k)<<32
	i := 0
	for ; i+8 <= len(p); i += 8 {
		binary.LittleEndian.PutUint64(p[i:], binary.LittleEndian.Uint64(p[i:])^k64)
	}
	for ; i < len(p); i++ {
		p[i] ^= key[i&3]
	}
}

// frame handles one frame: control frames are emitted at once, data
// frames gathered into their message, emitted at its final frame.
func (p *wsParser) frame(f wsClientFrame, emit wsEmit) (bool, error) {
	switch f.op {
	case opClose:
		if len(f.payload) == 1 {
			return false, protocolError("close frame of 1 byte")
		}
		if len(f.payload) >= 2 {
			if code := int(binary.BigEndian.Uint16(f.payload)); !validCloseCode(code) {
				return false, protocolError("bad close code " + strconv.Itoa(code))
			}
			if !utf8.Valid(f.payload[2:]) {
				return false, protocolError("invalid utf8 payload in close frame")
			}
		}
		return emit(f.op, f.payload, false), nil
	case opPing, opPong:
		return emit(f.op, f.payload, false), nil
	case opText, opBinary:
		if !f.fin {
			p.op, p.rsv1 = f.op, f.rsv1
			p.msg = bytes.Clone(f.payload)
			return true, nil
		}
		return p.message(f.op, f.rsv1, f.payload, false, emit)
	}
	// A continuation: parseFrame checked that a message is in progress
	// and that it stays within the limit.
	p.msg = append(p.msg, f.payload...)
	if !f.fin {
		return true, nil
	}
	op, rsv1, msg := p.op, p.rsv1, p.msg
	p.op, p.rsv1, p.msg = 0, false, nil
	return p.message(op, rsv1, msg, true, emit)
}

// message emits a complete message, inflated when it was compressed.
func (p *wsParser) message(op byte, compressed bool, payload []byte, owned bool, emit wsEmit) (bool, error) {
	if compressed {
		var err error
		if payload, err = inflateMessage(payload, p.limit); err != nil {
			return false, err
		}
		owned = true
	}
	return emit(op, payload, owned), nil
}

// validCloseCode reports whether a client may send code (RFC 6455
// §7.4): the defined codes meant for the wire, and 3000–4999.
func validCloseCode(code int) bool {
	switch code {
	case 1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013:
		return true
	}
	return code >= 3000 && code <= 4999
}

var flateReaders = sync.Pool{New: func() any { return flate.NewReader(nil) }}

// deflateTail ends a permessage-deflate message (RFC 7692 §7.2.2), with a
// final empty block so that the reader ends cleanly.
const deflateTail = "\x00\x00\xff\xff\x01\x00\x00\xff\xff"

// inflateMessage inflates a permessage-deflate message (no context
// takeover: nothing is kept between messages), refusing one that inflates
// beyond limit. The inflater is pooled: a session holds none between
// messages.
func inflateMessage(p []byte, limit int) ([]byte, error) {
	r := flateReaders.Get().(io.ReadCloser)
	defer flateReaders.Put(r)
	if err := r.(flate.Resetter).Reset(io.MultiReader(bytes.NewReader(p), strings.NewReader(deflateTail)), nil); err != nil {
		return nil, &wsCloseError{code: closeInvalidData, reason: "bad compressed message"}
	}
	out, err := io.ReadAll(io.LimitReader(r, int64(limit)+1))
	switch {
	case err != nil:
		return nil, &wsCloseError{code: closeInvalidData, reason: "bad compressed message"}
	case len(out) > limit:
		return nil, errWSTooBig
	}
	return out, nil
}
