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
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/edgepush/edgepush/demo"
	"github.com/edgepush/edgepush/node"
)

func main() {
	os.Exit(run(os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
}

// Exit statuses. Errors before the node starts are plain text on stderr,
// one per line, each starting with "edgepush: "; once it has started, the
// node logs JSON lines.
const (
	exitOK = 0
	// exitFailure: the node could not start for another reason than its
	// settings (a listener's address in use), or did not stop cleanly.
	exitFailure = 1
	// exitUsage: the command line, the environment or the config file is
	// wrong (nothing to retry: the systemd unit does not restart on it).
	exitUsage = 2
)

// defaultGCPercent is -gc-percent's default: the Go runtime's own. A
// node's heap is mostly the state of held connections, long-lived, so a
// lower value trades collections for memory per connection: at 50, 5,000
// WebSocket sessions took 3.4–3.5 KB of RSS each against 3.9–4.3 KB at
// 100, for the same setup rate; but at 19,000 streams it ran 14 instead
// of 6 collections during setup, and one landed in the publish burst of
// some runs, which showed in the delivery p99 (BENCHMARKS.md, session 6).
const defaultGCPercent = 100

// setGCPercent applies -gc-percent unless the environment sets GOGC
// (not empty), which the Go runtime has applied already and which then
// wins. It reports whether it applied pct.
func setGCPercent(environ []string, pct int) bool {
	if envGOGC(environ) {
		return false
	}
	debug.SetGCPercent(pct)
	return true
}

// envGOGC reports whether environ sets GOGC to something (the runtime
// ignores an empty GOGC).
func envGOGC(environ []string) bool {
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, "GOGC="); ok && v != "" {
			return true
		}
	}
	return false
}

// gcPercentCheck checks -gc-percent and warns when it was given but GOGC
// wins over it.
func gcPercentCheck(fs *flag.FlagSet, loader *node.Loader, environ []string, pct int) (warnings []string, err error) {
	if pct < 1 || pct > 1000 {
		err = fmt.Errorf("config: -gc-percent %d: want 1…1000", pct)
	}
	given := loader.Origin("gc-percent") != ""
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == "gc-percent" })
	if given && envGOGC(environ) {
		warnings = append(warnings, "config: -gc-percent does nothing: GOGC is set in the environment, and it wins")
	}
	return warnings, err
}

// run is main without the exit, for tests: args without the program
// name, environ as os.Environ.
func run(args, environ []string, stdout, stderr io.Writer) int {
	cfg := node.DefaultConfig()
	fs := flag.NewFlagSet("edgepush", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // run says what is wrong, in one line
	fs.Usage = func() {}
	cfg.RegisterFlags(fs)
	configFile := fs.String("config", "", "read settings from `file` (one \"name = value\" per line; see README)")
	withDemo := fs.Bool("demo", false, "run the built-in demo origin (used when -origin is not set)")
	showVersion := fs.Bool("version", false, "print the version and exit")
	gcPercent := fs.Int("gc-percent", defaultGCPercent, "the Go garbage collector's heap growth target, as GOGC (1…1000; GOGC in the environment wins)")
	checkOnly := fs.Bool("check-config", false, "check the settings as starting would, print what is wrong and exit (0: valid, 2: not); nothing listens")
	fail := func(code int, err error) int { return printError(stderr, code, err) }

	switch err := fs.Parse(args); {
	case errors.Is(err, flag.ErrHelp):
		printUsage(stdout, fs)
		return exitOK
	case err != nil:
		return fail(exitUsage, fmt.Errorf("%s; edgepush -h lists the flags", flagError(fs, err)))
	}
	switch rest := fs.Args(); {
	case *showVersion || len(rest) == 1 && rest[0] == "version":
		fmt.Fprintln(stdout, "edgepush", node.Version)
		return exitOK
	case len(rest) > 0:
		return fail(exitUsage, positionalError(fs, args, rest[0]))
	}

	// -version and -check-config are commands, not settings: neither the
	// environment nor a config file gives them.
	loader := &node.Loader{FS: fs, Commands: []string{"version", "check-config"}}
	envWarnings, err := loader.LoadEnv(environ)
	if err != nil {
		return fail(exitUsage, err)
	}
	if *configFile != "" {
		if err := loader.LoadFile(*configFile); err != nil {
			return fail(exitUsage, err)
		}
	}
	warnings := envWarnings
	demoOrigin := *withDemo && cfg.Origin == ""
	if *withDemo && !demoOrigin {
		warnings = append(warnings, "config: -demo does nothing with -origin: the demo origin is not started")
	}
	gcWarnings, gcErr := gcPercentCheck(fs, loader, environ, *gcPercent)
	warnings = append(warnings, gcWarnings...)
	if *checkOnly {
		return checkConfig(cfg, demoOrigin, loader, warnings, gcErr, stdout, stderr)
	}
	if gcErr != nil { // with what else is wrong, as -check-config says it
		_, err := cfg.Check()
		return fail(exitUsage, annotate(errors.Join(gcErr, err), loader))
	}
	setGCPercent(environ, *gcPercent)

	log, err := node.NewLogger(stderr, cfg.LogLevel)
	if err != nil {
		return fail(exitUsage, annotate(err, loader))
	}
	for _, w := range warnings {
		log.Warn(w)
	}
	var dm *demo.Demo
	if demoOrigin {
		if dm, err = demo.Listen(log); err != nil {
			return fail(exitFailure, fmt.Errorf("demo origin: %w", err))
		}
		defer dm.Close()
		dm.Configure(&cfg)
	}
	srv, err := node.New(cfg, log)
	if err != nil {
		return fail(exitUsage, annotate(err, loader))
	}
	// Signals are caught before the node says it started, so none is
	// lost to the default action.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	if err := srv.Start(); err != nil {
		return fail(exitFailure, err)
	}
	if dm != nil {
		// The demo publishes to the control listener, whose address is
		// known now (-control may say port 0).
		if err := dm.Serve(demo.Config{PublishURL: demo.PublishURL(srv.ControlAddr()), PurgeKeys: true, PublishKey: cfg.PublishKey}); err != nil {
			return fail(exitFailure, fmt.Errorf("demo origin: %w", err))
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
		return exitFailure
	}
	return exitOK
}

// checkConfig is -check-config: every check New makes (keys,
// certificates, the access log's file included), nothing started; the
// warnings and errors on stderr, "configuration OK" on stdout when it is.
// flagErr is what is wrong with the command's own flags (-gc-percent),
// reported with the rest.
func checkConfig(cfg node.Config, demoOrigin bool, loader *node.Loader, warnings []string, flagErr error, stdout, stderr io.Writer) int {
	if demoOrigin {
		cfg.Origin = "http://127.0.0.1:1" // where the demo origin would be
	}
	checkWarnings, err := cfg.Check()
	for _, w := range append(warnings, checkWarnings...) {
		fmt.Fprintln(stderr, "edgepush: warning: "+w)
	}
	err = errors.Join(flagErr, err)
	if err == nil {
		var srv *node.Server
		if srv, err = node.New(cfg, nil); err == nil {
			srv.Shutdown(context.Background()) // never started: releases nothing but its timers
		}
	}
	if err != nil {
		return printError(stderr, exitUsage, annotate(err, loader))
	}
	fmt.Fprintln(stdout, "edgepush: configuration OK")
	return exitOK
}

// printError writes err to w, each of its lines as "edgepush: LINE",
// and returns code.
func printError(w io.Writer, code int, err error) int {
	for l := range strings.SplitSeq(err.Error(), "\n") {
		fmt.Fprintln(w, "edgepush: "+l)
	}
	return code
}

// flagError rewrites the flag package's parse errors: an unknown flag is
// named, with the closest known one.
func flagError(fs *flag.FlagSet, err error) string {
	const undefined = "flag provided but not defined: -"
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, undefined); ok {
		return "unknown flag -" + name + node.SuggestFlag(fs, name)
	}
	return msg
}

// positionalError explains an argument that is not a flag: flags come
// before arguments, and edgepush takes none but "version".
func positionalError(fs *flag.FlagSet, args []string, arg string) error {
	hint := "edgepush takes flags only (and the command version); edgepush -h lists them"
	// "-cache-off true": a boolean flag takes no separate value.
	for i, a := range args {
		if a == arg && i > 0 {
			if fl := fs.Lookup(strings.TrimLeft(args[i-1], "-")); fl != nil {
				if b, ok := fl.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
					hint = fmt.Sprintf("%s is a boolean flag: write %s or %s=%s", args[i-1], args[i-1], args[i-1], arg)
				}
			}
			break
		}
	}
	return fmt.Errorf("unexpected argument %q: %s", arg, hint)
}

// annotate adds to each line of a configuration error that names a
// setting ("config: -NAME ...") where that setting was given, when it was
// not on the command line.
func annotate(err error, loader *node.Loader) error {
	lines := strings.Split(err.Error(), "\n")
	for i, l := range lines {
		rest, ok := strings.CutPrefix(l, "config: -")
		if !ok {
			continue
		}
		name := rest[:strings.IndexFunc(rest+" ", func(r rune) bool { return r == ' ' || r == ':' })]
		if at := loader.Origin(name); at != "" {
			lines[i] = l + " (from " + at + ")"
		}
	}
	return errors.New(strings.Join(lines, "\n"))
}

// printUsage is -h: what edgepush takes, to stdout.
func printUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintf(w, `Usage: edgepush [flags]
       edgepush version

edgepush is a push CDN node: a GRIP proxy that holds client connections
and pushes what is published to them. See README.md.

Every setting is a flag, an environment variable %sNAME (the flag's name
upper-cased, - as _: -max-conns is %s), and a line of the
-config file ("max-conns = 100000"). A setting is taken from the first of
these that gives it: the command line, the environment, the config file;
else its default.

Exit status: 0 after a clean shutdown, 2 for a usage or configuration
error, 1 when the node could not start otherwise (an address in use).

Flags:
`, node.EnvPrefix, node.EnvVar("max-conns"))
	node.PrintFlags(w, fs)
}

func portOf(addr string) string {
	if _, port, err := net.SplitHostPort(addr); err == nil {
		return ":" + port
	}
	return ""
}
