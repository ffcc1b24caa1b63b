// Command edgepush runs an edgepush node: a GRIP proxy that holds client
// connections and pushes what is published to them. With -demo it also
// runs a built-in demo origin (a live counter) so that it does something
// real with no configuration.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/edgepush/edgepush/demo"
	"github.com/edgepush/edgepush/node"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

// run is main without the exit, for tests.
func run(args []string, stderr io.Writer) int {
	cfg := node.DefaultConfig()
	fs := flag.NewFlagSet("edgepush", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg.RegisterFlags(fs)
	configFile := fs.String("config", "", "read settings from `file` (one \"name = value\" per line; flags win)")
	withDemo := fs.Bool("demo", false, "run the built-in demo origin (used when -origin is not set)")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *showVersion {
		fmt.Fprintln(stderr, "edgepush", node.Version)
		return 0
	}
	if *configFile != "" {
		if err := node.LoadConfigFile(fs, *configFile); err != nil {
			fmt.Fprintln(stderr, err)
			return 2
		}
	}
	log, err := node.NewLogger(stderr, cfg.LogLevel)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	if *withDemo {
		stop, err := startDemo(&cfg, log)
		if err != nil {
			log.Error("demo origin", "err", err)
			return 1
		}
		defer stop()
	}
	srv, err := node.New(cfg, log)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	// Signals are caught before the node says it started, so none is
	// lost to the default action.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	if err := srv.Start(); err != nil {
		log.Error("start", "err", err)
		return 1
	}
	for sig := range sigs {
		if sig != syscall.SIGHUP {
			break
		}
		if cfg.TLSListen != "" {
			srv.ReloadTLS() // logs its own outcome
		}
	}
	// Drain: the whole of it is bounded, and a second SIGINT/SIGTERM
	// cuts it short.
	log.Info("shutting down")
	sctx, scancel := context.WithTimeout(context.Background(), cfg.DrainDelay+max(cfg.DrainPeriod, 0)+cfg.ShutdownTimeout)
	defer scancel()
	go func() { // ends with sctx, cancelled when run returns
		for {
			select {
			case sig := <-sigs:
				if sig != syscall.SIGHUP {
					log.Warn("second signal: stopping now")
					scancel()
					return
				}
			case <-sctx.Done():
				return
			}
		}
	}()
	if err := srv.Shutdown(sctx); err != nil {
		log.Error("shutdown", "err", err)
		return 1
	}
	return 0
}

// startDemo runs the demo origin on a loopback port and, when no origin
// is configured, points the node at it.
func startDemo(cfg *node.Config, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	controlHost, controlPort, err := net.SplitHostPort(cfg.Control)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("-control %q: %w", cfg.Control, err)
	}
	if controlHost == "" || controlHost == "0.0.0.0" || controlHost == "::" {
		controlHost = "127.0.0.1"
	}
	origin := demo.New(demo.Config{
		PublishURL: "http://" + net.JoinHostPort(controlHost, controlPort) + "/purge-publish/",
		PurgeKeys:  true,
		PublishKey: cfg.PublishKey,
	})
	hs := &http.Server{Handler: origin, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("demo origin", "err", err)
		}
	}()
	if cfg.Origin == "" {
		cfg.Origin = "http://" + ln.Addr().String()
	}
	log.Info("demo origin started", "addr", ln.Addr().String(), "open", "http://localhost"+portOf(cfg.Listen)+"/")
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		hs.Shutdown(ctx)
		<-done
	}, nil
}

func portOf(addr string) string {
	if _, port, err := net.SplitHostPort(addr); err == nil {
		return ":" + port
	}
	return ""
}
