package loadtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// maxErrorTexts is how many distinct error texts a report keeps per kind.
const maxErrorTexts = 5

// runState is the state of one run shared by its goroutines.
type runState struct {
	cfg       Config
	spec      transportSpec
	start     time.Time
	startNano int64 // start in Unix nanoseconds: older messages are not ours
	msgs      int

	latency *hist // delivery latency, per connection shard
	// byMsg is each message's latency minimum, mean and maximum, for
	// runs of at most maxByMsg messages.
	byMsg *byMsg

	phase      atomic.Value // string
	connsOK    atomic.Int64 // slow readers included
	connsFail  atomic.Int64
	dropped    atomic.Int64 // slow readers excluded
	slowOK     atomic.Int64 // slow readers set up
	slowEnded  atomic.Int64 // slow readers the server disconnected
	warmOK     atomic.Int64
	published  atomic.Int64
	received   atomic.Int64 // distinct deliveries, all seqs
	duplicated atomic.Int64
	repolls    atomic.Int64

	setupHist *hist
	setupErrs errorCounts
	warmErrs  errorCounts
	dropErrs  errorCounts

	connsMu sync.Mutex
	conns   []*connEntry

	sampler *sampler // nil without PIDs

	progressMu sync.Mutex
}

type connEntry struct {
	cs  *connState
	sub subscriber
}

// errorCounts counts errors by text, keeping at most maxErrorTexts texts.
type errorCounts struct {
	mu    sync.Mutex
	list  []ErrorCount
	other int
}

func (e *errorCounts) add(err error) {
	text := err.Error()
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := range e.list {
		if e.list[i].Text == text {
			e.list[i].Count++
			return
		}
	}
	if len(e.list) < maxErrorTexts {
		e.list = append(e.list, ErrorCount{Text: text, Count: 1})
		return
	}
	e.other++
}

func (e *errorCounts) result() []ErrorCount {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := append([]ErrorCount{}, e.list...) // [] rather than null in JSON
	if e.other > 0 {
		out = append(out, ErrorCount{Text: "(other errors)", Count: e.other})
	}
	return out
}

// Run performs one load test as described by cfg and returns its report.
// Setup failures, dropped connections and failed publishes are counted in
// the report, not returned as errors. Run returns an error for an invalid
// Config, and when ctx is cancelled or Config.Timeout expires, in which
// case the report of what was measured so far comes with it (Aborted set).
// Every connection Run opened is closed and every goroutine it started has
// ended when it returns.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	spec, _ := transportFor(cfg.Transport)
	u, _ := url.Parse(cfg.URL)
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	if len(cfg.PIDs) > 0 {
		if _, err := ReadProc(cfg.PIDs); err != nil {
			return nil, fmt.Errorf("loadtest: %w", err)
		}
	}

	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	connCtx, stopConns := context.WithCancel(context.Background())
	defer stopConns()

	r := &runState{
		cfg: cfg, spec: spec, start: time.Now(), msgs: cfg.Msgs,
		latency: newHist(), setupHist: newHist(), byMsg: newByMsg(cfg.Msgs),
	}
	r.startNano = r.start.UnixNano()
	r.phase.Store("setup")
	t := &target{
		addr: addr, url: cfg.URL,
		dialers: newDialers(cfg.LocalAddrs, cfg.ConnectTimeout), connectTimeout: cfg.ConnectTimeout,
		ctx: connCtx,
	}
	if cfg.Transport == TransportWS {
		t.ws = newWSDialers(t.dialers, cfg.Host)
	} else {
		t.req = buildRequest(u, cfg.Transport, cfg.Host)
	}
	rep := &Report{
		Transport: string(cfg.Transport), URL: cfg.URL, Channel: cfg.Channel,
		ConnsRequested: cfg.Conns, Concurrency: cfg.Concurrency, LocalAddrs: cfg.LocalAddrs,
		MsgsRequested: cfg.Msgs, Rate: cfg.Rate, SettleSeconds: cfg.Settle.Seconds(),
		PIDs: cfg.PIDs, SlowShare: cfg.SlowShare, WarmupConns: cfg.Warmup, OriginDown: cfg.OriginDown,
		ExternalPublish: cfg.ExternalPublish,
	}
	if rep.PIDs == nil {
		rep.PIDs = []int{}
	}

	var base, loaded, cpu0, cpu1 ProcSample
	if len(cfg.PIDs) > 0 {
		r.sampler = newSampler(cfg.PIDs, cfg.SampleInterval)
		r.sampler.start()
		base = r.sampler.latest()
	}
	stopProgress := r.startProgress()
	var readers, stallers sync.WaitGroup

	// Warm-up, then the origin goes down if asked.
	if cfg.Warmup > 0 {
		r.phase.Store("warmup")
		r.warmup(ctx, t)
		r.phase.Store("setup")
	}
	if cfg.OriginDown {
		if err := cfg.Origin.Close(); err != nil {
			r.warmErrs.add(fmt.Errorf("stopping the origin: %w", err))
		}
	}

	// Setup.
	setupStart := time.Now()
	r.setup(ctx, t, &readers, &stallers)
	setupDur := time.Since(setupStart)
	if r.sampler != nil {
		loaded = r.sampler.sample()
	}
	r.report()

	// Publish.
	selfCPU0, _ := ReadProc([]int{os.Getpid()})
	var pubStats publishStats
	var publishDur time.Duration
	if ctx.Err() == nil && r.connsOK.Load() > r.slowOK.Load() && cfg.ExternalPublish {
		r.phase.Store("listen")
		if r.sampler != nil {
			cpu0 = r.sampler.sample()
		}
		pubStart := time.Now()
		pubStats.ok = cfg.Msgs
		pubStats.okMask = make([]uint64, (r.msgs+63)/64)
		for i := range r.msgs {
			pubStats.okMask[i>>6] |= 1 << (i & 63)
		}
		r.published.Store(int64(cfg.Msgs))
		window := cfg.PublishDelay + time.Duration(float64(cfg.Msgs)/cfg.Rate*float64(time.Second)) + cfg.Settle
		r.settleFor(ctx, int64(cfg.Msgs), window)
		publishDur = time.Since(pubStart)
	} else if ctx.Err() == nil && r.connsOK.Load() > r.slowOK.Load() {
		if cfg.PublishDelay > 0 {
			sleepCtx(ctx, cfg.PublishDelay)
		}
		r.phase.Store("publish")
		if r.sampler != nil {
			cpu0 = r.sampler.sample()
		}
		pubStart := time.Now()
		r.publish(ctx, &pubStats)
		publishDur = time.Since(pubStart)
		r.report()

		// Settle.
		r.phase.Store("settle")
		r.settle(ctx, int64(pubStats.ok))
	}
	if r.sampler != nil {
		cpu1 = r.sampler.sample()
	}
	selfCPU1, _ := ReadProc([]int{os.Getpid()})
	r.phase.Store("done")

	// Tear down: slow readers check whether the server dropped them, then
	// every connection is closed and the readers are waited for.
	stopConns()
	stallers.Wait()
	r.connsMu.Lock()
	conns := r.conns
	r.connsMu.Unlock()
	for _, c := range conns {
		c.sub.close()
	}
	readers.Wait()
	stopProgress()
	if r.sampler != nil {
		r.sampler.close()
	}

	// Report.
	rep.ConnsOK = int(r.connsOK.Load())
	rep.ConnsFailed = int(r.connsFail.Load())
	rep.ConnsDropped = int(r.dropped.Load())
	rep.SlowConns = int(r.slowOK.Load())
	rep.SlowDropped = int(r.slowEnded.Load())
	rep.WarmupOK = int(r.warmOK.Load())
	rep.WarmupErrors = r.warmErrs.result()
	rep.SetupErrors = r.setupErrs.result()
	rep.DropErrors = r.dropErrs.result()
	sq := summarize(r.setupHist.merged())
	rep.SetupP50Ms, rep.SetupP99Ms, rep.SetupMaxMs = sq.p50, sq.p99, sq.max
	rep.SetupSeconds = round3(setupDur.Seconds())
	if setupDur > 0 {
		rep.SetupsPerSec = round3(float64(rep.ConnsOK) / setupDur.Seconds())
	}
	rep.MsgsPublished = pubStats.ok
	rep.PublishErrors = pubStats.errs.result()
	rep.PublishSeconds = round3(publishDur.Seconds())
	rep.PublishRTTP50Ms, rep.PublishRTTMaxMs = pubStats.rtt()
	r.countDeliveries(conns, pubStats.okMask, rep)
	lh := r.latency.merged()
	lq := summarize(lh)
	rep.LatencyCurve = latencyCurve(lh)
	rep.LatencyP50Ms, rep.LatencyP90Ms, rep.LatencyP99Ms = lq.p50, lq.p90, lq.p99
	rep.LatencyMaxMs, rep.LatencyMeanMs = lq.max, lq.mean
	rep.LatencyByMessage = r.byMsg.report()
	rep.Repolls = r.repolls.Load()
	if r.sampler != nil {
		rep.RSSBaseMB = mb(base.RSS)
		rep.RSSLoadedMB = mb(loaded.RSS)
		r.sampler.mu.Lock()
		rep.RSSPeakMB = mb(r.sampler.peakRSS)
		rep.SampleErrors = append([]string(nil), r.sampler.errs...)
		r.sampler.mu.Unlock()
		rep.RSSHWMMB = mb(cpu1.HWM)
		if rep.ConnsOK > 0 {
			rep.KBPerConn = round3(float64(loaded.RSS-base.RSS) / 1024 / float64(rep.ConnsOK))
		}
		rep.ServerCPUSeconds = round3((cpu1.CPU - cpu0.CPU).Seconds())
	}
	if publishDur > 0 {
		rep.ClientCPUSeconds = round3((selfCPU1.CPU - selfCPU0.CPU).Seconds())
	}
	rep.ElapsedSeconds = round3(time.Since(r.start).Seconds())
	if err := ctx.Err(); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("loadtest: timeout %v expired", cfg.Timeout)
		}
		rep.Aborted = err.Error()
		return rep, err
	}
	return rep, nil
}

// warmup opens cfg.Warmup connections, with at most cfg.Concurrency in
// progress, and closes each one again at once: they only make the proxy
// fetch (and cache) what the measured connections will get.
func (r *runState) warmup(ctx context.Context, t *target) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(r.cfg.Concurrency, r.cfg.Warmup) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= r.cfg.Warmup {
					return
				}
				cs := &connState{idx: i, run: r, warm: true}
				sub := r.spec.newSubscriber(t, cs)
				if err := sub.open(ctx); err != nil {
					r.warmErrs.add(err)
					continue
				}
				sub.close()
				r.warmOK.Add(1)
			}
		})
	}
	wg.Wait()
}

// isSlow reports whether connection i is a slow reader: with share s,
// every connection where floor((i+1)·s) steps up, floor(n·s) of n in all.
func isSlow(i int, s float64) bool {
	return s > 0 && math.Floor(float64(i+1)*s) > math.Floor(float64(i)*s)
}

// setup opens the connections with at most cfg.Concurrency in progress,
// starting a reader goroutine for each one that succeeds (a staller for
// slow readers).
func (r *runState) setup(ctx context.Context, t *target, readers, stallers *sync.WaitGroup) {
	var next atomic.Int64
	words := (r.msgs + 63) / 64
	var wg sync.WaitGroup
	for range min(r.cfg.Concurrency, r.cfg.Conns) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= r.cfg.Conns {
					return
				}
				cs := &connState{idx: i, run: r, slow: isSlow(i, r.cfg.SlowShare)}
				if !cs.slow {
					cs.seen = make([]uint64, words)
				}
				sub := r.spec.newSubscriber(t, cs)
				t0 := time.Now()
				if err := sub.open(ctx); err != nil {
					r.connsFail.Add(1)
					r.setupErrs.add(err)
					continue
				}
				r.setupHist.record(i, time.Since(t0))
				r.connsMu.Lock()
				r.conns = append(r.conns, &connEntry{cs: cs, sub: sub})
				r.connsMu.Unlock()
				if cs.slow {
					r.slowOK.Add(1)
					r.connsOK.Add(1)
					stallers.Go(func() {
						if sub.stall(t.ctx.Done()) {
							r.slowEnded.Add(1)
						}
					})
					continue
				}
				r.connsOK.Add(1)
				readers.Go(func() {
					err := sub.serve()
					sub.close()
					if t.ctx.Err() == nil { // not closed by us
						r.dropped.Add(1)
						if err == io.EOF {
							err = errors.New("connection ended by the server")
						}
						r.dropErrs.add(err)
					}
				})
			}
		})
	}
	wg.Wait()
}

// publishStats is the outcome of the publish phase.
type publishStats struct {
	ok     int
	okMask []uint64 // seqs whose publish was acknowledged
	rtts   []time.Duration
	errs   errorCounts
}

// rtt returns the median and maximum publish round trip in ms.
func (p *publishStats) rtt() (p50, maxMs float64) {
	if len(p.rtts) == 0 {
		return 0, 0
	}
	s := append([]time.Duration(nil), p.rtts...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	ms := func(d time.Duration) float64 { return round3(float64(d) / float64(time.Millisecond)) }
	return ms(s[(len(s)-1)/2]), ms(s[len(s)-1])
}

// publish sends cfg.Msgs publishes, message i at start + i/rate (or as
// soon as the previous one has been answered, if that is later), and
// records their outcome in ps.
func (r *runState) publish(ctx context.Context, ps *publishStats) {
	ps.okMask = make([]uint64, (r.msgs+63)/64)
	tr := &http.Transport{
		Proxy:               nil,
		MaxIdleConnsPerHost: 1,
		DisableCompression:  true,
		DialContext:         (&net.Dialer{Timeout: r.cfg.ConnectTimeout}).DialContext,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: r.cfg.PublishTimeout}
	pb := newPublishBody(r.cfg.Channel, r.spec.format, r.spec.field, r.spec.pre, r.spec.post)
	var buf []byte
	interval := time.Duration(float64(time.Second) / r.cfg.Rate)
	start := time.Now()
	for i := range r.msgs {
		if !sleepUntil(ctx, start.Add(time.Duration(i)*interval)) {
			return
		}
		t0 := time.Now()
		buf = pb.append(buf[:0], int64(i), t0.UnixNano())
		err := r.publishOne(ctx, client, buf)
		if err != nil {
			ps.errs.add(err)
			continue
		}
		ps.rtts = append(ps.rtts, time.Since(t0))
		ps.ok++
		ps.okMask[i>>6] |= 1 << (i & 63)
		r.published.Add(1)
	}
}

func (r *runState) publishOne(ctx context.Context, client *http.Client, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.cfg.PublishURL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if r.cfg.PublishKey != "" {
		req.Header.Set("Authorization", "Bearer "+r.cfg.PublishKey)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 != 2 {
		msg = bytes.TrimSpace(msg)
		if i := bytes.IndexAny(msg, "\r\n"); i >= 0 {
			msg = msg[:i]
		}
		return fmt.Errorf("publish: HTTP %s: %s", resp.Status, msg)
	}
	return nil
}

// settle waits until every connection has every acknowledged message, or
// cfg.Settle has passed, or ctx is done.
func (r *runState) settle(ctx context.Context, published int64) {
	r.settleFor(ctx, published, r.cfg.Settle)
}

// settleFor is settle with a wait of at most d.
func (r *runState) settleFor(ctx context.Context, published int64, d time.Duration) {
	deadline := time.Now().Add(d)
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		// Deliveries to connections that were dropped still count in
		// received, so this ends early only when nothing can be missing.
		measured := r.connsOK.Load() - r.slowOK.Load()
		if r.received.Load() >= measured*published {
			return
		}
		if measured == r.dropped.Load() || !time.Now().Before(deadline) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// countDeliveries fills in the delivery counts of rep from the
// connections' bitmaps (only acknowledged publishes are expected; slow
// readers are not measured).
func (r *runState) countDeliveries(conns []*connEntry, okMask []uint64, rep *Report) {
	var received, foreign, ooo int64
	for _, c := range conns {
		if c.cs.slow {
			continue
		}
		for w, m := range c.cs.seen {
			if w < len(okMask) {
				received += int64(bits.OnesCount64(m & okMask[w]))
			}
		}
		foreign += int64(c.cs.foreign)
		ooo += int64(c.cs.outOfOrder)
	}
	rep.DeliveriesExpected = int64(rep.ConnsOK-rep.SlowConns) * int64(rep.MsgsPublished)
	rep.DeliveriesReceived = received
	rep.Lost = rep.DeliveriesExpected - received
	if rep.DeliveriesExpected > 0 {
		rep.LostPct = round3(100 * float64(rep.Lost) / float64(rep.DeliveriesExpected))
	}
	rep.Duplicated = r.duplicated.Load()
	rep.OutOfOrder = ooo
	rep.Unexpected = foreign
}

// startProgress calls cfg.Progress every ProgressInterval until the
// returned function is called (which reports once more and waits).
func (r *runState) startProgress() (stop func()) {
	if r.cfg.Progress == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(r.cfg.ProgressInterval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				r.report()
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
		r.report()
	}
}

// report sends the current progress to cfg.Progress, if set.
func (r *runState) report() {
	if r.cfg.Progress == nil {
		return
	}
	r.progressMu.Lock() // Progress is never called concurrently
	defer r.progressMu.Unlock()
	ok := r.connsOK.Load()
	slow := r.slowOK.Load()
	pub := r.published.Load()
	p := Progress{
		Phase:         r.phase.Load().(string),
		Elapsed:       time.Since(r.start),
		ConnsTarget:   r.cfg.Conns,
		ConnsOK:       int(ok),
		ConnsFailed:   int(r.connsFail.Load()),
		ConnsDropped:  int(r.dropped.Load()),
		ConnsSlow:     int(slow),
		MsgsTarget:    r.cfg.Msgs,
		MsgsPublished: int(pub),
		Expected:      (ok - slow) * pub,
		Received:      r.received.Load(),
	}
	if r.sampler != nil {
		p.RSSBytes = r.sampler.latest().RSS
	}
	r.cfg.Progress(p)
}

// sleepUntil waits until t or ctx is done; it reports whether t came.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	return sleepCtx(ctx, d)
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-tm.C:
		return true
	}
}

func mb(b int64) float64 { return round3(float64(b) / (1 << 20)) }

func round3(f float64) float64 {
	if f < 0 {
		return -round3(-f)
	}
	return float64(int64(f*1000+0.5)) / 1000
}
