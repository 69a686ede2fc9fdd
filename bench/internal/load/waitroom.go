package load

import (
	"container/heap"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/rueidis"

	"flashedge/shared/challenge"
	"flashedge/shared/kv"
	"flashedge/shared/waitroom"
)

// WaitRoomReport is the waiting-room rush's account (issue 12): shoppers join a sale's waiting
// room before the start and poll; at the start the pre-queue is shuffled and admitted at the set
// pace; admitted shoppers attempt with their pass until the sale sells out.
type WaitRoomReport struct {
	Sale     string `json:"sale"`
	Users    int    `json:"users"`
	Bots     int    `json:"bots"`
	Stock    int64  `json:"stock"`
	Admit    int    `json:"admit_per_second"`
	PreQueue int    `json:"pre_queue"`

	// JoinsPerS is the join rate (one store script each); Polls and PollsPerS count queue polls.
	JoinsPerS float64 `json:"joins_per_s"`
	Polls     int64   `json:"polls"`

	// StoreCmdsPerSWaiting is the store's command rate (INFO commandstats, INFO excluded)
	// while everyone waits for the start, next to PollsPerSWaiting, the poll rate meanwhile.
	StoreCmdsPerSWaiting float64 `json:"store_cmds_per_s_waiting"`
	PollsPerSWaiting     float64 `json:"polls_per_s_waiting"`
	// ServerCPUPerPollUs is the CPU time every process of a spawned stack (edge, backends,
	// store) used per poll while everyone waits; LoadCPUPerPollUs this load generator's own.
	// CPU per poll is the figure to compare across runs on a shared machine, not polls/s.
	ServerCPUPerPollUs   float64 `json:"server_cpu_per_poll_us_waiting"`
	LoadCPUPerPollUs     float64 `json:"load_cpu_per_poll_us_waiting"`
	StoreCmdsPerSSelling float64 `json:"store_cmds_per_s_selling"`
	PollsPerSSelling     float64 `json:"polls_per_s_selling"`

	// StartToSellOutS is from starts_at to the edge's sale view saying sold_out.
	StartToSellOutS float64          `json:"start_to_sell_out_s"`
	Admitted        int64            `json:"admitted"`
	Won             int64            `json:"won"`
	AttemptAnswers  map[string]int64 `json:"attempt_answers"`

	// Waiting shoppers at the sell-out and how soon they were told. A told shopper's lateness
	// splits in three: when its telling poll was due against the sell-out (the edge's poll
	// schedule: at most the poll_after_ms it had been given, by construction of the schedule),
	// how late this load generator sent it (SendLag: its own backlog), and how long the edge
	// took to answer (AnswerTime: the server's backlog). ToldOnSchedule counts the shoppers
	// whose telling poll was due within one poll interval of the sell-out; ToldWithinPoll those
	// told (answer received) within one poll interval plus 1 s of it by the wall clock.
	WaitingAtSellOut int64   `json:"waiting_at_sell_out"`
	ToldSoldOut      int64   `json:"told_sold_out"`
	ToldOnSchedule   int64   `json:"told_on_schedule"`
	ToldWithinPoll   int64   `json:"told_within_one_poll"`
	ToldLagMaxS      float64 `json:"told_lag_max_s"`
	ToldLagP99S      float64 `json:"told_lag_p99_s"`
	ToldDueMaxS      float64 `json:"told_due_after_sell_out_max_s"`
	ToldSendLagP99S  float64 `json:"told_send_lag_p99_s"`
	ToldSendLagMaxS  float64 `json:"told_send_lag_max_s"`
	ToldAnswerP99S   float64 `json:"told_answer_time_p99_s"`
	ToldAnswerMaxS   float64 `json:"told_answer_time_max_s"`
	// WaitingAfterSellOut counts polls sent after the sell-out (plus the 50 ms the sell-out
	// instant is sampled at) that were still answered "waiting": 0 means every waiting shopper's
	// next poll said sold_out.
	WaitingAfterSellOut int64 `json:"waiting_answers_after_sell_out"`
	// PollLateP99S and PollLateMaxS are how late this load generator sent polls against the
	// time they were due (all polls, open loop: its own scheduling on a shared machine, not the
	// server's); PollAnswerP99S and PollAnswerMaxS how long the edge took to answer them.
	PollLateP99S   float64 `json:"poll_late_p99_s"`
	PollLateMaxS   float64 `json:"poll_late_max_s"`
	PollAnswerP99S float64 `json:"poll_answer_p99_s"`
	PollAnswerMaxS float64 `json:"poll_answer_max_s"`
	// InFlightMax is the most polls this generator had in flight at once (its cap: PollInFlight).
	InFlightMax  int64 `json:"polls_in_flight_max"`
	PollInFlight int   `json:"polls_in_flight_cap"`
	Expired      int64 `json:"expired"`

	// Fairness among pre-queue joiners: Spearman's rank correlation between join order and
	// queue position (about 0 for a fair shuffle), the published order checked against the
	// seed and its commitment, and what the first joiners (bots) got.
	RankCorrelation   float64 `json:"rank_correlation_join_vs_position"`
	SeedMatches       bool    `json:"seed_matches_commitment"`
	OrderRecomputed   bool    `json:"order_recomputed_from_seed"`
	PositionsMatch    bool    `json:"positions_match_published_order"`
	BotMeanPercentile float64 `json:"bot_mean_position_percentile"`
	BotWins           int64   `json:"bot_wins"`
	BotWinsExpected   float64 `json:"bot_wins_expected"`
}

type wrShopper struct {
	tok       string
	uid       string
	qtok      string
	joinSeq   int64 // order of the join answers, 1-based
	pre       bool
	pos       int64
	pollAfter time.Duration
	done      bool
	lastPoll  time.Time // when the last answer came
	lastSent  time.Time // when the last poll was sent
	// The poll that said sold_out: when it was due, sent and answered, and the poll interval
	// the shopper had been given before it.
	toldDue, toldSent, toldAt time.Time
	toldAfter                 time.Duration
	// prevSent and prevAnswered are the previous poll's (answered "waiting").
	prevSent, prevAnswered time.Time
}

type dueItem struct {
	at time.Time
	i  int
}

type dueHeap []dueItem

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h dueHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *dueHeap) Push(x any)        { *h = append(*h, x.(dueItem)) }
func (h *dueHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

type waitRush struct {
	cfg   Config
	rep   *WaitRoomReport
	c     *Client
	sale  string
	shop  []wrShopper
	store rueidis.Client

	join, poll, attempt, ticket *Row
	late, answerTime            *Histogram
	waitingAfter                atomic.Int64
	inFlight, inFlightMax       atomic.Int64

	polls     atomic.Int64
	admitted  atomic.Int64
	won       atomic.Int64
	botWins   atomic.Int64
	expired   atomic.Int64
	soldOutAt atomic.Int64 // unix nanos the edge first said sold_out
	buys      sync.WaitGroup
	mu        sync.Mutex
	answers   map[string]int64
}

// runWaitRoom: a sale with a waiting room opening now and starting once every shopper has
// joined; the first 1% join first (bots); everyone polls as told until sold out.
func runWaitRoom(ctx context.Context, cfg Config, rep *Report, runID string) error {
	if cfg.AdminToken == "" {
		return fmt.Errorf("the waiting-room rush creates a sale: give the edge's admin token")
	}
	users := cfg.users(100_000)
	conc := cfg.concurrency(256)
	admit := cfg.Admit
	if admit <= 0 {
		admit = 250
	}
	inFlight := max(2048, 8*conc) // polls in flight at once (open loop)
	w := &waitRush{
		cfg: cfg, sale: runID + "-wr",
		c:          NewClient(cfg.Target, ClientOptions{MaxConns: conc + 512 + inFlight, Timeout: cfg.Timeout}),
		join:       NewRow(ScenarioWaitRoom, "waitroom/join", 200),
		poll:       NewRow(ScenarioWaitRoom, "waitroom/poll", 200),
		attempt:    NewRow(ScenarioWaitRoom, "waitroom/attempt", 202, 410, 409),
		ticket:     NewRow(ScenarioWaitRoom, "waitroom/ticket-poll", 200),
		answers:    map[string]int64{},
		late:       NewHistogram(),
		answerTime: NewHistogram(),
	}
	defer w.c.Close()
	bots := max(1, users/100)
	wr := &WaitRoomReport{Sale: w.sale, Users: users, Bots: bots, Stock: cfg.Stock, Admit: admit, AttemptAnswers: w.answers}
	w.rep = wr
	rep.WaitRoom = wr
	if cfg.StoreAddr != "" {
		sc, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{cfg.StoreAddr}, DisableCache: true, ForceSingleClient: true})
		if err != nil {
			return fmt.Errorf("store %s: %w", cfg.StoreAddr, err)
		}
		defer sc.Close()
		w.store = sc
	} else {
		rep.Note(cfg.Out, "waitroom: no store address (-store): store command rates are not measured")
	}

	fmt.Fprintf(cfg.Out, "waitroom: logging in %d shoppers\n", users)
	tokens, err := loginAll(ctx, w.c, cfg, NewRow(ScenarioWaitRoom, "waitroom/login", 200), runID+"w", users, min(conc, 128))
	if err != nil {
		return err
	}
	w.shop = make([]wrShopper, users)
	for i := range w.shop {
		w.shop[i].tok = tokens[i]
		w.shop[i].uid = "u-" + strings.ToLower(runID+"w-u"+strconv.Itoa(i))
	}

	// The sale opens its waiting room now and starts once the joins are (expected to be) done.
	now := time.Now().UTC().Truncate(time.Second)
	start := now.Add(time.Duration(15+users/1500) * time.Second)
	spec, _ := json.Marshal(map[string]any{
		"id": w.sale, "product_id": cfg.SaleProduct, "price": 99000, "stock": cfg.Stock, "shards": cfg.Shards,
		"starts_at": start.Format(time.RFC3339), "ends_at": start.Add(time.Hour).Format(time.RFC3339),
		"per_user_limit": 1, "difficulty": cfg.Difficulty,
		"waiting_room": map[string]any{"opens_at": now.Add(-time.Second).Format(time.RFC3339), "admit_per_second": admit,
			"pass_seconds": 60, "hold_seconds": 120},
	})
	rr := &rush{cfg: cfg, c: w.c, sale: w.sale}
	if _, err := rr.admin("POST", "/api/v1/admin/flash-sales", spec, nil); err != nil {
		return fmt.Errorf("create the sale: %w", err)
	}
	fmt.Fprintf(cfg.Out, "waitroom: sale %s: %d units, admit %d/s, starts %s; %d shoppers join (the first %d are 'bots' that join first)\n",
		w.sale, cfg.Stock, admit, start.Format(time.TimeOnly), users, bots)

	// Joins: bots first, then everyone else; join order is the order of the answers.
	var seq atomic.Int64
	joinStart := time.Now()
	joinRange := func(from, to int) {
		var done atomic.Int64
		Drive(ctx, Bounds{Requests: int64(to - from), Concurrency: min(conc, 128)}, &done, func(_ int, k int64, _ time.Time) {
			i := from + int(k)
			s := &w.shop[i]
			w.c.Do(w.join, Call{Method: "POST", Path: "/api/v1/flash-sales/" + w.sale + "/queue", Bearer: s.tok}, func(status int, b []byte) {
				if status == 200 {
					s.joinSeq = seq.Add(1)
					w.apply(s, b, time.Now())
				}
			})
		})
	}
	joinRange(0, bots)
	joinRange(bots, users)
	wr.JoinsPerS = float64(users) / time.Since(joinStart).Seconds()
	for i := range w.shop {
		if w.shop[i].joinSeq > 0 && w.shop[i].pos == 0 {
			w.shop[i].pre = true
			wr.PreQueue++
		}
	}
	if time.Now().After(start) {
		rep.Note(cfg.Out, "waitroom: the joins ran past the start; %d of %d joined the pre-queue", wr.PreQueue, users)
	}
	fmt.Fprintf(cfg.Out, "waitroom: %d joined in %.1fs (%d in the pre-queue); polling until the sale sells out\n",
		seq.Load(), time.Since(joinStart).Seconds(), wr.PreQueue)

	// Polls: every shopper when told, open loop: a scheduler sends each poll when it is due,
	// up to wr.PollInFlight at once, so a slow answer delays no one else's poll.
	runCtx, stop := context.WithTimeout(ctx, time.Until(start)+4*time.Minute)
	defer stop()
	var wg sync.WaitGroup
	wr.PollInFlight = inFlight
	wg.Add(1)
	go func() { defer wg.Done(); w.pollAll(runCtx, wr.PollInFlight) }()
	// The sale's state at the edge, every 50 ms, for the sell-out instant.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for runCtx.Err() == nil && w.soldOutAt.Load() == 0 {
			var s struct {
				State string `json:"state"`
			}
			if _, err := rr.admin("GET", rr.salePath(""), nil, &s); err == nil && s.State == "sold_out" {
				w.soldOutAt.Store(time.Now().UnixNano())
				break
			}
			_ = sleepCtx(runCtx, 50*time.Millisecond)
		}
	}()
	// Store command rates: the 5 s before the start, and from the start to the sell-out.
	if w.store != nil {
		_ = sleepCtx(runCtx, time.Until(start.Add(-6*time.Second)))
		c0, p0, t0, s0, l0 := w.storeCalls(runCtx), w.polls.Load(), time.Now(), w.serverCPU(), selfCPU()
		_ = sleepCtx(runCtx, time.Until(start.Add(-time.Second)))
		c1, p1, t1, s1, l1 := w.storeCalls(runCtx), w.polls.Load(), time.Now(), w.serverCPU(), selfCPU()
		wr.StoreCmdsPerSWaiting = float64(c1-c0) / t1.Sub(t0).Seconds()
		wr.PollsPerSWaiting = float64(p1-p0) / t1.Sub(t0).Seconds()
		if n := p1 - p0; n > 0 {
			if cfg.CPU != nil {
				wr.ServerCPUPerPollUs = float64((s1 - s0).Microseconds()) / float64(n)
			}
			wr.LoadCPUPerPollUs = float64((l1 - l0).Microseconds()) / float64(n)
		}
		_ = sleepCtx(runCtx, time.Until(start))
		c2, p2, t2 := w.storeCalls(runCtx), w.polls.Load(), time.Now()
		for runCtx.Err() == nil && w.soldOutAt.Load() == 0 {
			_ = sleepCtx(runCtx, 50*time.Millisecond)
		}
		c3, p3, t3 := w.storeCalls(runCtx), w.polls.Load(), time.Now()
		wr.StoreCmdsPerSSelling = float64(c3-c2) / t3.Sub(t2).Seconds()
		wr.PollsPerSSelling = float64(p3-p2) / t3.Sub(t2).Seconds()
	}
	wg.Wait()
	w.buys.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	w.fill(start)
	w.fairness(rr)
	addRows(rep, 0, w.join, w.poll, w.attempt, w.ticket)
	if wr.ToldSoldOut < wr.WaitingAtSellOut {
		rep.Fail("waitroom: %d of %d waiting shoppers were never told sold_out", wr.WaitingAtSellOut-wr.ToldSoldOut, wr.WaitingAtSellOut)
	}
	if !wr.SeedMatches || !wr.OrderRecomputed || !wr.PositionsMatch {
		rep.Fail("waitroom: the published shuffle does not check out (seed %v, order %v, positions %v)", wr.SeedMatches, wr.OrderRecomputed, wr.PositionsMatch)
	}
	return nil
}

func (w *waitRush) serverCPU() time.Duration {
	if w.cfg.CPU == nil {
		return 0
	}
	return w.cfg.CPU()
}

// selfCPU is this process's CPU time so far (user + system).
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func (w *waitRush) storeCalls(ctx context.Context) int64 {
	n, _ := kv.CommandCalls(ctx, w.store, "") // a failed read counts as none, as before
	return n
}

// apply takes a join or poll answer into s and returns its state.
func (w *waitRush) apply(s *wrShopper, b []byte, now time.Time) string {
	var a waitroom.Answer
	if json.Unmarshal(b, &a) != nil {
		return ""
	}
	if a.QueueToken != "" {
		s.qtok = a.QueueToken
	}
	if a.Position != nil {
		s.pos = *a.Position
	}
	if a.PollAfterMs != nil {
		s.pollAfter = time.Duration(*a.PollAfterMs) * time.Millisecond
	}
	s.lastPoll = now
	return a.State
}

func (w *waitRush) count(key string) {
	w.mu.Lock()
	w.answers[key]++
	w.mu.Unlock()
}

// pollAll polls every joined shopper when due until each is done (admitted, told sold out,
// expired) or ctx ends, with at most inFlight polls outstanding. Each shopper has at most one
// poll in flight; its next one is scheduled from the answer.
func (w *waitRush) pollAll(ctx context.Context, inFlight int) {
	var (
		mu   sync.Mutex
		h    dueHeap
		left int
		wg   sync.WaitGroup
	)
	now := time.Now()
	for i := range w.shop {
		if w.shop[i].joinSeq > 0 {
			h = append(h, dueItem{now.Add(w.shop[i].pollAfter), i})
			left++
		}
	}
	heap.Init(&h)
	sem := make(chan struct{}, inFlight)
	defer wg.Wait()
	for ctx.Err() == nil {
		mu.Lock()
		if left == 0 {
			mu.Unlock()
			return
		}
		wait := 5 * time.Millisecond
		if h.Len() > 0 {
			if d := time.Until(h[0].at); d <= 0 {
				next := heap.Pop(&h).(dueItem)
				mu.Unlock()
				select {
				case sem <- struct{}{}:
				case <-ctx.Done():
					return
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					again, at := w.pollOne(ctx, next)
					<-sem
					mu.Lock()
					if again {
						heap.Push(&h, dueItem{at, next.i})
					} else {
						left--
					}
					mu.Unlock()
				}()
				continue
			} else {
				wait = min(wait, d)
			}
		}
		mu.Unlock()
		if sleepCtx(ctx, wait) != nil {
			return
		}
	}
}

// pollOne sends shopper next.i's poll that was due at next.at. It reports whether the shopper
// polls again, and when.
func (w *waitRush) pollOne(ctx context.Context, next dueItem) (again bool, at time.Time) {
	if n := w.inFlight.Add(1); n > w.inFlightMax.Load() {
		w.inFlightMax.Store(n) // a racy maximum: close enough for a report
	}
	defer w.inFlight.Add(-1)
	s := &w.shop[next.i]
	interval, prevSent, prevAnswered := s.pollAfter, s.lastSent, s.lastPoll
	sent := time.Now()
	s.lastSent = sent
	w.late.Record(sent.Sub(next.at))
	var state, pass string
	res := w.c.Do(w.poll, Call{Method: "GET", Path: "/api/v1/flash-sales/" + w.sale + "/queue", Bearer: s.tok,
		Header: [2]string{"X-Queue-Token", s.qtok}, Start: next.at}, func(status int, b []byte) {
		if status == 200 {
			state = w.apply(s, b, time.Now())
			var a waitroom.Answer
			if state == "admitted" && json.Unmarshal(b, &a) == nil {
				pass = a.Pass
			}
		}
	})
	answered := time.Now()
	w.answerTime.Record(answered.Sub(sent))
	w.polls.Add(1)
	if res.Err != nil || res.Status != 200 {
		return true, answered.Add(time.Second)
	}
	if so := w.soldOutAt.Load(); state == "waiting" && so != 0 && sent.UnixNano() > so+int64(50*time.Millisecond) {
		w.waitingAfter.Add(1)
	}
	switch state {
	case "waiting":
		return true, answered.Add(max(s.pollAfter, 200*time.Millisecond))
	case "admitted":
		w.admitted.Add(1)
		w.buys.Add(1)
		go func() { defer w.buys.Done(); w.buy(ctx, next.i, pass) }()
	case "sold_out":
		s.toldDue, s.toldSent, s.toldAt, s.toldAfter = next.at, sent, answered, interval
		s.prevSent, s.prevAnswered = prevSent, prevAnswered
	case "expired":
		w.expired.Add(1)
	}
	s.done = true
	return false, time.Time{}
}

// buy is an admitted shopper's attempt: challenge, proof of work, attempt with the pass, then
// the ticket polled until decided.
func (w *waitRush) buy(ctx context.Context, i int, pass string) {
	s := &w.shop[i]
	path := "/api/v1/flash-sales/" + w.sale
	var ch challenge.Body
	res := w.c.Do(nil, Call{Method: "POST", Path: path + "/challenge", Bearer: s.tok}, func(status int, b []byte) {
		if status == 200 {
			_ = json.Unmarshal(b, &ch)
		}
	})
	if res.Status != 200 || ch.ChallengeID == "" {
		w.count(fmt.Sprintf("challenge %d", res.Status))
		return
	}
	nonce, _ := SolvePoW(ch.Payload.Prefix, ch.Payload.Difficulty)
	body, _ := json.Marshal(map[string]string{"challenge_id": ch.ChallengeID, "answer": nonce, "pass": pass})
	var ticket, code string
	res = w.c.Do(w.attempt, Call{Method: "POST", Path: path + "/attempts", Bearer: s.tok, IdempotencyKey: "wr" + strconv.Itoa(i), Body: body},
		func(status int, b []byte) {
			var q struct {
				Ticket string `json:"ticket"`
			}
			if status == 202 && json.Unmarshal(b, &q) == nil {
				ticket = q.Ticket
			}
			code = errCode(b)
		})
	w.count(fmt.Sprintf("%d %s", res.Status, code))
	if ticket == "" {
		return
	}
	for deadline := time.Now().Add(w.cfg.TicketTimeout); time.Now().Before(deadline) && ctx.Err() == nil; {
		var st string
		w.c.Do(w.ticket, Call{Method: "GET", Path: path + "/attempts/" + ticket, Bearer: s.tok}, func(status int, b []byte) {
			var r struct {
				Status string `json:"status"`
			}
			if status == 200 && json.Unmarshal(b, &r) == nil {
				st = r.Status
			}
		})
		switch st {
		case "queued", "":
			_ = sleepCtx(ctx, 200*time.Millisecond)
			continue
		case "won":
			w.won.Add(1)
			if s.joinSeq <= int64(w.rep.Bots) {
				w.botWins.Add(1)
			}
		}
		w.count("ticket " + st)
		return
	}
	w.count("ticket not final")
}

// fill computes the timing figures once every shopper is done.
func (w *waitRush) fill(start time.Time) {
	wr := w.rep
	wr.Polls, wr.Admitted, wr.Won, wr.Expired = w.polls.Load(), w.admitted.Load(), w.won.Load(), w.expired.Load()
	wr.WaitingAfterSellOut = w.waitingAfter.Load()
	wr.PollLateP99S, wr.PollLateMaxS = w.late.Quantile(0.99).Seconds(), w.late.Max().Seconds()
	wr.PollAnswerP99S, wr.PollAnswerMaxS = w.answerTime.Quantile(0.99).Seconds(), w.answerTime.Max().Seconds()
	wr.InFlightMax = w.inFlightMax.Load()
	so := w.soldOutAt.Load()
	if so == 0 {
		wr.StartToSellOutS = -1
		return
	}
	soldOut := time.Unix(0, so)
	wr.StartToSellOutS = soldOut.Sub(start).Seconds()
	var lags []float64
	sendLag, answer := NewHistogram(), NewHistogram()
	for i := range w.shop {
		s := &w.shop[i]
		if s.joinSeq == 0 || !s.toldAt.IsZero() && s.toldAt.Before(soldOut) {
			continue
		}
		if s.toldAt.IsZero() && s.done { // admitted or expired
			continue
		}
		wr.WaitingAtSellOut++
		if s.toldAt.IsZero() {
			continue
		}
		wr.ToldSoldOut++
		lag := s.toldAt.Sub(soldOut)
		lags = append(lags, lag.Seconds())
		due := s.toldDue.Sub(soldOut)
		wr.ToldDueMaxS = max(wr.ToldDueMaxS, due.Seconds())
		// On schedule: due within one interval of the sell-out, or the previous poll was in
		// flight across it (sent before, answered "waiting" after: its interval counts from
		// its answer).
		inFlight := s.prevSent.Before(soldOut) && s.prevAnswered.After(soldOut)
		if due <= s.toldAfter || inFlight && s.toldDue.Sub(s.prevAnswered) <= s.toldAfter {
			wr.ToldOnSchedule++
		}
		if lag <= s.toldAfter+time.Second {
			wr.ToldWithinPoll++
		}
		sendLag.Record(s.toldSent.Sub(s.toldDue))
		answer.Record(s.toldAt.Sub(s.toldSent))
	}
	if len(lags) > 0 {
		slices.Sort(lags)
		wr.ToldLagMaxS = lags[len(lags)-1]
		wr.ToldLagP99S = lags[min(len(lags)-1, int(math.Ceil(0.99*float64(len(lags))))-1)]
	}
	wr.ToldSendLagP99S, wr.ToldSendLagMaxS = sendLag.Quantile(0.99).Seconds(), sendLag.Max().Seconds()
	wr.ToldAnswerP99S, wr.ToldAnswerMaxS = answer.Quantile(0.99).Seconds(), answer.Max().Seconds()
}

// fairness reads the published fairness record and checks it and the positions shoppers were
// told, then measures join order against position among pre-queue joiners.
func (w *waitRush) fairness(rr *rush) {
	wr := w.rep
	var f struct {
		Commitment *string  `json:"commitment"`
		Seed       *string  `json:"seed"`
		PreQueue   []string `json:"pre_queue"`
	}
	if _, err := rr.admin("GET", rr.salePath("/queue/fairness"), nil, &f); err != nil || f.Seed == nil || f.Commitment == nil {
		return
	}
	seed, err := hex.DecodeString(*f.Seed)
	sum := sha256.Sum256(seed)
	wr.SeedMatches = err == nil && hex.EncodeToString(sum[:]) == *f.Commitment
	type ranked struct {
		r string
		u string
	}
	rs := make([]ranked, len(f.PreQueue))
	for i, u := range f.PreQueue {
		m := hmac.New(sha256.New, seed)
		io.WriteString(m, u)
		rs[i] = ranked{hex.EncodeToString(m.Sum(nil)), u}
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].r < rs[j].r })
	wr.OrderRecomputed = true
	published := make(map[string]int64, len(f.PreQueue))
	for i := range rs {
		if rs[i].u != f.PreQueue[i] {
			wr.OrderRecomputed = false
		}
		published[f.PreQueue[i]] = int64(i + 1)
	}
	wr.PositionsMatch = true
	var joins, poss []float64
	var botPct float64
	var nBots int
	for i := range w.shop {
		s := &w.shop[i]
		if !s.pre || s.pos == 0 {
			continue
		}
		if published[s.uid] != s.pos {
			wr.PositionsMatch = false
		}
		joins = append(joins, float64(s.joinSeq))
		poss = append(poss, float64(s.pos))
		if s.joinSeq <= int64(wr.Bots) {
			botPct += float64(s.pos) / float64(len(f.PreQueue))
			nBots++
		}
	}
	wr.RankCorrelation = spearman(joins, poss)
	if nBots > 0 {
		wr.BotMeanPercentile = 100 * botPct / float64(nBots)
	}
	wr.BotWins = w.botWins.Load()
	wr.BotWinsExpected = float64(wr.Won) * float64(wr.Bots) / float64(max(1, wr.PreQueue))
}

// spearman is the rank correlation of x and y (no ties in either: join sequence numbers and
// positions are distinct).
func spearman(x, y []float64) float64 {
	n := len(x)
	if n < 2 {
		return 0
	}
	rank := func(v []float64) []float64 {
		idx := make([]int, n)
		for i := range idx {
			idx[i] = i
		}
		sort.Slice(idx, func(a, b int) bool { return v[idx[a]] < v[idx[b]] })
		r := make([]float64, n)
		for k, i := range idx {
			r[i] = float64(k + 1)
		}
		return r
	}
	rx, ry := rank(x), rank(y)
	var d2 float64
	for i := range rx {
		d := rx[i] - ry[i]
		d2 += d * d
	}
	nf := float64(n)
	return 1 - 6*d2/(nf*(nf*nf-1))
}

// WriteWaitRoom prints the waiting-room rush's figures.
func WriteWaitRoom(out io.Writer, wr *WaitRoomReport) {
	fmt.Fprintf(out, "waiting room: %d shoppers (%d in the pre-queue, the first %d joining as bots), %d units, admit %d/s\n",
		wr.Users, wr.PreQueue, wr.Bots, wr.Stock, wr.Admit)
	fmt.Fprintf(out, "  joins %.0f/s; polls %d\n", wr.JoinsPerS, wr.Polls)
	fmt.Fprintf(out, "  while waiting: store %.1f commands/s with %.0f polls/s at the edge; CPU per poll: %.0f us in the stack, %.0f us in this generator\n",
		wr.StoreCmdsPerSWaiting, wr.PollsPerSWaiting, wr.ServerCPUPerPollUs, wr.LoadCPUPerPollUs)
	fmt.Fprintf(out, "  while selling: store %.1f commands/s with %.0f polls/s\n", wr.StoreCmdsPerSSelling, wr.PollsPerSSelling)
	fmt.Fprintf(out, "  start to sell-out %.2fs; admitted %d, won %d; attempts %v; expired places %d\n",
		wr.StartToSellOutS, wr.Admitted, wr.Won, wr.AttemptAnswers, wr.Expired)
	fmt.Fprintf(out, "  sold out told to %d of %d waiting; %d by a poll due within one poll interval of the sell-out (latest due %.1fs after it)\n",
		wr.ToldSoldOut, wr.WaitingAtSellOut, wr.ToldOnSchedule, wr.ToldDueMaxS)
	fmt.Fprintf(out, "  by the wall clock %d told within one poll interval (+1 s); lag max %.1fs p99 %.1fs; of which this generator's send lag p99 %.2fs max %.2fs, the edge's answer time p99 %.2fs max %.2fs\n",
		wr.ToldWithinPoll, wr.ToldLagMaxS, wr.ToldLagP99S, wr.ToldSendLagP99S, wr.ToldSendLagMaxS, wr.ToldAnswerP99S, wr.ToldAnswerMaxS)
	fmt.Fprintf(out, "  polls sent after the sell-out still answered waiting: %d\n", wr.WaitingAfterSellOut)
	fmt.Fprintf(out, "  all polls (open loop, up to %d in flight, most %d): sent late by this generator p99 %.2fs max %.2fs; answered by the edge in p99 %.2fs max %.2fs\n",
		wr.PollInFlight, wr.InFlightMax, wr.PollLateP99S, wr.PollLateMaxS, wr.PollAnswerP99S, wr.PollAnswerMaxS)
	fmt.Fprintf(out, "  fairness: rank correlation join order vs position %.4f; seed matches commitment %v; order recomputed %v; positions match %v\n",
		wr.RankCorrelation, wr.SeedMatches, wr.OrderRecomputed, wr.PositionsMatch)
	fmt.Fprintf(out, "  bots (first %d joiners): mean position percentile %.1f; wins %d (expected by share %.1f)\n",
		wr.Bots, wr.BotMeanPercentile, wr.BotWins, wr.BotWinsExpected)
}
