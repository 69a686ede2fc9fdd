package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"flashedge/bench/internal/load"
)

func TestRunRefusesBadInput(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"remote host", []string{"-url", "http://example.com:8000"}, "not a loopback address"},
		{"private address", []string{"-url", "http://10.1.2.3:8000", "-scenario", "rush"}, "not a loopback address"},
		{"https", []string{"-url", "https://127.0.0.1:8000"}, "only http://"},
		{"unknown scenario", []string{"-url", "http://127.0.0.1:1", "-scenario", "nap"}, "unknown scenario"},
		{"bad level", []string{"-levels", "100,x"}, "-levels"},
		{"bad difficulty", []string{"-difficulty", "40"}, "-difficulty"},
		{"bad progress", []string{"-progress", "loud"}, "-progress"},
		{"stray argument", []string{"rush"}, "unexpected arguments"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := run(ctx, c.args, func(string) string { return "" }, &out)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("run(%q) = %v, want an error saying %q\n%s", c.args, err, c.want, out.String())
			}
		})
	}
}

// TestRushEndToEnd builds the real binaries and load, and runs a tiny rush with -spawn: 300
// attempts from 60 shoppers for 20 units with 4-bit proof of work, against the edge's default
// limits, as a baseline round and a round with 2 bot addresses. The invariants must hold in both,
// the bots' wins stay within their bound, the exit code must be 0, and the JSON and SVG must parse.
func TestRushEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server and every binary; skipped with -short")
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
	build := exec.CommandContext(ctx, goBin, "build", "-o", bin+string(os.PathSeparator),
		"flashedge/edge/cmd/edge", "flashedge/backend/cmd/catalog", "flashedge/backend/cmd/cart",
		"flashedge/backend/cmd/order", "flashedge/backend/cmd/worker", "flashedge/bench/cmd/load")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	dir := t.TempDir()
	jsonPath, plotPath := filepath.Join(dir, "rush.json"), filepath.Join(dir, "rush.svg")
	start := time.Now()
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "load"), "-spawn", "-bin", bin, "-scenario", "rush",
		"-attempts", "300", "-users", "60", "-stock", "20", "-shards", "4", "-difficulty", "4", "-concurrency", "32",
		"-soldout-duration", "500ms", "-bots", "2", "-progress", "lines", "-progress-every", "1s", "-json", jsonPath, "-plot", plotPath)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	t.Logf("load ran %v", time.Since(start).Round(time.Millisecond))
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		t.Fatalf("load exited %d, want 0:\n%s", exit.ExitCode(), out.String())
	}
	if err != nil {
		t.Fatalf("load: %v\n%s", err, out.String())
	}
	text := out.String()
	for _, want := range []string{"invariants: OK", "runs with its default limits", "rush/attempt", "rush-baseline/attempt",
		"bots refused:", "bots' wins:", "honest success:", "invariants:           baseline OK, bot mix OK", "p99.9", "time to sell out", "sold-out answers:",
		"attempts while open:", "server side:", "edge -> order:", "CPU over the phase:", "rush-baseline/challenge-ahead"} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}

	raw, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var rep load.Report
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatalf("JSON report: %v\n%s", err, raw)
	}
	if !rep.OK || rep.Rush == nil || !rep.Rush.InvariantsOK || rep.Rush.Won != 20 || !rep.Spawned {
		t.Fatalf("JSON report: ok %v, rush %+v", rep.OK, rep.Rush)
	}
	// Every shopper solved a challenge ahead; the servers' view counts the attempts the order
	// service received (at least the admitted ones) from its own metrics.
	if rr := rep.Rush; rr.SolvedAhead != 60 || rr.Server == nil || rr.Server.Forwarded < rr.Admitted || rr.Server.EdgeAttempts < rr.AttemptsSent {
		t.Fatalf("JSON report: solved ahead %d (want 60), admitted %d, attempts sent %d, server view %+v", rr.SolvedAhead, rr.Admitted, rr.AttemptsSent, rr.Server)
	}
	if b := rep.Rush.Bots; b == nil || b.Addresses != 2 || b.Users != 4 || b.Requests == 0 || b.Won > b.WinBound || b.WinBound != 4 ||
		rep.Baseline == nil || !rep.Baseline.InvariantsOK || rep.Baseline.Won != 20 || rep.Baseline.Bots.Requests != 0 {
		t.Fatalf("JSON report: bots %+v, baseline %+v", rep.Rush.Bots, rep.Baseline)
	}
	svg, err := os.ReadFile(plotPath)
	if err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(bytes.NewReader(svg))
	for {
		if _, err := dec.Token(); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("SVG plot does not parse: %v", err)
		}
	}
}
