package node

import (
	"bytes"
	"encoding/binary"
	"sync"

	"github.com/klauspost/compress/flate"
)

// WebSocket opcodes (RFC 6455 §5.2).
const (
	opText   = 1
	opBinary = 2
	opClose  = 8
	opPing   = 9
	opPong   = 10
)

// WebSocket close codes the node sends (RFC 6455 §7.4.1).
const (
	closeNormal        = 1000
	closeGoingAway     = 1001
	closePolicy        = 1008
	closeInternalError = 1011
	closeTryAgainLater = 1013
)

// appendWSFrame appends one unmasked (server-to-client) frame with FIN
// set; rsv1 marks a permessage-deflate compressed payload.
func appendWSFrame(b []byte, opcode byte, payload []byte, rsv1 bool) []byte {
	first := 0x80 | opcode
	if rsv1 {
		first |= 0x40
	}
	b = append(b, first)
	switch n := len(payload); {
	case n <= 125:
		b = append(b, byte(n))
	case n <= 0xffff:
		b = append(b, 126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, 127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	return append(b, payload...)
}

// closeFrame returns a close frame with code and reason (the reason is
// cut to fit a control frame's 125 bytes).
func closeFrame(code int, reason string) []byte {
	p := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(reason)), uint16(code))
	p = append(p, reason...)
	if len(p) > 125 {
		p = p[:125]
	}
	return appendWSFrame(nil, opClose, p, false)
}

var flateWriters = sync.Pool{New: func() any {
	w, _ := flate.NewWriter(nil, flate.BestSpeed)
	return w
}}

// deflateMessage compresses a message payload for permessage-deflate with
// no context takeover (RFC 7692 §7.2.1): a sync-flushed raw deflate stream
// without its final empty block's 4 bytes.
func deflateMessage(p []byte) []byte {
	var buf bytes.Buffer
	w := flateWriters.Get().(*flate.Writer)
	w.Reset(&buf)
	w.Write(p)
	w.Flush()
	flateWriters.Put(w)
	return bytes.TrimSuffix(buf.Bytes(), []byte{0, 0, 0xff, 0xff})
}
