package load

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestStressFigures checks the arithmetic of a stress level: CPU per add summed over the stack's
// processes and split by process, the load tool's own share beside it (not in the sum), store
// commands and scripts per add, and the printed line.
func TestStressFigures(t *testing.T) {
	a := stressSnap{admitSnap{cpu: map[string]time.Duration{"edge": time.Second, "cart": 0, "store": 0}, cmds: 10, scripts: 1, storeCountsRead: true}, time.Second}
	b := stressSnap{admitSnap{cpu: map[string]time.Duration{"edge": 2 * time.Second, "cart": time.Second, "store": time.Second / 2}, cmds: 10 + 30_000, scripts: 1 + 10_000, storeCountsRead: true}, 1500 * time.Millisecond}
	l := StressLevel{Clients: 100, AddsPS: 1000, SuccessRate: 1, LoadAvg: [2]float64{0.5, 1}}
	l.fill(a, b, 10_000)
	want := map[string]float64{"edge": 100, "cart": 100, "store": 50, "load": 50}
	for p, us := range want {
		if l.CPUByProcessUS[p] != us {
			t.Errorf("CPU per add of %s = %v µs, want %v (all: %v)", p, l.CPUByProcessUS[p], us, l.CPUByProcessUS)
		}
	}
	if l.CPUPerAddUS != 250 || l.StoreCmdsPerAdd != 3 || l.StoreScriptsPerAdd != 1 {
		t.Errorf("CPU per add %v µs, store commands %v, scripts %v; want 250 (the load tool not in it), 3 and 1", l.CPUPerAddUS, l.StoreCmdsPerAdd, l.StoreScriptsPerAdd)
	}
	var none StressLevel
	none.fill(a, b, 0)
	if none.CPUPerAddUS != 0 || none.CPUByProcessUS != nil {
		t.Errorf("no adds: got %+v, want no figures", none)
	}
	peer := StressLevel{Clients: 100, AddsPS: 2000, SuccessRate: 1, P99US: 5000, CPUPerAddUS: 100, CPUByProcessUS: map[string]float64{"nginx": 60, "store": 40}}
	l.P99US = 10_000
	l.setPeer(peer)
	if l.AddsRatio != 0.5 || l.P99Ratio != 2 || l.CPURatio != 2.5 {
		t.Errorf("ratios to the peer: adds/s %v, p99 %v, CPU %v; want 0.5, 2 and 2.5", l.AddsRatio, l.P99Ratio, l.CPURatio)
	}
	skipped := StressLevel{Clients: 500, PeerSkipped: "nginx not installed"}
	var out bytes.Buffer
	WriteStress(&out, []StressLevel{l, skipped})
	for _, s := range []string{"100.00%", "250.0", "cart 100.0, edge 100.0, load 50.0, store 50.0", "load 0.50 -> 1.00",
		"nginx       100      2000", "nginx 60.0, store 40.0", "edge / nginx: 0.50x adds/s, 2.00x p99, 2.50x CPU per add", "500  skipped: nginx not installed"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("printed stress table lacks %q:\n%s", s, out.String())
		}
	}
}
