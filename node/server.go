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
	"github.com/fasthttp/websocket"
	"github.com/valyala/fasthttp"
)

// Server is one edgepush node: New builds it (no goroutines), Start opens
// its listeners, Shutdown drains it.
type Server struct {
	cfg        Config
	log        *slog.Logger
	hub        *fanout.Hub
	pool       *fanout.Pool
	watch      *connwatch.Watcher
	routes     *routeTable  // picks each request's origins
	signer     *grip.Signer // -sig-key and -sig-iss (routes may have their own)
	publishKey []byte       // nil: control API open

	cache     *cache.Cache // nil: caching off
	limiter   *purge.Limiter
	tier      *cluster.Cluster // nil: single node
	purges    *purgeLog        // the tier's recent purges (nil: single node)
	dropOps   atomic.Bool      // tests: lose operations from peers (a partition)
	breaker   originBreakers   // every origin's circuit breaker
	stop      chan struct{}    // closed by Shutdown: stops the prober
	upgrader  *websocket.FastHTTPUpgrader
	wsOrigins []string
	bg        bgGroup // goroutines the node starts for connections
	metrics   *nodeMetrics
	access    *accessLog // nil: no access log

	client, control     *fasthttp.Server
	clientLn, controlLn net.Listener
	tlsLn               net.Listener // nil: no HTTPS listener
	certs               *certStore   // nil: no HTTPS listener
	draining            atomic.Bool  // /readyz answers 503
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

// New checks cfg and builds a Server; log may be nil (no logging).
func New(cfg Config, log *slog.Logger) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg:  cfg,
		log:  log,
		hub:  fanout.NewHub(fanout.HubConfig{HistorySize: cfg.HistorySize, HistoryAge: cfg.HistoryAge}),
		pool: fanout.NewPool(fanout.PoolConfig{MaxQueueBytes: cfg.MaxQueueBytes}),
	}
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
	if cfg.PublishKey != "" {
		key, err := grip.ParseKey(cfg.PublishKey)
		if err != nil {
			return nil, fmt.Errorf("config: -publish-key: %w", err)
		}
		s.publishKey = key
	}
	if cfg.TLSListen != "" {
		if s.certs, err = newCertStore(cfg.TLSCert, cfg.TLSKey); err != nil {
			return nil, err
		}
	}
	s.stop = make(chan struct{})
	if s.access, err = openAccessLog(cfg.AccessLog); err != nil {
		return nil, err
	}
	if s.routes.caching() {
		s.cache, err = cache.New(cache.Config{MaxBytes: cfg.CacheMaxBytes, StaleIfError: cfg.StaleIfError})
		if err != nil {
			return nil, err
		}
	}
	s.limiter = purge.NewLimiter(cfg.PurgeInterval, cachePurger{s.cache})
	s.metrics = newNodeMetrics(s)
	s.upgrader = &websocket.FastHTTPUpgrader{
		ReadBufferSize:    1024,
		WriteBufferPool:   &sync.Pool{},
		EnableCompression: cfg.WSCompression,
		CheckOrigin:       func(*fasthttp.RequestCtx) bool { return true }, // checked before the origin is asked
	}
	for _, o := range strings.Split(cfg.WSAllowedOrigins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			s.wsOrigins = append(s.wsOrigins, o)
		}
	}
	s.client = &fasthttp.Server{
		Handler:               s.serveClient,
		Name:                  "edgepush",
		NoDefaultServerHeader: true,
		ReadBufferSize:        cfg.MaxHeaderBytes,
		MaxRequestBodySize:    cfg.MaxBody,
		ReadTimeout:           cfg.ReadTimeout,
		IdleTimeout:           cfg.IdleTimeout,
		Concurrency:           cfg.MaxConns,
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
	return s, nil
}

// Start opens the client and control listeners and serves them in the
// background.
func (s *Server) Start() error {
	w, err := connwatch.New()
	if err != nil {
		return err
	}
	s.watch = w
	if s.clientLn, err = net.Listen("tcp", s.cfg.Listen); err != nil {
		w.Close()
		return fmt.Errorf("listen %s: %w", s.cfg.Listen, err)
	}
	if s.controlLn, err = net.Listen("tcp", s.cfg.Control); err != nil {
		s.clientLn.Close()
		w.Close()
		return fmt.Errorf("control listen %s: %w", s.cfg.Control, err)
	}
	if s.certs != nil {
		ln, err := net.Listen("tcp", s.cfg.TLSListen)
		if err != nil {
			s.clientLn.Close()
			s.controlLn.Close()
			w.Close()
			return fmt.Errorf("tls listen %s: %w", s.cfg.TLSListen, err)
		}
		s.tlsLn = tls.NewListener(ln, s.certs.tlsConfig())
	}
	if err := s.startTier(); err != nil {
		s.clientLn.Close()
		s.controlLn.Close()
		if s.tlsLn != nil {
			s.tlsLn.Close()
		}
		w.Close()
		return err
	}
	s.started = time.Now()
	s.pool.Start()
	s.startProbes()
	s.bg.Go(s.sweepHistory)
	s.serve(s.client, s.clientLn)
	tlsAddr := ""
	if s.tlsLn != nil {
		s.serve(s.client, s.tlsLn)
		tlsAddr = s.tlsLn.Addr().String()
	}
	s.serve(s.control, s.controlLn)
	s.log.Info("edgepush node started", "listen", s.clientLn.Addr().String(), "tls", tlsAddr,
		"control", s.controlLn.Addr().String(), "origin", s.cfg.Origin, "routes", len(s.routes.all))
	return nil
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

// Addr is the client listener's address (after Start).
func (s *Server) Addr() net.Addr { return s.clientLn.Addr() }

// TLSAddr is the HTTPS listener's address (after Start), nil without one.
func (s *Server) TLSAddr() net.Addr {
	if s.tlsLn == nil {
		return nil
	}
	return s.tlsLn.Addr()
}

// ControlAddr is the control listener's address (after Start).
func (s *Server) ControlAddr() net.Addr { return s.controlLn.Addr() }

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
		close(s.stop)
		s.closeServedAgain()
		s.bg.StopAndWait()
		errControl := s.control.ShutdownWithContext(ctx)
		s.controlLn.Close()
		s.serving.Wait()
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
		s.shutdownError = errors.Join(errClient, errControl)
		s.log.Info("edgepush node stopped")
	})
	return s.shutdownError
}

// serveAgain hands a connection whose long-poll was answered back to the
// HTTP server for its next request.
func (s *Server) serveAgain(c net.Conn) {
	if tc, ok := tcpConn(c).(*tls.Conn); ok {
		c = tlsHijacked{Conn: c, tls: tc} // so that ctx.IsTLS() still holds
	}
	s.againMu.Lock()
	if s.again == nil {
		s.again = map[net.Conn]struct{}{}
	}
	s.again[c] = struct{}{}
	s.againMu.Unlock()
	started := s.bg.Go(func() {
		defer func() {
			s.againMu.Lock()
			delete(s.again, c)
			s.againMu.Unlock()
		}()
		if err := s.client.ServeConn(c); err != nil {
			s.log.Debug("serve again", "err", err)
		}
	})
	if !started {
		c.Close()
	}
}

// closeServedAgain closes the connections serveAgain handed back, so that
// a shutdown does not wait for their clients' next requests.
func (s *Server) closeServedAgain() {
	s.againMu.Lock()
	defer s.againMu.Unlock()
	for c := range s.again {
		c.Close()
	}
}

// tlsHijacked is a hijacked TLS connection handed back to fasthttp: it
// shows the TLS state, which fasthttp's hijack wrapper hides.
type tlsHijacked struct {
	net.Conn
	tls *tls.Conn
}

func (c tlsHijacked) Handshake() error                     { return c.tls.Handshake() }
func (c tlsHijacked) ConnectionState() tls.ConnectionState { return c.tls.ConnectionState() }
func (c tlsHijacked) UnsafeConn() net.Conn                 { return c.Conn }

// serveClient answers one client request from the cache or the origin
// and acts on the GRIP instructions in the answer.
func (s *Server) serveClient(ctx *fasthttp.RequestCtx) {
	defer recoverLog(s.log, "client request")
	defer s.access.request(ctx) // no-op when the access log is off
	s.requests.Add(1)
	if s.overConnLimit() {
		clientError(ctx, fasthttp.StatusServiceUnavailable, "too many connections")
		ctx.SetConnectionClose()
		return
	}
	rt := s.routeFor(ctx)
	if rt == nil {
		return // answered: no route, or a loop
	}
	if isWebSocketUpgrade(ctx) {
		s.serveWebSocket(ctx, rt)
		return
	}
	oreq := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(oreq)
	s.originRequest(ctx, oreq, rt)
	creq := s.clientCacheRequest(ctx, rt, oreq)
	e, result, err := s.cacheLookup(rt, creq, oreq)
	s.access.noteCache(ctx, result)
	if err != nil {
		s.originFailure(ctx, err)
		return
	}
	p := e.Value.(*parsed)
	if p.err != nil {
		s.badInstructs.Add(1)
		s.log.Warn("invalid GRIP instructions from origin", "path", string(ctx.Path()), "err", p.err)
		clientError(ctx, fasthttp.StatusBadGateway, "invalid GRIP instructions from origin: "+p.err.Error())
		return
	}
	hr, in := p.hr, p.in
	switch {
	case in.Hold == grip.HoldNone || ctx.IsHead():
		hr = withAge(encoded(ctx, e, hr), e, result)
		hr.headers = append(hr.headers, grip.Header{Name: "X-Cache", Value: cacheStatus(result)})
		relay(ctx, hr)
	case s.held.Load() >= int64(s.cfg.MaxConns):
		clientError(ctx, fasthttp.StatusServiceUnavailable, "too many connections")
	case in.Hold == grip.HoldStream:
		s.holdStream(ctx, hr, in, p.since)
	default:
		s.holdResponse(ctx, hr, encoded(ctx, e, hr), in, p.since, s.refetcher(rt, creq))
	}
}

// overConnLimit reports whether the node holds more than -max-conns
// client connections: those fasthttp serves (this one included) plus the
// held ones it handed over.
func (s *Server) overConnLimit() bool {
	open := int64(s.client.GetOpenConnectionsCount())
	if s.tlsLn != nil {
		open-- // fasthttp counts each listening Serve as one open connection
	}
	return open+s.held.Load() > int64(s.cfg.MaxConns)
}

// sweepHistory drops expired channel history now and then.
func (s *Server) sweepHistory() {
	t := time.NewTicker(max(s.cfg.HistoryAge/2, time.Second))
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case now := <-t.C:
			s.hub.Sweep(now)
		}
	}
}

// cachePurger applies purges to the cache, if there is one.
type cachePurger struct{ c *cache.Cache }

func (p cachePurger) Purge(key string, soft bool) {
	if p.c != nil {
		p.c.Purge(key, soft)
	}
}

func (p cachePurger) PurgeURL(url string, soft bool) {
	if p.c != nil {
		p.c.PurgeURL(url, soft)
	}
}

// checkChannels applies the node's limits to a hold's channels.
func (s *Server) checkChannels(in *grip.Instruct) error {
	switch {
	case in.Hold == grip.HoldNone:
		return nil
	case len(in.Channels) == 0:
		return errors.New("Grip-Hold without Grip-Channel")
	case len(in.Channels) > s.cfg.MaxChannels:
		return fmt.Errorf("%d channels, at most %d allowed", len(in.Channels), s.cfg.MaxChannels)
	}
	return nil
}

func isWebSocketUpgrade(ctx *fasthttp.RequestCtx) bool {
	return ctx.Request.Header.ConnectionUpgrade() && len(ctx.Request.Header.Peek("Upgrade")) > 0
}

// requestError answers a request fasthttp could not read.
func requestError(ctx *fasthttp.RequestCtx, err error) {
	var small *fasthttp.ErrSmallBuffer
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		clientError(ctx, fasthttp.StatusRequestEntityTooLarge, "request body too large")
	case errors.As(err, &small):
		clientError(ctx, fasthttp.StatusRequestHeaderFieldsTooLarge, "request header too large")
	default:
		var te interface{ Timeout() bool }
		if errors.As(err, &te) && te.Timeout() {
			clientError(ctx, fasthttp.StatusRequestTimeout, "request timed out")
			return
		}
		clientError(ctx, fasthttp.StatusBadRequest, "malformed request")
	}
}

// clientError answers a client with a short plain-text error.
func clientError(ctx *fasthttp.RequestCtx, code int, msg string) {
	ctx.Response.Reset()
	ctx.SetStatusCode(code)
	ctx.SetContentType("text/plain; charset=utf-8")
	ctx.SetBodyString("edgepush: " + msg + "\n")
}

// recoverLog turns a panic into a log line; a bug in one request must not
// take the node down.
func recoverLog(log *slog.Logger, where string) {
	if r := recover(); r != nil {
		log.Error("panic", "in", where, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
	}
}

// sleepCtx waits d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
