package cluster

import (
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// OpsPath is the control API path peers POST operations to.
const OpsPath = "/_cluster/ops"

// maxBatch bounds the operations sent in one request.
const maxBatch = 256

// peer delivers operations to one member, in order, retrying each until
// it is accepted, its retry window has passed, or the member is gone.
type peer struct {
	name   string
	addr   string
	token  string
	window time.Duration // Config.RetryWindow
	drops  *dropCounts   // the Cluster's, by reason
	faults *Faults

	mu     sync.Mutex
	queue  []queued
	wake   chan struct{}
	stop   chan struct{}
	done   chan struct{}
	client *fasthttp.HostClient

	sent, dropped, failures atomic.Uint64
}

// queued is an operation waiting for a peer, with when it was queued.
type queued struct {
	op Op
	at time.Time
}

func newPeer(name, addr string, cfg *Config, drops *dropCounts) *peer {
	p := &peer{
		name: name, addr: addr, token: cfg.Token, window: cfg.RetryWindow, drops: drops, faults: cfg.Faults,
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
		client: &fasthttp.HostClient{Addr: addr, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second,
			MaxIdemponentCallAttempts: 1},
	}
	if cfg.Faults != nil {
		p.client.Dial = cfg.Faults.dial
	}
	return p
}

// enqueue adds op, queued at at; past limit the oldest operation is
// dropped.
func (p *peer) enqueue(op Op, at time.Time, limit int) {
	p.mu.Lock()
	if len(p.queue) >= limit {
		p.queue = p.queue[1:]
		p.dropped.Add(1)
		p.drops.queueFull.Add(1)
	}
	p.queue = append(p.queue, queued{op, at})
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// run sends batches until stopped.
func (p *peer) run() {
	defer close(p.done)
	backoff := 50 * time.Millisecond
	for {
		p.mu.Lock()
		n := min(len(p.queue), maxBatch)
		batch := make([]Op, n)
		for i, q := range p.queue[:n] {
			batch[i] = q.op
		}
		p.mu.Unlock()
		if len(batch) == 0 {
			select {
			case <-p.stop:
				return
			case <-p.wake:
				continue
			}
		}
		if err := p.send(batch); err != nil {
			p.failures.Add(1)
			p.expire(time.Now())
			select {
			case <-p.stop:
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 2*time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		p.sent.Add(uint64(len(batch)))
		// Remove what was sent: the queue holds this node's operations in
		// Seq order, and drops may have shifted it meanwhile.
		last := batch[len(batch)-1].Seq
		p.mu.Lock()
		i := 0
		for i < len(p.queue) && p.queue[i].op.Seq <= last {
			i++
		}
		p.queue = append(p.queue[:0:0], p.queue[i:]...)
		p.mu.Unlock()
	}
}

// expire drops, and counts, the operations queued longer than the retry
// window ago.
func (p *peer) expire(now time.Time) {
	limit := now.Add(-p.window)
	p.mu.Lock()
	i := 0
	for i < len(p.queue) && !p.queue[i].at.After(limit) {
		i++
	}
	if i > 0 {
		p.queue = append(p.queue[:0:0], p.queue[i:]...)
	}
	p.mu.Unlock()
	if i > 0 {
		p.dropped.Add(uint64(i))
		p.drops.retryWindow.Add(uint64(i))
	}
}

func (p *peer) send(batch []Op) error {
	if p.faults.isCut() {
		return errCut
	}
	body, err := json.Marshal(batch)
	if err != nil {
		return err
	}
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(fasthttp.MethodPost)
	req.SetRequestURI("http://" + p.addr + OpsPath)
	req.Header.SetContentType("application/json")
	if p.token != "" {
		req.Header.Set("Authorization", "Bearer "+p.token)
	}
	req.SetBodyRaw(body)
	if err := p.client.Do(req, resp); err != nil {
		return err
	}
	if resp.StatusCode() != fasthttp.StatusOK {
		return fmt.Errorf("cluster: peer %s answered %d", p.name, resp.StatusCode())
	}
	return nil
}

// close stops the sender and drops its queue, returning how many
// operations it held.
func (p *peer) close() int {
	close(p.stop)
	<-p.done
	p.client.CloseIdleConnections()
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.queue)
	p.queue = nil
	return n
}

// dropCounts counts operations dropped undelivered, by reason, over every
// peer a member had.
type dropCounts struct {
	queueFull, retryWindow, memberGone atomic.Uint64
}

// DropStats counts operations dropped undelivered to some member, by
// reason, since the member started.
type DropStats struct {
	// QueueFull counts operations dropped, oldest first, from a queue at
	// Config.QueueLen.
	QueueFull uint64 `json:"queue_full"`
	// RetryWindow counts operations still undelivered Config.RetryWindow
	// after they were queued.
	RetryWindow uint64 `json:"retry_window"`
	// MemberGone counts operations queued for a member when it left, or
	// still queued Config.RetryWindow after it was declared dead.
	MemberGone uint64 `json:"member_gone"`
}

func (d *dropCounts) stats() DropStats {
	return DropStats{QueueFull: d.queueFull.Load(), RetryWindow: d.retryWindow.Load(), MemberGone: d.memberGone.Load()}
}

// PeerStats counts operations for one peer.
type PeerStats struct {
	Name     string `json:"name"`
	Addr     string `json:"control"`
	Queued   int    `json:"queued"`
	Sent     uint64 `json:"sent"`
	Dropped  uint64 `json:"dropped"`
	Failures uint64 `json:"failed_attempts"`
}

func (p *peer) stats() PeerStats {
	p.mu.Lock()
	q := len(p.queue)
	p.mu.Unlock()
	return PeerStats{Name: p.name, Addr: p.addr, Queued: q, Sent: p.sent.Load(), Dropped: p.dropped.Load(), Failures: p.failures.Load()}
}
