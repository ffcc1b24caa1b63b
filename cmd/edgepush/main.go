// Command edgepush runs an edgepush node: a GRIP proxy that holds client
// connections and pushes what is published to them. With -demo it also
// runs a built-in demo origin (a live counter) so that it does something
// real with no configuration.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"

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
	var dm *demo.Demo
	if *withDemo {
		if dm, err = demo.Listen(log); err != nil {
			log.Error("demo origin", "err", err)
			return 1
		}
		defer dm.Close()
		dm.Configure(&cfg)
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
	if dm != nil {
		// The demo publishes to the control listener, whose address is
		// known now (-control may say port 0).
		if err := dm.Serve(demo.Config{PublishURL: demo.PublishURL(srv.ControlAddr()), PurgeKeys: true, PublishKey: cfg.PublishKey}); err != nil {
			log.Error("demo origin", "err", err)
			return 1
		}
		log.Info("demo started", "open", "http://localhost"+portOf(srv.Addr().String())+"/")
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

func portOf(addr string) string {
	if _, port, err := net.SplitHostPort(addr); err == nil {
		return ":" + port
	}
	return ""
}
