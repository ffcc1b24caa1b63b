package loadtest

import (
	"bufio"
	"fmt"
	"html"
	"io"
	"math"
	"strconv"

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

// SVG layout, in pixels.
const (
	svgW, svgH                     = 640, 400
	svgLeft, svgRight              = 72, 24
	svgTop, svgBottom              = 56, 56
	plotW                          = svgW - svgLeft - svgRight
	plotH                          = svgH - svgTop - svgBottom
	svgFont                        = `font-family="sans-serif" font-size="12"`
	svgCurveColor, svgMarkColor    = "#1f5fbf", "#c0392b"
	svgGridColor, svgAxisTextColor = "#dddddd", "#333333"
)

// WriteSVG draws the delivery latency distribution (LatencyCurve) as a
// self-contained SVG image: latency in ms over the percentile, on an axis
// where 0, 90, 99, 99.9 and 99.99 % are evenly spaced, with p50 and p99
// marked. A report without deliveries gives an image that says so.
func (r *Report) WriteSVG(w io.Writer) error {
	bw := bufio.NewWriter(w)
	p := func(format string, args ...any) { fmt.Fprintf(bw, format, args...) }
	p(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" %s>`+"\n",
		svgW, svgH, svgW, svgH, svgFont)
	p(`<rect width="%d" height="%d" fill="white"/>`+"\n", svgW, svgH)
	p(`<text x="%d" y="22" font-size="15" font-weight="bold">Delivery latency by percentile</text>`+"\n", svgLeft)
	sub := fmt.Sprintf("%s %s: %d deliveries to %d connections, max %s ms", r.Transport, r.URL,
		r.DeliveriesReceived, r.ConnsOK-r.SlowConns, fmtMs(r.LatencyMaxMs))
	if r.OriginDown {
		sub += ", origin down"
	}
	p(`<text x="%d" y="40" fill="%s">%s</text>`+"\n", svgLeft, svgAxisTextColor, html.EscapeString(sub))

	curve := r.LatencyCurve
	if len(curve) == 0 {
		p(`<text x="%d" y="%d" text-anchor="middle" font-size="14">no deliveries</text>`+"\n",
			svgLeft+plotW/2, svgTop+plotH/2)
		p("</svg>\n")
		return bw.Flush()
	}
	yMax, yStep := yScale(curve[len(curve)-1].Ms)
	x := func(pct float64) float64 { return svgLeft + positionOf(pct)/curveDecades*plotW }
	y := func(ms float64) float64 { return svgTop + plotH - min(ms/yMax, 1)*plotH }

	// Grid, ticks and axis labels.
	for _, pct := range []float64{0, 90, 99, 99.9, 99.99} {
		xp := x(pct)
		p(`<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s"/>`+"\n", xp, svgTop, xp, svgTop+plotH, svgGridColor)
		p(`<text x="%.1f" y="%d" text-anchor="middle" fill="%s">%s%%</text>`+"\n", xp, svgTop+plotH+18,
			svgAxisTextColor, strconv.FormatFloat(pct, 'f', -1, 64))
	}
	for k := 0; k <= int(math.Round(yMax/yStep)); k++ {
		v := float64(k) * yStep
		yp := y(v)
		p(`<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s"/>`+"\n", svgLeft, yp, svgLeft+plotW, yp, svgGridColor)
		p(`<text x="%d" y="%.1f" text-anchor="end" fill="%s">%s</text>`+"\n", svgLeft-6, yp+4, svgAxisTextColor, fmtMs(v))
	}
	p(`<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#888888"/>`+"\n", svgLeft, svgTop, plotW, plotH)
	p(`<text x="%d" y="%d" text-anchor="middle">percentile</text>`+"\n", svgLeft+plotW/2, svgH-14)
	p(`<text x="16" y="%d" text-anchor="middle" transform="rotate(-90 16 %d)">latency (ms)</text>`+"\n",
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

	// p50 and p99.
	for _, m := range []struct {
		name string
		pct  float64
		ms   float64
	}{{"p50", 50, r.LatencyP50Ms}, {"p99", 99, r.LatencyP99Ms}} {
		xp, yp := x(m.pct), y(m.ms)
		p(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%d" stroke="%s" stroke-dasharray="4 3"/>`+"\n",
			xp, yp, xp, svgTop+plotH, svgMarkColor)
		p(`<circle cx="%.1f" cy="%.1f" r="4" fill="%s"/>`+"\n", xp, yp, svgMarkColor)
		p(`<text x="%.1f" y="%.1f" fill="%s">%s %s ms</text>`+"\n", xp+6, max(yp-8, svgTop+12), svgMarkColor,
			m.name, fmtMs(m.ms))
	}
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
		if f*mag >= raw {
			step = f * mag
			break
		}
	}
	return step * math.Ceil(v/step), step
}

// fmtMs formats milliseconds with up to three significant decimals.
func fmtMs(ms float64) string {
	switch {
	case ms >= 100:
		return strconv.FormatFloat(ms, 'f', 0, 64)
	case ms >= 10:
		return strconv.FormatFloat(ms, 'f', 1, 64)
	}
	return strconv.FormatFloat(math.Round(ms*1000)/1000, 'f', -1, 64)
}
