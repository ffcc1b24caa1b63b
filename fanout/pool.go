package fanout

import (
	"cmp"
	"context"
	"errors"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// PoolConfig configures a writer Pool.
type PoolConfig struct {
	// Shards is the number of writer goroutines. Zero: GOMAXPROCS.
	Shards int
	// MaxQueueBytes is the default per-connection slow-consumer budget in
	// bytes (see ConnOptions.MaxQueueBytes). Zero: 1 MiB.
	MaxQueueBytes int
	// MaxPendingBytes caps the bytes queued for one connection in any
	// state, including while it waits for its writer shard: a bound on
	// memory for when the pool as a whole falls behind, not a judgement
	// of the client (MaxQueueBytes is). Over it the connection is closed
	// with ErrSlowConsumer and counted in PoolStats.Lagging. It is never
	// below the connection's MaxQueueBytes. Zero: 16 × MaxQueueBytes.
	MaxPendingBytes int
	// Tick is how often keep-alives and timeouts are checked. Zero: 250ms.
	Tick time.Duration
}

// Pool owns the writer shards: each shard has one goroutine that writes
// queued frames to its connections, coalescing everything queued for a
// connection into one write, and checks their keep-alives and timeouts.
// Connections are spread over shards round-robin.
//
// A shard never waits on a socket: a connection whose socket refuses
// data gets a blocking writer of its own. The slow-consumer budget
// (MaxQueueBytes) is charged only from then on, for what the client
// itself does not take; while a connection merely waits for its shard,
// which may be busy writing to many others (stalled clients among them),
// nothing is charged to it, and only MaxPendingBytes bounds its queue.
// So clients that stop reading are cut without costing the others.
type Pool struct {
	cfg    PoolConfig
	shards []*writerShard
	next   atomic.Uint32
	stop   chan struct{}
	wg     sync.WaitGroup
	start  sync.Once
	closed sync.Once

	conns       atomic.Int64
	seq         atomic.Uint64
	bytes       atomic.Uint64
	writes      atomic.Uint64
	slow        atomic.Uint64
	writeErrors atomic.Uint64
	blocked     atomic.Uint64
	dropped     atomic.Uint64
	lagging     atomic.Uint64
}

// PoolStats is a snapshot of a Pool's counters.
type PoolStats struct {
	// Conns is the number of connections held now.
	Conns int64 `json:"conns"`
	// BytesWritten counts bytes written to connections.
	BytesWritten uint64 `json:"bytes_written"`
	// Writes counts the non-blocking socket writes that wrote something.
	// With the Hub's Delivered it tells, roughly, how many messages one
	// write carried (writes also carry keep-alives, pings, initial data
	// and the rest of partial writes; blocking writes are not counted).
	Writes uint64 `json:"writes"`
	// SlowConsumers counts connections closed for exceeding their queue.
	SlowConsumers uint64 `json:"slow_consumers"`
	// WriteErrors counts connections closed by a failed write.
	WriteErrors uint64 `json:"write_errors"`
	// BlockedWrites counts times a connection stopped keeping up and got a
	// blocking writer of its own.
	BlockedWrites uint64 `json:"blocked_writes"`
	// DroppedFrames counts frames (published messages, keep-alives)
	// discarded with the queue of a connection closed as a slow consumer.
	DroppedFrames uint64 `json:"dropped_frames"`
	// Lagging counts connections closed because their queue reached
	// MaxPendingBytes while they waited for their writer shard, their
	// socket not having refused anything: the pool fell behind. They are
	// counted in SlowConsumers too.
	Lagging uint64 `json:"lagging"`
}

type writerShard struct {
	pool *Pool
	wake chan struct{}

	readyMu sync.Mutex
	readyQ  []readyConn
	spareQ  []readyConn
	closeQ  []closing

	connsMu sync.Mutex
	conns   []*Conn
	// opts holds the options of connections added lately, under
	// connsMu: a connection whose options equal one of them shares it,
	// so that thousands of connections with the same options hold one
	// copy (see intern).
	opts     [4]*ConnOptions
	nextOpts int
}

// NewPool returns a Pool; call Start before adding connections.
func NewPool(cfg PoolConfig) *Pool {
	if cfg.Shards <= 0 {
		cfg.Shards = runtime.GOMAXPROCS(0)
	}
	if cfg.MaxQueueBytes <= 0 {
		cfg.MaxQueueBytes = 1 << 20
	}
	if cfg.MaxPendingBytes <= 0 {
		cfg.MaxPendingBytes = 16 * cfg.MaxQueueBytes
	}
	if cfg.Tick <= 0 {
		cfg.Tick = 250 * time.Millisecond
	}
	p := &Pool{cfg: cfg, stop: make(chan struct{})}
	for range cfg.Shards {
		p.shards = append(p.shards, &writerShard{pool: p, wake: make(chan struct{}, 1)})
	}
	return p
}

// Start starts the writer goroutines. It is idempotent.
func (p *Pool) Start() {
	p.start.Do(func() {
		for _, s := range p.shards {
			p.wg.Add(1)
			go s.run()
		}
	})
}

// ErrPoolClosed is returned by Add after Close.
var ErrPoolClosed = errors.New("fanout: pool closed")

// Add registers a connection written through t. initial frames are queued
// first, before anything delivered later. The frames in opts are kept,
// and shared with later connections whose options are equal, so they
// must not be modified afterwards.
func (p *Pool) Add(t Transport, opts ConnOptions, initial ...[]byte) (*Conn, error) {
	select {
	case <-p.stop:
		return nil, ErrPoolClosed
	default:
	}
	if opts.MaxQueueBytes <= 0 {
		opts.MaxQueueBytes = p.cfg.MaxQueueBytes
	}
	s := p.shards[int(p.next.Add(1))%len(p.shards)]
	c := &Conn{t: t, shard: s, seq: p.seq.Add(1)}
	now := time.Now().UnixNano()
	c.lastWrite.Store(now)
	if opts.Timeout > 0 {
		c.deadline = now + int64(opts.Timeout)
	}
	if opts.KeepAliveInterval && opts.KeepAliveEvery > 0 {
		c.nextKA = now + int64(opts.KeepAliveEvery)
	}
	if opts.PingEvery > 0 {
		c.nextPing = now + int64(opts.PingEvery)
	}
	s.add(c, &opts)
	p.conns.Add(1)
	for _, b := range initial {
		c.Send(b, false)
	}
	return c, nil
}

// Close stops the writers and closes every connection with ErrShutdown.
// Connections' Transport.Closed run before Close returns.
func (p *Pool) Close() {
	p.closed.Do(func() {
		close(p.stop)
		for _, s := range p.shards {
			s.connsMu.Lock()
			conns := append([]*Conn(nil), s.conns...)
			s.connsMu.Unlock()
			for _, c := range conns {
				c.Close(ErrShutdown)
			}
		}
		p.wg.Wait()
	})
}

// Drain closes the connections held now with ErrShutdown, spread evenly
// over period so that their clients do not all reconnect at the same
// moment; the others keep receiving until their turn. It returns when all
// are closed or ctx is done. A period ≤ 0 closes them all at once.
// Connections added meanwhile are left to Close.
func (p *Pool) Drain(ctx context.Context, period time.Duration) {
	var conns []*Conn
	for _, s := range p.shards {
		s.connsMu.Lock()
		conns = append(conns, s.conns...)
		s.connsMu.Unlock()
	}
	if len(conns) == 0 {
		return
	}
	const step = 20 * time.Millisecond
	steps := max(int(period/step), 1)
	per := (len(conns) + steps - 1) / steps
	t := time.NewTicker(step)
	defer t.Stop()
	for len(conns) > 0 {
		k := min(per, len(conns))
		for _, c := range conns[:k] {
			c.Close(ErrShutdown)
		}
		conns = conns[k:]
		if len(conns) == 0 {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Stats returns a snapshot of the Pool's counters.
func (p *Pool) Stats() PoolStats {
	return PoolStats{
		Conns:         p.conns.Load(),
		BytesWritten:  p.bytes.Load(),
		Writes:        p.writes.Load(),
		SlowConsumers: p.slow.Load(),
		WriteErrors:   p.writeErrors.Load(),
		BlockedWrites: p.blocked.Load(),
		DroppedFrames: p.dropped.Load(),
		Lagging:       p.lagging.Load(),
	}
}

func (s *writerShard) add(c *Conn, opts *ConnOptions) {
	s.connsMu.Lock()
	c.opts = s.intern(opts)
	c.idx = len(s.conns)
	s.conns = append(s.conns, c)
	s.connsMu.Unlock()
}

// maxInternedFrames bounds the frame bytes of the options a shard
// remembers for sharing: larger ones (a long-poll's whole held response
// as its TimeoutFrame) are rarely equal, and are not kept alive past
// their connection.
const maxInternedFrames = 4 << 10

// intern returns a shared copy of o: one of the shard's recent options
// if equal to o, else a new copy, remembered in place of the oldest
// unless its frames are large. The caller holds connsMu.
func (s *writerShard) intern(o *ConnOptions) *ConnOptions {
	small := len(o.KeepAlive)+len(o.TimeoutFrame)+len(o.Ping) <= maxInternedFrames
	if small {
		for _, r := range s.opts {
			if r != nil && r.equal(o) {
				return r
			}
		}
	}
	cp := new(ConnOptions)
	*cp = *o
	if small {
		s.opts[s.nextOpts] = cp
		s.nextOpts = (s.nextOpts + 1) % len(s.opts)
	}
	return cp
}

func (s *writerShard) remove(c *Conn) {
	s.connsMu.Lock()
	defer s.connsMu.Unlock()
	i := c.idx
	if i < 0 || i >= len(s.conns) || s.conns[i] != c {
		return
	}
	last := len(s.conns) - 1
	s.conns[i] = s.conns[last]
	s.conns[i].idx = i
	s.conns[last] = nil
	s.conns = s.conns[:last]
	c.idx = -1
	s.pool.conns.Add(-1)
}

type closing struct {
	c      *Conn
	reason error
}

// closeLater has the shard's goroutine close c with reason.
func (s *writerShard) closeLater(c *Conn, reason error) {
	s.readyMu.Lock()
	s.closeQ = append(s.closeQ, closing{c, reason})
	s.readyMu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// ready puts c on the shard's ready list and wakes the shard.
func (s *writerShard) ready(c *Conn) {
	s.readyMu.Lock()
	s.readyQ = append(s.readyQ, readyConn{c.seq, c})
	s.readyMu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *writerShard) run() {
	defer s.pool.wg.Done()
	tick := time.NewTicker(s.pool.cfg.Tick)
	defer tick.Stop()
	for {
		select {
		case <-s.pool.stop:
			return
		case <-s.wake:
		case now := <-tick.C:
			s.tick(now.UnixNano())
		}
		s.drain()
	}
}

// readyConn is a ready connection with its Conn.seq, so that a batch is
// sorted without reading the Conns.
type readyConn struct {
	seq uint64
	c   *Conn
}

// drain closes connections marked for closing, then flushes ready
// connections until none is left.
//
// Each batch of ready connections is written in the order the
// connections were added (Conn.seq), whatever order they were queued in:
// consecutive writes then touch memory (the Conns, their sockets' kernel
// state) laid out close together, which at 19k connections cut the CPU
// per write by ~15 % for the node and ~20 % for a client on the same box
// (BENCHMARKS.md, session 6). For a shard that falls behind it also
// bounds the gap between two writes to one connection by about one pass:
// a connection written early in one batch and queued again is early in
// the next. (The price: within a pass, the connections added last are
// always written last.) The Hub hands a message to a channel's
// subscribers in the order they subscribed, which for most channels is
// about the order their connections were added, so a batch is often
// sorted already: that is checked first, in one pass over the batch.
func (s *writerShard) drain() {
	for {
		s.readyMu.Lock()
		q, cq := s.readyQ, s.closeQ
		s.readyQ, s.spareQ, s.closeQ = s.spareQ[:0], nil, nil
		s.readyMu.Unlock()
		for _, cl := range cq {
			cl.c.Close(cl.reason)
		}
		if len(q) == 0 {
			s.readyMu.Lock()
			s.spareQ = q
			s.readyMu.Unlock()
			return
		}
		now := time.Now().UnixNano()
		bySeq := func(a, b readyConn) int { return cmp.Compare(a.seq, b.seq) }
		if !slices.IsSortedFunc(q, bySeq) {
			slices.SortFunc(q, bySeq)
		}
		for _, r := range q {
			r.c.flush(now)
		}
		clear(q)
		s.readyMu.Lock()
		s.spareQ = q[:0]
		s.readyMu.Unlock()
	}
}

// tick queues due keep-alives, pings and timeout frames.
func (s *writerShard) tick(now int64) {
	s.connsMu.Lock()
	defer s.connsMu.Unlock()
	for _, c := range s.conns {
		c.tick(now)
	}
}

// tick queues what the connection owes at time now. It runs on the shard
// goroutine under connsMu.
func (c *Conn) tick(now int64) {
	o := c.opts
	if c.deadline != 0 && now >= c.deadline {
		c.deadline = 0
		c.Send(o.TimeoutFrame, true)
		return
	}
	if o.PingEvery > 0 && now >= c.nextPing {
		c.nextPing = now + int64(o.PingEvery)
		c.Send(o.Ping, false)
	}
	if o.KeepAlive == nil || o.KeepAliveEvery <= 0 {
		return
	}
	every := int64(o.KeepAliveEvery)
	if o.KeepAliveInterval {
		if now >= c.nextKA {
			c.nextKA = now + every
			c.Send(o.KeepAlive, false)
		}
		return
	}
	if now-c.lastWrite.Load() >= every {
		// Count the keep-alive as written now so that a slow flush does
		// not queue a second one on the next tick.
		c.lastWrite.Store(now)
		c.Send(o.KeepAlive, false)
	}
}
