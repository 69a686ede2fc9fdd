package load

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
)

// Plot geometry (SVG user units).
const (
	plotW, plotH                       = 960, 540
	marginL, marginR, marginT, marginB = 80, 30, 50, 60
)

var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"}

// WritePlot writes rows' latency-by-percentile curves as an SVG file: the x axis is the
// percentile on a log scale of 1/(1-p) (0, 90, 99, 99.9, 99.99 %), the y axis latency in ms.
// Rows without samples are left out.
func WritePlot(path, title string, rows []RowReport) error {
	var b bytes.Buffer
	if err := Plot(&b, title, rows); err != nil {
		return err
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}

// xOf maps a percentile (0 to 99.99) to the log axis 0..4.
func xOf(p float64) float64 {
	if p >= 99.99 {
		return 4
	}
	return math.Log10(1 / (1 - p/100))
}

// niceStep returns a step of 1, 2 or 5 x 10^k giving at most n steps up to top.
func niceStep(top float64, n int) float64 {
	if top <= 0 {
		return 1
	}
	raw := top / float64(n)
	pow := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*pow >= raw {
			return m * pow
		}
	}
	return 10 * pow
}

func esc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// Plot writes the SVG document to w (see WritePlot).
func Plot(w io.Writer, title string, rows []RowReport) error {
	var series []RowReport
	top := 0.0
	for _, r := range rows {
		if len(r.Curve) == 0 {
			continue
		}
		series = append(series, r)
		for _, p := range r.Curve {
			if p.Percentile <= 99.99 {
				top = max(top, p.US/1000)
			}
		}
	}
	step := niceStep(top, 8)
	ymax := math.Max(step, math.Ceil(top/step)*step)
	iw, ih := float64(plotW-marginL-marginR), float64(plotH-marginT-marginB)
	px := func(p float64) float64 { return marginL + xOf(p)/4*iw }
	py := func(ms float64) float64 { return marginT + ih - math.Min(ms, ymax)/ymax*ih }

	var b strings.Builder
	fmt.Fprintf(&b, `<?xml version="1.0" encoding="UTF-8"?>`+"\n")
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", plotW, plotH, plotW, plotH)
	fmt.Fprintf(&b, `<rect x="0" y="0" width="%d" height="%d" fill="#ffffff"/>`+"\n", plotW, plotH)
	fmt.Fprintf(&b, `<text x="%d" y="28" font-size="16" font-weight="bold">%s</text>`+"\n", marginL, esc(title))
	// Grid and axes.
	for v := 0.0; v <= ymax+step/2; v += step {
		y := py(v)
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#e0e0e0"/>`+"\n", marginL, y, plotW-marginR, y)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", marginL-6, y+4, esc(trimFloat(v)))
	}
	for _, t := range []struct {
		p     float64
		label string
	}{{0, "0%"}, {90, "90%"}, {99, "99%"}, {99.9, "99.9%"}, {99.99, "99.99%"}} {
		x := px(t.p)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#e0e0e0"/>`+"\n", x, marginT, x, plotH-marginB)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", x, plotH-marginB+18, esc(t.label))
	}
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#000000"/>`+"\n", marginL, plotH-marginB, plotW-marginR, plotH-marginB)
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#000000"/>`+"\n", marginL, marginT, marginL, plotH-marginB)
	fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">percentile (log scale of 1/(1-p))</text>`+"\n", marginL+iw/2, plotH-16)
	fmt.Fprintf(&b, `<text x="18" y="%.1f" text-anchor="middle" transform="rotate(-90 18 %.1f)">latency (ms)</text>`+"\n", marginT+ih/2, marginT+ih/2)
	if len(series) == 0 {
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">no samples</text>`+"\n", marginL+iw/2, marginT+ih/2)
	}
	if len(series) > 0 {
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="#ffffff" fill-opacity="0.85" stroke="#cccccc"/>`+"\n",
			marginL+6, marginT+2, 430, 18*len(series)+6)
	}
	for i, r := range series {
		color := palette[i%len(palette)]
		var pts []string
		for _, p := range r.Curve {
			if p.Percentile > 99.99 {
				continue
			}
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(p.Percentile), py(p.US/1000)))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", color, strings.Join(pts, " "))
		ly := marginT + 14 + 18*i
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="14" height="4" fill="%s"/>`+"\n", marginL+12, ly-4, color)
		fmt.Fprintf(&b, `<text x="%d" y="%d">%s</text>`+"\n", marginL+32, ly+1,
			esc(fmt.Sprintf("%s  p50 %s  p99 %s  p99.9 %s", r.Name, FormatUS(r.Latency.P50US), FormatUS(r.Latency.P99US), FormatUS(r.Latency.P999US))))
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func trimFloat(v float64) string {
	s := fmt.Sprintf("%.3f", v)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return s
}
