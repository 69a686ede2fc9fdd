package load

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestSlowFigures checks CPU per read (none without reads or CPU figures) and the printed
// rounds: the edge's and the peer's p50/p99, ratios and CPU, a skipped peer, the cap probe.
func TestSlowFigures(t *testing.T) {
	if got := perRead(3*time.Millisecond, 20); got != 150 {
		t.Errorf("perRead(3ms, 20) = %v µs, want 150", got)
	}
	if perRead(time.Second, 0) != 0 || perRead(0, 10) != 0 {
		t.Errorf("perRead without reads or CPU should be 0")
	}
	cpu := func() map[string]time.Duration {
		return map[string]time.Duration{"nginx": time.Second, "store": time.Second / 2}
	}
	if got := cpuSum(cpu); got != 1500*time.Millisecond {
		t.Errorf("cpuSum = %s, want 1.5s", got)
	}
	sr := &SlowReport{Method: "m", CapProbe: 1100, CapHeld: 1024, CapCut: 76, Rounds: []SlowRound{
		{Name: "edge", BaseP50US: 800, BaseP99US: 1340, AttackP50US: 900, AttackP99US: 1850, P99Ratio: 1.38, BaseCPUPerReadUS: 40, AttackCPUPerReadUS: 95.5,
			LorisClosed: "min 5s", ReaderClosed: "min 13s", LoadAvg: [2]float64{2, 3}},
		{Name: "nginx + Lua + lrucache", BaseP99US: 1000, AttackP99US: 4000, P99Ratio: 4, AttackCPUPerReadUS: 60},
		{Name: "other", Skipped: "nginx not installed"},
	}}
	var out bytes.Buffer
	WriteSlow(&out, sr)
	for _, s := range []string{"edge                            0.80      1.34      0.90      1.85   1.38x        40.0        95.5  slowloris min 5s; slow readers min 13s",
		"load 2.00 -> 3.00", "nginx + Lua + lrucache", "4.00   4.00x", "other                      skipped: nginx not installed", "1100 connections from one address: 1024 held, 76 closed"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("printed slow rounds lack %q:\n%s", s, out.String())
		}
	}
}
