package node

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgepush/edgepush/cache"
	"github.com/edgepush/edgepush/cluster"
	"github.com/edgepush/edgepush/fanout"
	"github.com/edgepush/edgepush/grip"
	"github.com/edgepush/edgepush/node/connwatch"
	"github.com/edgepush/edgepush/purge"
	"github.com/valyala/fasthttp"
)

// Server is one edgepush node: New checks the configuration and builds it
// (no goroutines, sockets or files), Start opens its listeners and starts
// serving, Shutdown drains it.
type Server struct {
	cfg        Config
	log        *slog.Logger
	hub        *fanout.Hub
	pool       *fanout.Pool
	watch      *connwatch.Watcher
	wsIdle     wsIdleList   // WebSocket readers, for the idle check (wsread.go)
	routes     *routeTable  // picks each request's origins
	signer     *grip.Signer // -sig-key and -sig-iss (routes may have their own)
	publishKey []byte       // nil: control API open
	clusterKey []byte       // nil: tier traffic not encrypted

	cache     *cache.Cache // nil: caching off
	limiter   *purge.Limiter
	ops       purge.Applier    // publishes and purges, from clients and peers
	responses responseMarks    // newest http-response per channel (longpoll.go)
	tier      *cluster.Cluster // nil: single node
	breaker   originBreakers   // every origin's circuit breaker
	interim   interimHooks     // origin requests whose interim responses go to a client
	wsOrigins []string
	metrics   *nodeMetrics
	access    *accessLog // nil: no access log

	// shieldStats counts origin shielding (shield.go); shieldDial, when
	// set before Start, connects to shields (tests cut connections with
	// it; nil: TCP).
	shieldStats shieldStats
	shieldDial  func(addr string) (net.Conn, error)

	// wsKeepAliveFloor is the shortest Keep-Alive-Interval obeyed:
	// minKeepAliveInterval (tests lower it before Start).
	wsKeepAliveFloor time.Duration

	// tierHook, when set (by tests, before Start), adjusts the tier's
	// configuration last: faults to inject, timings no flag sets.
	tierHook func(*cluster.Config)

	// bg runs the goroutines the node starts besides serving (probes,
	// WebSocket-over-HTTP requests, hints, hub sweeps); bgCtx is
	// cancelled when Shutdown stops them, so that none waits out a pause.
	bg       bgGroup
	bgCtx    context.Context
	bgCancel context.CancelFunc

	client, control     *fasthttp.Server
	clientLn, controlLn net.Listener
	tlsLn               net.Listener     // nil: no HTTPS listener
	monitor             *fasthttp.Server // -metrics-listen's
	monitorLn           net.Listener     // nil: no -metrics-listen
	certs               *certStore       // nil: no HTTPS listener
	draining            atomic.Bool      // /readyz answers 503
	serving             sync.WaitGroup
	started             time.Time

	againMu sync.Mutex
	again   map[net.Conn]struct{} // connections serveAgain handed back

	held          atomic.Int64  // held connections now
	requests      atomic.Uint64 // client requests
	badInstructs  atomic.Uint64 // origin responses with invalid instructions
	publishes     atomic.Uint64 // items published
	shutdownOnce  sync.Once
	shutdownError error
}

// New checks cfg and builds a Server; log may be nil (no logging). It
// refuses invalid settings (Config.Check, then keys, certificates and the
// access log) and logs, at warn, the settings that do nothing.
func New(cfg Config, log *slog.Logger) (*Server, error) {
	cfg, warnings, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	for _, w := range warnings {
		log.Warn(w)
	}
	s := &Server{
		cfg:  cfg,
		log:  log,
		pool: fanout.NewPool(fanout.PoolConfig{MaxQueueBytes: cfg.MaxQueueBytes, MaxPendingBytes: cfg.MaxPendingBytes}),

		wsKeepAliveFloor: minKeepAliveInterval,
	}
	s.hub = fanout.NewHub(s.hubConfig())
	sigKey := make([]byte, 32)
	rand.Read(sigKey)
	if cfg.SigKey != "" {
		if sigKey, err = grip.ParseKey(cfg.SigKey); err != nil {
			return nil, fmt.Errorf("config: -sig-key: %w", err)
		}
	}
	s.signer = grip.NewSigner(cfg.SigIss, sigKey)
	if s.routes, err = newRouteTable(cfg, sigKey); err != nil {
		return nil, err
	}
	s.breaker = originBreakers{s.routes}
	s.routes.relayInterims(&s.interim)
	if cfg.PublishKey != "" {
		key, err := grip.ParseKey(cfg.PublishKey)
		if err != nil {
			return nil, fmt.Errorf("config: -publish-key: %w", err)
		}
		s.publishKey = key
	}
	if cfg.ClusterKey != "" {
		if s.clusterKey, err = grip.ParseKey(cfg.ClusterKey); err != nil {
			return nil, fmt.Errorf("config: -cluster-key: %w", err)
		}
		if n := len(s.clusterKey); n != 16 && n != 24 && n != 32 {
			return nil, fmt.Errorf("config: -cluster-key: %d bytes, want 16, 24 or 32", n)
		}
	}
	if cfg.TLSListen != "" {
		if s.certs, err = newCertStore(cfg.TLSCert, cfg.TLSKey); err != nil {
			return nil, err
		}
	}
	if err := checkAccessLog(cfg.AccessLog); err != nil {
		return nil, err
	}
	s.bgCtx, s.bgCancel = context.WithCancel(context.Background())
	s.limiter = purge.NewLimiter(cfg.PurgeInterval, cachePurger{s})
	s.ops = purge.Applier{Limiter: s.limiter, Publisher: publisher{s}}
	s.metrics = newNodeMetrics(s)
	for _, o := range strings.Split(cfg.WSAllowedOrigins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			s.wsOrigins = append(s.wsOrigins, o)
		}
	}
	s.client = &fasthttp.Server{
		Handler:               s.serveClient,
		Name:                  "edgepush",
		NoDefaultServerHeader: true,
		NoDefaultDate:         true, // a stored Date is served as stored (relay sets it: setDate)
		ReadBufferSize:        cfg.MaxHeaderBytes,
		MaxRequestBodySize:    cfg.MaxBody,
		ReadTimeout:           cfg.ReadTimeout,
		IdleTimeout:           cfg.IdleTimeout,
		Concurrency:           cfg.MaxConns + 1, // above -max-conns: overConnLimit answers first
		ErrorHandler:          requestError,
		ReduceMemoryUsage:     true,
		KeepHijackedConns:     true,
		CloseOnShutdown:       true,
		Logger:                fasthttpLogger{log},
	}
	s.control = &fasthttp.Server{
		Handler:               s.serveControl,
		Name:                  "edgepush",
		NoDefaultServerHeader: true,
		MaxRequestBodySize:    cfg.MaxPublishBody,
		ErrorHandler:          requestError,
		ReadTimeout:           cfg.ReadTimeout,
		IdleTimeout:           cfg.IdleTimeout,
		CloseOnShutdown:       true,
		Logger:                fasthttpLogger{log},
	}
	s.monitor = &fasthttp.Server{
		Handler:               s.serveMonitoring,
		Name:                  "edgepush",
		NoDefaultServerHeader: true,
		MaxRequestBodySize:    4 << 10, // GETs
		ErrorHandler:          requestError,
		ReadTimeout:           cfg.ReadTimeout,
		IdleTimeout:           cfg.IdleTimeout,
		CloseOnShutdown:       true,
		Logger:                fasthttpLogger{log},
	}
	return s, nil
}

// Start opens the listeners, the cache and the access log, joins the
// tier, and serves in the background. When it fails, what it opened is
// closed again and the Server cannot be started again.
func (s *Server) Start() error {
	if err := s.open(); err != nil {
		s.teardown()
		return err
	}
	s.started = time.Now()
	s.pool.Start()
	s.startProbes()
	s.bg.Go(s.sweepHub)
	s.bg.Go(s.sweepWSIdle)
	s.serve(s.client, s.clientLn)
	tlsAddr := ""
	if s.tlsLn != nil {
		s.serve(s.client, s.tlsLn)
		tlsAddr = s.tlsLn.Addr().String()
	}
	s.serve(s.control, s.controlLn)
	metricsAddr := ""
	if s.monitorLn != nil {
		s.serve(s.monitor, s.monitorLn)
		metricsAddr = s.monitorLn.Addr().String()
	}
	s.log.Info("edgepush node started", "listen", s.clientLn.Addr().String(), "tls", tlsAddr,
		"control", s.controlLn.Addr().String(), "metrics", metricsAddr, "origin", s.cfg.Origin, "routes", len(s.routes.all))
	return nil
}

// open acquires what serving needs, in order; teardown releases whatever
// it got.
func (s *Server) open() error {
	var err error
	if s.watch, err = connwatch.New(); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", s.cfg.Listen, err)
	}
	s.clientLn = strictListener{ln}
	if s.controlLn, err = net.Listen("tcp", s.cfg.Control); err != nil {
		return fmt.Errorf("control listen %s: %w", s.cfg.Control, err)
	}
	if s.cfg.MetricsListen != "" {
		if s.monitorLn, err = net.Listen("tcp", s.cfg.MetricsListen); err != nil {
			return fmt.Errorf("metrics listen %s: %w", s.cfg.MetricsListen, err)
		}
	}
	if s.certs != nil {
		ln, err := net.Listen("tcp", s.cfg.TLSListen)
		if err != nil {
			return fmt.Errorf("tls listen %s: %w", s.cfg.TLSListen, err)
		}
		s.tlsLn = strictListener{tls.NewListener(ln, s.certs.tlsConfig())}
	}
	if s.access, err = openAccessLog(s.cfg.AccessLog); err != nil {
		return err
	}
	if s.routes.caching() {
		if s.cache, err = cache.New(cache.Config{MaxBytes: s.cfg.CacheMaxBytes, StaleIfError: s.cfg.StaleIfError}); err != nil {
			return err
		}
	}
	return s.startTier()
}

// teardown releases what open acquired (any part of it) and stops the
// background work; it runs last in Shutdown and when Start fails.
func (s *Server) teardown() {
	s.bgCancel()
	for _, ln := range []net.Listener{s.clientLn, s.tlsLn, s.controlLn, s.monitorLn} {
		if ln != nil {
			ln.Close()
		}
	}
	s.pool.Close()
	if s.watch != nil {
		s.watch.Close()
	}
	if s.tier != nil {
		s.tier.Shutdown()
	}
	s.limiter.Close() // trailing purges run now
	if s.cache != nil {
		s.cache.Close()
	}
	s.access.close()
}

func (s *Server) serve(srv *fasthttp.Server, ln net.Listener) {
	s.serving.Add(1)
	go func() {
		defer s.serving.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, net.ErrClosed) {
			s.log.Error("serve", "addr", ln.Addr().String(), "err", err)
		}
	}()
}

// Addr is the client listener's address (after Start; nil before).
func (s *Server) Addr() net.Addr { return addrOf(s.clientLn) }

// TLSAddr is the HTTPS listener's address (after Start), nil without one.
func (s *Server) TLSAddr() net.Addr { return addrOf(s.tlsLn) }

// ControlAddr is the control listener's address (after Start; nil before).
func (s *Server) ControlAddr() net.Addr { return addrOf(s.controlLn) }

// MetricsAddr is the -metrics-listen listener's address (after Start),
// nil without one.
func (s *Server) MetricsAddr() net.Addr { return addrOf(s.monitorLn) }

// TierAddr is the memberlist address other members join (after Start);
// "" outside a tier.
func (s *Server) TierAddr() string {
	if s.tier == nil {
		return ""
	}
	return s.tier.LocalAddr()
}

func addrOf(ln net.Listener) net.Addr {
	if ln == nil {
		return nil
	}
	return ln.Addr()
}

// Shutdown drains the node and stops it. In order: /readyz turns 503;
// after -drain-delay the client listeners close (requests in flight
// finish); held connections end spread over -drain-period (streams get
// their final chunk, long-polls their timeout answer, WebSockets close
// 1001), still receiving publishes until their turn; then the node leaves
// the tier and stops. It is idempotent. When ctx is done the drain is cut
// short and everything still open is closed at once.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutdownOnce.Do(func() {
		s.draining.Store(true)
		if s.started.IsZero() { // never started, or Start failed
			s.teardown()
			return
		}
		s.log.Info("draining", "delay", s.cfg.DrainDelay.String(), "period", s.cfg.DrainPeriod.String(), "held", s.held.Load())
		sleepCtx(ctx, s.cfg.DrainDelay)
		// Closing the listeners as well covers a Serve goroutine that has
		// not registered its listener with fasthttp yet.
		errClient := s.client.ShutdownWithContext(ctx)
		s.clientLn.Close()
		if s.tlsLn != nil {
			s.tlsLn.Close()
		}
		s.pool.Drain(ctx, s.cfg.DrainPeriod)
		// The node stays in the tier while it drains, so its clients get
		// every publish until they are told to go.
		if s.tier != nil {
			s.tier.Leave(2 * time.Second)
		}
		s.pool.Close()
		s.bgCancel() // probes, WebSocket retries and sweeps stop waiting
		s.closeServedAgain()
		if !s.bg.StopAndWait(ctx) {
			s.log.Warn("shutdown: background origin requests still running at the deadline")
		}
		errControl := s.control.ShutdownWithContext(ctx)
		s.controlLn.Close()
		var errMonitor error
		if s.monitorLn != nil { // up to the end: probes see /readyz 503 while the node drains
			errMonitor = s.monitor.ShutdownWithContext(ctx)
			s.monitorLn.Close()
		}
		s.serving.Wait()
		s.teardown()
		s.shutdownError = errors.Join(errClient, errControl, errMonitor)
		s.log.Info("edgepush node stopped")
	})
	return s.shutdownError
}

// sweepHub drops expired channel history now and then, and every
// second delivers the published items that have waited -sequence-wait for
// their predecessor.
func (s *Server) sweepHub() {
	t := time.NewTicker(max(s.cfg.HistoryAge/2, time.Second))
	defer t.Stop()
	var release <-chan time.Time // nil: items never wait
	if s.cfg.SequenceWait > 0 {
		r := time.NewTicker(time.Second)
		defer r.Stop()
		release = r.C
	}
	for {
		select {
		case <-s.bgCtx.Done():
			return
		case now := <-release:
			s.hub.ReleaseExpired(now)
		case now := <-t.C:
			s.hub.Sweep(now)
			s.responses.sweep(now, s.cfg.HistoryAge)
		}
	}
}

// recoverLog turns a panic into a log line; a bug in one request must not
// take the node down.
func recoverLog(log *slog.Logger, where string) {
	if r := recover(); r != nil {
		log.Error("panic", "in", where, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
	}
}

// hubConfig is the hub's history and publish-id settings (zero disables
// deduplication or waiting: the hub's is negative).
func (s *Server) hubConfig() fanout.HubConfig {
	cfg := s.cfg
	enabled := func(d time.Duration) time.Duration {
		if d == 0 {
			return -1
		}
		return d
	}
	return fanout.HubConfig{HistorySize: cfg.HistorySize, HistoryAge: cfg.HistoryAge,
		HistoryMaxBytes: cfg.HistoryMaxBytes, ItemBytes: itemBytes,
		IDCacheTTL: enabled(cfg.PublishIDTTL), SequenceWait: enabled(cfg.SequenceWait),
		OnDeliver: s.noteDelivered}
}

// noteDelivered is the hub's OnDeliver: a published item reached its
// channel's subscribers, at once or after waiting for its predecessor.
func (s *Server) noteDelivered(m *fanout.Message) {
	if item, ok := m.Item.(*grip.Item); ok {
		s.notePublished(item, m.Pos)
	}
}

// itemBytes is what a published item holds, for the hub's history limit
// (-history-max-bytes): its payloads, names and headers.
func itemBytes(item any) int {
	it, ok := item.(*grip.Item)
	if !ok {
		return 0
	}
	n := len(it.Channel) + len(it.ID) + len(it.PrevID)
	for k, v := range it.Meta {
		n += len(k) + len(v)
	}
	if f := it.HTTPStream; f != nil {
		n += len(f.Content)
	}
	if f := it.HTTPResponse; f != nil {
		n += len(f.Reason) + len(f.Body) + len(f.BodyPatch)
		for _, h := range f.Headers {
			n += len(h.Name) + len(h.Value)
		}
	}
	if f := it.WSMessage; f != nil {
		n += len(f.Content) + len(f.Reason)
	}
	return n
}
