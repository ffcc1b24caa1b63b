package fanout

import (
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// FrameKinds is how many distinct encodings of one Message can be cached:
// one per wire format a Transport writes (chunked stream, raw stream,
// WebSocket text, ...). Kinds are small integers chosen by the transports.
const FrameKinds = 8

// Message is one item published to a channel. The payload is opaque to this
// package; transports encode it with Frame, which runs each encoder at most
// once per message, so a message going to 20,000 connections is framed once.
type Message struct {
	// Channel is the channel the message was published to.
	Channel string
	// Item is the published payload, interpreted only by transports.
	Item any
	// ID, when not empty, names the message on its channel: another
	// message with the same ID is a duplicate (see HubConfig.IDCacheTTL),
	// and the channel's next message may say it follows it (PrevID).
	// Set by the caller before Publish, like PrevID and NoSeq.
	ID string
	// PrevID, when not empty, is the ID of the message this one follows
	// on its channel: it waits for it (see HubConfig.SequenceWait).
	PrevID string
	// NoSeq delivers the message at once whatever its PrevID.
	NoSeq bool
	// Seq is the message's position in its channel, set by Hub.Publish
	// (1 for the first message a channel sees on this node), or when a
	// message that waited for its predecessor is delivered.
	Seq uint64
	// Pos is the message's position among all messages published on this
	// node, set with Seq; see Hub.Position.
	Pos uint64

	at time.Time // when it was published

	// History bookkeeping (see Hub.remember). hist is written with both
	// its channel's lock and Hub.histMu held, and read with either; the
	// other fields are under Hub.histMu.
	hist         *channel // the channel whose history keeps m; nil: none
	older, newer *Message // neighbours in the Hub's list of kept messages
	charged      int64    // bytes counted for m in Hub.histBytes
	framed       int64    // the part of charged that is encoded frames

	encoded atomic.Int64 // bytes of the frames encoded so far
	frames  [FrameKinds]frame
}

// messageOverhead is what a Message costs before its item and frames.
const messageOverhead = int64(unsafe.Sizeof(Message{}))

type frame struct {
	once sync.Once
	b    []byte
	last bool
}

// NewMessage returns a message for channel carrying item.
func NewMessage(channel string, item any) *Message {
	return &Message{Channel: channel, Item: item}
}

// Frame returns the encoding of m for kind, computing it with enc on first
// use. enc returns the bytes to write and whether the connection ends after
// them; it must not keep m beyond the call. Frame is safe for concurrent
// use; kind must be below FrameKinds.
func (m *Message) Frame(kind int, enc func(*Message) ([]byte, bool)) ([]byte, bool) {
	f := &m.frames[kind]
	f.once.Do(func() {
		f.b, f.last = enc(m)
		m.encoded.Add(int64(len(f.b)))
	})
	return f.b, f.last
}
