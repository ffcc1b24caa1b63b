package loadtest

import (
	"context"
	"encoding/xml"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// svgSummary parses an SVG document and returns its root element's name,
// its text, and the number of points of its polyline.
func svgSummary(t *testing.T, r io.Reader) (root, text string, points int) {
	t.Helper()
	d := xml.NewDecoder(r)
	var sb strings.Builder
	for range 100000 {
		tok, err := d.Token()
		if err == io.EOF {
			return root, sb.String(), points
		}
		if err != nil {
			t.Fatalf("not XML: %v", err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if root == "" {
				root = tok.Name.Local
				if tok.Name.Space != "http://www.w3.org/2000/svg" {
					t.Errorf("root namespace %q", tok.Name.Space)
				}
			}
			if tok.Name.Local == "polyline" {
				for _, a := range tok.Attr {
					if a.Name.Local == "points" {
						points = len(strings.Fields(a.Value))
					}
				}
			}
		case xml.CharData:
			sb.Write(tok)
			sb.WriteByte('\n')
		}
	}
	t.Fatal("SVG too long")
	return
}

func TestWriteSVGFromRun(t *testing.T) {
	proxy, _, _ := newFakeProxy(t, "")
	rep, err := Run(context.Background(), Config{
		URL: proxy.URL + "/stream?ch=a&b=1", PublishURL: proxy.URL + "/publish/", Channel: "plot",
		Conns: 10, Msgs: 5, Rate: 100, Settle: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.DeliveriesReceived != 0 {
		t.Fatalf("channel mismatch should have given no deliveries, got %d", rep.DeliveriesReceived)
	}
	// No deliveries (wrong channel): the image says so.
	path := filepath.Join(t.TempDir(), "empty.svg")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := rep.WriteSVG(f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	f, _ = os.Open(path)
	root, text, points := svgSummary(t, f)
	f.Close()
	if root != "svg" || !strings.Contains(text, "no deliveries") || points != 0 ||
		!strings.Contains(text, "?ch=a&b=1") { // escaped in the file, plain once parsed
		t.Errorf("root %q points %d text %q", root, points, text)
	}

	rep, err = Run(context.Background(), Config{
		URL: proxy.URL + "/stream?ch=plot", PublishURL: proxy.URL + "/publish/", Conns: 10, Msgs: 5, Rate: 100,
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.DeliveriesReceived != 50 || len(rep.LatencyCurve) != curvePoints {
		t.Fatalf("received %d, curve of %d points", rep.DeliveriesReceived, len(rep.LatencyCurve))
	}
	var sb strings.Builder
	if err := rep.WriteSVG(&sb); err != nil {
		t.Fatal(err)
	}
	root, text, points = svgSummary(t, strings.NewReader(sb.String()))
	if root != "svg" || points != curvePoints {
		t.Errorf("root %q, %d points", root, points)
	}
	for _, want := range []string{"percentile", "latency (ms)", "p50 ", "p99 ", "99.99%", "90%", "50 deliveries"} {
		if !strings.Contains(text, want) {
			t.Errorf("no %q in the text:\n%s", want, text)
		}
	}
}

func TestLatencyCurve(t *testing.T) {
	h := hdrhistogram.New(1, histMaxMicros, histDigits)
	if latencyCurve(h) != nil {
		t.Error("curve of an empty histogram")
	}
	for v := int64(1); v <= 10000; v++ { // 1 µs … 10 ms, uniform
		h.RecordValue(v)
	}
	c := latencyCurve(h)
	if len(c) != curvePoints || c[0].Percentile != 0 || c[0].Ms != 0.001 ||
		math.Abs(c[len(c)-1].Percentile-99.99) > 1e-9 {
		t.Fatalf("curve ends %+v %+v", c[0], c[len(c)-1])
	}
	for i := 1; i < len(c); i++ {
		if c[i].Percentile <= c[i-1].Percentile || c[i].Ms < c[i-1].Ms {
			t.Fatalf("not increasing at %d: %+v %+v", i, c[i-1], c[i])
		}
	}
	// p90 sits at a quarter of the axis, at about 9 ms.
	q := c[(curvePoints-1)/4]
	if math.Abs(q.Percentile-90) > 1e-9 || math.Abs(q.Ms-9) > 0.05 {
		t.Errorf("p90 point %+v", q)
	}
	for _, tc := range []struct{ p, pos float64 }{{0, 0}, {90, 1}, {99, 2}, {99.99, 4}, {100, 4}, {99.9999, 4}} {
		if got := positionOf(tc.p); math.Abs(got-tc.pos) > 1e-9 {
			t.Errorf("positionOf(%v) = %v, want %v", tc.p, got, tc.pos)
		}
	}
}

func TestYScale(t *testing.T) {
	for _, tc := range []struct{ v, top, step float64 }{
		{0, 1, 0.2}, {1, 1, 0.2}, {7.3, 8, 2}, {12, 15, 5}, {99, 100, 20}, {101, 150, 50}, {0.042, 0.05, 0.01},
	} {
		top, step := yScale(tc.v)
		if math.Abs(top-tc.top) > 1e-9 || math.Abs(step-tc.step) > 1e-9 {
			t.Errorf("yScale(%v) = %v, %v; want %v, %v", tc.v, top, step, tc.top, tc.step)
		}
	}
	if fmtMs(0.30000000000000004) != "0.3" || fmtMs(12.34) != "12.3" || fmtMs(1234.6) != "1235" {
		t.Errorf("fmtMs: %s %s %s", fmtMs(0.30000000000000004), fmtMs(12.34), fmtMs(1234.6))
	}
}
