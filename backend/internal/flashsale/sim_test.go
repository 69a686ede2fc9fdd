package flashsale

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"testing/cryptotest"
	"time"

	"github.com/redis/rueidis"

	"flashedge/shared/keyspace"
	"flashedge/shared/kv/kvtest"
	publicsale "flashedge/shared/sale"
)

// The seeded simulation of the flash-sale core (issue 10), in the spirit of deterministic
// simulation testing. Every store call of every process goes through a hook that parks it until
// a scheduler, driven by one seed, lets exactly one process go: so the workers, the sweeper
// (requeue, stranded end, expiry), shoppers' admissions and checkouts interleave at every store
// call, a process may die at any call (before or after the store ran it) and restart, a call may
// fail, and the clock only moves when the scheduler says. The store is a real redis-server. The
// audit from the primary records runs after every step on the still store; at the end the
// processes run to rest without faults and the audit must find the sale settled.
//
//	go test -run TestSim ./backend/internal/flashsale/                  the seeds make test runs
//	go test -run TestSim ./backend/internal/flashsale/ -args -seed 42   replay seed 42 exactly
//	make sim SEEDS=2000                                                 many more
var (
	simSeed  = flag.Uint64("seed", 0, "TestSim: replay this one seed")
	simSeeds = flag.Int("seeds", 0, "TestSim: how many seeds to run (0: the bounded default of make test)")
	simFirst = flag.Uint64("first-seed", 1, "TestSim: the first seed of the run")
	simSteps = flag.Int("sim-steps", 0, "TestSim: steps with faults per schedule (0: 150)")
)

const (
	simDefaultSeeds = 60
	simDefaultSteps = 150
	simSale         = "sim"
)

// TestSim runs the bounded seeds (or the ones the flags name); a failure prints the seed, the
// steps and the command that replays it.
func TestSim(t *testing.T) {
	srv := kvtest.Start(t)
	raw := srv.Client(t)
	seeds, first := *simSeeds, *simFirst
	if *simSeed != 0 {
		seeds, first = 1, *simSeed
	} else if seeds == 0 {
		seeds = simDefaultSeeds
	}
	steps := *simSteps
	if steps <= 0 {
		steps = simDefaultSteps
	}
	start := time.Now()
	var total atomic.Int64
	var failed []string
	ran := 0
	for seed := first; seed < first+uint64(seeds); seed++ {
		ran++
		res := runSim(t, raw, seed, steps)
		total.Add(int64(len(res.steps)))
		if *simSeed != 0 {
			t.Logf("seed %d steps:\n  %s", seed, strings.Join(res.steps, "\n  "))
		}
		if res.failure != "" {
			failed = append(failed, strconv.FormatUint(seed, 10))
			t.Errorf("seed %d failed after %d steps: %s\nsteps:\n  %s\nreplay: go test -run TestSim ./backend/internal/flashsale/ -args -seed %d",
				seed, len(res.steps), res.failure, strings.Join(res.steps, "\n  "), seed)
		}
	}
	el := time.Since(start)
	t.Logf("%d schedules, %d steps in %v: %.0f schedules and %.0f steps per minute; %d failed %v",
		ran, total.Load(), el.Round(time.Millisecond), float64(ran)/el.Minutes(), float64(total.Load())/el.Minutes(), len(failed), failed)
}

// TestSimReplays: one seed run twice gives the same steps, so a printed seed replays exactly.
func TestSimReplays(t *testing.T) {
	srv := kvtest.Start(t)
	raw := srv.Client(t)
	var runs [2][]string
	for i := range runs {
		runs[i] = runSim(t, raw, 7, 80).steps
	}
	if !slices.Equal(runs[0], runs[1]) {
		for i := range min(len(runs[0]), len(runs[1])) {
			if runs[0][i] != runs[1][i] {
				t.Fatalf("seed 7 diverged at step %d: %q vs %q", i, runs[0][i], runs[1][i])
			}
		}
		t.Fatalf("seed 7 ran %d then %d steps", len(runs[0]), len(runs[1]))
	}
}

// simResult is one schedule: its steps and, when it failed, why.
type simResult struct {
	steps   []string
	failure string
}

// Decisions the scheduler gives a parked store call.
type simVerdict int

const (
	simGo          simVerdict = iota
	simCrashBefore            // the process dies before the call reaches the store
	simCrashAfter             // the store ran the call; the process dies before reading the reply
	simFailBefore             // the call fails without reaching the store
	simFailAfter              // the store ran it; the reply is lost (a timeout)
)

var errSimFault = errors.New("simulated store fault")

var streamID = regexp.MustCompile(`^\d+-\d+$`)

// simClient is the store client of one simulated process: every Do and DoMulti parks in the
// scheduler first. It exists in tests only, so production pays nothing for it.
type simClient struct {
	rueidis.Client
	a *simActor
}

func (c *simClient) Do(ctx context.Context, cmd rueidis.Completed) rueidis.RedisResult {
	v := c.a.park(c.a.sim.describe(cmd.Commands()))
	switch v {
	case simCrashBefore:
		c.a.die()
	case simFailBefore:
		return rueidis.NewErrorResult(errSimFault)
	}
	res := c.Client.Do(ctx, cmd)
	if isNoScript(res) {
		// rueidis follows with EVAL in the same breath: the script cache is not the store's
		// state, so that call is no step of its own.
		c.a.noScript = true
	}
	switch v {
	case simCrashAfter:
		c.a.die()
	case simFailAfter:
		return rueidis.NewErrorResult(errSimFault)
	}
	return res
}

func (c *simClient) DoMulti(ctx context.Context, multi ...rueidis.Completed) []rueidis.RedisResult {
	if len(multi) == 0 {
		return nil
	}
	descs := make([]string, len(multi))
	for i, cmd := range multi {
		descs[i] = c.a.sim.describe(cmd.Commands())
	}
	v := c.a.park("pipeline[" + strings.Join(descs, "; ") + "]")
	fail := func() []rueidis.RedisResult {
		out := make([]rueidis.RedisResult, len(multi))
		for i := range out {
			out[i] = rueidis.NewErrorResult(errSimFault)
		}
		return out
	}
	switch v {
	case simCrashBefore:
		c.a.die()
	case simFailBefore:
		return fail()
	}
	res := c.Client.DoMulti(ctx, multi...)
	switch v {
	case simCrashAfter:
		c.a.die()
	case simFailAfter:
		return fail()
	}
	return res
}

func isNoScript(r rueidis.RedisResult) bool {
	err := r.Error()
	return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT")
}

// simEvent is what a running process tells the scheduler: it parked at a call, its task ended,
// or it died.
type simEvent struct {
	kind string // "call", "done", "dead"
	desc string
}

// simActor is one simulated process (a worker, the sweeper, a shopper, a checkout) with its own
// Service over a hooked client. Its task runs in a goroutine that only ever runs while the
// scheduler waits for it.
type simActor struct {
	sim      *simWorld
	name     string
	kind     string
	weight   int
	svc      *Service
	worker   *Worker
	inc      int // incarnation: a restarted process gets a new consumer name
	state    string
	desc     string // the parked call
	resume   chan simVerdict
	noScript bool
	stall    int // the process is slow: not scheduled before this step
	degraded int // calls left that fail or die often: what made it slow may not be over
}

func (a *simActor) park(desc string) simVerdict {
	if a.noScript {
		a.noScript = false
		return simGo
	}
	a.sim.events <- simEvent{"call", desc}
	return <-a.resume
}

func (a *simActor) die() {
	a.sim.events <- simEvent{kind: "dead"}
	runtime.Goexit()
}

// simWorld is one schedule: a sale, its processes, the clock and the seed's choices.
type simWorld struct {
	t      *testing.T
	raw    rueidis.Client
	rng    *rand.Rand
	clock  *simClock
	opts   Options
	audit  *Service // over the raw client: the audit is no step
	actors []*simActor
	events chan simEvent
	steps  []string
	shas   map[string]string // script SHA-1 -> file name, for readable steps

	users   []string
	tries   map[string]int
	tickets []simTicket // admitted tickets, in order
	nextKey int
}

type simTicket struct{ user, ticket string }

type simClock struct{ ms atomic.Int64 }

func (c *simClock) Now() time.Time { return time.UnixMilli(c.ms.Load()).UTC() }

// describe renders a store call for the step list: script names instead of SHA-1s, the sale's
// keys without their common part, ids cut short.
func (w *simWorld) describe(cmd []string) string {
	if len(cmd) == 0 {
		return "?"
	}
	parts := slices.Clone(cmd)
	switch strings.ToUpper(parts[0]) {
	case "EVALSHA":
		if name, ok := w.shas[parts[1]]; ok {
			parts[1] = name
		}
	case "EVAL":
		parts[1] = "<script>"
	}
	for i, p := range parts {
		p = streamID.ReplaceAllString(p, "<id>") // the server's clock, not the simulated one
		p = strings.ReplaceAll(p, "\n", `\n`)
		p = strings.ReplaceAll(p, "fe:sale:{s:"+simSale+"}:", "")
		p = strings.ReplaceAll(p, "fe:salestock:{s:"+simSale+":", "shard{")
		p = strings.ReplaceAll(p, "fe:sale:{s:"+simSale+"}", "sale")
		if len(p) > 40 {
			p = p[:12] + "…"
		}
		// hex ids (tickets, tokens) shortened to 6 characters
		fields := strings.FieldsFunc(p, func(r rune) bool { return r == ':' || r == '{' || r == '}' })
		for _, f := range fields {
			if publicsale.ValidTicketID(f) {
				p = strings.ReplaceAll(p, f, f[:6])
			}
		}
		parts[i] = p
	}
	if len(parts) > 14 {
		parts = append(parts[:14], "…")
	}
	return strings.Join(parts, " ")
}

func scriptNames() map[string]string {
	out := map[string]string{}
	names, _ := fs.Glob(luaFiles, "*.lua")
	for _, n := range names {
		src := lua(n)
		out[sha1hex(src)] = strings.TrimSuffix(n, ".lua")
	}
	return out
}

func sha1hex(s string) string {
	h := sha1.Sum([]byte(s))
	return hex.EncodeToString(h[:])
}

func (w *simWorld) step(format string, a ...any) {
	w.steps = append(w.steps, fmt.Sprintf("%3d ", len(w.steps)+1)+fmt.Sprintf(format, a...))
}

// runSim runs one seed's schedule on raw's server (flushed first).
func runSim(t *testing.T, raw rueidis.Client, seed uint64, maxSteps int) (res simResult) {
	cryptotest.SetGlobalRandom(t, seed) // tickets, tokens and challenge ids follow the seed
	ctx := context.Background()
	for _, cmd := range []rueidis.Completed{raw.B().Flushall().Build(), raw.B().ScriptFlush().Build()} {
		if err := raw.Do(ctx, cmd).Error(); err != nil {
			t.Fatalf("reset the store: %v", err)
		}
	}
	w := &simWorld{t: t, raw: raw, rng: rand.New(rand.NewPCG(seed, 0x5eed)), clock: &simClock{},
		events: make(chan simEvent), shas: scriptNames(), tries: map[string]int{}}
	w.clock.ms.Store(time.Date(2026, 11, 11, 12, 0, 0, 0, time.UTC).UnixMilli())
	w.opts = Options{Difficulty: -1, MaxRequeues: 1 + w.rng.IntN(2), RequeueAfter: 10 * time.Second,
		Reservation: 30 * time.Second, Now: w.clock.Now}
	var err error
	if w.audit, err = New(raw, w.opts); err != nil {
		t.Fatal(err)
	}
	stock := int64(1 + w.rng.IntN(3))
	shards := 1 + w.rng.IntN(3)
	if err := raw.Do(ctx, raw.B().Set().Key(keyspace.Product("p")).Value(`{"id":"p","name":"Phone"}`).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	now := w.clock.Now()
	id, price, limit := simSale, int64(100), int64(1)
	if _, _, err := w.audit.CreateSale(ctx, SaleInput{ID: &id, ProductID: "p", Price: &price, Stock: &stock, Shards: &shards,
		StartsAt: now.Add(-time.Second).Format(time.RFC3339), EndsAt: now.Add(24 * time.Hour).Format(time.RFC3339),
		PerUserLimit: &limit}); err != nil {
		t.Fatal(err)
	}
	if err := raw.Do(ctx, raw.B().XgroupCreate().Key(keyspace.AttemptStream()).Group(DefaultGroup).Id("0").Mkstream().Build()).Error(); err != nil {
		t.Fatal(err)
	}
	nUsers := int(stock) + 1 + w.rng.IntN(4)
	for i := range nUsers {
		u := "u" + strconv.Itoa(i)
		w.users = append(w.users, u)
		w.tries[u] = 1 + w.rng.IntN(3)
	}
	w.step("sale: stock %d in %d shards, limit 1, %d users, MaxRequeues %d, RequeueAfter %v, Reservation %v",
		stock, shards, nUsers, w.opts.MaxRequeues, w.opts.RequeueAfter, w.opts.Reservation)
	weights := []int{1, 2, 4, 8}
	add := func(kind, name string) {
		a := &simActor{sim: w, name: name, kind: kind, weight: weights[w.rng.IntN(len(weights))], state: "idle"}
		w.actors = append(w.actors, a)
		w.boot(a)
	}
	add("worker", "w0")
	add("worker", "w1")
	add("sweeper", "sweeper")
	add("shopper", "shop")
	add("checkout", "pay")

	pCrash, pFail, pStall := 0.01+0.04*w.rng.Float64(), 0.04*w.rng.Float64(), 0.1*w.rng.Float64()
	defer func() {
		if r := recover(); r != nil {
			res = simResult{steps: w.steps, failure: fmt.Sprint(r)}
		}
		w.stopAll()
	}()
	for len(w.steps) < maxSteps {
		w.faultStep(pCrash, pFail, pStall)
		if f := w.check(AuditOptions{Still: true, FinalWithin: -1}); f != "" {
			return simResult{w.steps, f}
		}
	}
	if f := w.settle(); f != "" {
		return simResult{w.steps, f}
	}
	return simResult{steps: w.steps}
}

// boot gives a (re)started process a fresh Service over its hooked client.
func (w *simWorld) boot(a *simActor) {
	svc, err := New(&simClient{Client: w.raw, a: a}, w.opts)
	if err != nil {
		w.t.Fatal(err)
	}
	a.svc, a.resume, a.state, a.noScript = svc, make(chan simVerdict), "idle", false
	if a.kind == "worker" {
		wk, err := NewWorker(svc, WorkerOptions{Consumer: a.name + "." + strconv.Itoa(a.inc), Concurrency: 1, Batch: 4, Parallel: 1,
			SweepEvery: -1, TrimEvery: -1})
		if err != nil {
			w.t.Fatal(err)
		}
		wk.o.ClaimIdle = 0 // XAUTOCLAIM takes every pending message: the store's idle clock is real time, not the simulated one
		a.worker = wk
	}
	a.inc++
}

// check audits the sale; it returns the problems, or "" when sound.
func (w *simWorld) check(o AuditOptions) string {
	a, err := w.audit.Audit(context.Background(), simSale, o)
	if err != nil {
		return "audit: " + err.Error()
	}
	if p := a.Problems(); len(p) > 0 {
		return "audit: " + strings.Join(p, "; ")
	}
	return ""
}

// faultStep makes one scheduling decision with faults allowed.
func (w *simWorld) faultStep(pCrash, pFail, pStall float64) {
	type choice struct {
		weight int
		do     func()
	}
	var cs []choice
	now := len(w.steps)
	if w.rng.Float64() < pStall {
		// A process turns slow (a long pause, a slow link): it makes no call for a while, the
		// window in which a ticket it holds looks stranded to the sweeper.
		a := w.actors[w.rng.IntN(len(w.actors))]
		if a.state == "parked" && a.stall <= now {
			a.stall = now + 10 + w.rng.IntN(60)
			a.degraded = 3
			w.step("%s stalls until step %d at %s", a.name, a.stall, a.desc)
			return
		}
	}
	for _, a := range w.actors {
		if a.stall > now {
			continue
		}
		switch a.state {
		case "parked":
			cs = append(cs, choice{a.weight * 4, func() {
				v := simGo
				r := w.rng.Float64()
				if a.degraded > 0 {
					a.degraded--
					r /= 8 // eight times as likely to fail or die as a healthy call
				}
				switch {
				case r < pCrash/2:
					v = simCrashBefore
				case r < pCrash:
					v = simCrashAfter
				case r < pCrash+pFail/2:
					v = simFailBefore
				case r < pCrash+pFail:
					v = simFailAfter
				}
				w.resume(a, v)
			}})
		case "idle":
			if task := w.task(a); task != nil {
				cs = append(cs, choice{a.weight, func() { w.start(a, task) }})
			}
		case "dead":
			cs = append(cs, choice{a.weight, func() {
				w.boot(a)
				w.step("%s restarts as incarnation %d", a.name, a.inc-1)
			}})
		}
	}
	cs = append(cs, choice{2, func() {
		d := []time.Duration{time.Second, w.opts.RequeueAfter / 2, w.opts.RequeueAfter, w.opts.Reservation}[w.rng.IntN(4)]
		w.clock.ms.Add(d.Milliseconds())
		w.step("clock +%v", d)
	}})
	total := 0
	for _, c := range cs {
		total += c.weight
	}
	n := w.rng.IntN(total)
	for _, c := range cs {
		if n -= c.weight; n < 0 {
			c.do()
			return
		}
	}
}

var verdictName = map[simVerdict]string{simGo: "runs", simCrashBefore: "DIES before", simCrashAfter: "DIES after",
	simFailBefore: "fails before", simFailAfter: "loses the reply of"}

// resume lets a parked process make its call (or die or fail there) and runs it to its next
// call, its task's end or its death.
func (w *simWorld) resume(a *simActor, v simVerdict) {
	w.step("%s %s %s", a.name, verdictName[v], a.desc)
	a.resume <- v
	w.wait(a)
}

func (w *simWorld) wait(a *simActor) {
	select {
	case ev := <-w.events:
		switch ev.kind {
		case "call":
			a.state, a.desc = "parked", ev.desc
		case "done":
			a.state = "idle"
		case "dead":
			a.state = "dead"
		}
	case <-time.After(30 * time.Second):
		panic(fmt.Sprintf("%s did not reach its next store call within 30s", a.name))
	}
}

// start begins a task and runs it to its first store call.
func (w *simWorld) start(a *simActor, task func(ctx context.Context)) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		task(ctx)
		w.events <- simEvent{kind: "done"}
	}()
	w.wait(a)
}

// task returns what an idle process does next, or nil when it has nothing to do. The choice is
// drawn now, so the step list names it.
func (w *simWorld) task(a *simActor) func(ctx context.Context) {
	switch a.kind {
	case "worker":
		if !w.streamWork() {
			return nil
		}
		wk := a.worker
		name := wk.o.Consumer
		return func(ctx context.Context) {
			msgs, _, err := wk.autoclaim(name, "0-0")
			if err == nil {
				wk.handle(nil, name, msgs)
			}
			msgs, err = simRead(wk, name)
			if err == nil {
				wk.handle(nil, name, msgs)
			}
		}
	case "sweeper":
		return func(ctx context.Context) { _, _ = a.svc.Sweep(ctx) }
	case "shopper":
		var left []string
		for _, u := range w.users {
			if w.tries[u] > 0 {
				left = append(left, u)
			}
		}
		if len(left) == 0 {
			return nil
		}
		u := left[w.rng.IntN(len(left))]
		w.tries[u]--
		w.nextKey++
		key := "k" + strconv.Itoa(w.nextKey)
		return func(ctx context.Context) {
			ch, err := a.svc.mintChallenge(ctx, u, simSale, 0)
			if err != nil {
				return
			}
			ans, err := a.svc.Attempt(ctx, AttemptInput{User: u, SaleID: simSale, ChallengeID: ch.ID, Answer: "0", IdempotencyKey: key})
			if err == nil && ans.Outcome == OutcomeAdmitted {
				w.tickets = append(w.tickets, simTicket{u, ans.Ticket})
			}
		}
	case "checkout":
		if len(w.tickets) == 0 {
			return nil
		}
		tk := w.tickets[w.rng.IntN(len(w.tickets))]
		// The shopper polls the ticket (a read, no step) and pays with the token it shows.
		token, _ := w.raw.Do(context.Background(), w.raw.B().Hget().Key(keyspace.SaleResult(simSale, tk.ticket)).Field("token").Build()).ToString()
		if token == "" {
			return nil
		}
		return func(ctx context.Context) { _, _ = a.svc.Checkout(ctx, tk.user, simSale, token) }
	}
	return nil
}

// streamWork reports whether the group has messages pending or not yet delivered (a worker with
// nothing to read would only add idle steps).
func (w *simWorld) streamWork() bool {
	groups, err := w.raw.Do(context.Background(), w.raw.B().XinfoGroups().Key(keyspace.AttemptStream()).Build()).ToArray()
	if err != nil || len(groups) == 0 {
		return false
	}
	info, err := groups[0].AsMap()
	if err != nil {
		return true
	}
	p, lag := info["pending"], info["lag"]
	pending, _ := p.AsInt64()
	n, lagErr := lag.AsInt64()
	return pending > 0 || lagErr != nil || n > 0
}

// simRead is the worker's read without BLOCK: the schedule, not a timer, decides when to look.
func simRead(wk *Worker, name string) ([]message, error) {
	c := wk.s.c
	res, err := c.Do(context.Background(), c.B().Xreadgroup().Group(wk.o.Group, name).Count(int64(wk.o.Batch)).
		Streams().Key(keyspace.AttemptStream()).Id(">").Build()).AsXRead()
	if rueidis.IsRedisNil(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return toMessages(res[keyspace.AttemptStream()]), nil
}

// settle runs every process to rest without faults: parked calls go on, dead processes restart,
// then rounds of worker reads and claims, a sweep and a clock step of RequeueAfter until nothing
// is left to do. Every admitted ticket must be final within MaxRequeues+3 rounds, and the audit
// at rest must find the sale sound.
func (w *simWorld) settle() string {
	w.step("-- settle: no more faults")
	drain := func() string {
		for _, a := range w.actors {
			if a.state == "dead" {
				w.boot(a)
				w.step("%s restarts as incarnation %d", a.name, a.inc-1)
			}
			for a.state == "parked" {
				w.resume(a, simGo)
				if f := w.check(AuditOptions{Still: true, FinalWithin: -1}); f != "" {
					return f
				}
			}
		}
		return ""
	}
	run := func(a *simActor) string {
		task := w.task(a)
		if task == nil {
			return ""
		}
		w.step("%s starts", a.name)
		w.start(a, task)
		return drain()
	}
	if f := drain(); f != "" {
		return f
	}
	rounds := w.opts.MaxRequeues + 3
	for round := range rounds + 2 {
		for _, a := range w.actors {
			if a.kind == "worker" {
				if f := run(a); f != "" {
					return f
				}
			}
		}
		for _, a := range w.actors {
			if a.kind == "sweeper" {
				if f := run(a); f != "" {
					return f
				}
			}
		}
		if w.quiet() {
			if f := w.check(AuditOptions{Settled: true, FinalWithin: -1}); f != "" {
				return f
			}
			return ""
		}
		if round >= rounds {
			return fmt.Sprintf("not at rest after %d rounds of workers, sweeps and %v: %s", round+1, w.opts.RequeueAfter,
				w.check(AuditOptions{Settled: true, FinalWithin: -1}))
		}
		w.clock.ms.Add(w.opts.RequeueAfter.Milliseconds())
		w.step("clock +%v", w.opts.RequeueAfter)
	}
	return ""
}

// quiet reports whether nothing is left in flight: no undecided ticket, no pending message, no
// claim to close, no unfinished checkout or expiry.
func (w *simWorld) quiet() bool {
	ctx := context.Background()
	c := w.raw
	res := c.DoMulti(ctx,
		c.B().Zcard().Key(keyspace.SaleQueue(simSale)).Build(),
		c.B().Zcard().Key(keyspace.SaleClosing(simSale)).Build(),
		c.B().Xpending().Key(keyspace.AttemptStream()).Group(DefaultGroup).Build())
	q, _ := res[0].AsInt64()
	cl, _ := res[1].AsInt64()
	arr, _ := res[2].ToArray()
	var pending int64
	if len(arr) > 0 {
		pending, _ = arr[0].AsInt64()
	}
	if q != 0 || cl != 0 || pending != 0 {
		return false
	}
	return w.check(AuditOptions{Settled: true, FinalWithin: -1}) == ""
}

// stopAll ends the processes still parked (their goroutines exit at their next call).
func (w *simWorld) stopAll() {
	for _, a := range w.actors {
		if a.state == "parked" {
			go func(ch chan simVerdict) { ch <- simCrashBefore }(a.resume)
			go func() { <-w.events }()
		}
	}
}
