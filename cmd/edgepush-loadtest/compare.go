package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/edgepush/edgepush/loadtest"
)

// compareLine is one line of a comparison's results file: the report of
// one run of one scenario against one system, as the bench-compare script
// writes it.
type compareLine struct {
	System   string           `json:"system"`   // e.g. "pushpin", "edgepush"
	Scenario string           `json:"scenario"` // key, e.g. "stream"
	Label    string           `json:"label"`    // for people, e.g. "5,000 HTTP stream"
	Run      int              `json:"run"`
	Report   *loadtest.Report `json:"report"`
}

// metric is one figure of a report shown in the comparison table.
type metric struct {
	name   string
	lower  bool // lower is better (latency, memory)
	digits int
	value  func(*loadtest.Report) float64
}

var (
	mSetupRate = metric{"new connections/s", false, 0, func(r *loadtest.Report) float64 { return r.SetupsPerSec }}
	mSetupP50  = metric{"setup p50 ms", true, 1, func(r *loadtest.Report) float64 { return r.SetupP50Ms }}
	mSetupP99  = metric{"setup p99 ms", true, 1, func(r *loadtest.Report) float64 { return r.SetupP99Ms }}
	mConnsOK   = metric{"connections opened", false, 0, func(r *loadtest.Report) float64 { return float64(r.ConnsOK) }}
	mFailed    = metric{"connections failed", true, 0, func(r *loadtest.Report) float64 { return float64(r.ConnsFailed) }}
	mP50       = metric{"delivery p50 ms", true, 1, func(r *loadtest.Report) float64 { return r.LatencyP50Ms }}
	mP99       = metric{"delivery p99 ms", true, 1, func(r *loadtest.Report) float64 { return r.LatencyP99Ms }}
	mMax       = metric{"delivery max ms", true, 1, func(r *loadtest.Report) float64 { return r.LatencyMaxMs }}
	mLost      = metric{"lost deliveries", true, 0, func(r *loadtest.Report) float64 { return float64(r.Lost) }}
	mKB        = metric{"RSS KB/conn", true, 2, func(r *loadtest.Report) float64 { return r.KBPerConn }}
	mCPU       = metric{"server CPU s (publish+settle)", true, 2, func(r *loadtest.Report) float64 { return r.ServerCPUSeconds }}
)

// metricsFor returns the figures shown for a scenario: fan-out scenarios
// show delivery, setup-only ones (a single publish) show setup; both show
// the server's RSS per connection (or session) held. Server CPU is left
// out when no run measured it (a client that does not sample it, such as
// bench-compare's optional independent one).
func metricsFor(reports []*loadtest.Report) []metric {
	fanout, cpu := false, false
	for _, r := range reports {
		fanout = fanout || r.MsgsRequested > 1
		cpu = cpu || r.ServerCPUSeconds > 0
	}
	if !fanout {
		return []metric{mSetupRate, mSetupP50, mSetupP99, mConnsOK, mFailed, mKB}
	}
	if !cpu {
		return []metric{mP50, mP99, mMax, mLost, mSetupRate, mKB}
	}
	return []metric{mP50, mP99, mMax, mLost, mSetupRate, mKB, mCPU}
}

// runCompare implements "edgepush-loadtest compare": it reads results
// lines and writes a markdown table of medians with ratios.
func runCompare(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("edgepush-loadtest compare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	base := fs.String("base", "pushpin", "the `system` ratios are relative to")
	other := fs.String("vs", "edgepush", "the `system` compared with -base")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: edgepush-loadtest compare [-base pushpin] [-vs edgepush] RESULTS.jsonl ...")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	var lines []compareLine
	for _, path := range fs.Args() {
		ls, err := readCompareLines(path)
		if err != nil {
			fmt.Fprintln(stderr, "edgepush-loadtest compare:", err)
			return 1
		}
		lines = append(lines, ls...)
	}
	if err := writeCompareTable(stdout, lines, *base, *other); err != nil {
		fmt.Fprintln(stderr, "edgepush-loadtest compare:", err)
		return 1
	}
	return 0
}

// readCompareLines reads a results file; lines that are not JSON objects
// (or have no report) are skipped.
func readCompareLines(path string) ([]compareLine, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []compareLine
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		b := sc.Bytes()
		if len(b) == 0 || b[0] != '{' {
			continue
		}
		var l compareLine
		if err := json.Unmarshal(b, &l); err != nil || l.Report == nil || l.System == "" || l.Scenario == "" {
			continue
		}
		out = append(out, l)
	}
	return out, sc.Err()
}

// writeCompareTable writes one row per scenario and metric: the median
// for each system with every run's value, and the ratio other/base.
func writeCompareTable(w io.Writer, lines []compareLine, base, other string) error {
	if len(lines) == 0 {
		return errors.New("no results")
	}
	var order []string // scenarios in order of first appearance
	labels := map[string]string{}
	reports := map[string]map[string][]*loadtest.Report{} // scenario → system → runs
	for _, l := range lines {
		if _, ok := reports[l.Scenario]; !ok {
			order = append(order, l.Scenario)
			reports[l.Scenario] = map[string][]*loadtest.Report{}
			labels[l.Scenario] = l.Scenario
		}
		if l.Label != "" {
			labels[l.Scenario] = l.Label
		}
		reports[l.Scenario][l.System] = append(reports[l.Scenario][l.System], l.Report)
	}
	fmt.Fprintf(w, "| scenario | figure | %s: median (runs) | %s: median (runs) | %s / %s |\n", base, other, other, base)
	fmt.Fprintln(w, "|---|---|---|---|---|")
	for _, sc := range order {
		b, o := reports[sc][base], reports[sc][other]
		label := labels[sc]
		for _, m := range metricsFor(append(slices.Clone(b), o...)) {
			bMed, bText := summarizeMetric(b, m)
			oMed, oText := summarizeMetric(o, m)
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", label, m.name, bText, oText, ratio(oMed, bMed, m))
			label = ""
		}
	}
	return nil
}

// summarizeMetric returns the median of m over the runs and its text:
// "median (a / b / c)", or "—" without runs.
func summarizeMetric(runs []*loadtest.Report, m metric) (float64, string) {
	if len(runs) == 0 {
		return math.NaN(), "—"
	}
	vals := make([]float64, len(runs))
	texts := make([]string, len(runs))
	for i, r := range runs {
		vals[i] = m.value(r)
		texts[i] = formatNum(vals[i], m.digits)
		if r.Aborted != "" {
			texts[i] += " (aborted)"
		}
	}
	med := median(vals)
	s := "**" + formatNum(med, m.digits) + "**"
	if len(runs) > 1 {
		s += " (" + strings.Join(texts, " / ") + ")"
	}
	return med, s
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// ratio formats other/base, with which way is better.
func ratio(o, b float64, m metric) string {
	switch {
	case math.IsNaN(o) || math.IsNaN(b):
		return "—"
	case b == 0 && o == 0:
		return "="
	case b == 0 && m.lower: // e.g. the setup time of a system that opened nothing
		return "—"
	case b == 0:
		return "∞ (" + m.better(o > 0) + ")"
	}
	r := o / b
	s := strconv.FormatFloat(r, 'f', ratioDigits(r), 64) + "×"
	switch {
	case r == 1:
	case (r < 1) == m.lower:
		s += " (" + m.better(true) + ")"
	default:
		s += " (" + m.better(false) + ")"
	}
	return s
}

func (m metric) better(good bool) string {
	if good {
		return "better"
	}
	return "worse"
}

func ratioDigits(r float64) int {
	switch {
	case r >= 10:
		return 0
	case r >= 0.1:
		return 2
	default:
		return 3
	}
}

// formatNum formats v with the given decimals and thousands separators.
func formatNum(v float64, digits int) string {
	s := strconv.FormatFloat(v, 'f', digits, 64)
	intPart, frac, _ := strings.Cut(s, ".")
	neg := strings.HasPrefix(intPart, "-")
	intPart = strings.TrimPrefix(intPart, "-")
	var b strings.Builder
	for i, c := range intPart {
		if i > 0 && (len(intPart)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	out := b.String()
	if neg {
		out = "-" + out
	}
	if frac != "" {
		out += "." + frac
	}
	return out
}
