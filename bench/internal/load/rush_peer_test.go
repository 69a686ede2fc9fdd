package load

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestRushPeerFigures checks the peer round's arithmetic (CPU per attempt by process, Little's
// law, the ratios to the project's round) and the printed comparison.
func TestRushPeerFigures(t *testing.T) {
	by, total := cpuPer(map[string]time.Duration{"nginx": time.Second}, map[string]time.Duration{"nginx": 2 * time.Second, "store": time.Second / 2}, 10_000)
	if total != 150 || by["nginx"] != 100 || by["store"] != 50 {
		t.Errorf("cpuPer = %v, %v; want nginx 100, store 50, total 150", by, total)
	}
	if by, total := cpuPer(nil, map[string]time.Duration{"nginx": time.Second}, 0); by != nil || total != 0 {
		t.Errorf("cpuPer without requests = %v, %v; want nothing", by, total)
	}
	if got := littleMS(256, 2560); got != 100 {
		t.Errorf("littleMS(256, 2560) = %v, want 100", got)
	}
	p := &RushPeerReport{Method: "m", Workers: 256, Stock: 1000, SellOutS: 0.25, AttemptsPerS: 5120, AttemptP50US: 40_000, AttemptP99US: 200_000,
		AttemptOpenP99US: 100_000, LittleMS: 50, CPUPerAttemptUS: 100, CPUByProcessUS: map[string]float64{"nginx": 80, "store": 20},
		Answers: map[string]int64{"202": 1000, "410 sold_out": 99_000}, Streamed: 1000, Winners: 1000, RecordsOK: true}
	p.compare("rush-baseline", &RushReport{SellOutS: 0.5, OperationsPerS: 2560, AttemptP50US: 20_000, AttemptP99US: 100_000, AttemptOpenP99US: 300_000, CPUPerAttemptUS: 250, AttemptsSent: 20_000})
	if p.SellOutRatio != 2 || p.ThroughputRat != 0.5 || p.P50Ratio != 0.5 || p.P99Ratio != 0.5 || p.OpenP99Ratio != 3 || p.CPURatio != 2.5 || p.Ours.LittleMS != 100 {
		t.Errorf("ratios %+v", p)
	}
	var out bytes.Buffer
	WriteRushPeer(&out, p)
	for _, s := range []string{"edge (rush-baseline)", "nginx + Lua admission", "0.25s", "100.0      250.0µs", "2.00x sold-out time, 0.50x ops/s, 0.50x p50, 0.50x p99, 3.00x p99 while open, 2.50x CPU",
		"nginx 80.0, store 20.0", "the edge's 20000 attempts posted", "1000 stream entries, 1000 users admitted, 0 units left of 1000: OK"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("printed peer round lacks %q:\n%s", s, out.String())
		}
	}
	out.Reset()
	WriteRushPeer(&out, &RushPeerReport{Method: "m", Skipped: "nginx not installed"})
	if !strings.Contains(out.String(), "skipped: nginx not installed") {
		t.Errorf("skipped round printed as:\n%s", out.String())
	}
}
