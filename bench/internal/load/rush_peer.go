package load

import (
	"context"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"flashedge/bench/internal/nginxpeer"
	"flashedge/shared/keyspace"
	"flashedge/shared/kv"
)

// RushPeerReport is the rush's peer round: the same closed-loop workers, attempts and shoppers
// (each from its own loopback address, its connection opened before the clock) against the
// nginx + Lua admission at the balancer (sold-out check, per-user limit, decrement, XADD) on the
// same store, with the project's round beside it.
type RushPeerReport struct {
	Method   string `json:"method"`
	Workers  int    `json:"workers"`
	Users    int    `json:"users"`
	Stock    int64  `json:"stock"`
	Attempts int64  `json:"attempts"`
	// Answers counts the attempt answers by status and code.
	Answers map[string]int64 `json:"answers"`
	// SellOutS is the time from the first attempt to the first 410 sold out; -1: never.
	SellOutS     float64 `json:"sell_out_s"`
	AttemptsPerS float64 `json:"attempts_per_s"`
	ElapsedS     float64 `json:"elapsed_s"`
	// Attempt answer latency over every attempt, and over those sent before the first 410.
	AttemptP50US     float64 `json:"attempt_p50_us"`
	AttemptP99US     float64 `json:"attempt_p99_us"`
	AttemptOpenP50US float64 `json:"attempt_open_p50_us"`
	AttemptOpenP99US float64 `json:"attempt_open_p99_us"`
	// LittleMS is workers / attempts per second: the mean time in the system a closed loop of
	// that many workers must see at that throughput (Little's law), whatever the server.
	LittleMS float64 `json:"little_ms"`
	// CPUPerAttemptUS is nginx's and the store's CPU over the phase per attempt answered.
	CPUPerAttemptUS float64            `json:"cpu_per_attempt_us,omitempty"`
	CPUByProcessUS  map[string]float64 `json:"cpu_by_process_us,omitempty"`
	// Records read from the store afterwards: stream entries, distinct users admitted, units
	// left. RecordsOK: entries == users == 202 answers == stock - left, left >= 0.
	Streamed  int64      `json:"records_streamed"`
	Winners   int64      `json:"records_users"`
	Left      int64      `json:"records_left"`
	RecordsOK bool       `json:"records_ok"`
	LoadAvg   [2]float64 `json:"load_avg"`
	Skipped   string     `json:"skipped,omitempty"`
	// Ours is the project's round it is compared with (the round without bots); the ratios are
	// ours over the peer's.
	Ours          RushPeerOurs `json:"ours"`
	SellOutRatio  float64      `json:"sell_out_ratio,omitempty"`
	P50Ratio      float64      `json:"p50_ratio,omitempty"`
	P99Ratio      float64      `json:"p99_ratio,omitempty"`
	OpenP99Ratio  float64      `json:"open_p99_ratio,omitempty"`
	CPURatio      float64      `json:"cpu_ratio,omitempty"`
	ThroughputRat float64      `json:"attempts_per_s_ratio,omitempty"`
}

// RushPeerOurs is the project's figures the peer round is set against.
type RushPeerOurs struct {
	Round    string  `json:"round"`
	SellOutS float64 `json:"sell_out_s"`
	// AttemptsPerS is the project's operations per second (RushReport.OperationsPerS: an
	// attempt, or a challenge refused sold out, which ends the operation as the peer's 410 does).
	AttemptsPerS     float64 `json:"attempts_per_s"`
	AttemptP50US     float64 `json:"attempt_p50_us"`
	AttemptP99US     float64 `json:"attempt_p99_us"`
	AttemptOpenP99US float64 `json:"attempt_open_p99_us"`
	// AttemptsSent is the attempts posted (the p50/p99 population); the other operations ended
	// at a challenge refused sold out.
	AttemptsSent    int64   `json:"attempts_sent"`
	LittleMS        float64 `json:"little_ms"`
	CPUPerAttemptUS float64 `json:"cpu_per_attempt_us,omitempty"`
}

// littleMS is workers / perS in milliseconds, 0 without throughput.
func littleMS(workers int, perS float64) float64 {
	if perS <= 0 {
		return 0
	}
	return round2(float64(workers) / perS * 1000)
}

// compare fills Ours from the project's round and the ratios.
func (p *RushPeerReport) compare(round string, rr *RushReport) {
	p.Ours = RushPeerOurs{Round: round, SellOutS: rr.SellOutS, AttemptsPerS: rr.OperationsPerS, AttemptP50US: rr.AttemptP50US, AttemptP99US: rr.AttemptP99US,
		AttemptOpenP99US: rr.AttemptOpenP99US, AttemptsSent: rr.AttemptsSent, LittleMS: littleMS(p.Workers, rr.OperationsPerS), CPUPerAttemptUS: rr.CPUPerAttemptUS}
	p.SellOutRatio = ratio(rr.SellOutS, p.SellOutS)
	p.P50Ratio = ratio(rr.AttemptP50US, p.AttemptP50US)
	p.P99Ratio = ratio(rr.AttemptP99US, p.AttemptP99US)
	p.OpenP99Ratio = ratio(rr.AttemptOpenP99US, p.AttemptOpenP99US)
	p.CPURatio = ratio(rr.CPUPerAttemptUS, p.CPUPerAttemptUS)
	p.ThroughputRat = ratio(rr.OperationsPerS, p.AttemptsPerS)
}

// WriteRushPeer prints the peer round beside the project's.
func WriteRushPeer(w io.Writer, p *RushPeerReport) {
	fmt.Fprintln(w, "rush peer:", p.Method)
	if p.Skipped != "" {
		fmt.Fprintf(w, "  skipped: %s\n", p.Skipped)
		return
	}
	o := p.Ours
	fmt.Fprintf(w, "  %-26s %9s %10s %9s %9s %13s %11s %12s\n", "server", "sold out", "ops/s", "p50", "p99", "p99 while open", "Little ms", "CPU/attempt")
	fmt.Fprintf(w, "  %-26s %9s %10.0f %9s %9s %13s %11.1f %10.1fµs\n", "edge ("+o.Round+")", secs(o.SellOutS), o.AttemptsPerS, FormatUS(o.AttemptP50US), FormatUS(o.AttemptP99US), FormatUS(o.AttemptOpenP99US), o.LittleMS, o.CPUPerAttemptUS)
	fmt.Fprintf(w, "  %-26s %9s %10.0f %9s %9s %13s %11.1f %10.1fµs\n", "nginx + Lua admission", secs(p.SellOutS), p.AttemptsPerS, FormatUS(p.AttemptP50US), FormatUS(p.AttemptP99US), FormatUS(p.AttemptOpenP99US), p.LittleMS, p.CPUPerAttemptUS)
	fmt.Fprintf(w, "  edge / nginx: %.2fx sold-out time, %.2fx ops/s, %.2fx p50, %.2fx p99, %.2fx p99 while open, %.2fx CPU per operation\n",
		p.SellOutRatio, p.ThroughputRat, p.P50Ratio, p.P99Ratio, p.OpenP99Ratio, p.CPURatio)
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(p.CPUByProcessUS)) {
		parts = append(parts, fmt.Sprintf("%s %.1f", k, p.CPUByProcessUS[k]))
	}
	fmt.Fprintf(w, "  nginx round: answers %s; CPU per attempt by process (µs) %s; load %.2f -> %.2f\n", formatCounts(p.Answers), strings.Join(parts, ", "), p.LoadAvg[0], p.LoadAvg[1])
	fmt.Fprintf(w, "  p50/p99 populations: the edge's %d attempts posted (its other operations ended at a challenge refused sold out), nginx's %d\n", o.AttemptsSent, p.Attempts)
	fmt.Fprintf(w, "  nginx records: %d stream entries, %d users admitted, %d units left of %d: %s\n", p.Streamed, p.Winners, p.Left, p.Stock, okWord(p.RecordsOK))
	fmt.Fprintln(w, "  (ops/s: the workers' operations per second, for the edge an attempt or a challenge refused sold out; p50/p99 are the attempt answers; Little ms = workers / ops per second, "+
		"the mean time per operation any server must show a closed loop of that many workers at that throughput; CPU per operation)")
}

// runRushPeer runs the peer round after the project's round rr (named round).
func runRushPeer(ctx context.Context, cfg Config, rep *Report, runID, round string, rr *RushReport) error {
	conc := cfg.concurrency(256)
	users := cfg.users(20_000)
	pr := &RushPeerReport{Workers: conc, Users: users, Stock: cfg.Stock, SellOutS: -1,
		Method: fmt.Sprintf("%d closed-loop workers, %d attempts, shopper i mod %d makes attempt i from its own loopback address (connection opened before the clock), %d units; "+
			"POST .../attempts to nginx + Lua at the balancer on the same store (one script: sold-out flag, per-user limit of 1 by the X-Bench-User header, decrement, remember the user; then XADD): "+
			"no challenge (it has none), no session, no ticket to poll; CPU per attempt = nginx + store over the phase / attempts answered", conc, cfg.Attempts, users, cfg.Stock)}
	rep.RushPeer = pr
	if cfg.StoreAddr == "" {
		pr.Skipped = "no store address (run with -spawn, or -store)"
		return nil
	}
	store, err := kv.Open(ctx, kv.Options{Addrs: []string{cfg.StoreAddr}, DisableCache: true})
	if err != nil {
		return fmt.Errorf("store %s: %w", cfg.StoreAddr, err)
	}
	defer store.Close()
	sale := runID + "-rush-peer"
	stock, usersKey := nginxpeer.AdmitStockKey(sale), nginxpeer.AdmitUsersKey(sale)
	clean := store.B().Del().Key(stock, usersKey, nginxpeer.AdmitStream, keyspace.SoldOut(sale)).Build()
	if err := store.Do(ctx, clean).Error(); err != nil {
		return err
	}
	defer store.Do(context.Background(), store.B().Del().Key(stock, usersKey, nginxpeer.AdmitStream, keyspace.SoldOut(sale)).Build())
	if err := store.Do(ctx, store.B().Set().Key(stock).Value(strconv.FormatInt(cfg.Stock, 10)).Build()).Error(); err != nil {
		return err
	}
	// A connection slot per shopper, and room for the tool's own.
	peer, pcfg, skipped := startPeer(ctx, cfg, "rush", nginxpeer.Config{WorkerConnections: users + 1024})
	if peer == nil {
		pr.Skipped = skipped
		rep.Note(cfg.Out, "rush: no nginx + Lua peer: %s", skipped)
		return nil
	}
	defer peer.Stop()

	// One connection per shopper, as in the project's round, opened before the clock.
	opts := ClientOptions{MaxConns: 16, Timeout: cfg.Timeout, IdleTimeout: 50 * time.Second}
	src := NewSources(peer.target, shopperBase, users, opts)
	if lim := int(fileLimit()); lim < 2*users {
		src.SetCold(lim/2, 200*time.Millisecond)
	}
	defer src.Close()
	fmt.Fprintf(cfg.Out, "rush: peer round on %s: %d shoppers open their connections\n", peer.AdmitBase, users)
	warm := NewRow(ScenarioRush, "rush-peer/connect", 200)
	var done atomic.Int64
	Drive(ctx, Bounds{Requests: int64(users), Concurrency: min(conc, 128)}, &done, func(_ int, i int64, _ time.Time) {
		src.Client(int(i)).Do(warm, Call{Method: "GET", Path: "/ready"}, nil)
	})

	attempt := NewRow(ScenarioRush, "rush-peer/attempt", 202, 409, 410)
	open := NewHistogram()
	var (
		firstSoldOut atomic.Int64
		mu           sync.Mutex
	)
	pr.Answers = map[string]int64{}
	bearer := strings.Repeat("t", 120)
	body := []byte(`{"challenge_id":"0123456789abcdef0123456789abcdef","answer":"0"}`)
	userNames := make([]string, users)
	for u := range userNames {
		userNames[u] = runID + "p-u" + strconv.Itoa(u)
	}
	path := "/api/v1/flash-sales/" + sale + "/attempts"
	pr.LoadAvg[0] = loadAvg()
	c0 := pcfg.CPUByProcess()
	start := time.Now()
	b := Bounds{Requests: cfg.Attempts, Duration: cfg.phaseDuration(5 * time.Minute), Concurrency: conc}
	fmt.Fprintf(cfg.Out, "rush: peer round: %d attempts, %d workers\n", cfg.Attempts, conc)
	el := phase(ctx, cfg, "rush-peer", b, []*Row{attempt}, func(_ int, i int64, due time.Time) {
		u := int(i % int64(users))
		wasOpen := firstSoldOut.Load() == 0
		var code string
		res := src.Client(u).Do(attempt, Call{Method: "POST", Path: path, Bearer: bearer, IdempotencyKey: runID + "-pa" + strconv.FormatInt(i, 10),
			Header: [2]string{nginxpeer.HeaderUser, userNames[u]}, Body: body}, func(status int, b []byte) {
			if status != 202 {
				code = errCode(b)
			}
		})
		if wasOpen {
			open.Record(res.Latency)
		}
		key := res.ErrKind
		if res.Err == nil {
			key = strings.TrimSpace(strconv.Itoa(res.Status) + " " + code)
		}
		mu.Lock()
		pr.Answers[key]++
		mu.Unlock()
		if res.Status == 410 {
			firstSoldOut.CompareAndSwap(0, int64(time.Since(start)))
		}
	})
	c1 := pcfg.CPUByProcess()
	pr.LoadAvg[1] = loadAvg()
	addRows(rep, el, warm, attempt)
	if err := ctx.Err(); err != nil {
		return err
	}
	n, _, _ := attempt.Counts()
	pr.Attempts = n
	pr.ElapsedS = round2(el.Seconds())
	pr.AttemptsPerS = math.Round(float64(n) / el.Seconds())
	pr.LittleMS = littleMS(conc, pr.AttemptsPerS)
	if t := firstSoldOut.Load(); t > 0 {
		pr.SellOutS = round3(time.Duration(t).Seconds())
	}
	pr.AttemptP50US, pr.AttemptP99US = us(attempt.Hist().Quantile(0.5)), us(attempt.Hist().Quantile(0.99))
	pr.AttemptOpenP50US, pr.AttemptOpenP99US = us(open.Quantile(0.5)), us(open.Quantile(0.99))
	pr.CPUByProcessUS, pr.CPUPerAttemptUS = cpuPer(c0, c1, n)
	pr.readRecords(ctx, store, stock, usersKey, attempt.Status(202))
	pr.compare(round, rr)
	if !pr.RecordsOK {
		rep.Fail("rush peer: records disagree: %d stream entries, %d users, %d left of %d, %d answered 202", pr.Streamed, pr.Winners, pr.Left, pr.Stock, attempt.Status(202))
	}
	return nil
}

// cpuPer splits the CPU used between two readings by process per request, and sums it.
func cpuPer(a, b map[string]time.Duration, n int64) (map[string]float64, float64) {
	if n <= 0 || len(b) == 0 {
		return nil, 0
	}
	out := map[string]float64{}
	var total time.Duration
	for p, t := range b {
		total += t - a[p]
		out[p] = round1(float64((t - a[p]).Microseconds()) / float64(n))
	}
	return out, round1(float64(total.Microseconds()) / float64(n))
}

// readRecords reads the peer's primary records: its stream, its users set, the units left.
func (p *RushPeerReport) readRecords(ctx context.Context, store rueidis.Client, stock, usersKey string, admitted int64) {
	p.Streamed, _ = store.Do(ctx, store.B().Xlen().Key(nginxpeer.AdmitStream).Build()).AsInt64()
	p.Winners, _ = store.Do(ctx, store.B().Scard().Key(usersKey).Build()).AsInt64()
	p.Left, _ = store.Do(ctx, store.B().Get().Key(stock).Build()).AsInt64()
	p.RecordsOK = p.Left >= 0 && p.Streamed == admitted && p.Winners == admitted && p.Stock-p.Left == admitted
}
