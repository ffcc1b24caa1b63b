package fanout

import (
	"bytes"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// Transport is the socket side of a held connection, implemented by the
// node for each kind of client connection (HTTP stream, long-poll,
// WebSocket).
type Transport interface {
	// Frame returns the bytes m becomes on this connection and whether the
	// connection ends after them. A nil frame with last false skips m. It
	// runs on the publisher's goroutine and must not block; transports
	// share work between connections through Message.Frame.
	Frame(m *Message) (frame []byte, last bool)
	// TryWrite writes a prefix of bufs without blocking and returns how
	// many bytes it wrote.
	TryWrite(bufs [][]byte) (int, error)
	// WriteBlocking writes all of b, giving up after the transport's write
	// timeout. It is used only once a connection has stopped keeping up.
	WriteBlocking(b []byte) error
	// Closed is called exactly once when the connection ends; reason is
	// nil when it ended normally (its last frame was written).
	Closed(reason error)
}

// Reasons a Conn ends, passed to Transport.Closed.
var (
	// ErrSlowConsumer: the connection's queue went over its byte limit.
	ErrSlowConsumer = errors.New("fanout: slow consumer")
	// ErrShutdown: the pool was closed.
	ErrShutdown = errors.New("fanout: shutting down")
)

type connState uint8

const (
	stateIdle    connState = iota // nothing queued
	stateQueued                   // in its shard's ready list
	stateWriting                  // its shard is writing to it
	stateBlocked                  // a goroutine of its own is writing to it
	stateClosed
)

// ConnOptions are the per-connection delivery settings.
type ConnOptions struct {
	// MaxQueueBytes is the connection's slow-consumer budget, in bytes:
	// once its socket has refused data (a write came back short), the
	// bytes queued after that and not yet written may not exceed it, or
	// the connection is closed with ErrSlowConsumer. Bytes queued while
	// the connection merely waits for its writer shard (busy writing to
	// other connections) are not charged to it; PoolConfig.MaxPendingBytes
	// bounds those. Zero: the pool's default.
	MaxQueueBytes int
	// KeepAlive is written when the connection has been idle for
	// KeepAliveEvery (or every KeepAliveEvery with KeepAliveInterval).
	// Nil or a zero period: no keep-alives.
	KeepAlive         []byte
	KeepAliveEvery    time.Duration
	KeepAliveInterval bool
	// Timeout, when positive, ends the connection after that long: the
	// TimeoutFrame is written and the connection is closed normally.
	Timeout      time.Duration
	TimeoutFrame []byte
	// Ping, when PingEvery is positive, is written every PingEvery
	// regardless of other traffic (WebSocket liveness pings).
	Ping      []byte
	PingEvery time.Duration
}

// equal reports whether o and p ask for the same behaviour: the same
// settings, and frames of the same bytes (nil only equal to nil).
func (o *ConnOptions) equal(p *ConnOptions) bool {
	same := func(a, b []byte) bool { return (a == nil) == (b == nil) && bytes.Equal(a, b) }
	return o.MaxQueueBytes == p.MaxQueueBytes && o.KeepAliveEvery == p.KeepAliveEvery &&
		o.KeepAliveInterval == p.KeepAliveInterval && o.Timeout == p.Timeout && o.PingEvery == p.PingEvery &&
		same(o.KeepAlive, p.KeepAlive) && same(o.TimeoutFrame, p.TimeoutFrame) && same(o.Ping, p.Ping)
}

// Conn is one held connection's delivery state: a bounded queue of frames,
// written in order by the connection's writer shard. It implements
// Subscriber.
type Conn struct {
	t     Transport
	shard *writerShard
	// opts is shared with other connections of equal options (see
	// writerShard.intern) and never modified: SetKeepAlive replaces it.
	// Written under both shard.connsMu and mu, so either lock reads it.
	opts *ConnOptions
	seq  uint64 // the order it was added in: its shard writes in this order

	mu     sync.Mutex
	queue  [][]byte
	spare  [][]byte
	queued int // bytes in queue (and, while blocked, being written)
	// grace is the part of queued that was already queued when the
	// socket last refused data and is not written yet: it piled up while
	// the connection waited for its shard, so it is not charged to the
	// connection's MaxQueueBytes. Only nonzero in stateBlocked.
	grace  int
	state  connState
	ending bool // the last frame is queued
	doomed bool // over its limit: to be closed by the shard

	// Owned by the shard (under shard.connsMu).
	idx      int
	deadline int64 // unix nanos, 0: none
	nextKA   int64 // unix nanos, interval keep-alive
	nextPing int64 // unix nanos
	// lastWrite is the unix-nano time of the last completed write.
	lastWrite atomic.Int64
}

var (
	_ Subscriber = (*Conn)(nil)
	_ Replayer   = (*Conn)(nil)
)

// Deliver queues m's frame for the connection. It never blocks.
func (c *Conn) Deliver(m *Message) {
	b, last := c.t.Frame(m)
	c.Send(b, last)
}

// ReplayChooser is a Transport that picks which of a channel's history
// messages a new subscription replays (a long-poll answers only with the
// newest one it can use).
type ReplayChooser interface {
	ChooseReplay(msgs []*Message) []*Message
}

// Replay delivers history messages on subscribing; see Hub.SubscribeFrom.
func (c *Conn) Replay(msgs []*Message) {
	if rc, ok := c.t.(ReplayChooser); ok {
		msgs = rc.ChooseReplay(msgs)
	}
	for _, m := range msgs {
		c.Deliver(m)
	}
}

// Send queues b (which must not be modified afterwards) and, with last,
// ends the connection once everything queued is written. A connection over
// its queue limit is closed as a slow consumer, by its shard: Send runs
// under the Hub's channel lock and must not call back into the Hub, which
// Transport.Closed does. Send never blocks.
func (c *Conn) Send(b []byte, last bool) {
	if !c.enqueue(b, last) {
		c.shard.pool.slow.Add(1)
		c.shard.closeLater(c, ErrSlowConsumer)
	}
}

// enqueue adds b to the queue and schedules the connection; it reports
// false when the queue limit is exceeded (the caller closes).
func (c *Conn) enqueue(b []byte, last bool) bool {
	if len(b) == 0 && !last {
		return true
	}
	c.mu.Lock()
	if c.state == stateClosed || c.ending || c.doomed {
		c.mu.Unlock()
		return true
	}
	if over, lagging := c.over(len(b)); over {
		if lagging {
			c.shard.pool.lagging.Add(1)
		}
		c.shard.pool.dropped.Add(uint64(len(c.queue) + 1))
		c.doomed = true
		c.queue, c.queued, c.grace = nil, 0, 0
		c.mu.Unlock()
		return false
	}
	if len(b) > 0 {
		c.queue = append(c.queue, b)
		c.queued += len(b)
	}
	c.ending = last
	schedule := c.state == stateIdle
	if schedule {
		c.state = stateQueued
	}
	c.mu.Unlock()
	if schedule {
		c.shard.ready(c)
	}
	return true
}

// over reports whether queuing n more bytes takes the connection over
// its limits, and whether that is the pool's lag rather than the
// client's; called with c.mu held. A connection is charged only for what
// it owes on its own account: bytes queued since its socket refused data
// (stateBlocked), less the grace that had piled up before. In every
// other state its socket has taken everything it was offered, so what is
// queued is waiting for the writer shard, and only the memory cap
// (PoolConfig.MaxPendingBytes) applies.
func (c *Conn) over(n int) (over, lagging bool) {
	q := c.queued + n
	if q > max(c.shard.pool.cfg.MaxPendingBytes, c.opts.MaxQueueBytes) {
		return true, c.state != stateBlocked
	}
	return c.state == stateBlocked && q-c.grace > c.opts.MaxQueueBytes, false
}

// Close ends the connection with reason (nil: normal end) and drops what
// is queued. It is idempotent; Transport.Closed runs once.
func (c *Conn) Close(reason error) {
	c.mu.Lock()
	if c.state == stateClosed {
		c.mu.Unlock()
		return
	}
	c.state = stateClosed
	c.queue, c.spare, c.queued, c.grace = nil, nil, 0, 0
	c.mu.Unlock()
	c.shard.remove(c)
	c.t.Closed(reason)
}

// SetKeepAlive replaces the connection's keep-alive (see ConnOptions);
// a nil frame or a zero period turns it off.
func (c *Conn) SetKeepAlive(frame []byte, every time.Duration, interval bool) {
	s := c.shard
	s.connsMu.Lock()
	defer s.connsMu.Unlock()
	o := *c.opts
	o.KeepAlive, o.KeepAliveEvery, o.KeepAliveInterval = frame, every, interval
	shared := s.intern(&o)
	c.mu.Lock()
	c.opts = shared
	c.mu.Unlock()
	c.nextKA = time.Now().UnixNano() + int64(every)
}

// Closed reports whether the connection has ended.
func (c *Conn) Closed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state == stateClosed
}

// flush writes what is queued without blocking. It runs on the shard's
// goroutine, which is the only writer while the state is stateWriting.
func (c *Conn) flush(now int64) {
	c.mu.Lock()
	if c.state != stateQueued {
		c.mu.Unlock()
		return
	}
	bufs, total := c.queue, c.queued
	c.queue, c.spare, c.queued = c.spare[:0], nil, 0
	c.state = stateWriting
	c.mu.Unlock()

	n, err := 0, error(nil)
	if total > 0 {
		n, err = c.t.TryWrite(bufs)
	}
	if err != nil {
		c.shard.pool.writeErrors.Add(1)
		c.Close(err)
		return
	}
	if n > 0 {
		c.shard.pool.bytes.Add(uint64(n))
		c.shard.pool.writes.Add(1)
		c.lastWrite.Store(now)
	}
	if n < total {
		c.block(remainder(bufs, n), total-n)
		return
	}
	clear(bufs)
	c.afterWrite(bufs[:0])
}

// afterWrite moves the connection out of a writing state: queued again if
// more arrived, ended if its last frame went out, idle otherwise.
func (c *Conn) afterWrite(spare [][]byte) {
	c.mu.Lock()
	if c.state == stateClosed {
		c.mu.Unlock()
		return
	}
	c.spare = spare
	switch {
	case len(c.queue) > 0:
		c.state = stateQueued
		c.mu.Unlock()
		c.shard.ready(c)
	case c.ending:
		c.mu.Unlock()
		c.Close(nil)
	default:
		c.state = stateIdle
		c.mu.Unlock()
	}
}

// block hands the connection to a goroutine of its own that writes with
// blocking writes, so the shard can go on with other connections.
func (c *Conn) block(rest [][]byte, restBytes int) {
	c.mu.Lock()
	if c.state == stateClosed {
		c.mu.Unlock()
		return
	}
	c.queue = append(rest, c.queue...)
	c.queued += restBytes
	c.grace = c.queued // piled up before the socket refused: not charged
	c.state = stateBlocked
	c.mu.Unlock()
	c.shard.pool.blocked.Add(1)
	c.shard.pool.wg.Add(1)
	go c.drainBlocked()
}

func (c *Conn) drainBlocked() {
	defer c.shard.pool.wg.Done()
	for {
		c.mu.Lock()
		if c.state != stateBlocked {
			c.mu.Unlock()
			return
		}
		if len(c.queue) == 0 {
			c.mu.Unlock()
			c.afterWrite(nil)
			return
		}
		bufs := c.queue
		c.queue = nil
		c.mu.Unlock()
		for _, b := range bufs {
			if err := c.t.WriteBlocking(b); err != nil {
				c.shard.pool.writeErrors.Add(1)
				c.Close(err)
				return
			}
			c.mu.Lock()
			c.queued -= len(b)
			c.grace = max(c.grace-len(b), 0)
			c.mu.Unlock()
			c.shard.pool.bytes.Add(uint64(len(b)))
			c.lastWrite.Store(time.Now().UnixNano())
		}
	}
}

// remainder returns what is left of bufs after n bytes were written.
func remainder(bufs [][]byte, n int) [][]byte {
	for i, b := range bufs {
		if n < len(b) {
			rest := make([][]byte, 0, len(bufs)-i)
			rest = append(rest, b[n:])
			return append(rest, bufs[i+1:]...)
		}
		n -= len(b)
	}
	return nil
}
