package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"flashedge/bench/internal/compare"
)

// TestBenchrunEndToEnd builds benchrun and the ceiling server and runs benchrun in a tiny mode
// (1 s rows, ceiling and nginx rows only, no freshness) on loopback: it proves the harness starts
// the store and servers, runs wrk, parses it, and writes the table and the JSON.
func TestBenchrunEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts servers and runs wrk; skipped with -short")
	}
	if _, err := exec.LookPath("wrk"); err != nil {
		t.Skip("wrk not installed (make deps-bench installs it)")
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatal("redis-server not installed (make test installs it)")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not on PATH; cannot build the binaries")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	bin := t.TempDir()
	build := exec.CommandContext(ctx, goBin, "build", "-o", bin+string(os.PathSeparator), "flashedge/bench/cmd/benchrun", "flashedge/bench/cmd/ceiling")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	jsonPath := filepath.Join(t.TempDir(), "out", "bench.json")
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "benchrun"), "-bin", bin, "-duration", "2s", "-warmup", "0", "-rounds", "1",
		"-connections", "8", "-fresh-updates", "0", "-memory-products", "", "-out", jsonPath,
		"-rows", strings.Join([]string{compare.RowCeiling, compare.RowCeilingPost, compare.RowNginxProduct, compare.RowNginxLRUSoldOut}, ","))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("benchrun: %v\n%s", err, out.String())
	}
	for _, want := range []string{"requests/s", "pinning:", "machine:", "goal: edge product read >= 0.9 x ceiling: n/a", "taskset"} {
		if want == "taskset" && !strings.Contains(out.String(), "pinning: taskset") {
			continue // not pinned here: the output says why instead
		}
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}

	b, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatalf("report JSON: %v", err)
	}
	var rep compare.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("report JSON: %v", err)
	}
	if len(rep.Rows) != 4 {
		t.Fatalf("report has %d rows, want 4: %s", len(rep.Rows), b)
	}
	for _, r := range rep.Rows {
		if r.Skipped != "" {
			if strings.HasPrefix(r.Name, compare.RowCeiling) {
				t.Errorf("ceiling row skipped: %s", r.Skipped)
			}
			continue // nginx not installed: the row says so
		}
		if r.Result == nil || r.Result.Requests == 0 || r.Result.RequestsPerS <= 0 || r.Result.LatencyUS.P99 <= 0 {
			t.Errorf("row %s measured nothing: %+v", r.Name, r.Result)
		}
		if len(r.Errors) > 0 {
			t.Errorf("row %s flagged errors: %v", r.Name, r.Errors)
		}
		if r.CPU == nil || r.CPU.PerRequestUS <= 0 {
			t.Errorf("row %s has no CPU per answer: %+v", r.Name, r.CPU)
		}
	}
	for _, r := range rep.Rows[:2] {
		if r.CPURatio == nil || *r.CPURatio != 1 {
			t.Errorf("%s CPU ratio to itself = %v, want 1", r.Name, r.CPURatio)
		}
	}
	if rep.Rows[0].RatioToCeiling == nil || *rep.Rows[0].RatioToCeiling != 1 {
		t.Errorf("ceiling's ratio to itself = %v, want 1", rep.Rows[0].RatioToCeiling)
	}
}
