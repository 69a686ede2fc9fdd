package load

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"flashedge/bench/internal/cpustat"
	"flashedge/shared/challenge"
)

// ScenarioOverload measures shedding on two routes that reach a backend, cart adds (edge ->
// cart) and flash-sale attempts (challenge + attempt, edge -> order): the capacity of each
// (closed loop), then open-loop load at 1x, 2x and 5x that capacity, then 1x again (recovery).
// Goals (issue 15): goodput at 5x >= 90 % of capacity, the refusals (503/429, answered at the
// edge) at p99 <= 10 ms, the edge's memory bounded, and the recovery round as good as the first
// 1x. With a spawned stack on two CPUs or more the backends and the store are pinned to the
// last CPU and the edge and the load generator to the others, as in a deployment where the edge
// runs on machines of its own: the capacity measured is the backends', and the edge's
// refusals do not take CPU from them.
const ScenarioOverload = "overload"

// overloadOutstanding bounds the requests the generator keeps outstanding in the open-loop
// rounds: one due while that many are unanswered is not sent and counts as unanswered, so a
// stalled edge shows as missing answers, never as a backlog in the generator.
const overloadOutstanding = 4000

// overloadLevels are the offered loads, as multiples of the measured capacity; the last is the
// recovery round.
var overloadLevels = []float64{1, 2, 5, 1}

// overloadRoute is one route under overload: op runs one operation (due: when it was
// scheduled) and reports its outcome.
type overloadRoute struct {
	name string
	// op returns the status that ends the operation: the success status, a refusal (503, 429)
	// or anything else, and the latency of the request that ended it.
	op      func(w int, i int64, due time.Time) Result
	success int
}

func runOverload(ctx context.Context, cfg Config, rep *Report, runID string) error {
	if pin, undo := pinOverload(cfg); pin != "" {
		defer undo()
		rep.Note(cfg.Out, "overload: pinning: %s", pin)
	}
	conc := cfg.concurrency(64)
	users := max(cfg.users(1000), conc)
	c := NewClient(cfg.Target, ClientOptions{MaxConns: 4096, Timeout: cfg.Timeout})
	defer c.Close()
	fmt.Fprintf(cfg.Out, "overload: logging in %d shoppers\n", users)
	tokens, err := loginAll(ctx, c, cfg, NewRow(ScenarioOverload, "overload/login", 200), runID+"o", users, conc)
	if err != nil {
		return err
	}

	// Everything a cart add needs is built up front (a random source per worker, the paths and
	// bodies), so the generator's cost per request is the client's alone.
	rands := make([]*rand.Rand, max(conc, overloadOutstanding))
	for w := range rands {
		rands[w] = workerRand(cfg.Seed, w)
	}
	paths := make([]string, cfg.Products+1)
	for id := range paths {
		paths[id] = fmt.Sprintf("/api/v1/cart/items/%08d", id)
	}
	bodies := make([][]byte, 6)
	for q := range bodies {
		bodies[q] = quantityBody(q)
	}
	cart := overloadRoute{name: "cart add", success: 200, op: func(w int, i int64, due time.Time) Result {
		r := rands[w]
		u := int(i % int64(users))
		return c.Do(nil, Call{Method: "PUT", Path: paths[cartLine(r, u, cfg.Products)],
			Bearer: tokens[u], Body: bodies[1+r.IntN(5)], Start: due}, nil)
	}}
	warm := func() { warmConns(ctx, c, overloadOutstanding) }
	capacity, err := overloadRun(ctx, cfg, rep, cart, conc, warm)
	if err != nil {
		return err
	}
	if err := overloadReference(ctx, cfg, rep, c, overloadLevels[len(overloadLevels)-2]*capacity); err != nil {
		return err
	}

	if cfg.AdminToken == "" {
		rep.Note(cfg.Out, "overload: no admin token: the attempt route is skipped (it needs a sale)")
		return nil
	}
	sale, err := overloadSale(ctx, c, cfg, runID)
	if err != nil {
		return err
	}
	var seq atomic.Int64 // Idempotency-Keys unique over every phase (each phase counts i from 0)
	attempt := overloadRoute{name: "attempt", success: 202, op: func(w int, i int64, due time.Time) Result {
		u := int(i % int64(users))
		key := runID + "-o" + strconv.FormatInt(seq.Add(1), 10)
		var ch challenge.Body
		res := c.Do(nil, Call{Method: "POST", Path: "/api/v1/flash-sales/" + sale + "/challenge", Bearer: tokens[u], Start: due},
			func(status int, b []byte) {
				if status == 200 && json.Unmarshal(b, &ch) != nil {
					ch.ChallengeID = ""
				}
			})
		if res.Status != 200 || ch.ChallengeID == "" {
			return res
		}
		nonce, _ := SolvePoW(ch.Payload.Prefix, ch.Payload.Difficulty)
		body, _ := json.Marshal(map[string]string{"challenge_id": ch.ChallengeID, "answer": nonce})
		return c.Do(nil, Call{Method: "POST", Path: "/api/v1/flash-sales/" + sale + "/attempts", Bearer: tokens[u],
			IdempotencyKey: key, Body: body}, nil)
	}}
	_, err = overloadRun(ctx, cfg, rep, attempt, conc, warm)
	return err
}

// overloadReference offers cached product reads (answered from the edge's memory: no backend,
// no store, no session) open loop at rate, the cart adds' 5x rate, over the same connections,
// and prints the edge's CPU per answer: the floor any answer costs the edge at that rate and
// connection count (sockets, scheduling, parsing, the request id, metrics and access log),
// which a refusal's CPU at 5x is to be read against.
func overloadReference(ctx context.Context, cfg Config, rep *Report, c *Client, rate float64) error {
	paths := make([]string, cfg.Products)
	for i := range paths {
		paths[i] = productPath(i + 1)
	}
	// Every product once first, so that every read of the round is a cache hit.
	Drive(ctx, Bounds{Requests: int64(len(paths)), Concurrency: 64}, nil, func(_ int, i int64, _ time.Time) {
		c.Do(nil, Call{Method: "GET", Path: paths[i]}, nil)
	})
	row := NewRow(ScenarioOverload, "overload/reference/cached-read", 200)
	lat := NewHistogram()
	b := Bounds{Duration: cfg.phaseDuration(5 * time.Second), Concurrency: overloadOutstanding, Rate: rate, Skip: func(_ int64, due time.Time) {
		row.Fail(ErrKindTimeout, due, 0)
	}}
	var done atomic.Int64
	stop := cfg.Progress.Start("overload reference: cached reads", 0, b.Duration, &done, func() int64 { _, _, f := row.Counts(); return f })
	cpu0 := serverTicks(cfg)
	el, sent := Drive(ctx, b, &done, func(_ int, i int64, due time.Time) {
		res := c.Do(nil, Call{Method: "GET", Path: paths[i%int64(len(paths))], Start: due}, nil)
		recordResult(row, res)
		if res.Status == 200 {
			lat.Record(res.Latency)
		}
	})
	cpu1 := serverTicks(cfg)
	stop()
	addRows(rep, el, row)
	if err := ctx.Err(); err != nil {
		return err
	}
	reqs, _, failed := row.Counts()
	rep.Note(cfg.Out, "overload reference: cached product reads offered at %.0f/s (the cart adds' 5x rate), sent %.0f/s, p50/p99 %s/%s, no answer %d of %d, CPU: edge %s/request (the floor of any answer at this rate and connection count)",
		rate, float64(sent)/el.Seconds(), lat.Quantile(0.5).Round(time.Microsecond), lat.Quantile(0.99).Round(time.Microsecond),
		failed, reqs, perOp(cpu1.edge-cpu0.edge, uint64(reqs)))
	return nil
}

// overloadSale creates a sale that cannot sell out or hit a per-user limit during the run (no
// proof of work: the route's cost is measured, not the shoppers') and waits until it is live.
func overloadSale(ctx context.Context, c *Client, cfg Config, runID string) (string, error) {
	id := runID + "-overload"
	now := time.Now().UTC()
	spec, _ := json.Marshal(map[string]any{
		"id": id, "product_id": cfg.SaleProduct, "price": 99000, "stock": 10_000_000, "shards": 8,
		"starts_at": now.Add(-time.Second).Format(time.RFC3339), "ends_at": now.Add(time.Hour).Format(time.RFC3339),
		"per_user_limit": 1_000_000, "difficulty": 0,
	})
	var status int
	var msg string
	c.Do(nil, Call{Method: "POST", Path: "/api/v1/admin/flash-sales", Bearer: cfg.AdminToken, Body: spec}, func(s int, b []byte) {
		status, msg = s, string(b)
	})
	if status/100 != 2 {
		return "", fmt.Errorf("overload: create the sale: %d %s", status, msg)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var state string
		c.Do(nil, Call{Method: "GET", Path: "/api/v1/flash-sales/" + id}, func(s int, b []byte) {
			var v struct {
				State string `json:"state"`
			}
			if s == 200 && json.Unmarshal(b, &v) == nil {
				state = v.State
			}
		})
		if state == "live" {
			return id, nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("overload: sale %s not live after 30s (state %q)", id, state)
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return "", err
		}
	}
}

// overloadRun measures one route: capacity, then each level of overloadLevels. It returns the
// capacity measured (successes per second in the closed loop).
func overloadRun(ctx context.Context, cfg Config, rep *Report, rt overloadRoute, conc int, warm func()) (float64, error) {
	phaseLen := cfg.phaseDuration(5 * time.Second)
	slug := strings.ReplaceAll(rt.name, " ", "-")
	capRow := NewRow(ScenarioOverload, "overload/"+slug+"/capacity", rt.success, 503, 429)
	var capOK atomic.Int64
	capCPU0 := serverTicks(cfg)
	el := phase(ctx, cfg, "overload "+rt.name+" capacity", Bounds{Duration: phaseLen, Concurrency: conc}, []*Row{capRow}, func(w int, i int64, due time.Time) {
		res := rt.op(w, i, due)
		recordResult(capRow, res)
		if res.Status == rt.success {
			capOK.Add(1)
		}
	})
	addRows(rep, el, capRow)
	capacity := float64(capOK.Load()) / el.Seconds()
	if capacity < 1 {
		return 0, fmt.Errorf("overload %s: no capacity measured (%d successes)", rt.name, capOK.Load())
	}
	capCPU1 := serverTicks(cfg)
	capReqs, _, _ := capRow.Counts()
	rep.Note(cfg.Out, "overload %s: capacity %.0f/s (closed loop, %d workers; %d refused in that phase); edge RSS %.1f MiB; CPU: edge %s/request, backends+store %s/success",
		rt.name, capacity, conc, capRow.Status(503)+capRow.Status(429), edgeRSS(cfg),
		perOp(capCPU1.edge-capCPU0.edge, uint64(capReqs)), perOp(capCPU1.backends-capCPU0.backends, uint64(capOK.Load())))

	warm()
	var first *overloadLevel
	for k, m := range overloadLevels {
		name := fmt.Sprintf("%gx", m)
		if k == len(overloadLevels)-1 {
			name = "recovery-1x"
		}
		row := NewRow(ScenarioOverload, "overload/"+slug+"/"+name, rt.success, 503, 429)
		lv := &overloadLevel{good: NewHistogram(), refused: NewHistogram(), refusedInside: NewHistogram()}
		stopRSS := sampleRSS(cfg, &lv.peakRSS)
		cpu0 := serverTicks(cfg)
		var skipped atomic.Int64
		b := Bounds{Duration: phaseLen, Concurrency: overloadOutstanding, Rate: m * capacity, Skip: func(_ int64, due time.Time) {
			skipped.Add(1)
			row.Fail(ErrKindTimeout, due, 0)
		}}
		var done atomic.Int64
		stop := cfg.Progress.Start("overload "+rt.name+" "+name, 0, b.Duration, &done, func() int64 { _, _, f := row.Counts(); return f })
		self0 := selfCPU()
		el, sent := Drive(ctx, b, &done, func(w int, i int64, due time.Time) {
			res := rt.op(w, i, due)
			recordResult(row, res)
			switch res.Status {
			case rt.success:
				lv.good.Record(res.Latency)
			case 503, 429:
				lv.refused.Record(res.Latency)
				if res.ServiceTime > 0 {
					lv.refusedInside.Record(res.ServiceTime)
				}
			}
		})
		self := selfCPU() - self0
		stop()
		stopRSS()
		cpu1 := serverTicks(cfg)
		addRows(rep, el, row)
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		goodput := float64(lv.good.Count()) / el.Seconds()
		reqs, _, failed := row.Counts()
		// What the generator achieved: operations sent per second (each an HTTP request, two for
		// an attempt) and its own CPU, to show it was not what limited the round.
		line := fmt.Sprintf("overload %s %s: offered %.0f/s, sent %.0f/s (%d not sent: %d already outstanding; load tool CPU %.0f%% of one core), goodput %.0f/s = %.0f%% of capacity, successes p50/p99 %s/%s, refusals %d (p50/p99 %s/%s; time inside the server, %d timed: p50/p99 %s/%s), no answer %d of %d, edge peak RSS %.1f MiB, CPU: edge %s/request, backends+store %s/success",
			rt.name, name, m*capacity, float64(sent)/el.Seconds(), skipped.Load(), overloadOutstanding, 100*self.Seconds()/el.Seconds(),
			goodput, 100*goodput/capacity, lv.good.Quantile(0.5).Round(time.Microsecond), lv.good.Quantile(0.99).Round(time.Microsecond),
			lv.refused.Count(), lv.refused.Quantile(0.5).Round(time.Microsecond), lv.refused.Quantile(0.99).Round(time.Microsecond),
			lv.refusedInside.Count(), lv.refusedInside.Quantile(0.5).Round(time.Microsecond), lv.refusedInside.Quantile(0.99).Round(time.Microsecond),
			failed, reqs, lv.peakRSS,
			perOp(cpu1.edge-cpu0.edge, uint64(reqs)), perOp(cpu1.backends-cpu0.backends, lv.good.Count()))
		switch {
		case m == 5:
			// Judged against what was sent when the generator could not send 5x.
			want := 0.9 * min(capacity, float64(sent)/el.Seconds())
			line += fmt.Sprintf("; goals: goodput >= 90%% %s, refusal p99 <= 10ms %s",
				verdict(goodput >= want), verdict(lv.refused.Count() == 0 || lv.refused.Quantile(0.99) <= 10*time.Millisecond))
		case k == len(overloadLevels)-1 && first != nil:
			// Back to normal at once: the round right after 5x serves what the first 1x served.
			g0 := float64(first.good.Count())
			line += fmt.Sprintf("; recovery: goodput %.0f%% of the first 1x round's %s, successes p99 %s (first 1x: %s)",
				100*float64(lv.good.Count())/max(g0, 1), verdict(float64(lv.good.Count()) >= 0.9*g0),
				lv.good.Quantile(0.99).Round(time.Microsecond), first.good.Quantile(0.99).Round(time.Microsecond))
		}
		if k == 0 {
			first = lv
		}
		rep.Note(cfg.Out, "%s", line)
	}
	return capacity, nil
}

// warmConns opens up to n keep-alive connections to the edge (n health checks at once), so the
// open-loop rounds, which can hold that many requests outstanding, start with their connections
// open: thousands of dials in the first second of a round measure the dial storm, not the edge.
func warmConns(ctx context.Context, c *Client, n int) {
	Drive(ctx, Bounds{Requests: int64(n), Concurrency: n}, nil, func(int, int64, time.Time) {
		c.Do(nil, Call{Method: "GET", Path: "/health"}, nil)
	})
}

type overloadLevel struct {
	good, refused *Histogram
	// refusedInside is the refusals' time inside the edge (X-Service-Time-Us: from the request
	// read to the answer); the rest of their latency is sockets, run queues and the tool.
	refusedInside *Histogram
	peakRSS       float64
}

// recordResult counts res in row.
func recordResult(row *Row, res Result) {
	start := time.Now().Add(-res.Latency)
	switch {
	case res.Err != nil:
		row.Fail(res.ErrKind, start, res.Latency)
	default:
		row.Answer(res.Status, start, res.Latency)
	}
}

func verdict(ok bool) string {
	if ok {
		return "OK"
	}
	return "MISSED"
}

// pinOverload gives the load generator a CPU of its own: this process on CPU 0 and every
// spawned process (store, services, edge) on the others, so the generator's sending never
// competes with the servers and the capacity measured is the stack's on the remaining CPUs. It
// returns what it did and how to undo it; "" when it did nothing (no spawned stack). With
// -server-cpu the stack was pinned when it was spawned and only this process is moved off that
// CPU (make bench also starts the tool under taskset, and then no pinning is left to do here).
//
// Whatever the layout, the edge and this process run at nice -5 (the backends stay at 0, above
// the niced builds and tests a shared machine runs): the edge stands for an edge on machines of
// its own, and one that waits for CPU behind the backends it protects, or behind another
// session's processes, cannot refuse anything fast; and the generator's own run-queue delays
// would read as the edge's latency.
func pinOverload(cfg Config) (string, func()) {
	if cfg.Pids == nil {
		return "", func() {}
	}
	var did []string
	var undos []func()
	undo := func() {
		for i := len(undos) - 1; i >= 0; i-- {
			undos[i]()
		}
	}
	if cfg.OverloadBackendCPU > 0 {
		var pids []int
		for svc, pid := range cfg.Pids() {
			if svc != "edge" {
				pids = append(pids, pid)
			}
		}
		uncap, err := capCPU(pids, cfg.OverloadBackendCPU)
		if err != nil {
			did = append(did, fmt.Sprintf("the backends' CPU cap could not be set (%v): uncapped", err))
		} else {
			did = append(did, fmt.Sprintf("the store and the backends capped together at %.2f of a CPU (cgroup quota)", cfg.OverloadBackendCPU))
			undos = append(undos, uncap)
		}
	}
	did = append(did, overloadPriority(cfg, &undos))
	n := runtime.NumCPU() // the CPUs this process may use: 1 under make bench's taskset
	ts, err := exec.LookPath("taskset")
	if n < 2 || err != nil {
		return strings.Join(did, "; "), undo
	}
	stack, tool := "1-"+strconv.Itoa(n-1), "0"
	if n == 2 {
		stack = "1"
	}
	if cfg.ServerCPU != "" {
		stack = cfg.ServerCPU
		tool = "0"
		if cfg.ServerCPU == "0" {
			tool = "1"
		}
	}
	pin := func(pid int, cpus string) error {
		return exec.Command(ts, "-a", "-p", "-c", cpus, strconv.Itoa(pid)).Run()
	}
	if cfg.ServerCPU == "" {
		for svc, pid := range cfg.Pids() {
			if pin(pid, stack) != nil {
				return strings.Join(append(did, "could not pin "+svc), "; "), undo
			}
		}
	}
	if pin(os.Getpid(), tool) != nil {
		return strings.Join(did, "; "), undo
	}
	undos = append(undos, func() { _ = pin(os.Getpid(), "0-"+strconv.Itoa(n-1)) })
	if cfg.OverloadEdgeAlone {
		// The edge keeps the stack's CPU to itself, as an edge on machines of its own; the
		// backends and the store (capped) share the generator's.
		for svc, pid := range cfg.Pids() {
			if svc != "edge" && pin(pid, tool) != nil {
				return strings.Join(append(did, "could not move "+svc), "; "), undo
			}
		}
		return strings.Join(append(did, fmt.Sprintf("the edge alone on CPU %s; the backends, the store and the load generator on CPU %s", stack, tool)), "; "), undo
	}
	if cfg.OverloadEdgeWithTool {
		// The backends and the store keep their CPU to themselves, as behind edges on machines
		// of their own; the edge shares the generator's.
		if pid, ok := cfg.Pids()["edge"]; !ok || pin(pid, tool) != nil {
			return strings.Join(did, "; "), undo
		}
		return strings.Join(append(did, fmt.Sprintf("the backends and the store on CPU %s; the edge and the load generator on CPU %s", stack, tool)), "; "), undo
	}
	return strings.Join(append(did, fmt.Sprintf("the spawned stack (store, services, edge) on CPU %s; the load generator alone on CPU %s", stack, tool)), "; "), undo
}

// overloadPriority runs the spawned edge and this process at nice -5 (see pinOverload), adds
// how to give this process its nice value back to undos, and says what it did.
func overloadPriority(cfg Config, undos *[]func()) string {
	edge := "the edge at nice -5"
	if pid, ok := cfg.Pids()["edge"]; !ok || renice(pid, -5) != nil {
		edge = "the edge at the backends' priority (renice refused)"
	}
	// Getpriority answers 20 - nice on Linux.
	prev, err := syscall.Getpriority(syscall.PRIO_PROCESS, 0)
	if err != nil || renice(os.Getpid(), -5) != nil {
		return edge + ", the load generator at its own priority (renice refused)"
	}
	*undos = append(*undos, func() { _ = renice(os.Getpid(), 20-prev) })
	return edge + " and the load generator too"
}

// capCPU moves the processes pids into a new cgroup (v1 cpu controller) whose CPU quota is frac
// of one CPU, and returns how to move them back and remove it.
func capCPU(pids []int, frac float64) (func(), error) {
	const root, period = "/sys/fs/cgroup/cpu", 10_000 // a short period: throttling stalls of up to 100 ms would read as backend queueing
	if _, err := os.Stat(root + "/cpu.cfs_quota_us"); err != nil {
		return nil, fmt.Errorf("no cgroup v1 cpu controller at %s", root)
	}
	dir := fmt.Sprintf("%s/flashedge-overload-%d", root, os.Getpid())
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, err
	}
	write := func(file, v string) error { return os.WriteFile(dir+"/"+file, []byte(v), 0o644) }
	remove := func() {
		for _, pid := range pids {
			_ = os.WriteFile(root+"/cgroup.procs", []byte(strconv.Itoa(pid)), 0o644)
		}
		_ = os.Remove(dir)
	}
	if err := write("cpu.cfs_period_us", strconv.Itoa(period)); err != nil {
		remove()
		return nil, err
	}
	if err := write("cpu.cfs_quota_us", strconv.Itoa(max(1000, int(frac*period)))); err != nil {
		remove()
		return nil, err
	}
	for _, pid := range pids {
		if err := write("cgroup.procs", strconv.Itoa(pid)); err != nil {
			remove()
			return nil, err
		}
	}
	return remove, nil
}

// renice sets the nice value of every thread of process pid (Linux applies a process's nice
// value per thread: setpriority on the pid alone reaches only its main thread).
func renice(pid, nice int) error {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return err
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, nice); err != nil {
			return err
		}
	}
	return nil
}

// edgeRSS returns the spawned edge's resident memory in MiB, 0 when unknown.
func edgeRSS(cfg Config) float64 {
	if cfg.Pids == nil {
		return 0
	}
	pid, ok := cfg.Pids()["edge"]
	if !ok {
		return 0
	}
	return cpustat.RSSMiB(pid)
}

type cpuTicks struct{ edge, backends uint64 }

// serverTicks returns the CPU clock ticks the spawned edge and the rest of the stack have used.
func serverTicks(cfg Config) cpuTicks {
	var t cpuTicks
	if cfg.Pids == nil {
		return t
	}
	for svc, pid := range cfg.Pids() {
		if svc == "edge" {
			t.edge += cpustat.ProcTicks(pid)
		} else {
			t.backends += cpustat.ProcTicks(pid)
		}
	}
	return t
}

// perOp formats ticks (1/100 s) spread over n operations; "n/a" without either.
func perOp(ticks, n uint64) string {
	if ticks == 0 || n == 0 {
		return "n/a"
	}
	return (time.Duration(ticks) * 10 * time.Millisecond / time.Duration(n)).Round(100 * time.Nanosecond).String()
}

// sampleRSS records the edge's highest RSS into peak every 100ms until the returned stop.
func sampleRSS(cfg Config, peak *float64) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			*peak = max(*peak, edgeRSS(cfg))
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	})
	return func() { close(done); wg.Wait() }
}
