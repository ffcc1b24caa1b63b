package node

import (
	"context"
	"crypto/rand"
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
	origin     *originClient
	signer     *grip.Signer
	publishKey []byte // nil: control API open

	cache     *cache.Cache // nil: caching off
	limiter   *purge.Limiter
	tier      *cluster.Cluster // nil: single node
	purges    *purgeLog        // the tier's recent purges (nil: single node)
	dropOps   atomic.Bool      // tests: lose operations from peers (a partition)
	breaker   *breaker
	stop      chan struct{} // closed by Shutdown: stops the prober
	upgrader  *websocket.FastHTTPUpgrader
	wsOrigins []string
	bg        bgGroup // goroutines the node starts for connections

	client, control     *fasthttp.Server
	clientLn, controlLn net.Listener
	serving             sync.WaitGroup
	started             time.Time

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
	origin, err := newOriginClient(cfg)
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:    cfg,
		log:    log,
		hub:    fanout.NewHub(fanout.HubConfig{HistorySize: cfg.HistorySize, HistoryAge: cfg.HistoryAge}),
		pool:   fanout.NewPool(fanout.PoolConfig{MaxQueueBytes: cfg.MaxQueueBytes}),
		origin: origin,
	}
	sigKey := make([]byte, 32)
	rand.Read(sigKey)
	if cfg.SigKey != "" {
		if sigKey, err = grip.ParseKey(cfg.SigKey); err != nil {
			return nil, fmt.Errorf("config: -sig-key: %w", err)
		}
	}
	s.signer = grip.NewSigner(cfg.SigIss, sigKey)
	if cfg.PublishKey != "" {
		key, err := grip.ParseKey(cfg.PublishKey)
		if err != nil {
			return nil, fmt.Errorf("config: -publish-key: %w", err)
		}
		s.publishKey = key
	}
	s.breaker = newBreaker(cfg.OriginFailures, time.Second, cfg.OriginProbeMaxPause)
	s.stop = make(chan struct{})
	if !cfg.CacheOff {
		s.cache, err = cache.New(cache.Config{MaxBytes: cfg.CacheMaxBytes, StaleIfError: cfg.StaleIfError})
		if err != nil {
			return nil, err
		}
	}
	s.limiter = purge.NewLimiter(cfg.PurgeInterval, cachePurger{s.cache})
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
	if err := s.startTier(); err != nil {
		s.clientLn.Close()
		s.controlLn.Close()
		w.Close()
		return err
	}
	s.started = time.Now()
	s.pool.Start()
	s.bg.Go(func() { s.breaker.probeLoop(s.stop, s.probeOrigin) })
	s.bg.Go(s.sweepHistory)
	s.serve(s.client, s.clientLn)
	s.serve(s.control, s.controlLn)
	s.log.Info("edgepush node started", "listen", s.clientLn.Addr().String(),
		"control", s.controlLn.Addr().String(), "origin", s.cfg.Origin)
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

// ControlAddr is the control listener's address (after Start).
func (s *Server) ControlAddr() net.Addr { return s.controlLn.Addr() }

// Shutdown stops accepting connections, ends held connections (streams
// get their final chunk, long-polls their timeout answer), and waits for
// requests in flight until ctx is done. It is idempotent.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutdownOnce.Do(func() {
		if s.tier != nil {
			s.tier.Leave(2 * time.Second)
		}
		// Closing the listeners as well covers a Serve goroutine that has
		// not registered its listener with fasthttp yet.
		errClient := s.client.ShutdownWithContext(ctx)
		s.clientLn.Close()
		s.pool.Close()
		close(s.stop)
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
		s.shutdownError = errors.Join(errClient, errControl)
		s.log.Info("edgepush node stopped")
	})
	return s.shutdownError
}

// serveAgain hands a connection whose long-poll was answered back to the
// HTTP server for its next request.
func (s *Server) serveAgain(c net.Conn) {
	started := s.bg.Go(func() {
		if err := s.client.ServeConn(c); err != nil {
			s.log.Debug("serve again", "err", err)
		}
	})
	if !started {
		c.Close()
	}
}

// serveClient answers one client request from the cache or the origin
// and acts on the GRIP instructions in the answer.
func (s *Server) serveClient(ctx *fasthttp.RequestCtx) {
	defer recoverLog(s.log, "client request")
	s.requests.Add(1)
	if isWebSocketUpgrade(ctx) {
		s.serveWebSocket(ctx)
		return
	}
	oreq := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(oreq)
	s.originRequest(ctx, oreq)
	creq := s.clientCacheRequest(ctx, oreq)
	e, result, err := s.cacheLookup(creq, oreq)
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
		s.holdResponse(ctx, hr, encoded(ctx, e, hr), in, p.since, s.refetcher(creq))
	}
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

// probeOrigin asks the origin whether it is back (any answer below 500).
func (s *Server) probeOrigin() bool {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(s.origin.prefix + s.cfg.OriginProbePath)
	req.Header.SetHost(s.origin.hc.Addr)
	req.Header.Set("Grip-Sig", s.signer.Token(time.Now()))
	err := s.origin.do(req, resp)
	ok := err == nil && resp.StatusCode() < 500
	s.log.Info("origin probe", "ok", ok, "err", err)
	return ok
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
