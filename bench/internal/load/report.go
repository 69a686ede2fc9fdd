package load

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Report is everything one run measured; the table, the JSON file and the plot are views of it.
type Report struct {
	Tool      string      `json:"tool"`
	StartedAt time.Time   `json:"started_at"`
	Command   string      `json:"command"`
	Target    string      `json:"target"`
	Spawned   bool        `json:"spawned"`
	Machine   Machine     `json:"machine"`
	Notes     []string    `json:"notes"`
	Rows      []RowReport `json:"rows"`
	Rush      *RushReport `json:"rush,omitempty"`
	// Baseline is the rush round without bots when the rush ran with -bots.
	Baseline *RushReport     `json:"rush_baseline,omitempty"`
	WaitRoom *WaitRoomReport `json:"waitroom,omitempty"`
	// Admit is the write path's account (the admit scenario).
	Admit *AdmitReport `json:"admit,omitempty"`
	// Stress is the stress scenario's levels with their CPU per add.
	Stress []StressLevel `json:"stress,omitempty"`
	// RushPeer is the rush's round against the nginx + Lua admission.
	RushPeer *RushPeerReport `json:"rush_peer,omitempty"`
	// Slow is the slow-client scenario's rounds (the edge, the nginx peer).
	Slow *SlowReport `json:"slow,omitempty"`
	// OK is false when an invariant failed or a scenario could not run.
	OK       bool     `json:"ok"`
	Failures []string `json:"failures,omitempty"`
}

// Machine describes where the run happened.
type Machine struct {
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpu_model,omitempty"`
	OS        string `json:"os"`
	Arch      string `json:"arch"`
	GoVersion string `json:"go_version"`
}

// Latency is a row's latency summary in microseconds.
type Latency struct {
	MeanUS float64 `json:"mean_us"`
	MinUS  float64 `json:"min_us"`
	P50US  float64 `json:"p50_us"`
	P90US  float64 `json:"p90_us"`
	P99US  float64 `json:"p99_us"`
	P999US float64 `json:"p999_us"`
	MaxUS  float64 `json:"max_us"`
}

// CurvePoint is one point of a latency-by-percentile curve.
type CurvePoint struct {
	Percentile float64 `json:"percentile"`
	US         float64 `json:"us"`
}

// RowReport is one table row.
type RowReport struct {
	Name        string  `json:"name"`
	Scenario    string  `json:"scenario"`
	Requests    int64   `json:"requests"`
	OK          int64   `json:"ok"`
	SuccessRate float64 `json:"success_rate"`
	ElapsedS    float64 `json:"elapsed_s"`
	RPS         float64 `json:"requests_per_s"`
	Latency     Latency `json:"latency"`
	// Answers counts the expected answers by status code; Errors counts unexpected status codes
	// and requests without an answer (timeout, connection, other).
	Answers map[string]int64 `json:"answers"`
	Errors  map[string]int64 `json:"errors"`
	Curve   []CurvePoint     `json:"curve"`
}

func us(d time.Duration) float64 { return math.Round(float64(d)/float64(time.Microsecond)*10) / 10 }

// curveQuantiles runs from 0 to 99.99 % in steps even on a log scale of 1/(1-q).
func curveQuantiles() []float64 {
	var qs []float64
	for k := 0; k <= 40; k++ {
		qs = append(qs, 1-math.Pow(10, -float64(k)/10))
	}
	return append(qs, 1)
}

// Snapshot summarizes r; elapsed is the phase's wall time for requests/s (zero: the row's own
// window from first request to last answer).
func (r *Row) Snapshot(elapsed time.Duration) RowReport {
	req, ok, _ := r.Counts()
	if elapsed <= 0 {
		elapsed = r.Window()
	}
	h := r.hist
	rep := RowReport{
		Name: r.Name, Scenario: r.Scenario, Requests: req, OK: ok, ElapsedS: math.Round(elapsed.Seconds()*1000) / 1000,
		Latency: Latency{MeanUS: us(h.Mean()), MinUS: us(h.Min()), P50US: us(h.Quantile(0.5)), P90US: us(h.Quantile(0.9)),
			P99US: us(h.Quantile(0.99)), P999US: us(h.Quantile(0.999)), MaxUS: us(h.Max())},
	}
	if req > 0 {
		rep.SuccessRate = float64(ok) / float64(req)
	}
	if elapsed > 0 {
		rep.RPS = math.Round(float64(req)/elapsed.Seconds()*10) / 10
	}
	rep.Answers, rep.Errors = r.breakdown()
	if h.Count() > 0 {
		for _, q := range curveQuantiles() {
			rep.Curve = append(rep.Curve, CurvePoint{Percentile: math.Round(q*1e6) / 1e4, US: us(h.Quantile(q))})
		}
	}
	return rep
}

// FormatUS prints a latency in µs with a unit that keeps it short: 412µs, 3.41ms, 1.20s.
func FormatUS(v float64) string {
	switch {
	case v < 1000:
		return fmt.Sprintf("%.0fµs", v)
	case v < 1e6:
		return fmt.Sprintf("%.2fms", v/1000)
	}
	return fmt.Sprintf("%.2fs", v/1e6)
}

func formatCounts(m map[string]int64) string {
	if len(m) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s:%d", k, m[k])
	}
	return strings.Join(parts, " ")
}

// WriteTable prints rows as the seed's stress table: requests, success rate, mean, p50, p99,
// p99.9 latency, requests/s, the expected answers by status and the errors by kind. Numbers are
// right-aligned, names and counts left-aligned.
func WriteTable(w io.Writer, rows []RowReport) error {
	cells := [][]string{{"row", "requests", "success", "mean", "p50", "p99", "p99.9", "req/s", "answers", "errors"}}
	for _, r := range rows {
		cells = append(cells, []string{r.Name, fmt.Sprint(r.Requests), fmt.Sprintf("%.2f%%", r.SuccessRate*100),
			FormatUS(r.Latency.MeanUS), FormatUS(r.Latency.P50US), FormatUS(r.Latency.P99US), FormatUS(r.Latency.P999US),
			fmt.Sprintf("%.0f", r.RPS), formatCounts(r.Answers), formatCounts(r.Errors)})
	}
	width := make([]int, len(cells[0]))
	for _, row := range cells {
		for i, c := range row {
			width[i] = max(width[i], utf8.RuneCountInString(c))
		}
	}
	var b strings.Builder
	for _, row := range cells {
		for i, c := range row {
			pad := strings.Repeat(" ", width[i]-utf8.RuneCountInString(c))
			if i > 0 {
				b.WriteString("  ")
			}
			switch {
			case i == 0 || i >= 8: // text columns
				b.WriteString(c)
				if i < len(row)-1 {
					b.WriteString(pad)
				}
			default:
				b.WriteString(pad + c)
			}
		}
		b.WriteByte('\n')
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteJSON writes rep to path (its directory is created), indented.
func WriteJSON(path string, rep *Report) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
