package load

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/rueidis"

	"flashedge/bench/internal/cpustat"
	"flashedge/bench/internal/nginxpeer"
	"flashedge/shared/kv"
)

// ScenarioAdmit is the write path with the gate wide open (issue 13, item 4): shoppers fetch a
// challenge (0 bits of proof of work) and post an attempt on a sale with a huge stock and no
// effective per-user limit, edge -> order -> store (and the worker draining the stream), closed
// loop; then the same attempts against the nginx + Lua admission at the load balancer (sold-out
// check and decrement in one script, XADD) on the same store. Both report admissions per second
// and the CPU time per admission of every process on their path.
const ScenarioAdmit = "admit"

// Figures of the admit scenario's sale.
const (
	admitStock = 10_000_000
	admitLimit = 1_000_000
)

// AdmitReport is the admit scenario's account.
type AdmitReport struct {
	Method string     `json:"method"`
	Rows   []AdmitRow `json:"rows"`
	// Ratio is the project's admissions per second over the peer's (same run, same layout).
	Ratio float64 `json:"ratio_to_peer,omitempty"`
	// CPURatio is the project's CPU per admission over the peer's.
	CPURatio float64 `json:"cpu_ratio_to_peer,omitempty"`
}

// AdmitRow is one measured path.
type AdmitRow struct {
	Name string `json:"name"`
	// Admissions answered 202 during the measured window, and per second.
	Admissions   int64   `json:"admissions"`
	AdmissionsPS float64 `json:"admissions_per_s"`
	// Requests is the HTTP requests sent (challenge + attempt for the project).
	Requests int64            `json:"requests"`
	Answers  map[string]int64 `json:"answers"`
	ElapsedS float64          `json:"elapsed_s"`
	// AttemptP50US and AttemptP99US are the attempt request's latency.
	AttemptP50US float64 `json:"attempt_p50_us"`
	AttemptP99US float64 `json:"attempt_p99_us"`
	// CPUPerAdmissionUS is the CPU time (user + system) of every process on the path over the
	// window, per admission; CPUByProcessUS splits it by process.
	CPUPerAdmissionUS float64            `json:"cpu_per_admission_us"`
	CPUByProcessUS    map[string]float64 `json:"cpu_by_process_us"`
	// StoreCmdsPerAdmission counts the store's commands (INFO commandstats, the calls made inside
	// scripts included, INFO excluded) per admission; StoreScriptsPerAdmission the EVALSHA/EVAL.
	StoreCmdsPerAdmission    float64 `json:"store_cmds_per_admission"`
	StoreScriptsPerAdmission float64 `json:"store_scripts_per_admission"`
	// LoadAvg is /proc/loadavg's 1-minute figure at the start and the end of the window.
	LoadAvg [2]float64 `json:"load_avg"`
	// MeanBatch is the attempts per call from the edge to the order service over the window
	// (the edge's flashedge_edge_batched_requests_total over flashedge_edge_batches_total); 0
	// when the edge sends them one by one or its /metrics could not be read.
	MeanBatch float64 `json:"mean_batch,omitempty"`
	Skipped   string  `json:"skipped,omitempty"`
}

// edgeBatches reads the edge's batch counters for the order service (zeros when it has none).
func (c Config) edgeBatches() (batches, requests float64) {
	if c.EdgeOpsAddr == "" {
		return 0, 0
	}
	p, err := scrape("http://" + c.EdgeOpsAddr + "/metrics")
	if err != nil {
		return 0, 0
	}
	return p.value("flashedge_edge_batches_total", "backend", "order"), p.value("flashedge_edge_batched_requests_total", "backend", "order")
}

// admitSnap is the counters at one moment.
type admitSnap struct {
	at              time.Time
	cpu             map[string]time.Duration
	cmds, scripts   int64
	storeCountsRead bool
}

func (c Config) admitSnap(ctx context.Context, store rueidis.Client, procs []string) admitSnap {
	s := admitSnap{at: time.Now(), cpu: map[string]time.Duration{}}
	if c.CPUByProcess != nil {
		all := c.CPUByProcess()
		for _, p := range procs {
			s.cpu[p] = all[p]
		}
	}
	if store != nil {
		n, err1 := kv.CommandCalls(ctx, store, "")
		e, err2 := kv.CommandCalls(ctx, store, "evalsha")
		e2, err3 := kv.CommandCalls(ctx, store, "eval")
		s.cmds, s.scripts, s.storeCountsRead = n, e+e2, err1 == nil && err2 == nil && err3 == nil
	}
	return s
}

func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return -1
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// fillCPU completes row from two snapshots.
func (row *AdmitRow) fill(a, b admitSnap, admissions int64) {
	row.Admissions = admissions
	if admissions <= 0 {
		return
	}
	row.CPUByProcessUS = map[string]float64{}
	var total time.Duration
	for p, t := range b.cpu {
		d := t - a.cpu[p]
		total += d
		row.CPUByProcessUS[p] = round1(float64(d.Microseconds()) / float64(admissions))
	}
	if len(b.cpu) > 0 {
		row.CPUPerAdmissionUS = round1(float64(total.Microseconds()) / float64(admissions))
	}
	if a.storeCountsRead && b.storeCountsRead {
		// The two INFO reads of the snapshots are excluded by CommandCalls; the three reads of
		// one snapshot are INFO too.
		row.StoreCmdsPerAdmission = round2(float64(b.cmds-a.cmds) / float64(admissions))
		row.StoreScriptsPerAdmission = round2(float64(b.scripts-a.scripts) / float64(admissions))
	}
}

func round1(v float64) float64 { return math.Round(v*10) / 10 }
func round2(v float64) float64 { return math.Round(v*100) / 100 }

// runAdmit runs the admit scenario.
func runAdmit(ctx context.Context, cfg Config, rep *Report, runID string) error {
	if cfg.AdminToken == "" {
		return fmt.Errorf("the admit scenario creates a sale: give the edge's admin token (-admin-token or FLASHEDGE_ADMIN_TOKEN)")
	}
	conc := cfg.concurrency(128)
	dur := cfg.phaseDuration(10 * time.Second)
	warm := min(2*time.Second, dur)
	ar := &AdmitReport{Method: fmt.Sprintf("closed loop, %d shoppers (one worker each), %s measured after %s of warm-up; "+
		"project: POST challenge (0 bits) then POST attempt with a new Idempotency-Key, sale of %d units in %d shards, per-user limit %d, edge limits off; "+
		"peer: POST attempt to nginx + Lua (one script: sold-out check and decrement; then XADD) on the same store; "+
		"CPU per admission = CPU time of every process on the path over the window / 202 answers", conc, dur, warm, admitStock, cfg.Shards, admitLimit)}
	rep.Admit = ar

	var store rueidis.Client
	if cfg.StoreAddr != "" {
		sc, err := kv.Open(ctx, kv.Options{Addrs: []string{cfg.StoreAddr}, DisableCache: true})
		if err != nil {
			return fmt.Errorf("store %s: %w", cfg.StoreAddr, err)
		}
		defer sc.Close()
		store = sc
	}

	c := NewClient(cfg.Target, ClientOptions{MaxConns: conc + 16, Timeout: cfg.Timeout})
	defer c.Close()
	r := &rush{cfg: cfg, c: c, sale: runID + "-admit"}
	now := time.Now().UTC()
	spec, _ := json.Marshal(map[string]any{
		"id": r.sale, "product_id": cfg.SaleProduct, "price": 99000, "stock": admitStock, "shards": cfg.Shards,
		"starts_at": now.Add(-time.Second).Format(time.RFC3339), "ends_at": now.Add(time.Hour).Format(time.RFC3339),
		"per_user_limit": admitLimit, "difficulty": 0,
	})
	if _, err := r.admin("POST", "/api/v1/admin/flash-sales", spec, nil); err != nil {
		return fmt.Errorf("create the sale: %w", err)
	}
	if err := r.waitLive(ctx); err != nil {
		return err
	}
	tokens, err := loginAll(ctx, c, cfg, NewRow(ScenarioAdmit, "admit/login", 200), runID+"w", conc, min(conc, 64))
	if err != nil {
		return err
	}

	// The project's path.
	projectProcs := []string{"edge", "order", "store", "worker"}
	proj := AdmitRow{Name: "edge -> order -> store (+ worker)"}
	var keyN int64
	var keyMu sync.Mutex
	nextKey := func() string {
		keyMu.Lock()
		keyN++
		n := keyN
		keyMu.Unlock()
		return runID + "-k" + strconv.FormatInt(n, 10)
	}
	projectOp := func(chRow, atRow *Row) Op {
		return func(w int, _ int64, _ time.Time) {
			var id string
			res := c.Do(chRow, Call{Method: "POST", Path: r.salePath("/challenge"), Bearer: tokens[w]}, func(status int, b []byte) {
				if status == 200 {
					var ch struct {
						ID string `json:"challenge_id"`
					}
					if json.Unmarshal(b, &ch) == nil {
						id = ch.ID
					}
				}
			})
			if res.Status != 200 || id == "" {
				return
			}
			c.Do(atRow, Call{Method: "POST", Path: r.salePath("/attempts"), Bearer: tokens[w], IdempotencyKey: nextKey(),
				Body: []byte(`{"challenge_id":"` + id + `","answer":"0"}`)}, nil)
		}
	}
	fmt.Fprintf(cfg.Out, "admit: sale %s, %d shoppers, warm-up %s\n", r.sale, conc, warm)
	phase(ctx, cfg, "admit warm-up", Bounds{Duration: warm, Concurrency: conc}, nil,
		projectOp(NewRow(ScenarioAdmit, "admit/warm-challenge", 200), NewRow(ScenarioAdmit, "admit/warm-attempt", 202)))
	chRow := NewRow(ScenarioAdmit, "admit/challenge", 200)
	atRow := NewRow(ScenarioAdmit, "admit/attempt", 202)
	fmt.Fprintf(cfg.Out, "admit: measuring %s\n", dur)
	proj.LoadAvg[0] = loadAvg()
	batches0, batched0 := cfg.edgeBatches()
	a := cfg.admitSnap(ctx, store, projectProcs)
	el := phase(ctx, cfg, "admit", Bounds{Duration: dur, Concurrency: conc}, []*Row{chRow, atRow}, projectOp(chRow, atRow))
	b := cfg.admitSnap(ctx, store, projectProcs)
	if batches1, batched1 := cfg.edgeBatches(); batches1 > batches0 {
		proj.MeanBatch = round1((batched1 - batched0) / (batches1 - batches0))
	}
	proj.LoadAvg[1] = loadAvg()
	proj.fillFrom(chRow, atRow, el)
	proj.fill(a, b, atRow.Status(202))
	addRows(rep, el, chRow, atRow)
	ar.Rows = append(ar.Rows, proj)

	// The peer on the same store.
	peer := AdmitRow{Name: "nginx + Lua admission at the balancer"}
	peer.Skipped = runAdmitPeer(ctx, cfg, store, conc, dur, warm, r.sale, &peer, rep)
	ar.Rows = append(ar.Rows, peer)
	if peer.Skipped == "" && peer.AdmissionsPS > 0 {
		ar.Ratio = round2(proj.AdmissionsPS / peer.AdmissionsPS)
		if peer.CPUPerAdmissionUS > 0 {
			ar.CPURatio = round2(proj.CPUPerAdmissionUS / peer.CPUPerAdmissionUS)
		}
	}
	if proj.Admissions == 0 {
		rep.Fail("admit: no attempt was admitted (answers %s)", formatCounts(proj.Answers))
	}
	return nil
}

// fillFrom takes the counts and latencies of the rows.
func (row *AdmitRow) fillFrom(chRow, atRow *Row, el time.Duration) {
	row.ElapsedS = round2(el.Seconds())
	row.Answers = map[string]int64{}
	for _, x := range []*Row{chRow, atRow} {
		if x == nil {
			continue
		}
		n, _, _ := x.Counts()
		row.Requests += n
		ans, errs := x.breakdown()
		for k, v := range ans {
			row.Answers[x.Name[strings.LastIndexByte(x.Name, '/')+1:]+" "+k] += v
		}
		for k, v := range errs {
			row.Answers[x.Name[strings.LastIndexByte(x.Name, '/')+1:]+" "+k] += v
		}
	}
	row.AdmissionsPS = math.Round(float64(atRow.Status(202)) / el.Seconds())
	row.AttemptP50US = us(atRow.Hist().Quantile(0.5))
	row.AttemptP99US = us(atRow.Hist().Quantile(0.99))
}

// runAdmitPeer measures the nginx + Lua admission; it returns why it was skipped, or "".
func runAdmitPeer(ctx context.Context, cfg Config, store rueidis.Client, conc int, dur, warm time.Duration, sale string, row *AdmitRow, rep *Report) string {
	if store == nil {
		return "no store address (run with -spawn, or -store)"
	}
	stock := nginxpeer.AdmitStockKey(sale)
	if err := store.Do(ctx, store.B().Set().Key(stock).Value(strconv.Itoa(admitStock)).Build()).Error(); err != nil {
		return "seed the peer's stock: " + err.Error()
	}
	defer store.Do(context.Background(), store.B().Del().Key(stock, nginxpeer.AdmitStream).Build())
	p, pcfg, skipped := startPeer(ctx, cfg, "admit", nginxpeer.Config{})
	if p == nil {
		return skipped
	}
	defer p.Stop()
	pc := NewClient(p.target, ClientOptions{MaxConns: conc + 16, Timeout: cfg.Timeout})
	defer pc.Close()
	// The same request as the project's attempt: bearer, Idempotency-Key, JSON body.
	bearer := strings.Repeat("t", 120)
	op := func(atRow *Row) Op {
		return func(_ int, i int64, _ time.Time) {
			pc.Do(atRow, Call{Method: "POST", Path: "/api/v1/flash-sales/" + sale + "/attempts", Bearer: bearer,
				IdempotencyKey: "peer-k" + strconv.FormatInt(i, 10), Body: []byte(`{"challenge_id":"0123456789abcdef0123456789abcdef","answer":"0"}`)}, nil)
		}
	}
	procs := []string{"nginx", "store"}
	phase(ctx, cfg, "admit-peer warm-up", Bounds{Duration: warm, Concurrency: conc}, nil, op(NewRow(ScenarioAdmit, "admit-peer/warm", 202)))
	atRow := NewRow(ScenarioAdmit, "admit-peer/attempt", 202)
	fmt.Fprintf(cfg.Out, "admit: nginx + Lua peer on %s, measuring %s\n", p.AdmitBase, dur)
	row.LoadAvg[0] = loadAvg()
	a := pcfg.admitSnap(ctx, store, procs)
	el := phase(ctx, cfg, "admit-peer", Bounds{Duration: dur, Concurrency: conc}, []*Row{atRow}, op(atRow))
	b := pcfg.admitSnap(ctx, store, procs)
	row.LoadAvg[1] = loadAvg()
	row.fillFrom(nil, atRow, el)
	row.fill(a, b, atRow.Status(202))
	addRows(rep, el, atRow)
	if cfg.CPUByProcess == nil {
		delete(row.CPUByProcessUS, "store")
		row.CPUPerAdmissionUS = 0
		rep.Note(cfg.Out, "admit: the store's CPU is unknown without -spawn: CPU per admission is not reported")
	}
	return ""
}

// WriteAdmit prints the admit scenario's table.
func WriteAdmit(w io.Writer, ar *AdmitReport) {
	fmt.Fprintln(w, "write path, gate wide open (admit):", ar.Method)
	fmt.Fprintf(w, "  %-40s %12s %9s %9s %12s %10s %10s  %s\n", "path", "admissions/s", "p50 ms", "p99 ms", "CPU/adm µs", "store cmds", "scripts", "CPU per admission by process (µs); load avg")
	for _, r := range ar.Rows {
		if r.Skipped != "" {
			fmt.Fprintf(w, "  %-40s skipped: %s\n", r.Name, r.Skipped)
			continue
		}
		var parts []string
		for _, p := range slices.Sorted(maps.Keys(r.CPUByProcessUS)) {
			parts = append(parts, fmt.Sprintf("%s %.1f", p, r.CPUByProcessUS[p]))
		}
		fmt.Fprintf(w, "  %-40s %12.0f %9.2f %9.2f %12.1f %10.2f %10.2f  %s; load %.2f -> %.2f\n", r.Name, r.AdmissionsPS,
			r.AttemptP50US/1000, r.AttemptP99US/1000, r.CPUPerAdmissionUS, r.StoreCmdsPerAdmission, r.StoreScriptsPerAdmission,
			strings.Join(parts, ", "), r.LoadAvg[0], r.LoadAvg[1])
		batch := ""
		if r.MeanBatch > 0 {
			batch = fmt.Sprintf("; edge -> order: %.1f attempts a call", r.MeanBatch)
		}
		fmt.Fprintf(w, "  %-40s answers: %s%s\n", "", formatCounts(r.Answers), batch)
	}
	if ar.Ratio > 0 {
		fmt.Fprintf(w, "  project / peer: %.2fx admissions per second (goal >= 1.0x), %.2fx CPU per admission; goal CPU per admission <= 100 µs\n", ar.Ratio, ar.CPURatio)
	}
}

// procCPU is the CPU time pid and its direct children have used so far.
func procCPU(pid int) time.Duration {
	return time.Duration(cpustat.ProcTicks(pid)) * time.Second / cpustat.TicksPerSecond
}
