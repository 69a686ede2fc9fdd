package compare

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"flashedge/bench/internal/cpustat"
	"flashedge/bench/internal/wrkrun"
	"flashedge/shared/proc"
)

// CapacityGoal is how close the capacity model's prediction must come to the throughput
// measured (deploy/CAPACITY.md's self-check): within 20 %.
const CapacityGoal = 0.20

// Capacity is deploy/CAPACITY.md's model checked against this machine. The model says a load of
// R requests/s needs R × c cores, c being the CPU time per answer of everything on the request
// path; so C cores answer C / c requests/s. c is measured on one core (the edge, the store and
// wrk all pinned to the server CPU, each one's CPU time counted), and the prediction for the whole
// machine (a second edge and wrk sharing every core, nothing pinned) is compared with a run of
// exactly that.
type Capacity struct {
	// Cores is the machine's CPU count, the cores the prediction is for.
	Cores int `json:"cores"`
	// ServerUS and LoadUS are the CPU per answer of the edge + store and of wrk, measured with
	// all three on one core (CostCommand) just before the shared run.
	ServerUS float64 `json:"server_cpu_us"`
	LoadUS   float64 `json:"wrk_cpu_us"`
	// PredictedRPS is Cores / (ServerUS + LoadUS): every core busy with this path.
	PredictedRPS float64 `json:"predicted_rps"`
	// AvailableCores is Cores less what other processes used during the run, and
	// PredictedAvailableRPS the prediction for those (equal to PredictedRPS on a quiet machine).
	AvailableCores        float64 `json:"available_cores"`
	PredictedAvailableRPS float64 `json:"predicted_available_rps"`
	// MeasuredRPS is the run's throughput, and Ratio MeasuredRPS / PredictedAvailableRPS
	// (RatioAll the same over PredictedRPS).
	MeasuredRPS float64 `json:"measured_rps"`
	Ratio       float64 `json:"ratio"`
	RatioAll    float64 `json:"ratio_all_cores"`
	// ServerUSShared and LoadUSShared are the CPU per answer measured in the shared run itself.
	ServerUSShared float64 `json:"server_cpu_us_shared"`
	LoadUSShared   float64 `json:"wrk_cpu_us_shared"`
	Command        string  `json:"command,omitempty"`
	CostCommand    string  `json:"cost_command,omitempty"`
	// RoundRatios are every round's Ratio; the fields above are the median round's.
	RoundRatios []float64 `json:"round_ratios,omitempty"`
	Skipped     string    `json:"skipped,omitempty"`
	Errors      []string  `json:"errors,omitempty"`
}

// capacity runs the self-check: a second edge, not pinned (GOMAXPROCS = every core), on the same
// store, read by wrk with one thread per core, not pinned either, for the rows' duration.
func (r *runner) capacity(ctx context.Context) {
	c := &Capacity{Cores: runtime.NumCPU()}
	switch {
	case r.edgeBin == "" || r.edgeBase == "":
		c.Skipped = "edge binary not built"
	case r.cfg.ServerCPU == "" || r.cfg.LoadCPU == "":
		c.Skipped = "servers and wrk are not pinned apart (-pin=false, no taskset or one CPU): no cost to predict from"
	case !r.cfg.wants(RowEdgeProduct):
		c.Skipped = "the edge product row was not asked for"
	}
	r.rep.Capacity = c
	if c.Skipped != "" {
		r.logf("capacity check: skipped: %s", c.Skipped)
		return
	}

	addr, err := proc.FreeAddr()
	if err != nil {
		c.Skipped = err.Error()
		return
	}
	env := append(append([]string{}, r.edgeEnv...), "FLASHEDGE_EDGE_LISTEN="+addr)
	p, err := proc.Start(proc.Spec{Name: "edge-shared", Path: r.edgeBin, Env: append(os.Environ(), env...), Log: filepath.Join(r.dir, "edge-shared.log")})
	if err != nil {
		c.Skipped = err.Error()
		return
	}
	defer p.Stop(10 * time.Second)
	base := "http://" + addr
	if err := p.WaitHTTP(ctx, base+"/ready", 60*time.Second); err != nil {
		c.Skipped = err.Error()
		return
	}
	r.pidOf["edge-shared"] = p.Pid()
	r.pids = append(r.pids, p.Pid())
	defer func() { r.pids = slices.DeleteFunc(r.pids, func(x int) bool { return x == p.Pid() }) }()
	req := request{Method: "GET", URL: base + "/api/v1/products/" + r.cfg.ProductID, Headers: productHeaders}
	if pr, err := probe(req); err != nil || pr.Status != http.StatusOK {
		c.Skipped = fmt.Sprintf("probe of the shared edge: %d %v", pr.Status, err)
		return
	}
	pinned := wrkrun.Options{Threads: r.cfg.Threads, Connections: r.cfg.Connections, Duration: r.cfg.Duration,
		URL: r.edgeBase + "/api/v1/products/" + r.cfg.ProductID, CPU: r.cfg.ServerCPU}
	o := wrkrun.Options{Threads: c.Cores, Connections: r.cfg.Connections, Duration: r.cfg.Warmup, URL: req.URL}
	for k, v := range productHeaders {
		o.Headers = append(o.Headers, k+": "+v)
		pinned.Headers = append(pinned.Headers, k+": "+v)
	}
	if o.Duration > 0 {
		_, _, _ = wrkrun.Run(ctx, o)
	}
	o.Duration = r.cfg.Duration
	c.Command = shellJoin(o.Argv())
	c.CostCommand = shellJoin(pinned.Argv())
	// As many rounds as the rows ran, each measuring the cost on one core and right after it the
	// shared run, so both see the same spell of a shared machine; the round with the median ratio
	// is reported.
	var rounds []Capacity
	for round := range r.cfg.Rounds {
		r.logf("capacity check (round %d/%d): %s (edge, store and wrk on all %d cores)", round+1, r.cfg.Rounds, c.Command, c.Cores)
		one, err := r.capacityRound(ctx, pinned, o, *c)
		if err != nil {
			c.Errors = append(c.Errors, err.Error())
			continue
		}
		rounds = append(rounds, one)
		r.logf("capacity check: predicted %.0f requests/s on the %.2f cores other processes left, measured %.0f: ratio %.2f",
			one.PredictedAvailableRPS, one.AvailableCores, one.MeasuredRPS, one.Ratio)
	}
	if len(rounds) == 0 {
		c.Skipped = "no round of the shared run answered"
		return
	}
	slices.SortFunc(rounds, func(a, b Capacity) int { return cmp.Compare(a.Ratio, b.Ratio) })
	med := rounds[(len(rounds)-1)/2]
	med.Errors = append(med.Errors, c.Errors...)
	for _, one := range rounds {
		med.RoundRatios = append(med.RoundRatios, math.Round(one.Ratio*100)/100)
	}
	*c = med
}

// capacityRound measures the cost per answer with wrk pinned to the pinned edge's core, predicts
// the shared run's throughput from it, then runs wrk against the shared edge.
func (r *runner) capacityRound(ctx context.Context, pinned, o wrkrun.Options, c Capacity) (Capacity, error) {
	before := r.snapshot()
	res, _, err := wrkrun.Run(ctx, pinned)
	after := r.snapshot()
	if err != nil {
		return c, err
	}
	sec, ok := r.underTest(before, after, []string{"edge", "store"})
	if !ok || res.Requests == 0 || res.CPUSeconds == 0 {
		return c, fmt.Errorf("the cost run measured no CPU per answer (%d answers)", res.Requests)
	}
	c.ServerUS = 1e6 * sec / float64(res.Requests)
	c.LoadUS = 1e6 * res.CPUSeconds / float64(res.Requests)
	c.PredictedRPS = float64(c.Cores) * 1e6 / (c.ServerUS + c.LoadUS)

	procs := []string{"edge-shared", "store"}
	before, wallBefore := r.snapshot(), time.Now()
	res, _, err = wrkrun.Run(ctx, o)
	after, wall := r.snapshot(), time.Since(wallBefore)
	if err != nil {
		return c, err
	}
	if res.Requests == 0 || wall <= 0 {
		return c, fmt.Errorf("the shared run answered nothing")
	}
	if res.SocketErrors > 0 || res.Timeouts > 0 || res.Non2xx3xx > 0 {
		c.Errors = append(c.Errors, fmt.Sprintf("%d socket errors, %d timeouts, %d answers not 2xx/3xx", res.SocketErrors, res.Timeouts, res.Non2xx3xx))
	}
	c.MeasuredRPS = res.RequestsPerS
	sec, ok = r.underTest(before, after, procs)
	if !ok {
		return c, fmt.Errorf("no CPU accounting (/proc unreadable)")
	}
	c.ServerUSShared = 1e6 * sec / float64(res.Requests)
	c.LoadUSShared = 1e6 * res.CPUSeconds / float64(res.Requests)
	// What other processes took: every core's busy time less ours (edge, store, wrk).
	var busy uint64
	for n, b := range after.cpus {
		busy += b.Busy - before.cpus[n].Busy
	}
	other := max(0, float64(busy)/cpustat.TicksPerSecond-sec-res.CPUSeconds) / wall.Seconds()
	c.AvailableCores = max(0.1, float64(c.Cores)-other)
	c.PredictedAvailableRPS = c.AvailableCores * 1e6 / (c.ServerUS + c.LoadUS)
	c.Ratio = c.MeasuredRPS / c.PredictedAvailableRPS
	c.RatioAll = c.MeasuredRPS / c.PredictedRPS
	return c, nil
}

// printCapacity writes the self-check's lines.
func printCapacity(w io.Writer, c *Capacity) {
	fmt.Fprintln(w, "\ncapacity model self-check (deploy/CAPACITY.md: C cores answer C / (CPU per answer of the whole path) requests/s):")
	if c.Skipped != "" {
		fmt.Fprintf(w, "  skipped: %s\n", c.Skipped)
		return
	}
	fmt.Fprintf(w, "  cost on one core (edge, store and wrk on CPU 0: %s): edge + store %.2f us + wrk %.2f us = %.2f us per answer\n",
		c.CostCommand, c.ServerUS, c.LoadUS, c.ServerUS+c.LoadUS)
	fmt.Fprintf(w, "  predicted on %d cores: %.0f requests/s; other processes left %.2f cores: %.0f requests/s\n",
		c.Cores, c.PredictedRPS, c.AvailableCores, c.PredictedAvailableRPS)
	fmt.Fprintf(w, "  measured, edge + store + wrk sharing every core: %.0f requests/s (%s)\n", c.MeasuredRPS, c.Command)
	fmt.Fprintf(w, "  measured / predicted: %.2f (%.2f against all %d cores); CPU per answer in that run: edge + store %.2f us, wrk %.2f us\n",
		c.Ratio, c.RatioAll, c.Cores, c.ServerUSShared, c.LoadUSShared)
	if len(c.RoundRatios) > 1 {
		fmt.Fprintf(w, "  ratio by round: %v (the median round is shown)\n", c.RoundRatios)
	}
	for _, e := range c.Errors {
		fmt.Fprintf(w, "  ERROR: %s\n", strings.TrimSpace(e))
	}
}
