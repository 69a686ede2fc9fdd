package load

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"flashedge/shared/challenge"
)

// RushReport is the flash-sale rush's account: the sale, what the attempts were answered, the
// figures issue 4 asks for, the final ledger and the invariants.
type RushReport struct {
	Sale       string `json:"sale"`
	Product    string `json:"product"`
	Stock      int64  `json:"stock"`
	Shards     int    `json:"shards"`
	Limit      int    `json:"per_user_limit"`
	Difficulty int    `json:"difficulty"`
	Users      int    `json:"users"`
	Attempts   int64  `json:"attempts"`
	// DistinctUsers attempted at least once; Demand is the units they could take at most
	// (sum over users of min(limit, attempts made)).
	DistinctUsers int64 `json:"distinct_users"`
	Demand        int64 `json:"demand"`

	// AttemptAnswers counts attempt answers by status and error code ("202", "410 sold_out",
	// "429 busy", "409 limit_reached", ...).
	AttemptAnswers map[string]int64 `json:"attempt_answers"`
	Admitted       int64            `json:"admitted"`
	AdmittedPerS   float64          `json:"admitted_per_s"`
	// AttemptP50US and AttemptP99US are the attempt answer's latency (the attempts row): from
	// sending the attempt to its answer, over every attempt sent. With SolvedAhead the first
	// attempt of every shopper carries a challenge fetched and solved before the attempts began
	// (as a shopper waiting on the sale's page does, on their own machine); later ones, and every
	// attempt without SolvedAhead, fetch and solve theirs in the loop first (not timed here: the
	// challenge row times the fetch).
	AttemptP50US float64 `json:"attempt_p50_us"`
	AttemptP99US float64 `json:"attempt_p99_us"`
	// AttemptOpenP50US and AttemptOpenP99US are the same over the attempts sent before the first
	// sold-out answer: the attempts the order service decides, which is what the attempts row held
	// when every attempt fetched its challenge in the loop (a challenge is refused once the edge
	// holds the sale sold out). AttemptsOpen counts them.
	// Operations is the honest shoppers' operations of the attempts phase (an attempt, with a
	// challenge fetched in the loop when none was solved ahead; or a challenge refused sold out),
	// OperationsPerS their rate: what a closed loop's Little's law is about.
	Operations     int64   `json:"operations"`
	OperationsPerS float64 `json:"operations_per_s"`
	// CPUPerAttemptUS is the CPU time of every process of the spawned stack over the attempts
	// phase per operation (everything the phase ran: challenges, polls and checkouts included);
	// CPUByProcessUS splits it.
	CPUPerAttemptUS  float64            `json:"cpu_per_attempt_us,omitempty"`
	CPUByProcessUS   map[string]float64 `json:"cpu_by_process_us,omitempty"`
	AttemptOpenP50US float64            `json:"attempt_open_p50_us"`
	AttemptOpenP99US float64            `json:"attempt_open_p99_us"`
	AttemptsOpen     int64              `json:"attempts_open"`
	// AttemptsSent is the attempts posted (operations that got a challenge, or had one ahead).
	AttemptsSent int64 `json:"attempts_sent"`
	// SolvedAhead is the challenges fetched and solved before the attempts began (one per
	// shopper; 0 when the tool ran with -solve-ahead=false); SolveAheadS the time it took.
	SolvedAhead int64   `json:"solved_ahead"`
	SolveAheadS float64 `json:"solve_ahead_s"`
	// AttemptsElapsedS is the attempts phase; AttemptsPerS the attempts answered per second.
	AttemptsElapsedS float64 `json:"attempts_elapsed_s"`
	AttemptsPerS     float64 `json:"attempts_per_s"`
	// SellOutS is the time from the first attempt to the first sold-out answer; LedgerSellOutS
	// to the first ledger read (every 100 ms) showing no unit left. Negative: not seen.
	SellOutS       float64 `json:"sell_out_s"`
	LedgerSellOutS float64 `json:"ledger_sell_out_s"`

	Won          int64            `json:"won"`
	Lost         map[string]int64 `json:"lost_by_reason"`
	SoldOutTix   int64            `json:"tickets_sold_out"`
	NotFinal     int64            `json:"tickets_not_final"`
	DecisionP50S float64          `json:"ticket_decision_p50_s"`
	DecisionP99S float64          `json:"ticket_decision_p99_s"`
	// RecordDecision is admission to decision from the tickets' result records (the final
	// audit's created_at and decided_at), free of the poll interval; nil when not read.
	RecordDecision *DecisionTimes `json:"record_decision,omitempty"`
	Checkouts      int64          `json:"checkouts_201"`
	PoWHashes      int64          `json:"pow_hashes"`

	// SoldOutPerS is the closed-loop burst of attempts after the sell-out, answered 410 at
	// the edge, measured by this client (which shares the machine with every server).
	SoldOutPerS      float64 `json:"sold_out_answers_per_s"`
	SoldOutBurstSize int64   `json:"sold_out_burst_requests"`

	// Server is the servers' own view of the attempt phase (nil when not read).
	Server *ServerView `json:"server,omitempty"`

	// Bots is the round's bots and honest shoppers' success (zero bots in a plain rush).
	Bots *BotReport `json:"bots,omitempty"`

	LedgerSamples int             `json:"ledger_samples"`
	Ledger        json.RawMessage `json:"ledger"`
	OrdersChecked int             `json:"orders_checked_users"`
	Invariants    []Check         `json:"invariants"`
	InvariantsOK  bool            `json:"invariants_ok"`
}

// DecisionTimes is the audit's summary of admission-to-decision times, in milliseconds.
type DecisionTimes struct {
	Tickets int   `json:"tickets"`
	P50MS   int64 `json:"p50_ms"`
	P99MS   int64 `json:"p99_ms"`
	MaxMS   int64 `json:"max_ms"`
}

// Check is one invariant and whether it held.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// ledger is the admin ledger route's answer (the fields the checks read).
type ledger struct {
	Initial   int64   `json:"initial"`
	Remaining int64   `json:"remaining"`
	Shards    []int64 `json:"shards"`
	Reserved  int64   `json:"reserved"`
	Ordered   int64   `json:"ordered"`
	Admitted  int64   `json:"admitted"`
	Queued    int64   `json:"queued"`
	Won       int64   `json:"won"`
	// Audit is the sale recomputed from its primary records; nil in the samples read during the
	// rush (audit=false: the audit reads every record of the sale, too much every 100 ms).
	Audit *struct {
		OK         bool           `json:"ok"`
		Decision   *DecisionTimes `json:"decision"`
		Violations []struct {
			Check  string `json:"check"`
			Detail string `json:"detail"`
		} `json:"violations"`
	} `json:"audit"`
}

// problems lists what is wrong with one ledger read: a negative shard, shards that do not sum
// to remaining, oversell, or initial != remaining + reserved + ordered.
func (l ledger) problems() []string {
	var out []string
	var sum int64
	for i, s := range l.Shards {
		if s < 0 {
			out = append(out, fmt.Sprintf("shard %d holds %d", i, s))
		}
		sum += s
	}
	if sum != l.Remaining {
		out = append(out, fmt.Sprintf("shards sum to %d, remaining says %d", sum, l.Remaining))
	}
	if l.Reserved+l.Ordered > l.Initial {
		out = append(out, fmt.Sprintf("oversold: reserved %d + ordered %d > initial %d", l.Reserved, l.Ordered, l.Initial))
	}
	if l.Initial != l.Remaining+l.Reserved+l.Ordered {
		out = append(out, fmt.Sprintf("initial %d != remaining %d + reserved %d + ordered %d", l.Initial, l.Remaining, l.Reserved, l.Ordered))
	}
	return out
}

type rush struct {
	cfg    Config
	rep    *RushReport
	c      *Client // the tool's own calls (admin, bots' ticket polls) from 127.0.0.1
	src    *Sources
	bots   *Sources
	botSt  *botState
	users  int // honest shoppers: tokens[:users]; bots' users follow
	sale   string
	runID  string
	tokens []string

	challenge, attempt, poll, checkout, burst *Row
	decision                                  *Histogram
	// attemptOpen takes the attempts sent before the first sold-out answer.
	attemptOpen *Histogram
	// ahead holds shopper u's challenge, fetched and solved before the attempts (SolveAhead).
	ahead []solved

	attemptsByUser []atomic.Int32
	wins           []atomic.Int32
	mu             sync.Mutex
	answers        map[string]int64
	lost           map[string]int64

	start        time.Time
	firstSoldOut atomic.Int64 // ns since start, 0: none
	lastAdmit    atomic.Int64
	admitted     atomic.Int64
	won          atomic.Int64
	soldOutTix   atomic.Int64
	notFinal     atomic.Int64
	checkouts    atomic.Int64
	hashes       atomic.Int64

	honestTries  atomic.Int64
	honestServed atomic.Int64
	honestWon    atomic.Int64
	pollCtx      context.Context

	pollers      sync.WaitGroup
	burstElapsed time.Duration
}

// solved is a challenge and its answer; empty when none.
type solved struct{ id, answer string }

func (r *rush) count(m map[string]int64, key string) {
	r.mu.Lock()
	m[key]++
	r.mu.Unlock()
}

func (r *rush) salePath(rest string) string { return "/api/v1/flash-sales/" + r.sale + rest }

func (r *rush) admin(method, path string, body []byte, out any) (int, error) {
	var status int
	var raw []byte
	res := r.c.Do(nil, Call{Method: method, Path: path, Bearer: r.cfg.AdminToken, Body: body}, func(s int, b []byte) {
		status, raw = s, append([]byte(nil), b...)
	})
	if res.Err != nil {
		return 0, res.Err
	}
	if out != nil && status/100 == 2 {
		if err := json.Unmarshal(raw, out); err != nil {
			return status, fmt.Errorf("%s %s: %v in %q", method, path, err, raw)
		}
	}
	if status/100 != 2 {
		return status, fmt.Errorf("%s %s: %d %s", method, path, status, bytes.TrimSpace(raw))
	}
	return status, nil
}

// readLedger reads the admin ledger; with audit the order service also audits the sale from its
// primary records.
func (r *rush) readLedger(audit bool) (ledger, json.RawMessage, error) {
	var raw json.RawMessage
	if _, err := r.admin("GET", "/api/v1/admin/flash-sales/"+r.sale+"/ledger?audit="+strconv.FormatBool(audit), nil, &raw); err != nil {
		return ledger{}, nil, err
	}
	var l ledger
	err := json.Unmarshal(raw, &l)
	return l, raw, err
}

func errCode(body []byte) string {
	var e struct {
		Status string `json:"status"`
		Error  struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil {
		return ""
	}
	if e.Error.Code != "" {
		return e.Error.Code
	}
	return e.Status
}

// runRushRounds runs the rush; with cfg.Bots it runs a baseline round without bots first and
// then the same rush with bots, and compares the honest shoppers' success.
func runRushRounds(ctx context.Context, cfg Config, rep *Report, runID string) error {
	if cfg.Bots <= 0 {
		rr, err := runRush(ctx, cfg, rep, runID, "rush", 0)
		if err != nil {
			return err
		}
		return runRushPeer(ctx, cfg, rep, runID, "rush", rr)
	}
	base, err := runRush(ctx, cfg, rep, runID+"b", "rush-baseline", 0)
	if err != nil {
		return fmt.Errorf("baseline round: %w", err)
	}
	// The peer round right after the round without bots it is compared with.
	if err := runRushPeer(ctx, cfg, rep, runID, "rush-baseline", base); err != nil {
		return fmt.Errorf("peer round: %w", err)
	}
	mix, err := runRush(ctx, cfg, rep, runID, "rush", cfg.Bots)
	if err != nil {
		return fmt.Errorf("bot-mix round: %w", err)
	}
	mix.Bots.BaselineSuccessPct, mix.Bots.BaselineHonestWon = base.Bots.HonestSuccessPct, base.Bots.HonestWon
	rep.Baseline = base
	b := mix.Bots
	fmt.Fprintf(cfg.Out, "\nbot mix: %d bot addresses, %d bot users, %d bot requests (%s)\n", b.Addresses, b.Users, b.Requests, formatCounts(b.Answers))
	fmt.Fprintf(cfg.Out, "  bots refused:         first address after %.3fs, last after %.3fs (from its first request to its first 429 rate_limited, 403 blacklisted or closed connection; %d never refused)\n", b.BanFirstS, b.BanLastS, b.Unrefused)
	fmt.Fprintf(cfg.Out, "  bots' wins:           %d of %d admitted (bound: %d bot users x limit %d = %d)\n", b.Won, b.Admitted, b.Users, cfg.Limit, b.WinBound)
	fmt.Fprintf(cfg.Out, "  honest success:       %.1f%% with bots vs %.1f%% without (attempts answered by the sale, not refused by a limit); honest wins %d vs %d\n",
		b.HonestSuccessPct, b.BaselineSuccessPct, b.HonestWon, b.BaselineHonestWon)
	fmt.Fprintf(cfg.Out, "  invariants:           baseline %s, bot mix %s\n", okWord(base.InvariantsOK), okWord(mix.InvariantsOK))
	fmt.Fprintf(cfg.Out, "baseline round (no bots): attempt answer p50 %s, p99 %s (while open: p50 %s, p99 %s over %d); sold out after %s; %d admitted, %.0f/s\n",
		FormatUS(base.AttemptP50US), FormatUS(base.AttemptP99US), FormatUS(base.AttemptOpenP50US), FormatUS(base.AttemptOpenP99US), base.AttemptsOpen, secs(base.SellOutS), base.Admitted, base.AdmittedPerS)
	writeServerView(cfg.Out, base.Server, runtime.NumCPU())
	if b.Won > b.WinBound {
		rep.Fail("bots won %d units, above their bound %d", b.Won, b.WinBound)
	}
	return nil
}

func okWord(ok bool) string {
	if ok {
		return "OK"
	}
	return "FAILED"
}

// runRush creates a sale, logs the shoppers in (each from its own loopback address), fires the
// attempts (challenge, honest proof of work, attempt) alongside the bots when there are any,
// polls every admitted ticket, checks the winners out, bursts sold-out attempts, reads the
// ledger and checks the invariants. Its rows are named after round.
func runRush(ctx context.Context, cfg Config, rep *Report, runID, round string, bots int) (*RushReport, error) {
	if cfg.AdminToken == "" {
		return nil, fmt.Errorf("the rush creates a sale and reads its ledger: give the edge's admin token (-admin-token or FLASHEDGE_ADMIN_TOKEN)")
	}
	conc := cfg.concurrency(256)
	users := cfg.users(20_000)
	botUsers := bots * botUsersPerAddr
	// A shopper keeps its connection from the challenge to the attempts, as a browser on the
	// sale's page does, when this process and the servers (which inherit the limit) may hold one
	// per shopper. Otherwise only the first half of the shoppers do (shopper i mod users makes
	// attempt i, so they are the ones attempting while the sale is open) and the others close a
	// connection idle for 200ms, reopening one when next needed.
	shopperOpts := ClientOptions{MaxConns: 16, Timeout: cfg.Timeout, IdleTimeout: 50 * time.Second} // below the edge's 60s
	warm := users
	if lim := int(fileLimit()); lim < 2*users {
		warm = lim / 2 // the other half for everything else, on the edge's side too
		fmt.Fprintf(cfg.Out, "rush: open files limited to %d: shoppers 0-%d keep their connections, the other %d close theirs after 200ms idle (and reconnect, at a cost to the edge and this tool)\n",
			lim, warm-1, users-warm)
	}
	r := &rush{
		users: users, botSt: newBotState(bots),
		src:  NewSources(cfg.Target, shopperBase, users, shopperOpts),
		bots: NewSources(cfg.Target, botBase, bots, ClientOptions{MaxConns: botWorkers, Timeout: cfg.Timeout}),
		cfg:  cfg, runID: runID, sale: runID + "-rush",
		c:         NewClient(cfg.Target, ClientOptions{MaxConns: conc + 2048, Timeout: cfg.Timeout}),
		challenge: NewRow(ScenarioRush, round+"/challenge", 200),
		attempt:   NewRow(ScenarioRush, round+"/attempt", 202, 409, 410, 429),
		poll:      NewRow(ScenarioRush, round+"/poll", 200),
		checkout:  NewRow(ScenarioRush, round+"/checkout", 201),
		burst:     NewRow(ScenarioRush, round+"/soldout-burst", 410),
		decision:  NewHistogram(), attemptOpen: NewHistogram(),
		answers: map[string]int64{}, lost: map[string]int64{},
		attemptsByUser: make([]atomic.Int32, users+botUsers), wins: make([]atomic.Int32, users+botUsers),
	}
	r.src.SetCold(warm, 200*time.Millisecond)
	defer r.c.Close()
	defer r.src.Close()
	defer r.bots.Close()
	rr := &RushReport{Sale: r.sale, Product: cfg.SaleProduct, Stock: cfg.Stock, Shards: cfg.Shards, Limit: cfg.Limit,
		Difficulty: cfg.Difficulty, Users: users, SellOutS: -1, LedgerSellOutS: -1}
	r.rep = rr
	rep.Rush = rr
	rr.Bots = &BotReport{}

	// The sale: live from a second ago for an hour.
	now := time.Now().UTC()
	spec, _ := json.Marshal(map[string]any{
		"id": r.sale, "product_id": cfg.SaleProduct, "price": 99000, "stock": cfg.Stock, "shards": cfg.Shards,
		"starts_at": now.Add(-time.Second).Format(time.RFC3339), "ends_at": now.Add(time.Hour).Format(time.RFC3339),
		"per_user_limit": cfg.Limit, "difficulty": cfg.Difficulty,
	})
	if _, err := r.admin("POST", "/api/v1/admin/flash-sales", spec, nil); err != nil {
		return nil, fmt.Errorf("create the sale: %w", err)
	}
	if err := r.waitLive(ctx); err != nil {
		return nil, err
	}
	fmt.Fprintf(cfg.Out, "rush: sale %s: %d units of product %s in %d shards, limit %d per user, proof of work %d bits\n",
		r.sale, cfg.Stock, cfg.SaleProduct, cfg.Shards, cfg.Limit, cfg.Difficulty)

	fmt.Fprintf(cfg.Out, "rush: logging in %d shoppers\n", users)
	tokens, err := loginFrom(ctx, func(i int64) *Client { return r.src.Client(int(i)) }, cfg, NewRow(ScenarioRush, round+"/login", 200), runID+"r", users, min(conc, 128))
	if err != nil {
		return nil, err
	}
	r.tokens = tokens
	if bots > 0 {
		fmt.Fprintf(cfg.Out, "rush: logging in %d bot users from %d bot addresses\n", botUsers, bots)
		bt, err := loginFrom(ctx, func(i int64) *Client { return r.bots.Client(int(i) / botUsersPerAddr) }, cfg, NewRow(ScenarioRush, round+"/bot-login", 200), runID+"x", botUsers, 1)
		if err != nil {
			return nil, err
		}
		r.tokens = append(r.tokens, bt...)
	}

	if cfg.SolveAhead {
		if err := r.solveAhead(ctx, NewRow(ScenarioRush, round+"/challenge-ahead", 200), min(conc, 128)); err != nil {
			return nil, err
		}
	}

	// Attempts, with the ledger sampled alongside.
	b := Bounds{Requests: cfg.Attempts, Duration: cfg.phaseDuration(5 * time.Minute), Concurrency: conc, Rate: cfg.Rate}
	fmt.Fprintf(cfg.Out, "rush: %d attempts from %d shoppers, %s, bounded by %s\n", cfg.Attempts, users, cfg.mode(256), describeBounds(b))
	pollCtx, stopPolls := context.WithCancel(ctx)
	defer stopPolls()
	r.pollCtx = pollCtx
	monCtx, stopMonitor := context.WithCancel(ctx)
	var monWG sync.WaitGroup
	var samples []string
	monWG.Add(1)
	r.start = time.Now()
	probe := startServerProbe(ctx, cfg, r.start)
	go func() { defer monWG.Done(); samples = r.monitor(monCtx) }()
	botCtx, stopBots := context.WithCancel(ctx)
	botWG := r.runBots(botCtx)
	var cpu0 map[string]time.Duration
	if cfg.CPUByProcess != nil {
		cpu0 = cfg.CPUByProcess()
	}
	el := phase(ctx, cfg, round, b, []*Row{r.challenge, r.attempt}, func(w int, i int64, due time.Time) {
		r.one(pollCtx, w, i, due)
	})
	rr.Operations = r.honestTries.Load()
	if el > 0 {
		rr.OperationsPerS = math.Round(float64(rr.Operations) / el.Seconds())
	}
	if cfg.CPUByProcess != nil {
		rr.CPUByProcessUS, rr.CPUPerAttemptUS = cpuPer(cpu0, cfg.CPUByProcess(), rr.Operations)
	}
	stopBots()
	botWG.Wait()
	rr.Server = probe.finish(time.Since(r.start))
	fmt.Fprintf(cfg.Out, "rush: attempts done in %.1fs; waiting for %d admitted tickets to be decided and checked out\n", el.Seconds(), r.admitted.Load())
	r.pollers.Wait()
	stopMonitor()
	monWG.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	// Sold-out answers afterwards.
	if cfg.SoldOutDuration > 0 {
		if r.firstSoldOut.Load() == 0 && rr.LedgerSellOutS < 0 {
			rep.Note(cfg.Out, "rush: the sale did not sell out; the sold-out burst is skipped")
		} else {
			r.soldOutBurst(ctx, conc, rep)
		}
	}

	// The final ledger, once every ticket is decided and every winner has checked out (or after
	// a bounded wait).
	var fin ledger
	var raw json.RawMessage
	deadline := time.Now().Add(15 * time.Second)
	for {
		if fin, raw, err = r.readLedger(true); err != nil {
			return nil, fmt.Errorf("read the ledger: %w", err)
		}
		if fin.Queued == 0 && fin.Reserved == 0 || time.Now().After(deadline) {
			break
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return nil, err
		}
	}
	rr.Ledger = raw
	if fin.Audit != nil {
		rr.RecordDecision = fin.Audit.Decision
	}
	orderChecks := r.checkOrders(ctx)

	r.fill(el)
	r.invariants(fin, samples, orderChecks)
	rr.Bots = r.botReport()
	rr.Bots.HonestSuccessPct, rr.Bots.HonestWon = pct(r.honestServed.Load(), r.honestTries.Load()), r.honestWon.Load()
	rr.Invariants = append(rr.Invariants, Check{Name: "bots' wins bounded", OK: rr.Bots.Won <= rr.Bots.WinBound,
		Detail: fmt.Sprintf("%d won, bound %d", rr.Bots.Won, rr.Bots.WinBound)})
	rr.InvariantsOK = rr.InvariantsOK && rr.Bots.Won <= rr.Bots.WinBound
	addRows(rep, el, r.challenge, r.attempt)
	addRows(rep, 0, r.poll, r.checkout)
	addRows(rep, r.burstElapsed, r.burst)
	if !rr.InvariantsOK {
		for _, c := range rr.Invariants {
			if !c.OK {
				rep.Fail("%s invariant %q: %s", round, c.Name, c.Detail)
			}
		}
	}
	return rr, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// waitLive polls the edge's view of the sale until it is live.
func (r *rush) waitLive(ctx context.Context) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		var s struct {
			State string `json:"state"`
		}
		_, err := r.admin("GET", r.salePath(""), nil, &s)
		if err == nil && s.State == "live" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the edge did not show sale %s live within 10s (state %q, %v)", r.sale, s.State, err)
		}
		if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
}

// one is one attempt: shopper i mod users fetches a challenge, solves it, posts the attempt
// and, when admitted, leaves the ticket to a poller.
func (r *rush) one(pollCtx context.Context, _ int, i int64, due time.Time) {
	u := int(i % int64(r.users))
	tok := r.tokens[u]
	c := r.src.Client(u)
	r.honestTries.Add(1)
	var code string
	var sv solved
	if i < int64(len(r.ahead)) {
		sv = r.ahead[u] // this shopper's first attempt: solved before the clock
	}
	if sv.id == "" {
		var ch challenge.Body
		res := c.Do(r.challenge, Call{Method: "POST", Path: r.salePath("/challenge"), Bearer: tok, Start: due}, func(status int, b []byte) {
			if status == 200 {
				if json.Unmarshal(b, &ch) != nil {
					ch.ChallengeID = ""
				}
			} else {
				code = errCode(b)
			}
		})
		if res.Status != 200 || ch.ChallengeID == "" {
			if servedBySale(res.Status, code) {
				r.honestServed.Add(1) // the sale's own answer (sold out), not a refusal
			}
			r.count(r.answers, fmt.Sprintf("challenge %d %s", res.Status, code))
			return
		}
		nonce, hashes := SolvePoW(ch.Payload.Prefix, ch.Payload.Difficulty)
		r.hashes.Add(int64(hashes))
		sv = solved{ch.ChallengeID, nonce}
	}
	body, _ := json.Marshal(map[string]string{"challenge_id": sv.id, "answer": sv.answer})
	r.attemptsByUser[u].Add(1)
	var ticket string
	pollAfter := time.Second
	open := r.firstSoldOut.Load() == 0
	res := c.Do(r.attempt, Call{Method: "POST", Path: r.salePath("/attempts"), Bearer: tok,
		IdempotencyKey: r.runID + "-a" + strconv.FormatInt(i, 10), Body: body}, func(status int, b []byte) {
		if status == 202 {
			var q struct {
				Ticket string `json:"ticket"`
				After  int64  `json:"poll_after_ms"`
			}
			if json.Unmarshal(b, &q) == nil {
				ticket = q.Ticket
				if q.After > 0 {
					pollAfter = time.Duration(q.After) * time.Millisecond
				}
			}
			return
		}
		code = errCode(b)
	})
	if open {
		r.attemptOpen.Record(res.Latency)
	}
	switch {
	case res.Err != nil:
		r.count(r.answers, res.ErrKind)
		return
	case res.Status == 202:
		r.count(r.answers, "202 admitted")
	default:
		r.count(r.answers, strconv.Itoa(res.Status)+" "+code)
	}
	if servedBySale(res.Status, code) {
		r.honestServed.Add(1)
	}
	if res.Status == 410 && code == "sold_out" {
		at := int64(time.Since(r.start))
		r.firstSoldOut.CompareAndSwap(0, at)
	}
	if res.Status != 202 || ticket == "" {
		return
	}
	r.admitted.Add(1)
	admittedAt := time.Now()
	for {
		cur := r.lastAdmit.Load()
		at := int64(admittedAt.Sub(r.start))
		if at <= cur || r.lastAdmit.CompareAndSwap(cur, at) {
			break
		}
	}
	r.pollers.Add(1)
	go func() {
		defer r.pollers.Done()
		r.follow(pollCtx, u, ticket, pollAfter, admittedAt)
	}()
}

// solveAhead fetches one challenge for every shopper from its own address and solves it, before
// the attempts begin: a shopper waiting on the sale's page does this on their own machine, so
// neither the fetch nor the proof of work belongs in the attempt's answer time or on the CPUs
// the servers share with this tool during the rush. A challenge that could not be fetched is
// left empty (that shopper fetches one in the loop like any later attempt).
func (r *rush) solveAhead(ctx context.Context, row *Row, conc int) error {
	fmt.Fprintf(r.cfg.Out, "rush: %d shoppers fetch and solve a challenge before the attempts (as on the sale's page)\n", r.users)
	r.ahead = make([]solved, r.users)
	var done atomic.Int64
	start := time.Now()
	stop := r.cfg.Progress.Start(row.Name, int64(r.users), 0, &done, func() int64 { _, _, f := row.Counts(); return f })
	Drive(ctx, Bounds{Requests: int64(r.users), Concurrency: conc}, &done, func(_ int, i int64, _ time.Time) {
		u := int(i)
		var ch challenge.Body
		r.src.Client(u).Do(row, Call{Method: "POST", Path: r.salePath("/challenge"), Bearer: r.tokens[u]}, func(status int, b []byte) {
			if status == 200 && json.Unmarshal(b, &ch) != nil {
				ch.ChallengeID = ""
			}
		})
		if ch.ChallengeID == "" {
			return
		}
		nonce, hashes := SolvePoW(ch.Payload.Prefix, ch.Payload.Difficulty)
		r.hashes.Add(int64(hashes))
		r.ahead[u] = solved{ch.ChallengeID, nonce}
	})
	stop()
	if err := ctx.Err(); err != nil {
		return err
	}
	var n int64
	for _, sv := range r.ahead {
		if sv.id != "" {
			n++
		}
	}
	r.rep.SolvedAhead, r.rep.SolveAheadS = n, round3(time.Since(start).Seconds())
	if n < int64(r.users) {
		snap := row.Snapshot(0)
		fmt.Fprintf(r.cfg.Out, "rush: %d of %d challenges fetched ahead (answers %s, errors %s); the others are fetched in the loop\n",
			n, r.users, formatCounts(snap.Answers), formatCounts(snap.Errors))
	}
	return nil
}

// follow polls a ticket every pollAfter until it is decided (or TicketTimeout passes) and
// checks a winner out.
func (r *rush) follow(ctx context.Context, u int, ticket string, pollAfter time.Duration, admittedAt time.Time) {
	tok := r.tokens[u]
	c := r.c // a bot's ticket is read from the tool's own address: the bot's is banned
	if u < r.users {
		c = r.src.Client(u)
	}
	deadline := admittedAt.Add(r.cfg.TicketTimeout)
	for {
		if err := sleepCtx(ctx, pollAfter); err != nil {
			return
		}
		var res struct {
			Status string `json:"status"`
			Token  string `json:"token"`
			Reason string `json:"reason"`
		}
		c.Do(r.poll, Call{Method: "GET", Path: r.salePath("/attempts/" + ticket), Bearer: tok}, func(status int, b []byte) {
			if status == 200 {
				_ = json.Unmarshal(b, &res)
			}
		})
		switch res.Status {
		case "won":
			r.decision.Record(time.Since(admittedAt))
			r.won.Add(1)
			r.wins[u].Add(1)
			if u < r.users {
				r.honestWon.Add(1)
			} else {
				r.botSt.won.Add(1)
			}
			body, _ := json.Marshal(map[string]string{"token": res.Token})
			// A shopper retries a checkout the edge sheds (503) or limits (429) a moment later,
			// until the ticket's deadline; every try is a row entry.
			for {
				st := c.Do(r.checkout, Call{Method: "POST", Path: r.salePath("/checkout"), Bearer: tok, Body: body}, nil).Status
				if st == 201 {
					r.checkouts.Add(1)
				}
				if st != 503 && st != 429 || time.Now().After(deadline) || sleepCtx(ctx, 250*time.Millisecond) != nil {
					return
				}
			}
		case "lost":
			r.decision.Record(time.Since(admittedAt))
			r.count(r.lost, res.Reason)
			return
		case "sold_out":
			r.decision.Record(time.Since(admittedAt))
			r.soldOutTix.Add(1)
			return
		}
		if time.Now().After(deadline) {
			r.notFinal.Add(1)
			return
		}
	}
}

// monitor reads the ledger every 100 ms until ctx ends, checks every read balances and notes
// when no unit is left. It returns the problems seen (at most 10).
func (r *rush) monitor(ctx context.Context) []string {
	var problems []string
	n := 0
	for {
		if sleepCtx(ctx, 100*time.Millisecond) != nil {
			r.rep.LedgerSamples = n
			return problems
		}
		l, _, err := r.readLedger(false)
		if err != nil {
			continue // counted nowhere: the final read must work
		}
		n++
		for _, p := range l.problems() {
			if len(problems) < 10 {
				problems = append(problems, fmt.Sprintf("at %.1fs: %s", time.Since(r.start).Seconds(), p))
			}
		}
		if l.Remaining == 0 && r.rep.LedgerSellOutS < 0 {
			r.rep.LedgerSellOutS = round3(time.Since(r.start).Seconds())
		}
	}
}

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }

// soldOutBurst posts attempts to the sold-out sale in a closed loop for SoldOutDuration: the
// edge answers them 410 without a backend call.
func (r *rush) soldOutBurst(ctx context.Context, conc int, rep *Report) {
	body := []byte(`{"challenge_id":"00","answer":"0"}`)
	b := Bounds{Duration: r.cfg.SoldOutDuration, Concurrency: conc}
	fmt.Fprintf(r.cfg.Out, "rush: sold-out burst: %d workers posting attempts for %s\n", conc, b.Duration)
	el := phase(ctx, r.cfg, "sold-out burst", b, []*Row{r.burst}, func(_ int, i int64, _ time.Time) {
		u := int(i % int64(r.users))
		r.src.Client(u).Do(r.burst, Call{Method: "POST", Path: r.salePath("/attempts"), Bearer: r.tokens[u],
			IdempotencyKey: r.runID + "-b" + strconv.FormatInt(i, 10), Body: body}, nil)
	})
	n, _, _ := r.burst.Counts()
	r.rep.SoldOutBurstSize = n
	r.rep.SoldOutPerS = math.Round(float64(r.burst.Status(410))/el.Seconds()*10) / 10
	r.burstElapsed = el
}
