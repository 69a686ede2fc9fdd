package compare

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"flashedge/bench/internal/fresh"
	"flashedge/bench/internal/wrkrun"
)

func rowWith(name string, rps float64) Row {
	return Row{Name: name, Title: name, Result: &wrkrun.Result{RequestsPerS: rps, Requests: int64(rps)}}
}

func TestFinishRatiosAndGoals(t *testing.T) {
	rep := &Report{Rows: []Row{
		rowWith(RowCeiling, 100_000),
		rowWith(RowEdgeProduct, 95_000),
		{Name: RowEdgeSoldOut, Title: "sold out", Skipped: "no route"},
		rowWith(RowNginxProduct, 20_000),
		rowWith(RowNginxLRUProduct, 100_000),
	}}
	rep.finish()
	if v := rep.Rows[1].RatioToCeiling; v == nil || *v != 0.95 {
		t.Errorf("edge ratio to ceiling = %v, want 0.95", v)
	}
	want := map[string]string{
		"edge product read >= 0.9 x ceiling":                               "met",
		"edge sold-out answer >= 0.9 x ceiling":                            "n/a",
		"edge product read >= 3.5 x nginx+lua (store read per request)":    "met",
		"edge product read >= 1.0 x nginx+lua+lrucache":                    "NOT met",
		"edge sold-out answer >= 3.5 x nginx+lua (store read per request)": "n/a",
	}
	got := map[string]string{}
	for _, g := range rep.Goals {
		switch {
		case g.Met == nil:
			got[g.Text] = "n/a"
		case *g.Met:
			got[g.Text] = "met"
		default:
			got[g.Text] = "NOT met"
		}
	}
	for text, w := range want {
		if got[text] != w {
			t.Errorf("goal %q = %q, want %q", text, got[text], w)
		}
	}
	var buf bytes.Buffer
	rep.Print(&buf)
	for _, s := range []string{"goal: edge product read >= 0.9 x ceiling: met (0.95)", "edge product read / nginx+lua (store read per request)", "4.75x", "skipped: no route"} {
		if !strings.Contains(buf.String(), s) {
			t.Errorf("printed report lacks %q:\n%s", s, buf.String())
		}
	}
}

func TestPick(t *testing.T) {
	run := func(rps, other float64) measured {
		return measured{Result: wrkrun.Result{RequestsPerS: rps}, cpu: &CPUUse{ServerCore: 100, OtherOnServerCore: other, LoadCore: 90}}
	}
	tests := []struct {
		name string
		runs []measured
		want float64
	}{
		{"calm runs only", []measured{run(100, 1), run(50, 40), run(90, 3), run(95, 30)}, 90},
		{"all calm: median", []measured{run(100, 0), run(80, 0), run(90, 0)}, 90},
		{"one calm run", []measured{run(40, 0), run(100, 30)}, 40},
		{"no accounting: median", []measured{{Result: wrkrun.Result{RequestsPerS: 3}}, {Result: wrkrun.Result{RequestsPerS: 1}}, {Result: wrkrun.Result{RequestsPerS: 2}}}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := pick(tt.runs).RequestsPerS; got != tt.want {
				t.Errorf("pick = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestMedian(t *testing.T) {
	runs := []measured{{Result: wrkrun.Result{RequestsPerS: 3}}, {Result: wrkrun.Result{RequestsPerS: 1}}, {Result: wrkrun.Result{RequestsPerS: 2}}}
	if got := median(runs).RequestsPerS; got != 2 {
		t.Errorf("median of 3,1,2 = %v, want 2", got)
	}
	if got := median(runs[:2]).RequestsPerS; got != 1 {
		t.Errorf("median of 3,1 = %v, want the lower middle 1", got)
	}
	if runs[0].RequestsPerS != 3 {
		t.Error("median reordered its argument")
	}
}

func TestCPUGoalsCompareLikeWithLike(t *testing.T) {
	withCPU := func(name string, rps, us float64) Row {
		r := rowWith(name, rps)
		r.CPU = &CPUUse{PerRequestUS: us}
		return r
	}
	rep := &Report{Rows: []Row{
		withCPU(RowCeiling, 100_000, 10),
		withCPU(RowCeilingPost, 90_000, 11),
		withCPU(RowEdgeProduct, 90_000, 11.5),
		withCPU(RowEdgeSoldOut, 80_000, 14),
		withCPU(RowNginxLRUProduct, 95_000, 12),
	}}
	rep.finish()
	if r := rep.Rows[3]; r.CPURatioTo != RowCeilingPost || r.CPURatio == nil || *r.CPURatio != 14.0/11 {
		t.Errorf("sold-out CPU ratio = %v to %s, want 14/11 to the POST ceiling", r.CPURatio, r.CPURatioTo)
	}
	want := map[string]bool{
		"edge product read CPU per answer <= 1.15 x ceiling":           true,
		"edge product read CPU per answer <= 1.0 x nginx+lua+lrucache": true,
		"edge sold-out answer CPU per answer <= 1.2 x POST ceiling":    false,
	}
	for _, g := range rep.Goals {
		w, ok := want[g.Text]
		if !ok {
			continue
		}
		delete(want, g.Text)
		if g.Met == nil || *g.Met != w {
			t.Errorf("goal %q met = %v, want %v (value %v)", g.Text, g.Met, w, g.Value)
		}
	}
	if len(want) > 0 {
		t.Errorf("goals missing: %v", want)
	}
	var buf bytes.Buffer
	rep.Print(&buf)
	if !strings.Contains(buf.String(), "11.50us") || !strings.Contains(buf.String(), "1.27x") {
		t.Errorf("printed report lacks the CPU per answer (11.50us) or its ratio (1.27x):\n%s", buf.String())
	}
}

// TestCapacityAndFreshnessGoals: the capacity check is met within 20 % either way and not beyond,
// nor with errors; freshness is met only when every edge's p99 is within the goal.
func TestCapacityAndFreshnessGoals(t *testing.T) {
	for _, tc := range []struct {
		name   string
		ratio  float64
		errs   []string
		p99    []float64
		wantCp bool
		wantFr bool
	}{
		{"close and fresh", 1.15, nil, []float64{1.2, 4.9, 3}, true, true},
		{"low and one stale edge", 0.79, nil, []float64{1.2, 5.1, 3}, false, false},
		{"high", 1.21, nil, []float64{0.5}, false, true},
		{"close but wrk saw errors", 1.0, []string{"3 socket errors"}, []float64{0.5}, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := &Report{Capacity: &Capacity{Cores: 2, MeasuredRPS: 1000, Ratio: tc.ratio, Errors: tc.errs}, Freshness: &Freshness{}}
			for i, p := range tc.p99 {
				rep.Freshness.Results = append(rep.Freshness.Results, fresh.Result{Name: fmt.Sprint("edge ", i+1), P99MS: p, Count: 10})
			}
			rep.finish()
			got := map[string]bool{}
			for _, g := range rep.Goals {
				if g.Met == nil {
					continue
				}
				switch {
				case strings.HasPrefix(g.Text, "capacity model"):
					got["capacity"] = *g.Met
				case strings.HasPrefix(g.Text, "freshness p99"):
					got["freshness"] = *g.Met
				}
			}
			if got["capacity"] != tc.wantCp || got["freshness"] != tc.wantFr {
				t.Errorf("ratio %.2f errors %v, p99 %v: goals met %v, want capacity %v freshness %v", tc.ratio, tc.errs, tc.p99, got, tc.wantCp, tc.wantFr)
			}
			var b bytes.Buffer
			rep.Print(&b)
			if !strings.Contains(b.String(), "capacity model self-check") {
				t.Errorf("the printed report has no capacity section:\n%s", b.String())
			}
		})
	}
}

// TestMemoryPeerPrinted checks the memory rows print the edge's and the peer's RSS, CPU per
// read and the ratio, and that CPU ticks per read turn into microseconds.
func TestMemoryPeerPrinted(t *testing.T) {
	if got := perRead(0, 0); got != 0 {
		t.Errorf("perRead without reads = %v, want 0", got)
	}
	rep := &Report{Memory: []Memory{{Products: 10_000, Reads: 10_000, RSSMiB: 43.4, BeforeMiB: 30, CPUPerReadUS: 20,
		Peer: &MemoryPeer{Reads: 10_000, RSSMiB: 62, BeforeMiB: 20, CPUPerReadUS: 35, CacheItems: 110_000}, RSSRatio: 0.7}}}
	var out bytes.Buffer
	rep.Print(&out)
	for _, s := range []string{"10000 products: edge   43.4 MiB (30.0 MiB before; 10000 reads, 0 failed; 20.0 µs CPU per read, edge + store)",
		"nginx   62.0 MiB (20.0 MiB before; 10000 reads, 0 failed; 35.0 µs CPU per read, nginx + store; lrucache of 110000 items); edge / nginx 0.70x"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("printed memory rows lack %q:\n%s", s, out.String())
		}
	}
}
