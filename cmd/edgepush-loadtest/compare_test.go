package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgepush/edgepush/loadtest"
)

func TestCompareTable(t *testing.T) {
	var buf bytes.Buffer
	add := func(system, scenario string, run int, r loadtest.Report) {
		b, err := json.Marshal(compareLine{System: system, Scenario: scenario, Label: "5,000 " + scenario, Run: run, Report: &r})
		if err != nil {
			t.Fatal(err)
		}
		buf.Write(append(b, '\n'))
	}
	for i, p99 := range []float64{700, 800, 750} {
		add("pushpin", "stream", i+1, loadtest.Report{MsgsRequested: 20, LatencyP99Ms: p99, SetupsPerSec: 800, Lost: 10})
		add("edgepush", "stream", i+1, loadtest.Report{MsgsRequested: 20, LatencyP99Ms: p99 / 10, SetupsPerSec: 8000,
			ServerCPUSeconds: 1})
	}
	add("pushpin", "down", 1, loadtest.Report{MsgsRequested: 1, ConnsFailed: 5000})
	add("edgepush", "down", 1, loadtest.Report{MsgsRequested: 1, SetupsPerSec: 9000, ConnsOK: 5000, KBPerConn: 2.5})
	// A client that does not sample the server's CPU: no CPU row.
	add("pushpin", "nocpu", 1, loadtest.Report{MsgsRequested: 20, LatencyP99Ms: 900})
	add("edgepush", "nocpu", 1, loadtest.Report{MsgsRequested: 20, LatencyP99Ms: 90})
	buf.WriteString("not json\n\n{\"system\":\"x\"}\n")
	path := filepath.Join(t.TempDir(), "r.jsonl")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run(t.Context(), []string{"compare", path}, &out, &errb, false); code != 0 {
		t.Fatalf("code %d: %s", code, errb.String())
	}
	got := out.String()
	for _, want := range []string{
		"| scenario | figure | pushpin: median (runs) | edgepush: median (runs) | edgepush / pushpin |",
		"| 5,000 stream | delivery p50 ms |",
		"|  | delivery p99 ms | **750.0** (700.0 / 800.0 / 750.0) | **75.0** (70.0 / 80.0 / 75.0) | 0.10× (better) |",
		"|  | lost deliveries | **10** (10 / 10 / 10) | **0** (0 / 0 / 0) | 0.000× (better) |",
		"|  | new connections/s | **800** (800 / 800 / 800) | **8,000** (8,000 / 8,000 / 8,000) | 10× (better) |",
		"| 5,000 down | new connections/s | **0** | **9,000** | ∞ (better) |",
		"|  | connections failed | **5,000** | **0** | 0.000× (better) |",
		"|  | RSS KB/conn | **0.00** | **2.50** | — |",
		"| 5,000 nocpu | delivery p50 ms |",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in\n%s", want, got)
		}
	}
	// The CPU row: for stream (edgepush's runs have some), not for nocpu.
	_, nocpu, _ := strings.Cut(got, "| 5,000 nocpu |")
	_, stream, _ := strings.Cut(got, "| 5,000 stream |")
	stream, _, _ = strings.Cut(stream, "| 5,000 down |")
	if strings.Contains(nocpu, "server CPU") || !strings.Contains(stream, "server CPU") {
		t.Errorf("CPU rows wrong in\n%s", got)
	}
	if code := run(t.Context(), []string{"compare"}, &out, &errb, false); code != 2 {
		t.Errorf("no files: code %d", code)
	}
	if code := run(t.Context(), []string{"compare", filepath.Join(t.TempDir(), "none")}, &out, &errb, false); code != 1 {
		t.Errorf("missing file: code %d", code)
	}
}

func TestFormatNum(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 999: "999", 1000: "1,000", 1234567.891: "1,234,567.9", -12345: "-12,345"} {
		d := 0
		if v == 1234567.891 {
			d = 1
		}
		if got := formatNum(v, d); got != want {
			t.Errorf("formatNum(%v) = %q, want %q", v, got, want)
		}
	}
}
