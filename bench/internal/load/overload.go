package load

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// ScenarioOverload measures shedding: the capacity of cart adds (closed loop), then open-loop
// load at 1x, 2x and 5x that capacity. Goals (issue 15): goodput at 5x >= 90 % of capacity and
// the refusals (503/429, answered at the edge) at p99 <= 10 ms.
const ScenarioOverload = "overload"

// overloadLevels are the offered loads, as multiples of the measured capacity.
var overloadLevels = []float64{1, 2, 5}

func runOverload(ctx context.Context, cfg Config, rep *Report, runID string) error {
	conc := cfg.concurrency(64)
	users := max(cfg.users(1000), conc)
	phaseLen := cfg.phaseDuration(5 * time.Second)
	c := NewClient(cfg.Target, ClientOptions{MaxConns: 4096, Timeout: cfg.Timeout})
	defer c.Close()
	fmt.Fprintf(cfg.Out, "overload: logging in %d shoppers\n", users)
	tokens, err := loginAll(ctx, c, cfg, NewRow(ScenarioOverload, "overload/login", 200), runID+"o", users, conc)
	if err != nil {
		return err
	}
	var mu sync.Mutex
	rands := map[int]*rand.Rand{}
	put := func(row *Row, w int, i int64, due time.Time) Result {
		mu.Lock()
		r := rands[w]
		if r == nil {
			r = workerRand(cfg.Seed, w)
			rands[w] = r
		}
		u := int(i % int64(users))
		line, q := cartLine(r, u, cfg.Products), 1+r.IntN(5)
		mu.Unlock()
		return c.Do(row, Call{Method: "PUT", Path: fmt.Sprintf("/api/v1/cart/items/%08d", line),
			Bearer: tokens[u], Body: quantityBody(q), Start: due}, nil)
	}

	capRow := NewRow(ScenarioOverload, "overload/capacity", 200)
	el := phase(ctx, cfg, "overload capacity", Bounds{Duration: phaseLen, Concurrency: conc}, []*Row{capRow}, func(w int, i int64, due time.Time) {
		put(capRow, w, i, due)
	})
	_, ok, _ := capRow.Counts()
	capacity := float64(ok) / el.Seconds()
	addRows(rep, el, capRow)
	fmt.Fprintf(cfg.Out, "overload: capacity %.0f cart adds/s (closed loop, %d workers)\n", capacity, conc)
	if capacity < 1 {
		return fmt.Errorf("overload: no capacity measured (%d answers of 200)", ok)
	}
	for _, m := range overloadLevels {
		row := NewRow(ScenarioOverload, fmt.Sprintf("overload/%gx", m), 200, 503, 429)
		good, refused := NewHistogram(), NewHistogram()
		b := Bounds{Duration: phaseLen, Concurrency: 4000, Rate: m * capacity}
		el := phase(ctx, cfg, fmt.Sprintf("overload %gx", m), b, []*Row{row}, func(w int, i int64, due time.Time) {
			res := put(row, w, i, due)
			switch res.Status {
			case 200:
				good.Record(res.Latency)
			case 503, 429:
				refused.Record(res.Latency)
			}
		})
		addRows(rep, el, row)
		goodput := float64(good.Count()) / el.Seconds()
		reqs, _, failed := row.Counts()
		verdict := func(ok bool) string {
			if ok {
				return "OK"
			}
			return "MISSED"
		}
		line := fmt.Sprintf("overload %gx: offered %.0f/s, goodput %.0f/s = %.0f%% of capacity, successes p99 %s, refusals %d (p99 %s), no answer %d of %d",
			m, m*capacity, goodput, 100*goodput/capacity, good.Quantile(0.99).Round(time.Microsecond),
			refused.Count(), refused.Quantile(0.99).Round(time.Microsecond), failed, reqs)
		if m == 5 {
			line += fmt.Sprintf("; goals: goodput >= 90%% %s, refusal p99 <= 10ms %s",
				verdict(goodput >= 0.9*capacity), verdict(refused.Count() == 0 || refused.Quantile(0.99) <= 10*time.Millisecond))
		}
		rep.Note(cfg.Out, "%s", line)
	}
	return nil
}
