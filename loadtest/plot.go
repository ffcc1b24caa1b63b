package loadtest

import (
	"bufio"
	"fmt"
	"html"
	"io"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// CurvePoint is one point of a percentile curve: Ms is the latency, in
// milliseconds, that Percentile percent of the deliveries did not exceed.
type CurvePoint struct {
	Percentile float64
	Ms         float64
}

// The curve's x axis is "log-ish": position t = log10(1 / (1 − p/100)),
// so that 0, 90, 99, 99.9 and 99.99 % are evenly spaced (t = 0 … 4).
const (
	curveDecades = 4   // up to 99.99 %
	curvePoints  = 161 // points of the curve, evenly spaced in t
)

// percentileAt is the percentile at position t of the x axis.
func percentileAt(t float64) float64 { return 100 * (1 - math.Pow(10, -t)) }

// positionOf is the position on the x axis of percentile p (clamped to
// 0 … curveDecades).
func positionOf(p float64) float64 {
	if p >= 100 {
		return curveDecades
	}
	return min(max(-math.Log10(1-p/100), 0), curveDecades)
}

// latencyCurve samples the percentile curve of h (values in µs); nil for
// an empty histogram.
func latencyCurve(h *hdrhistogram.Histogram) []CurvePoint {
	if h.TotalCount() == 0 {
		return nil
	}
	pts := make([]CurvePoint, curvePoints)
	for k := range pts {
		p := percentileAt(curveDecades * float64(k) / (curvePoints - 1))
		us := h.Min()
		if k > 0 {
			us = h.ValueAtQuantile(p)
		}
		pts[k] = CurvePoint{Percentile: p, Ms: float64(us) / 1000}
	}
	return pts
}

// SVG layout, in pixels. Everything that is text lies outside the plot
// area (title, legend, tick labels, axis titles), so no label can cover
// the curve.
const (
	svgW, svgH                     = 640, 420
	svgLeft, svgRight              = 72, 32
	svgTop, svgBottom              = 88, 60
	plotW                          = svgW - svgLeft - svgRight
	plotH                          = svgH - svgTop - svgBottom
	svgFontSize                    = 12
	svgCurveColor, svgMarkColor    = "#1f5fbf", "#c0392b"
	svgGridColor, svgAxisTextColor = "#dddddd", "#333333"
	svgLegendY                     = 74 // the legend's baseline, above the plot area
)

// textWidth estimates the width in pixels of s in the image's sans-serif
// font at size px: 0.6 em a character, wider than the average glyph, so
// that layouts made with it leave room.
func textWidth(s string, px float64) float64 {
	return 0.6 * px * float64(utf8.RuneCountInString(s))
}

// fitText shortens s with an ellipsis to fit in width pixels at size px.
func fitText(s string, px, width float64) string {
	if textWidth(s, px) <= width {
		return s
	}
	r := []rune(s)
	n := max(int(width/(0.6*px))-1, 0)
	return string(r[:min(n, len(r))]) + "…"
}

// curveTicks are the percentiles marked on the x axis: the decades of
// the tail, and 50 % where the median is drawn.
var curveTicks = []float64{0, 50, 90, 99, 99.9, 99.99}

// WriteSVG draws the delivery latency distribution (LatencyCurve) as a
// self-contained SVG image: latency in ms over the percentile, on an axis
// where 0, 90, 99, 99.9 and 99.99 % are evenly spaced, with p50 and p99
// marked on the curve and given, with the maximum, in a legend above the
// plot. Tick labels use one format per axis (the y axis' step, 1, 2 or 5
// × 10^k, sets its decimals; every latency in the legend has one decimal
// more). A report without deliveries gives an image that says so.
func (r *Report) WriteSVG(w io.Writer) error {
	bw := bufio.NewWriter(w)
	p := func(format string, args ...any) { fmt.Fprintf(bw, format, args...) }
	text := func(x, y float64, attrs, s string) {
		p(`<text x="%.1f" y="%.1f"%s>%s</text>`+"\n", x, y, attrs, html.EscapeString(s))
	}
	p(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="%d">`+"\n",
		svgW, svgH, svgW, svgH, svgFontSize)
	p(`<rect width="%d" height="%d" fill="white"/>`+"\n", svgW, svgH)
	text(svgLeft, 22, ` font-size="15" font-weight="bold"`, "Delivery latency by percentile")
	sub := r.Transport + " " + r.URL
	if r.OriginDown {
		sub += " (origin down)"
	}
	text(svgLeft, 40, ` fill="`+svgAxisTextColor+`"`, fitText(sub, svgFontSize, svgW-svgLeft-svgRight))
	text(svgLeft, 56, ` fill="`+svgAxisTextColor+`"`, fmt.Sprintf("%d deliveries to %d connections",
		r.DeliveriesReceived, r.ConnsOK-r.SlowConns))

	curve := r.LatencyCurve
	if len(curve) == 0 {
		p(`<rect class="plot-area" x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#888888"/>`+"\n",
			svgLeft, svgTop, plotW, plotH)
		text(svgLeft+plotW/2, svgTop+plotH/2, ` text-anchor="middle" font-size="14"`, "no deliveries")
		p("</svg>\n")
		return bw.Flush()
	}
	yMax, yStep := yScale(curve[len(curve)-1].Ms)
	tickDec := decimalsFor(yStep)
	ms := func(v float64) string { return strconv.FormatFloat(v, 'f', tickDec+1, 64) + " ms" }
	x := func(pct float64) float64 { return svgLeft + positionOf(pct)/curveDecades*plotW }
	y := func(v float64) float64 { return svgTop + plotH - min(v/yMax, 1)*plotH }

	// Grid, ticks and axis labels.
	for _, pct := range curveTicks {
		xp := x(pct)
		p(`<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s"/>`+"\n", xp, svgTop, xp, svgTop+plotH, svgGridColor)
		text(xp, svgTop+plotH+20, ` class="xtick" text-anchor="middle" fill="`+svgAxisTextColor+`"`,
			strconv.FormatFloat(pct, 'f', -1, 64)+"%")
	}
	for k := 0; k <= int(math.Round(yMax/yStep)); k++ {
		v := float64(k) * yStep
		yp := y(v)
		p(`<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s"/>`+"\n", svgLeft, yp, svgLeft+plotW, yp, svgGridColor)
		text(svgLeft-8, yp+4, ` class="ytick" text-anchor="end" fill="`+svgAxisTextColor+`"`,
			strconv.FormatFloat(v, 'f', tickDec, 64))
	}
	p(`<rect class="plot-area" x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#888888"/>`+"\n",
		svgLeft, svgTop, plotW, plotH)
	text(svgLeft+plotW/2, svgH-16, ` text-anchor="middle"`, "percentile (%): 90, 99, 99.9 and 99.99 evenly spaced")
	p(`<text x="18" y="%d" text-anchor="middle" transform="rotate(-90 18 %d)">delivery latency (ms)</text>`+"\n",
		svgTop+plotH/2, svgTop+plotH/2)

	// The curve.
	p(`<polyline fill="none" stroke="%s" stroke-width="2" points="`, svgCurveColor)
	for i, pt := range curve {
		if i > 0 {
			p(" ")
		}
		p("%.1f,%.1f", x(pt.Percentile), y(pt.Ms))
	}
	p(`"/>` + "\n")

	// p50 and p99 on the curve, down to their ticks.
	for _, m := range []struct{ pct, ms float64 }{{50, r.LatencyP50Ms}, {99, r.LatencyP99Ms}} {
		xp, yp := x(m.pct), y(m.ms)
		p(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%d" stroke="%s" stroke-dasharray="4 3"/>`+"\n",
			xp, yp, xp, svgTop+plotH, svgMarkColor)
		p(`<circle cx="%.1f" cy="%.1f" r="4" fill="%s"/>`+"\n", xp, yp, svgMarkColor)
	}

	// The legend, above the plot area: a mark and its text for the curve,
	// p50 and p99, then the maximum (not on the curve, which ends at
	// 99.99 %).
	lx, my := float64(svgLeft), float64(svgLegendY-4)
	item := func(mark func(), label string) {
		if mark != nil {
			mark()
			lx += 22
		}
		text(lx, svgLegendY, ` class="legend"`, label)
		lx += textWidth(label, svgFontSize) + 14
	}
	dot := func() { p(`<circle cx="%.1f" cy="%.1f" r="4" fill="%s"/>`+"\n", lx+8, my, svgMarkColor) }
	item(func() {
		p(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2"/>`+"\n", lx, my, lx+16, my, svgCurveColor)
	}, "delivery latency")
	item(dot, "p50 "+ms(r.LatencyP50Ms))
	item(dot, "p99 "+ms(r.LatencyP99Ms))
	item(nil, "max "+ms(r.LatencyMaxMs))
	p("</svg>\n")
	return bw.Flush()
}

// yScale picks the y axis' top and tick step for values up to v (ms):
// steps of 1, 2 or 5 × 10^k, about five of them.
func yScale(v float64) (top, step float64) {
	if !(v > 0) {
		v = 1
	}
	raw := v / 5
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step = 10 * mag
	for _, f := range []float64{1, 2, 5} {
		if f*mag >= raw*(1-1e-9) {
			step = f * mag
			break
		}
	}
	return step * math.Ceil(v/step*(1-1e-9)), step
}

// decimalsFor is how many decimals tick labels need to show multiples of
// step (1, 2 or 5 × 10^k) exactly.
func decimalsFor(step float64) int {
	return max(0, -int(math.Floor(math.Log10(step)+1e-9)))
}
