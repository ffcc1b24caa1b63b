package loadtest

import (
	"context"
	"encoding/xml"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

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
		{0.3, 0.3, 0.1}, {0.6, 0.6, 0.2}, {3, 3, 1},
	} {
		top, step := yScale(tc.v)
		if math.Abs(top-tc.top) > 1e-9 || math.Abs(step-tc.step) > 1e-9 {
			t.Errorf("yScale(%v) = %v, %v; want %v, %v", tc.v, top, step, tc.top, tc.step)
		}
	}
	for _, tc := range []struct {
		step float64
		dec  int
	}{{0.001, 3}, {0.002, 3}, {0.05, 2}, {0.2, 1}, {1, 0}, {5, 0}, {20, 0}, {500, 0}} {
		if got := decimalsFor(tc.step); got != tc.dec {
			t.Errorf("decimalsFor(%v) = %d, want %d", tc.step, got, tc.dec)
		}
	}
}

// fixedReport is a report over a fixed distribution: 10,000 deliveries
// from scale to 3 × scale ms, most near scale, with a steep tail.
func fixedReport(scale float64) *Report {
	h := hdrhistogram.New(1, histMaxMicros, histDigits)
	const n = 10000
	for i := range n {
		q := float64(i) / (n - 1)
		h.RecordValue(int64(scale * 1000 * (1 + 2*math.Pow(q, 8))))
	}
	return &Report{
		Transport: "stream", URL: "http://127.0.0.1:18899/stream?ch=bench&" + strings.Repeat("x", 80),
		ConnsOK: 5000, DeliveriesReceived: n,
		LatencyP50Ms: float64(h.ValueAtQuantile(50)) / 1000, LatencyP99Ms: float64(h.ValueAtQuantile(99)) / 1000,
		LatencyMaxMs: float64(h.Max()) / 1000, LatencyCurve: latencyCurve(h),
	}
}

// svgText is one text element of an SVG image, as placed.
type svgText struct {
	class, s        string
	x, y, size      float64
	anchor          string
	rotated         bool // rotate(-90 x y) about its own anchor point
	rotX, rotY, deg float64
}

// box is a rectangle: x0 < x1, y0 < y1.
type box struct{ x0, y0, x1, y1 float64 }

func (a box) overlaps(b box) bool { return a.x0 < b.x1 && b.x0 < a.x1 && a.y0 < b.y1 && b.y0 < a.y1 }

// bounds is a generous estimate of where a text element's glyphs can
// be: 0.6 em a character (wider than sans-serif's average), from 0.8 em
// above the baseline to 0.25 em below; rotated by ±90° when it is.
func (t svgText) bounds() box {
	w := 0.6 * t.size * float64(utf8.RuneCountInString(t.s))
	x0 := t.x
	switch t.anchor {
	case "middle":
		x0 -= w / 2
	case "end":
		x0 -= w
	}
	b := box{x0, t.y - 0.8*t.size, x0 + w, t.y + 0.25*t.size}
	if !t.rotated {
		return b
	}
	// A quarter turn about (rotX, rotY): swap the offsets.
	sign := math.Copysign(1, t.deg)
	c := func(x, y float64) (float64, float64) {
		dx, dy := x-t.rotX, y-t.rotY
		return t.rotX - sign*dy, t.rotY + sign*dx
	}
	ax, ay := c(b.x0, b.y0)
	bx, by := c(b.x1, b.y1)
	return box{min(ax, bx), min(ay, by), max(ax, bx), max(ay, by)}
}

// parsedSVG is what the layout checks need of an image.
type parsedSVG struct {
	w, h  float64
	texts []svgText
	plot  box          // the plot area
	curve [][2]float64 // the polyline's points
}

func parseSVG(t *testing.T, doc string) parsedSVG {
	t.Helper()
	var out parsedSVG
	d := xml.NewDecoder(strings.NewReader(doc))
	num := func(v string) float64 {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			t.Fatalf("not a number: %q", v)
		}
		return f
	}
	fontSize := 0.0
	var cur *svgText
	for range 100000 {
		tok, err := d.Token()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("not XML: %v", err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			attr := map[string]string{}
			for _, a := range tok.Attr {
				attr[a.Name.Local] = a.Value
			}
			switch tok.Name.Local {
			case "svg":
				out.w, out.h, fontSize = num(attr["width"]), num(attr["height"]), num(attr["font-size"])
			case "rect":
				if attr["class"] == "plot-area" || attr["fill"] == "none" && out.plot == (box{}) { // the frame
					x, y := num(attr["x"]), num(attr["y"])
					out.plot = box{x, y, x + num(attr["width"]), y + num(attr["height"])}
				}
			case "polyline":
				for _, pt := range strings.Fields(attr["points"]) {
					xs, ys, _ := strings.Cut(pt, ",")
					out.curve = append(out.curve, [2]float64{num(xs), num(ys)})
				}
			case "text":
				st := svgText{class: attr["class"], x: num(attr["x"]), y: num(attr["y"]), size: fontSize, anchor: attr["text-anchor"]}
				if v, ok := attr["font-size"]; ok {
					st.size = num(v)
				}
				if tr := attr["transform"]; tr != "" {
					f := strings.Fields(strings.NewReplacer("rotate(", "", ")", "", ",", " ").Replace(tr))
					if len(f) != 3 || !strings.HasPrefix(tr, "rotate(") || math.Abs(num(f[0])) != 90 {
						t.Fatalf("transform %q: only quarter turns are checked", tr)
					}
					st.rotated, st.deg, st.rotX, st.rotY = true, num(f[0]), num(f[1]), num(f[2])
				}
				out.texts = append(out.texts, st)
				cur = &out.texts[len(out.texts)-1]
			}
		case xml.CharData:
			if cur != nil {
				cur.s += string(tok)
			}
		case xml.EndElement:
			cur = nil
		}
	}
	t.Fatal("SVG too long")
	return out
}

// TestWriteSVGLayout renders plots of fixed distributions at three
// scales (tens of µs, ms, seconds) and checks the layout by parsing the
// SVG: each axis' tick labels have one format (the y axis: the same
// decimals, steps of 1, 2 or 5 × 10^k from 0; the x axis: percentages),
// every latency written in the image has the same decimals, and no text
// covers the curve: every text's box (a generous estimate) is inside the
// image, outside the plot area that holds the whole polyline, and clear
// of every other text.
func TestWriteSVGLayout(t *testing.T) {
	for _, scale := range []float64{0.03, 5.8, 900} {
		t.Run(strconv.FormatFloat(scale, 'f', -1, 64)+"ms", func(t *testing.T) {
			var sb strings.Builder
			if err := fixedReport(scale).WriteSVG(&sb); err != nil {
				t.Fatal(err)
			}
			img := parseSVG(t, sb.String())
			checkSVGLayout(t, img, true)

			var yticks, xticks []string
			for _, tx := range img.texts {
				switch tx.class {
				case "ytick":
					yticks = append(yticks, tx.s)
				case "xtick":
					xticks = append(xticks, tx.s)
				}
			}
			checkYTicks(t, yticks)
			pctRE := regexp.MustCompile(`^[0-9]+(\.[0-9]+)?%$`)
			for _, l := range xticks {
				if !pctRE.MatchString(l) {
					t.Errorf("x tick %q is not a percentage", l)
				}
			}
			if got := strings.Join(xticks, " "); got != "0% 50% 90% 99% 99.9% 99.99%" {
				t.Errorf("x ticks %s", got)
			}
			// Every latency in the image, with the same decimals.
			msRE := regexp.MustCompile(`([0-9]+(?:\.([0-9]+))?) ms\b`)
			decimals := map[int][]string{}
			for _, tx := range img.texts {
				for _, m := range msRE.FindAllStringSubmatch(tx.s, -1) {
					decimals[len(m[2])] = append(decimals[len(m[2])], m[1])
				}
			}
			if len(decimals) != 1 {
				t.Errorf("latencies with different precisions: %v", decimals)
			}
			for _, want := range []string{"p50 ", "p99 ", "max ", "delivery latency (ms)", "percentile (%)", "10000 deliveries to 5000 connections"} {
				if !slices.ContainsFunc(img.texts, func(tx svgText) bool { return strings.Contains(tx.s, want) }) {
					t.Errorf("no text %q", want)
				}
			}
		})
	}
	// No deliveries: the message sits in the empty plot area; the rest
	// of the layout holds.
	var sb strings.Builder
	if err := (&Report{Transport: "ws", URL: "ws://127.0.0.1/x"}).WriteSVG(&sb); err != nil {
		t.Fatal(err)
	}
	checkSVGLayout(t, parseSVG(t, sb.String()), false)
}

// checkYTicks checks the y axis' labels: at least three, 0 first, the
// same decimals, evenly spaced by 1, 2 or 5 × 10^k.
func checkYTicks(t *testing.T, labels []string) {
	t.Helper()
	if len(labels) < 3 {
		t.Fatalf("y ticks %q", labels)
	}
	dec := func(s string) int {
		_, frac, _ := strings.Cut(s, ".")
		return len(frac)
	}
	var vals []float64
	for _, l := range labels {
		if dec(l) != dec(labels[0]) {
			t.Errorf("y ticks with different decimals: %q", labels)
		}
		v, err := strconv.ParseFloat(l, 64)
		if err != nil {
			t.Fatalf("y tick %q", l)
		}
		vals = append(vals, v)
	}
	step := vals[1] - vals[0]
	mant := step / math.Pow(10, math.Floor(math.Log10(step)+1e-9))
	if vals[0] != 0 || !slices.ContainsFunc([]float64{1, 2, 5}, func(m float64) bool { return math.Abs(mant-m) < 1e-6 }) {
		t.Errorf("y ticks %q: not 0 and steps of 1, 2 or 5 × 10^k", labels)
	}
	for i := 1; i < len(vals); i++ {
		if math.Abs(vals[i]-vals[i-1]-step) > step*1e-6 {
			t.Errorf("y ticks %q: uneven", labels)
		}
	}
}

// checkSVGLayout checks that every text is inside the image and clear of
// every other text and, when outsidePlot, of the plot area, which must
// hold the whole curve.
func checkSVGLayout(t *testing.T, img parsedSVG, outsidePlot bool) {
	t.Helper()
	if img.plot == (box{}) || len(img.texts) < 3 {
		t.Fatalf("no plot area, or %d texts", len(img.texts))
	}
	for _, pt := range img.curve {
		if pt[0] < img.plot.x0 || pt[0] > img.plot.x1 || pt[1] < img.plot.y0 || pt[1] > img.plot.y1 {
			t.Errorf("curve point %v outside the plot area %+v", pt, img.plot)
		}
	}
	for i, a := range img.texts {
		ab := a.bounds()
		if ab.x0 < 0 || ab.y0 < 0 || ab.x1 > img.w || ab.y1 > img.h {
			t.Errorf("text %q (%+v) leaves the %vx%v image", a.s, ab, img.w, img.h)
		}
		if outsidePlot && ab.overlaps(img.plot) {
			t.Errorf("text %q (%+v) overlaps the plot area %+v", a.s, ab, img.plot)
		}
		for _, b := range img.texts[i+1:] {
			if ab.overlaps(b.bounds()) {
				t.Errorf("texts %q (%+v) and %q (%+v) overlap", a.s, ab, b.s, b.bounds())
			}
		}
	}
}
