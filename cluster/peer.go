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

// peer delivers operations to one member, in order, retrying until they
// are accepted or the member is gone.
type peer struct {
	name  string
	addr  string
	token string

	mu     sync.Mutex
	queue  []Op
	wake   chan struct{}
	stop   chan struct{}
	done   chan struct{}
	client *fasthttp.HostClient

	sent, dropped, failures atomic.Uint64
}

func newPeer(name, addr, token string) *peer {
	return &peer{
		name: name, addr: addr, token: token,
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
		client: &fasthttp.HostClient{Addr: addr, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second,
			MaxIdemponentCallAttempts: 1},
	}
}

// enqueue adds op; past limit the oldest operation is dropped.
func (p *peer) enqueue(op Op, limit int) {
	p.mu.Lock()
	if len(p.queue) >= limit {
		p.queue = p.queue[1:]
		p.dropped.Add(1)
	}
	p.queue = append(p.queue, op)
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
		batch := p.queue[:min(len(p.queue), maxBatch)]
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
		for i < len(p.queue) && p.queue[i].Seq <= last {
			i++
		}
		p.queue = append(p.queue[:0:0], p.queue[i:]...)
		p.mu.Unlock()
	}
}

func (p *peer) send(batch []Op) error {
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

// close stops the sender and drops its queue.
func (p *peer) close() {
	close(p.stop)
	<-p.done
	p.client.CloseIdleConnections()
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
