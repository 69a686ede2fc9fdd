package load

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"
)

// orderCheck is what the shoppers' order lists say about the sale.
type orderCheck struct {
	users    int      // shoppers whose orders were read
	total    int64    // orders of the sale among them
	problems []string // shoppers above the limit, or with orders != wins (first 10)
	failed   int      // reads that did not answer 200
}

// checkOrders reads GET /api/v1/orders for every winner and up to 200 shoppers who attempted
// without winning, and counts each one's orders of the sale.
func (r *rush) checkOrders(ctx context.Context) orderCheck {
	var who []int
	others := 0
	for u := range r.wins {
		switch {
		case r.wins[u].Load() > 0:
			who = append(who, u)
		case r.attemptsByUser[u].Load() > 0 && others < 200:
			who = append(who, u)
			others++
		}
	}
	var oc orderCheck
	var mu sync.Mutex
	row := NewRow(ScenarioRush, "rush/orders", 200)
	Drive(ctx, Bounds{Requests: int64(len(who)), Concurrency: 32}, nil, func(_ int, i int64, _ time.Time) {
		u := who[i]
		var out struct {
			Items []struct {
				FlashSaleID string `json:"flash_sale_id"`
			} `json:"items"`
		}
		res := r.c.Do(row, Call{Method: "GET", Path: "/api/v1/orders?limit=100", Bearer: r.tokens[u]}, func(status int, b []byte) {
			if status == 200 {
				_ = json.Unmarshal(b, &out)
			}
		})
		mu.Lock()
		defer mu.Unlock()
		if res.Status != 200 {
			oc.failed++
			return
		}
		oc.users++
		n := 0
		for _, it := range out.Items {
			if it.FlashSaleID == r.sale {
				n++
			}
		}
		oc.total += int64(n)
		wins := int(r.wins[u].Load())
		if (n > r.cfg.Limit || n != wins) && len(oc.problems) < 10 {
			oc.problems = append(oc.problems, fmt.Sprintf("shopper %d: %d orders of the sale, %d wins, limit %d", u, n, wins, r.cfg.Limit))
		}
	})
	return oc
}

// fill copies the counters into the report.
func (r *rush) fill(el time.Duration) {
	rr := r.rep
	r.mu.Lock()
	rr.AttemptAnswers = maps.Clone(r.answers)
	rr.Lost = maps.Clone(r.lost)
	r.mu.Unlock()
	for u := range r.attemptsByUser {
		if n := int64(r.attemptsByUser[u].Load()); n > 0 {
			rr.DistinctUsers++
			rr.Demand += min(n, int64(r.cfg.Limit))
		}
	}
	attempts, _, _ := r.attempt.Counts()
	challenges, _, _ := r.challenge.Counts()
	rr.Attempts = max(attempts, challenges)
	rr.AttemptsSent = attempts
	rr.Admitted = r.admitted.Load()
	if last := time.Duration(r.lastAdmit.Load()); last > 0 {
		rr.AdmittedPerS = math.Round(float64(rr.Admitted)/last.Seconds()*10) / 10
	}
	h := r.attempt.Hist()
	rr.AttemptP50US, rr.AttemptP99US = us(h.Quantile(0.5)), us(h.Quantile(0.99))
	rr.AttemptOpenP50US, rr.AttemptOpenP99US = us(r.attemptOpen.Quantile(0.5)), us(r.attemptOpen.Quantile(0.99))
	rr.AttemptsOpen = int64(r.attemptOpen.Count())
	rr.AttemptsElapsedS = round3(el.Seconds())
	if el > 0 {
		rr.AttemptsPerS = math.Round(float64(attempts)/el.Seconds()*10) / 10
	}
	if t := r.firstSoldOut.Load(); t > 0 {
		rr.SellOutS = round3(time.Duration(t).Seconds())
	}
	rr.Won = r.won.Load()
	rr.SoldOutTix = r.soldOutTix.Load()
	rr.NotFinal = r.notFinal.Load()
	rr.DecisionP50S = round3(r.decision.Quantile(0.5).Seconds())
	rr.DecisionP99S = round3(r.decision.Quantile(0.99).Seconds())
	rr.Checkouts = r.checkouts.Load()
	rr.PoWHashes = r.hashes.Load()
}

// invariants checks the final ledger fin, the ledger samples' problems and the order lists
// against what the shoppers were told.
func (r *rush) invariants(fin ledger, samples []string, oc orderCheck) {
	rr := r.rep
	add := func(name string, ok bool, format string, a ...any) {
		rr.Invariants = append(rr.Invariants, Check{Name: name, OK: ok, Detail: fmt.Sprintf(format, a...)})
	}
	want := min(r.cfg.Stock, rr.Demand)
	add("winners", rr.Won == want, "%d winners; want exactly min(stock %d, demand %d) = %d", rr.Won, r.cfg.Stock, rr.Demand, want)
	add("units out match winners", fin.Reserved+fin.Ordered == rr.Won,
		"ledger reserved %d + ordered %d = %d units out; %d winners were told they won", fin.Reserved, fin.Ordered, fin.Reserved+fin.Ordered, rr.Won)
	var neg []string
	for i, s := range fin.Shards {
		if s < 0 {
			neg = append(neg, fmt.Sprintf("shard %d: %d", i, s))
		}
	}
	add("no oversell", fin.Reserved+fin.Ordered <= fin.Initial && len(neg) == 0 && fin.Remaining >= 0,
		"reserved %d + ordered %d <= initial %d; negative shards: %s", fin.Reserved, fin.Ordered, fin.Initial, orNone(neg))
	add("ledger balances", fin.Initial == fin.Remaining+fin.Reserved+fin.Ordered && fin.Initial == r.cfg.Stock,
		"initial %d == remaining %d + reserved %d + ordered %d (sale stock %d)", fin.Initial, fin.Remaining, fin.Reserved, fin.Ordered, r.cfg.Stock)
	if fin.Audit != nil {
		var v []string
		for _, f := range fin.Audit.Violations {
			v = append(v, f.Check+": "+f.Detail)
		}
		add("audit from the primary records", fin.Audit.OK,
			"orders, tokens, claims and shards of the sale: violations: %s", orNone(v))
	}
	add("ledger balances during the run", len(samples) == 0, "%d ledger reads during the rush; problems: %s", rr.LedgerSamples, orNone(samples))
	var over []string
	for u := range r.wins {
		if n := int(r.wins[u].Load()); n > r.cfg.Limit && len(over) < 10 {
			over = append(over, fmt.Sprintf("shopper %d won %d", u, n))
		}
	}
	add("no shopper above the limit (tickets)", len(over) == 0, "wins per shopper <= %d; over: %s", r.cfg.Limit, orNone(over))
	add("no shopper above the limit (orders)", len(oc.problems) == 0 && oc.failed == 0 && oc.total == fin.Ordered,
		"order lists of %d shoppers (every winner, up to 200 others): %d orders of the sale, ledger ordered %d; unreadable %d; problems: %s",
		oc.users, oc.total, fin.Ordered, oc.failed, orNone(oc.problems))
	add("every ticket decided", rr.NotFinal == 0 && fin.Queued == 0,
		"%d tickets not decided within %s; ledger queued %d", rr.NotFinal, r.cfg.TicketTimeout, fin.Queued)
	add("every winner checked out", rr.Checkouts == rr.Won, "%d checkouts answered 201 for %d winners", rr.Checkouts, rr.Won)
	rr.OrdersChecked = oc.users
	rr.InvariantsOK = true
	for _, c := range rr.Invariants {
		rr.InvariantsOK = rr.InvariantsOK && c.OK
	}
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, "; ")
}

// WriteRush prints the rush's figures and invariants.
func WriteRush(w io.Writer, rr *RushReport) {
	fmt.Fprintf(w, "rush: sale %s: %d units, %d shards, limit %d, %d-bit proof of work; %d shoppers, %d attempts (%d distinct shoppers, demand %d)\n",
		rr.Sale, rr.Stock, rr.Shards, rr.Limit, rr.Difficulty, rr.Users, rr.Attempts, rr.DistinctUsers, rr.Demand)
	keys := slices.Sorted(maps.Keys(rr.AttemptAnswers))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s: %d", k, rr.AttemptAnswers[k])
	}
	fmt.Fprintf(w, "  attempt answers:      %s\n", strings.Join(parts, ", "))
	fmt.Fprintf(w, "  attempts:             %.0f/s over %.1fs (challenge + proof of work + attempt each; %d hashes solved)\n", rr.AttemptsPerS, rr.AttemptsElapsedS, rr.PoWHashes)
	fmt.Fprintf(w, "  admitted:             %d, %.0f/s (first attempt to last admission)\n", rr.Admitted, rr.AdmittedPerS)
	fmt.Fprintf(w, "  attempt answer:       p50 %s, p99 %s over %d attempts (send to answer; %s)\n",
		FormatUS(rr.AttemptP50US), FormatUS(rr.AttemptP99US), rr.AttemptsSent, attemptDefinition(rr))
	fmt.Fprintf(w, "  attempts while open:  p50 %s, p99 %s over the %d attempts sent before the first sold-out answer (the attempts the order service decides: the previous definition's population)\n",
		FormatUS(rr.AttemptOpenP50US), FormatUS(rr.AttemptOpenP99US), rr.AttemptsOpen)
	writeServerView(w, rr.Server, runtime.NumCPU())
	fmt.Fprintf(w, "  time to sell out:     %s to the first sold-out answer; %s to the first ledger read with no unit left (read every 100ms)\n",
		secs(rr.SellOutS), secs(rr.LedgerSellOutS))
	fmt.Fprintf(w, "  tickets:              %d won, %d sold out, lost %s, %d not decided; decided within p50 %.2fs, p99 %.2fs of admission (polled every poll_after_ms)\n",
		rr.Won, rr.SoldOutTix, formatCounts(rr.Lost), rr.NotFinal, rr.DecisionP50S, rr.DecisionP99S)
	if d := rr.RecordDecision; d != nil {
		fmt.Fprintf(w, "  decided (records):    %d tickets, p50 %dms, p99 %dms, max %dms from admission to decision (result records' created_at and decided_at)\n",
			d.Tickets, d.P50MS, d.P99MS, d.MaxMS)
	}
	fmt.Fprintf(w, "  checkouts:            %d answered 201\n", rr.Checkouts)
	if rr.SoldOutBurstSize > 0 {
		fmt.Fprintf(w, "  sold-out answers:     %.0f/s (%d requests; client-bound: this tool shares the CPUs with every server; benchrun measures the edge's sold-out answer against the ceiling with wrk)\n",
			rr.SoldOutPerS, rr.SoldOutBurstSize)
	}
	fmt.Fprintf(w, "  goals (issue 13):     %s\n", rushGoals(rr))
	fmt.Fprintf(w, "  ledger:               %s\n", strings.TrimSpace(string(rr.Ledger)))
	for _, c := range rr.Invariants {
		mark := "ok  "
		if !c.OK {
			mark = "FAIL"
		}
		fmt.Fprintf(w, "  [%s] %s: %s\n", mark, c.Name, c.Detail)
	}
	if rr.InvariantsOK {
		fmt.Fprintln(w, "invariants: OK")
	} else {
		var failed []string
		for _, c := range rr.Invariants {
			if !c.OK {
				failed = append(failed, c.Name)
			}
		}
		fmt.Fprintf(w, "invariants: FAILED (%s)\n", strings.Join(failed, ", "))
	}
}

// attemptDefinition says how the attempts' challenges were had.
func attemptDefinition(rr *RushReport) string {
	if rr.SolvedAhead > 0 {
		return fmt.Sprintf("each shopper's first attempt carries a challenge fetched and solved before the clock (%d in %.1fs), later ones fetch theirs in the loop", rr.SolvedAhead, rr.SolveAheadS)
	}
	return "every attempt fetched and solved its challenge in the loop first"
}

// rushGoals says how the rush did against issue 13's goals: sold out within 1 s of the first
// attempt, every ticket final within 2 s of its admission (from the records), attempt answer p99
// within 20 ms.
func rushGoals(rr *RushReport) string {
	mark := func(ok bool) string {
		if ok {
			return "met"
		}
		return "missed"
	}
	out := fmt.Sprintf("sold out <= 1s: %s (%s); attempt p99 <= 20ms: %s (%s; while open: %s, %s)", mark(rr.SellOutS >= 0 && rr.SellOutS <= 1), secs(rr.SellOutS),
		mark(rr.AttemptP99US <= 20_000), FormatUS(rr.AttemptP99US), mark(rr.AttemptOpenP99US <= 20_000), FormatUS(rr.AttemptOpenP99US))
	if d := rr.RecordDecision; d != nil {
		out += fmt.Sprintf("; every ticket final <= 2s: %s (max %dms)", mark(d.MaxMS <= 2000 && rr.NotFinal == 0), d.MaxMS)
	}
	return out
}

func secs(v float64) string {
	if v < 0 {
		return "not seen"
	}
	return fmt.Sprintf("%.2fs", v)
}
