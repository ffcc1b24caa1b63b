package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/edgepush/edgepush/node"
)

// BackendPath is the path prefix of the demo's backend on the node (see
// Configure): GET and POST BackendPath+"origin" read and flip the origin
// switch, POST BackendPath+"counters/{name}/increment" is the page's +1.
const BackendPath = "/demo/"

// stopTimeout bounds how long taking the origin down, or Close, waits for
// requests in progress before closing their connections.
const stopTimeout = 2 * time.Second

// Demo is the demo as "edgepush -demo" runs it, inside the node's process:
// the Origin on a loopback port, which the page's origin switch closes
// (connections are refused) and opens again, and the demo's backend on
// another loopback port, which takes the switch and the page's +1 clicks
// and publishes through the node's API. The node routes BackendPath to
// the backend, so both keep working while the origin is down.
//
// Listen opens the ports, Configure points a node.Config at them, Serve
// starts answering once the node runs (its control address is then known),
// Close stops everything. A Demo is safe for concurrent use.
type Demo struct {
	log        *slog.Logger
	originAddr string // the origin's address, the same while down and up
	backendLn  net.Listener

	mu        sync.Mutex
	origin    *Origin      // set by Serve
	originLn  net.Listener // until Serve
	originSrv *server      // nil while the origin is down
	hold      io.Closer    // keeps the origin's port while it is down; nil where unsupported
	backend   *server      // set by Serve
	closed    bool
}

// errNotServing is SetOriginUp's error before Serve and after Close.
var errNotServing = errors.New("demo: not serving")

// Listen opens the demo's two loopback listeners (origin and backend).
// Nothing is answered until Serve; connections wait meanwhile. A nil log
// discards the demo's messages.
func Listen(log *slog.Logger) (*Demo, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	originLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	backendLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		originLn.Close()
		return nil, err
	}
	return &Demo{log: log, originAddr: originLn.Addr().String(), originLn: originLn, backendLn: backendLn}, nil
}

// OriginURL is the origin's base URL, e.g. "http://127.0.0.1:40123".
func (d *Demo) OriginURL() string { return "http://" + d.originAddr }

// BackendURL is the backend's base URL.
func (d *Demo) BackendURL() string { return "http://" + d.backendLn.Addr().String() }

// Configure makes the demo the node's origin when cfg has none: the
// origin becomes the catch-all route and BackendPath a route of its own,
// uncached, to the backend. With an origin already set it changes
// nothing (the demo is not in the node's path).
func (d *Demo) Configure(cfg *node.Config) {
	if cfg.Origin != "" {
		return
	}
	cfg.Origin = d.OriginURL()
	off := false
	cfg.Routes = append(cfg.Routes, node.RouteConfig{
		ID: "demo-backend", Path: BackendPath, Origins: []string{d.BackendURL()}, Cache: &off, WebSocket: &off,
	})
}

// PublishURL is the /purge-publish/ endpoint of a node whose control
// listener is at control (an unspecified host is reached on loopback), for
// Config.PublishURL with PurgeKeys.
func PublishURL(control net.Addr) string {
	host, port, err := net.SplitHostPort(control.String())
	if err != nil {
		return "http://" + control.String() + "/purge-publish/"
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/purge-publish/"
}

// Serve starts answering: the origin (a new Origin with cfg, all counters
// at zero) and the backend. It may be called once, before Close.
func (d *Demo) Serve(cfg Config) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed || d.origin != nil {
		return errors.New("demo: Serve called twice or after Close")
	}
	d.origin = New(cfg)
	d.originSrv = d.serve(d.originLn, d.origin, "demo origin")
	d.originLn = nil
	d.backend = d.serve(d.backendLn, d.backendHandler(), "demo backend")
	d.log.Info("demo origin started", "origin", d.originAddr, "backend", d.backendLn.Addr().String())
	return nil
}

// OriginUp reports whether the origin answers (true from Serve until the
// switch takes it down).
func (d *Demo) OriginUp() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.originSrv != nil
}

// SetOriginUp takes the origin down or brings it back. Down, its listener
// and connections are closed (requests in progress get up to stopTimeout
// to finish) and connections to its port are refused; up, it listens on
// the same address again, with its counters as they were.
func (d *Demo) SetOriginUp(up bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.closed || d.origin == nil:
		return errNotServing
	case up == (d.originSrv != nil):
		return nil
	case !up:
		d.originSrv.stop()
		d.originSrv = nil
		d.hold = holdPort(d.originAddr)
		d.log.Info("demo origin down: connections to it are refused", "origin", d.originAddr)
		return nil
	}
	if d.hold != nil {
		d.hold.Close()
		d.hold = nil
	}
	ln, err := net.Listen("tcp", d.originAddr)
	if err != nil {
		d.hold = holdPort(d.originAddr)
		return fmt.Errorf("demo: bringing the origin back up: %w", err)
	}
	d.originSrv = d.serve(ln, d.origin, "demo origin")
	d.log.Info("demo origin up", "origin", d.originAddr)
	return nil
}

// Close stops the origin and the backend. Requests in progress get up to
// stopTimeout to finish. It returns nil; later calls do nothing.
func (d *Demo) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	originLn, originSrv, hold, backend := d.originLn, d.originSrv, d.hold, d.backend
	d.originLn, d.originSrv, d.hold, d.backend = nil, nil, nil, nil
	d.mu.Unlock()
	// Stopped outside the lock: a switch request in progress on the
	// backend may wait for it.
	if originLn != nil {
		originLn.Close()
	}
	if originSrv != nil {
		originSrv.stop()
	}
	if hold != nil {
		hold.Close()
	}
	if backend != nil {
		backend.stop()
	} else {
		d.backendLn.Close()
	}
	return nil
}

// server is an http.Server serving one listener until stop.
type server struct {
	hs   *http.Server
	done chan struct{} // closed when Serve returns
}

// serve serves h on ln in a goroutine of its own, which ends with stop.
func (d *Demo) serve(ln net.Listener, h http.Handler, what string) *server {
	s := &server{
		hs: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          slog.NewLogLogger(d.log.Handler(), slog.LevelWarn),
		},
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		if err := s.hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error(what, "err", err)
		}
	}()
	return s
}

// stop closes the listener and the idle connections, waits up to
// stopTimeout for requests in progress, then closes their connections.
func (s *server) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	if s.hs.Shutdown(ctx) != nil {
		s.hs.Close()
	}
	<-s.done
}
