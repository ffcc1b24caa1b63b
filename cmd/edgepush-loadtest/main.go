// Command edgepush-loadtest load-tests a GRIP push proxy (edgepush or
// Pushpin): it opens many subscriber connections, publishes sequenced,
// timestamped messages through the proxy's publish API and reports setup
// rate, delivery latency percentiles, lost and duplicated messages, and the
// server's memory and CPU use. See package loadtest for what is measured.
//
// Usage:
//
//	edgepush-loadtest [run] [flags]          run a load test (the default)
//	edgepush-loadtest origin [-listen addr]  serve the GRIP test origin
//	edgepush-loadtest compare RESULTS.jsonl  table of medians and ratios
//
// A typical session, with the proxy under test pointed at the origin:
//
//	edgepush-loadtest origin -listen 127.0.0.1:8080 &
//	edgepush -listen 127.0.0.1:7999 -origin http://127.0.0.1:8080 &
//	edgepush-loadtest -url http://127.0.0.1:7999/stream?ch=bench \
//	    -publish http://127.0.0.1:5561/publish/ -conns 5000 -msgs 20 -rate 10 -pid $!
//
// WebSocket subscribers use -transport ws and a ws:// URL on the origin's
// WebSocket-over-HTTP route (-url ws://127.0.0.1:7999/ws?ch=bench).
//
// With -origin-listen the origin runs inside the load-test process, and
// -origin-down takes it down after -warmup connections have been opened
// (and cached by the proxy), before the measured ones:
//
//	edgepush -listen 127.0.0.1:7999 -origin http://127.0.0.1:8080 &
//	edgepush-loadtest -origin-listen 127.0.0.1:8080 -origin-down \
//	    -url http://127.0.0.1:7999/stream?ch=bench -conns 1000
//
// -plot FILE.svg draws the delivery latency distribution, and -slow-share
// makes a share of the subscribers stop reading (slow consumers).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/edgepush/edgepush/loadtest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, isTerminal(os.Stderr))
	stop()
	os.Exit(code)
}

const usageText = `usage:
  edgepush-loadtest [run] [flags]          run a load test (default)
  edgepush-loadtest origin [-listen addr]  serve the GRIP test origin
                                           (GET /stream, /sse, /poll, POST /ws
                                           ?ch=CHANNEL; POST /ws?cache=no: an
                                           uncacheable OPEN answer)
  edgepush-loadtest compare [-base S] [-vs S] RESULTS.jsonl ...
                                           markdown table of medians and
                                           ratios from bench-compare results

run flags:
`

// run is main without the process: it returns the exit code (0 done,
// 1 the run failed or was aborted, 2 bad usage).
func run(ctx context.Context, args []string, stdout, stderr io.Writer, tty bool) int {
	if len(args) > 0 {
		switch args[0] {
		case "run":
			args = args[1:]
		case "origin":
			return serveOrigin(ctx, args[1:], stderr)
		case "compare":
			return runCompare(args[1:], stdout, stderr)
		case "help", "-h", "-help", "--help":
			usage(stderr)
			return 0
		}
	}
	cfg, opts, err := parseRun(args, stderr, tty)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "edgepush-loadtest:", err)
		return 2
	}
	if opts.originListen != "" {
		origin, err := loadtest.StartOrigin(opts.originListen)
		if err != nil {
			fmt.Fprintln(stderr, "edgepush-loadtest:", err)
			return 1
		}
		defer origin.Close()
		cfg.Origin = origin
		if !opts.jsonOnly {
			fmt.Fprintf(stderr, "edgepush-loadtest: origin listening on %s\n", origin.URL())
		}
	}
	var bar *progressBar
	if opts.progress != progressOff {
		bar = &progressBar{w: stderr, tty: opts.progress == progressDraw}
		cfg.Progress = bar.update
		cfg.ProgressInterval = 5 * time.Second
		if bar.tty {
			cfg.ProgressInterval = 200 * time.Millisecond
		}
	}
	rep, err := loadtest.Run(ctx, cfg)
	if bar != nil {
		bar.finish()
	}
	if rep == nil {
		fmt.Fprintln(stderr, "edgepush-loadtest:", err)
		return 2
	}
	if !opts.jsonOnly {
		rep.WriteTable(stdout)
	}
	line, merr := json.Marshal(rep)
	if merr != nil {
		fmt.Fprintln(stderr, "edgepush-loadtest:", merr)
		return 1
	}
	fmt.Fprintf(stdout, "%s\n", line)
	if opts.plot != "" {
		if perr := writePlot(opts.plot, rep); perr != nil {
			fmt.Fprintln(stderr, "edgepush-loadtest:", perr)
			return 1
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "edgepush-loadtest:", err)
		return 1
	}
	return 0
}

func usage(w io.Writer) {
	fmt.Fprint(w, usageText)
	fs, _ := newRunFlags(io.Discard, false)
	fs.SetOutput(w)
	fs.PrintDefaults()
}

// progress modes.
const (
	progressOff  = iota // -json without -progress
	progressLine        // a one-line status every few seconds
	progressDraw        // a bar redrawn in place (terminal)
)

type runOpts struct {
	jsonOnly     bool
	progress     int
	originListen string // serve the origin in-process on this address
	plot         string // write the latency SVG to this file
}

// runFlags holds the flag values of "run".
type runFlags struct {
	cfg      loadtest.Config
	tr       string
	pids     string
	jsonOnly bool
	progress bool
	origin   string
	plot     string
}

func newRunFlags(stderr io.Writer, tty bool) (*flag.FlagSet, *runFlags) {
	f := &runFlags{}
	fs := flag.NewFlagSet("edgepush-loadtest run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { usage(stderr) }
	c := &f.cfg
	fs.StringVar(&c.URL, "url", "http://127.0.0.1:7999/stream?ch=bench", "subscriber `URL` on the proxy (loopback only)")
	fs.StringVar(&f.tr, "transport", "stream", "subscriber transport: stream, sse, longpoll or ws (ws:// URL)")
	fs.IntVar(&c.Conns, "conns", 1000, "subscriber connections to open")
	fs.IntVar(&c.Concurrency, "concurrency", loadtest.DefaultConcurrency, "connections being set up at once")
	fs.IntVar(&c.LocalAddrs, "local-addrs", 1, "bind client sockets round-robin to 127.0.0.1 … 127.0.0.`K`")
	fs.StringVar(&c.PublishURL, "publish", "http://127.0.0.1:5561/publish/", "the proxy's publish API `URL` (loopback only)")
	fs.StringVar(&c.Host, "host", "", "`Host` header of the subscribers' requests (default: the -url's host)")
	fs.StringVar(&c.PublishKey, "publish-key", "", "send \"Authorization: Bearer `key`\" on publishes")
	fs.StringVar(&c.Channel, "channel", "", "channel to publish to (default: the URL's ch parameter, else bench)")
	fs.IntVar(&c.Msgs, "msgs", loadtest.DefaultMsgs, "messages to publish")
	fs.Float64Var(&c.Rate, "rate", loadtest.DefaultRate, "publish rate in messages per second")
	fs.DurationVar(&c.Settle, "settle", loadtest.DefaultSettle, "how long after the last publish to wait for stragglers")
	fs.DurationVar(&c.Timeout, "timeout", loadtest.DefaultTimeout, "overall time limit")
	fs.DurationVar(&c.ConnectTimeout, "connect-timeout", loadtest.DefaultConnectTimeout, "time limit for one connection's setup")
	fs.DurationVar(&c.PublishDelay, "publish-delay", 0,
		"pause between setup and the first publish (default 0, 1s for longpoll)")
	fs.Float64Var(&c.SlowShare, "slow-share", 0,
		"share (0…1) of the subscribers that stop reading after setup; counted apart, not measured")
	fs.StringVar(&f.origin, "origin-listen", "",
		"serve the GRIP test origin in this process on `address` (loopback) for the run")
	fs.BoolVar(&c.OriginDown, "origin-down", false,
		"stop the -origin-listen origin after the warm-up connections, before the measured ones")
	fs.IntVar(&c.Warmup, "warmup", 0,
		"connections to open (and close) before the measured ones (default 1 with -origin-down)")
	fs.BoolVar(&c.ExternalPublish, "external-publish", false,
		"publish nothing: another process publishes -msgs at -rate on the channel (e.g. through another node); "+
			"wait up to -publish-delay + msgs/rate + -settle for them")
	fs.StringVar(&f.plot, "plot", "", "write the delivery latency distribution to `FILE.svg`")
	fs.StringVar(&f.pids, "pid", "", "comma-separated `PIDs` of the server processes to sample RSS and CPU of")
	fs.BoolVar(&f.jsonOnly, "json", false, "print only the JSON line (and no progress unless -progress is given)")
	fs.BoolVar(&f.progress, "progress", tty, "draw a progress bar on stderr (default on when stderr is a terminal; off: a status line every 5s)")
	return fs, f
}

// parseRun parses the flags of "run" into a Config.
func parseRun(args []string, stderr io.Writer, tty bool) (loadtest.Config, runOpts, error) {
	fs, f := newRunFlags(stderr, tty)
	if err := fs.Parse(args); err != nil {
		return loadtest.Config{}, runOpts{}, err
	}
	if fs.NArg() > 0 {
		return loadtest.Config{}, runOpts{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	f.cfg.Transport = loadtest.Transport(f.tr)
	for p := range strings.SplitSeq(f.pids, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		pid, err := strconv.Atoi(p)
		if err != nil || pid <= 0 {
			return loadtest.Config{}, runOpts{}, fmt.Errorf("-pid: bad PID %q", p)
		}
		f.cfg.PIDs = append(f.cfg.PIDs, pid)
	}
	if f.cfg.OriginDown && f.origin == "" {
		return loadtest.Config{}, runOpts{}, errors.New("-origin-down needs -origin-listen (the origin it takes down)")
	}
	explicit := false
	fs.Visit(func(fl *flag.Flag) { explicit = explicit || fl.Name == "progress" })
	opts := runOpts{jsonOnly: f.jsonOnly, originListen: f.origin, plot: f.plot}
	switch {
	case f.progress:
		opts.progress = progressDraw
	case f.jsonOnly && !explicit:
		opts.progress = progressOff
	default:
		opts.progress = progressLine
	}
	return f.cfg, opts, nil
}

// serveOrigin runs the GRIP test origin until ctx is done.
func serveOrigin(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("edgepush-loadtest origin", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8080", "listen `address`")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(stderr, "edgepush-loadtest origin:", err)
		return 1
	}
	srv := &http.Server{Handler: loadtest.NewOrigin(), ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(stderr, "edgepush-loadtest origin: listening on http://%s (GET /stream, /sse, /poll, POST /ws ?ch=CHANNEL)\n",
		ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err = <-errc:
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = srv.Shutdown(sctx)
		cancel()
		<-errc
	}
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(stderr, "edgepush-loadtest origin:", err)
		return 1
	}
	return 0
}

// writePlot writes the report's latency SVG to path.
func writePlot(path string, rep *loadtest.Report) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	err = rep.WriteSVG(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// isTerminal reports whether f is a character device (a terminal).
func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
