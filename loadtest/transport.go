package loadtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"
)

// subscriber is one client connection of some transport. A transport is
// added by implementing subscriber and giving it a transportSpec in
// transportFor.
type subscriber interface {
	// open connects and subscribes. It returns once the client can tell it
	// is subscribed (streams: the first body byte has arrived) or, where it
	// cannot tell (long-poll), once the request is sent. On error the
	// connection is closed.
	open(ctx context.Context) error
	// serve receives deliveries, handing each received message line to the
	// connection's connState, until the connection ends; it returns why.
	// It is called once, after a successful open, on its own goroutine.
	serve() error
	// stall is serve for a slow reader: it reads nothing until stop is
	// closed, then reports whether the server had ended the connection by
	// then. It is called once, after a successful open, on its own
	// goroutine, instead of serve.
	stall(stop <-chan struct{}) (ended bool)
	// close ends the connection and makes serve return soon. It may be
	// called concurrently with serve, and more than once.
	close()
}

// transportSpec is what Run needs to know about a transport.
type transportSpec struct {
	// format and field name the publish item format and its field that
	// carries the message, e.g. "http-stream" and "content"; pre and post
	// are the text around the message in that field.
	format, field, pre, post string
	// newSubscriber returns an unopened subscriber for connection cs.
	newSubscriber func(t *target, cs *connState) subscriber
}

// transportFor returns the spec of transport tr.
func transportFor(tr Transport) (transportSpec, error) {
	switch tr {
	case TransportStream:
		return transportSpec{format: "http-stream", field: "content", post: "\n",
			newSubscriber: newHTTPSubscriber(false)}, nil
	case TransportSSE:
		return transportSpec{format: "http-stream", field: "content", pre: "data: ", post: "\n\n",
			newSubscriber: newHTTPSubscriber(false)}, nil
	case TransportLongPoll:
		return transportSpec{format: "http-response", field: "body", post: "\n",
			newSubscriber: newHTTPSubscriber(true)}, nil
	case TransportWS:
		return transportSpec{format: "ws-message", field: "content", newSubscriber: newWSSubscriber}, nil
	}
	return transportSpec{}, fmt.Errorf("loadtest: unknown transport %q (want stream, sse, longpoll or ws)", tr)
}

// target is what every subscriber of a run shares.
type target struct {
	addr           string // host:port of the proxy
	req            []byte // the subscribe request, sent as is (HTTP transports)
	url            string // the subscriber URL
	dialers        *dialers
	ws             *wsDialers // WebSocket transport only
	connectTimeout time.Duration
	ctx            context.Context // cancelled when the run tears down
}

// stallConn is stall for a connection nc: it waits for stop, then
// drains what the socket holds (a little while at most) and reports
// whether the server had closed or reset the connection.
func stallConn(nc net.Conn, stop <-chan struct{}) bool {
	if nc == nil {
		return false
	}
	<-stop
	if err := nc.SetReadDeadline(time.Now().Add(stallDrainTime)); err != nil {
		return false
	}
	buf := make([]byte, 8<<10)
	for range stallMaxReads {
		if _, err := nc.Read(buf); err != nil {
			var ne net.Error
			return !(errors.As(err, &ne) && ne.Timeout())
		}
	}
	return false
}

// A slow reader's check at the end of a run reads for at most
// stallDrainTime, stallMaxReads times.
const (
	stallDrainTime = 300 * time.Millisecond
	stallMaxReads  = 4096
)

// dial opens connection number i.
func (t *target) dial(ctx context.Context, i int) (net.Conn, error) {
	return t.dialers.dial(ctx, i, t.addr)
}

// connState is what one subscriber connection knows about the messages it
// received. It is written only by the connection's serve goroutine and
// read after that goroutine has ended.
type connState struct {
	idx  int
	run  *runState
	slow bool     // a slow reader: stalls after open, not measured
	warm bool     // a warm-up connection, not measured
	seen []uint64 // bitmap of received sequence numbers
	next int64    // highest sequence number received + 1

	received   int32 // distinct messages received
	duplicated int32 // messages received again
	outOfOrder int32 // messages received after a later one
	foreign    int32 // lines with a sequence number outside this run
}

// deliver records a received line if it carries a message of this run.
func (c *connState) deliver(line []byte) {
	if c.slow || c.warm {
		return
	}
	seq, ts, ok := ParseMessage(line)
	if !ok {
		return
	}
	now := time.Now().UnixNano()
	// A message stamped before this run started was published by an
	// earlier run (e.g. replayed from a proxy's channel history).
	if seq >= int64(len(c.seen))*64 || seq >= int64(c.run.msgs) || ts < c.run.startNano {
		c.foreign++
		return
	}
	w, bit := seq>>6, uint64(1)<<(seq&63)
	if c.seen[w]&bit != 0 {
		c.duplicated++
		c.run.duplicated.Add(1)
		return
	}
	c.seen[w] |= bit
	c.received++
	if seq < c.next {
		c.outOfOrder++
	} else {
		c.next = seq + 1
	}
	c.run.latency.record(c.idx, time.Duration(now-ts))
	c.run.byMsg.record(c.idx, seq, now-ts)
	c.run.received.Add(1)
}
