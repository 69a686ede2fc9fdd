package flashsale

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"flashedge/shared/keyspace"
)

// claimsOf returns ticket -> shard -> claim state over every shard of a sale.
func (e *env) claimsOf(sale string, shards int) map[string]map[int]string {
	e.t.Helper()
	out := map[string]map[int]string{}
	for i := range shards {
		m, err := e.c.Do(context.Background(), e.c.B().Hgetall().Key(keyspace.ShardClaims(sale, i)).Build()).AsStrMap()
		if err != nil {
			e.t.Fatalf("claims of shard %d: %v", i, err)
		}
		for ticket, st := range m {
			if out[ticket] == nil {
				out[ticket] = map[int]string{}
			}
			out[ticket][i] = st
		}
	}
	return out
}

// checkOneUnitPerTicket fails when a ticket holds (or held) units in more than one shard, or the
// number of live claims differs from want.
func (e *env) checkOneUnitPerTicket(sale string, shards int, wantHeld int) {
	e.t.Helper()
	held := 0
	for ticket, byShard := range e.claimsOf(sale, shards) {
		n := 0
		for _, st := range byShard {
			if st == "r" || st == "o" || st == "x" {
				n++
			}
			if st == "r" || st == "o" {
				held++
			}
		}
		if n > 1 {
			e.t.Errorf("ticket %s took units in %d shards: %v", ticket, n, byShard)
		}
	}
	if held != wantHeld {
		e.t.Errorf("%d units held by claims, want %d", held, wantHeld)
	}
}

// TestWorkerKilledBeforeAck: a worker dies after a Lua call and before XACK (at each step that
// changes the store); a new worker takes its pending messages over with XAUTOCLAIM. No unit is
// taken twice, every ticket ends, the pending list drains.
func TestWorkerKilledBeforeAck(t *testing.T) {
	tests := []struct {
		name  string
		stage string
		nth   int64 // crash at the nth time the stage is reached
	}{
		{"after claiming a unit", "claimed", 1},
		{"after recording a win", "decided", 1},
		{"after a later claim", "claimed", 4},
		{"after recording sold out", "decided", 7}, // tickets 6.. find the 5 units gone
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, Options{})
			const stock, shards, demand = 5, 2, 8
			e.createSale(saleSpec{id: "s", stock: stock, shards: shards, limit: 1})
			users := make([]string, demand)
			for i := range users {
				users[i] = fmt.Sprintf("u%d", i)
			}
			outs := e.rush("s", users)
			for _, o := range outs {
				if o.status != 202 {
					t.Fatalf("attempt of %s = %d, want 202", o.user, o.status)
				}
			}

			// Worker A: one loop, no maintenance; it dies at the chosen step.
			var seen atomic.Int64
			var crashedOn atomic.Value
			a, err := NewWorker(e.svc, WorkerOptions{
				Consumer: "doomed", Concurrency: 1, Block: 50 * time.Millisecond, SweepEvery: -1, TrimEvery: -1,
				hook: func(stage, ticket string) bool {
					if stage == tt.stage && seen.Add(1) == tt.nth {
						crashedOn.Store(ticket)
						return true
					}
					return false
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- a.Run(context.Background()) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("worker A did not reach its crash point")
			}
			if crashedOn.Load() == nil {
				t.Fatal("worker A stopped without crashing")
			}
			if p := e.pending(); p == 0 {
				t.Fatal("nothing pending after the crash")
			}
			checkBalanced(t, "after the crash", e.ledger("s"))

			// Worker B takes over what A left pending.
			e.startWorkers(1, WorkerOptions{Consumer: "rescuer", ClaimIdle: 50 * time.Millisecond,
				ClaimEvery: 20 * time.Millisecond, SweepEvery: -1, TrimEvery: -1})
			e.settleAll("s", outs, 10*time.Second)
			waitFor(t, 10*time.Second, "pending list drained", func() bool { return e.pending() == 0 })

			won := 0
			for _, o := range outs {
				if o.final.Status == StatusWon {
					won++
				} else if o.final.Status != StatusSoldOut {
					t.Errorf("ticket of %s ended %+v", o.user, o.final)
				}
			}
			if won != stock {
				t.Errorf("%d winners, want %d", won, stock)
			}
			l := e.checkAtRest("after recovery", "s")
			if l.Remaining != 0 || l.Reserved != stock || l.Won != stock || l.Released != 0 {
				t.Errorf("ledger after recovery = %+v", l)
			}
			e.checkOneUnitPerTicket("s", shards, stock)
		})
	}
}

// TestTwoWorkersOneTicket: the same message decided by two workers at once (a slow worker whose
// message was taken over) takes one unit at most.
func TestTwoWorkersOneTicket(t *testing.T) {
	e := newEnv(t, Options{})
	const stock, shards = 3, 3
	e.createSale(saleSpec{id: "s", stock: stock, shards: shards, limit: 1})
	users := []string{"a", "b", "c", "d", "e"}
	outs := e.rush("s", users)
	sl, err := e.svc.loadSale(context.Background(), "s")
	if err != nil {
		t.Fatal(err)
	}
	for round := range 20 {
		var wg sync.WaitGroup
		for _, o := range outs {
			for range 3 {
				wg.Go(func() {
					if _, err := e.svc.decide(context.Background(), sl, o.ticket, nil); err != nil {
						t.Errorf("round %d: decide %s: %v", round, o.ticket, err)
					}
				})
			}
		}
		wg.Wait()
	}
	won := 0
	for i := range outs {
		p, _ := e.poll("s", outs[i].user, outs[i].ticket)
		if p.Status == StatusWon {
			won++
		}
	}
	if won != stock {
		t.Errorf("%d winners, want %d", won, stock)
	}
	l := e.checkAtRest("after duplicate decisions", "s")
	if l.Reserved != stock || l.Won != stock || l.Released != 0 {
		t.Errorf("ledger = %+v", l)
	}
	e.checkOneUnitPerTicket("s", shards, stock)
}

// TestPayAtExpiry races checkouts against the sweeper at the moment each reservation expires:
// every reservation ends exactly once, as an order or as a unit returned, and units returned
// equal reservations expired.
func TestPayAtExpiry(t *testing.T) {
	const n = 60
	e := newEnv(t, Options{Reservation: 1500 * time.Millisecond})
	e.createSale(saleSpec{id: "s", stock: n, shards: 4, limit: 1})
	e.startWorkers(1, WorkerOptions{Concurrency: 2, SweepEvery: -1})
	users := make([]string, n)
	for i := range users {
		users[i] = fmt.Sprintf("u%02d", i)
	}
	outs := e.rush("s", users)
	e.settleAll("s", outs, 10*time.Second)
	for _, o := range outs {
		if o.final.Status != StatusWon {
			t.Fatalf("ticket of %s = %+v, want won", o.user, o.final)
		}
	}

	// Two sweepers spin while every shopper pays within +-20ms of their deadline.
	ctx := context.Background()
	stop := make(chan struct{})
	var sweepers sync.WaitGroup
	for range 2 {
		sweepers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := e.svc.Sweep(ctx); err != nil {
					t.Errorf("sweep: %v", err)
				}
			}
		})
	}
	codes := make([]int, n)
	var payers sync.WaitGroup
	for i, o := range outs {
		payers.Go(func() {
			exp, err := time.Parse(time.RFC3339Nano, o.final.ExpiresAt)
			if err != nil {
				t.Errorf("expires_at %q: %v", o.final.ExpiresAt, err)
				return
			}
			time.Sleep(time.Until(exp.Add(time.Duration(i%41-20) * time.Millisecond)))
			codes[i] = e.do("POST", "/api/v1/flash-sales/s/checkout", o.user, "", "", map[string]string{"token": o.final.Token}).status
		})
	}
	payers.Wait()
	waitFor(t, 10*time.Second, "every deadline handled", func() bool {
		c, _ := e.c.Do(ctx, e.c.B().Zcard().Key(keyspace.SaleDeadlines("s")).Build()).AsInt64()
		return c == 0
	})
	close(stop)
	sweepers.Wait()

	paid, expired := 0, 0
	for i, o := range outs {
		orderExists, _ := e.c.Do(ctx, e.c.B().Exists().Key(keyspace.Order(o.user, OrderID("s", o.final.Token))).Build()).AsInt64()
		state, _ := e.c.Do(ctx, e.c.B().Hget().Key(keyspace.SaleToken("s", o.final.Token)).Field("state").Build()).ToString()
		switch codes[i] {
		case 201:
			paid++
			if orderExists != 1 || state != "" {
				t.Errorf("%s paid: order exists %d, token state %q (want an order and no token)", o.user, orderExists, state)
			}
		case 410:
			expired++
			if orderExists != 0 || state != "returned" {
				t.Errorf("%s expired: order exists %d, token state %q (want no order, token returned)", o.user, orderExists, state)
			}
		default:
			t.Errorf("checkout of %s at its deadline = %d", o.user, codes[i])
		}
	}
	t.Logf("at the deadline: %d paid, %d expired", paid, expired)
	l := e.checkAtRest("after the race", "s")
	if l.Ordered != int64(paid) || l.ExpiredReturned != int64(expired) || l.Expired != int64(expired) ||
		l.Remaining != int64(expired) || l.Reserved != 0 || l.OrdersFinished != int64(paid) {
		t.Errorf("ledger = %+v, want %d ordered and %d expired and returned", l, paid, expired)
	}
	held, _ := e.c.Do(ctx, e.c.B().Hgetall().Key(keyspace.SaleUsers("s")).Build()).AsIntMap()
	if int64(len(held)) != int64(paid) {
		t.Errorf("%d users hold units, want the %d who paid", len(held), paid)
	}
	if paid == 0 || expired == 0 {
		t.Logf("note: the race fell all one way (%d paid, %d expired)", paid, expired)
	}
}

// TestExpiryReturnsUnit: an unpaid reservation expires once, its unit goes back, the sold-out
// flag is cleared, the user may try again and wins it back.
func TestExpiryReturnsUnit(t *testing.T) {
	e := newEnv(t, Options{})
	e.createSale(saleSpec{id: "s", stock: 1, shards: 2, limit: 1})
	e.startWorkers(1, WorkerOptions{SweepEvery: -1})
	ticket := admittedTicket(t, e.attempt("s", "alice", "k1"))
	won := e.decided("s", "alice", ticket, 5*time.Second)
	if won.Status != StatusWon {
		t.Fatalf("alice = %+v", won)
	}
	// The win emptied the last shard, so the worker sets the flag right after recording the win
	// (the poll may see the win first) and the next attempt is 410.
	waitFor(t, 5*time.Second, "the sold-out flag", func() bool {
		n, _ := e.c.Do(context.Background(), e.c.B().Exists().Key(keyspace.SoldOut("s")).Build()).AsInt64()
		return n == 1
	})
	if r := e.attempt("s", "bob", "k1"); r.status != 410 {
		t.Fatalf("attempt after sell-out = %s, want 410", r)
	}
	ctx := context.Background()
	if rep, err := e.svc.Sweep(ctx); err != nil || rep.Expired != 0 {
		t.Fatalf("early sweep = %+v, %v; want nothing expired", rep, err)
	}
	e.clock.Advance(DefaultReservation + time.Second)
	rep, err := e.svc.Sweep(ctx)
	if err != nil || rep.Expired != 1 {
		t.Fatalf("sweep = %+v, %v; want 1 expired", rep, err)
	}
	if rep, _ := e.svc.Sweep(ctx); rep.Expired != 0 {
		t.Errorf("second sweep expired %d again", rep.Expired)
	}
	l := e.checkAtRest("after expiry", "s")
	if l.Remaining != 1 || l.Reserved != 0 || l.ExpiredReturned != 1 || l.SoldOutFlag {
		t.Errorf("ledger after expiry = %+v", l)
	}
	if r := e.do("POST", "/api/v1/flash-sales/s/checkout", "alice", "", "", map[string]string{"token": won.Token}); r.status != 410 {
		t.Errorf("checkout of an expired token = %s, want 410", r)
	}
	again := admittedTicket(t, e.attempt("s", "alice", "k2"))
	if p := e.decided("s", "alice", again, 5*time.Second); p.Status != StatusWon {
		t.Errorf("alice's second try = %+v, want won", p)
	}
}

// TestSweepFinishesCheckout: a checkout that stopped right after the pay step is finished by the
// sweeper once the deadline passes; the same order, written once.
func TestSweepFinishesCheckout(t *testing.T) {
	e := newEnv(t, Options{})
	e.createSale(saleSpec{id: "s", stock: 2, shards: 1})
	e.startWorkers(1, WorkerOptions{SweepEvery: -1})
	won := e.decided("s", "alice", admittedTicket(t, e.attempt("s", "alice", "k")), 5*time.Second)
	ctx := context.Background()
	// The pay step alone, as a checkout that died right after it would leave it.
	rep, err := strs(e.svc.lua.tokenPay.Exec(ctx, e.c, []string{keyspace.SaleToken("s", won.Token), keyspace.SaleStats("s")},
		[]string{"alice", ms(e.clock.Now())}))
	if err != nil || rep[0] != "paid" {
		t.Fatalf("pay step = %q, %v", rep, err)
	}
	e.clock.Advance(DefaultReservation + time.Second)
	sw, err := e.svc.Sweep(ctx)
	if err != nil || sw.Completed != 1 || sw.Expired != 0 {
		t.Fatalf("sweep = %+v, %v; want the checkout completed", sw, err)
	}
	l := e.checkAtRest("after completion", "s")
	if l.Ordered != 1 || l.Reserved != 0 || l.OrdersFinished != 1 {
		t.Errorf("ledger = %+v", l)
	}
	if r := e.do("POST", "/api/v1/flash-sales/s/checkout", "alice", "", "", map[string]string{"token": won.Token}); r.status != 409 {
		t.Errorf("checkout after completion = %s, want 409", r)
	}
	if n, _ := e.c.Do(ctx, e.c.B().Exists().Key(keyspace.Order("alice", OrderID("s", won.Token))).Build()).AsInt64(); n != 1 {
		t.Error("order missing")
	}
}

// TestCheckoutRetryAfterPay: a checkout that died after the pay step is finished by the retry,
// which gets the same order.
func TestCheckoutRetryAfterPay(t *testing.T) {
	e := newEnv(t, Options{})
	e.createSale(saleSpec{id: "s", stock: 1, shards: 1})
	e.startWorkers(1, WorkerOptions{SweepEvery: -1})
	won := e.decided("s", "alice", admittedTicket(t, e.attempt("s", "alice", "k")), 5*time.Second)
	ctx := context.Background()
	if _, err := e.svc.lua.tokenPay.Exec(ctx, e.c, []string{keyspace.SaleToken("s", won.Token), keyspace.SaleStats("s")},
		[]string{"alice", ms(e.clock.Now())}).ToArray(); err != nil {
		t.Fatal(err)
	}
	r := e.do("POST", "/api/v1/flash-sales/s/checkout", "alice", "", "", map[string]string{"token": won.Token})
	if r.status != 201 || !strings.Contains(string(r.body), OrderID("s", won.Token)) {
		t.Fatalf("retry = %s, want 201 with the order", r)
	}
	l := e.checkAtRest("after the retry", "s")
	if l.Paid != 1 || l.Ordered != 1 || l.OrdersFinished != 1 {
		t.Errorf("ledger = %+v (paid must count once)", l)
	}
}

// TestRequeueStranded: the order service died between admission and XADD; the sweeper enqueues
// the ticket again after RequeueAfter and it gets decided.
func TestRequeueStranded(t *testing.T) {
	e := newEnv(t, Options{})
	e.createSale(saleSpec{id: "s", stock: 1, shards: 1})
	ticket := admittedTicket(t, e.attempt("s", "alice", "k"))
	ctx := context.Background()
	// Lose the message, as if XADD never happened.
	entries, err := e.c.Do(ctx, e.c.B().Xrange().Key(keyspace.AttemptStream()).Start("-").End("+").Build()).AsXRange()
	if err != nil || len(entries) != 1 {
		t.Fatalf("stream = %v, %v", entries, err)
	}
	if err := e.c.Do(ctx, e.c.B().Xdel().Key(keyspace.AttemptStream()).Id(entries[0].ID).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	e.startWorkers(1, WorkerOptions{SweepEvery: -1})
	if rep, _ := e.svc.Sweep(ctx); rep.Requeued != 0 {
		t.Fatalf("requeued %d before RequeueAfter", rep.Requeued)
	}
	e.clock.Advance(DefaultRequeueAfter + time.Second)
	if rep, err := e.svc.Sweep(ctx); err != nil || rep.Requeued != 1 {
		t.Fatalf("sweep = %+v, %v; want 1 requeued", rep, err)
	}
	if p := e.decided("s", "alice", ticket, 5*time.Second); p.Status != StatusWon {
		t.Errorf("stranded ticket = %+v, want won", p)
	}
	e.clock.Advance(DefaultRequeueAfter + time.Second)
	if rep, _ := e.svc.Sweep(ctx); rep.Requeued != 0 {
		t.Errorf("a decided ticket was requeued")
	}
}

// TestSoldOutAudit: a sold-out flag left set while a shard holds stock is cleared by the sweep.
func TestSoldOutAudit(t *testing.T) {
	e := newEnv(t, Options{})
	e.createSale(saleSpec{id: "s", stock: 3, shards: 2})
	ctx := context.Background()
	if err := e.c.Do(ctx, e.c.B().Set().Key(keyspace.SoldOut("s")).Value("1").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	if rep, err := e.svc.Sweep(ctx); err != nil || rep.FlagsCleared != 1 {
		t.Fatalf("sweep = %+v, %v; want the flag cleared", rep, err)
	}
	if v, _ := e.svc.GetSale(ctx, "s"); v.State != StateLive {
		t.Errorf("state = %s, want live", v.State)
	}
}

// TestOverLimitReleasesClaim: should a ticket's user reach the limit while a previous run of the
// ticket holds a claimed unit (which the gate's accounting prevents in normal operation), the unit
// goes back to its shard and the ticket ends lost; the ledger counts the release.
func TestOverLimitReleasesClaim(t *testing.T) {
	for _, where := range []string{"at begin", "at the win"} {
		t.Run(where, func(t *testing.T) {
			e := newEnv(t, Options{})
			e.createSale(saleSpec{id: "s", stock: 2, shards: 2, limit: 1})
			ticket := admittedTicket(t, e.attempt("s", "alice", "k"))
			ctx := context.Background()
			sl, _ := e.svc.loadSale(ctx, "s")
			// A run that died right after claiming.
			_, err := e.svc.decide(ctx, sl, ticket, func(stage, _ string) bool { return stage == "claimed" })
			if err != errCrash {
				t.Fatalf("decide = %v, want the simulated crash", err)
			}
			if l := e.ledger("s"); l.Reserved != 1 || l.Remaining != 1 {
				t.Fatalf("ledger after the claim = %+v", l)
			}
			// The anomaly: alice holds her limit already.
			if err := e.c.Do(ctx, e.c.B().Hset().Key(keyspace.SaleUsers("s")).FieldValue().FieldValue("alice", "1").Build()).Error(); err != nil {
				t.Fatal(err)
			}
			switch where {
			case "at begin":
				_, err = e.svc.decide(ctx, sl, ticket, nil)
			case "at the win":
				var shard int
				for i, st := range e.claimsOf("s", 2)[ticket] {
					if st == "r" {
						shard = i
					}
				}
				_, err = e.svc.recordWin(ctx, sl, ticket, "alice", shard, "0", false, nil)
			}
			if err != nil {
				t.Fatal(err)
			}
			p, _ := e.poll("s", "alice", ticket)
			if p.Status != StatusLost || p.Reason != OutcomeLimitReached {
				t.Errorf("ticket = %+v, want lost limit_reached", p)
			}
			l := e.ledger("s")
			checkBalanced(t, "after the release", l)
			if l.Reserved != 0 || l.Remaining != 2 || l.Released != 1 || l.Lost != 1 {
				t.Errorf("ledger = %+v", l)
			}
			e.checkOneUnitPerTicket("s", 2, 0)
		})
	}
}

// TestChurn: shoppers keep winning and never paying while short reservations keep expiring:
// units go round and round. At the end every unit is back, each exactly once, and the sold-out
// flag is clear.
func TestChurn(t *testing.T) {
	const stock, nUsers = 4, 40
	e := newEnv(t, Options{Reservation: 150 * time.Millisecond})
	e.createSale(saleSpec{id: "s", stock: stock, shards: 3, limit: 1})
	e.startWorkers(2, WorkerOptions{SweepEvery: 10 * time.Millisecond, TrimEvery: 50 * time.Millisecond})
	stopAt := time.Now().Add(2 * time.Second)
	var wins, tries atomic.Int64
	var wg sync.WaitGroup
	for u := range nUsers {
		wg.Go(func() {
			user := fmt.Sprintf("u%d", u)
			for i := 0; time.Now().Before(stopAt); i++ {
				tries.Add(1)
				r := e.attempt("s", user, fmt.Sprintf("k%d", i))
				if r.status != 202 {
					time.Sleep(20 * time.Millisecond)
					continue
				}
				var a struct{ Ticket string }
				r.decode(t, &a)
				for time.Now().Before(stopAt.Add(5 * time.Second)) {
					p, pr := e.poll("s", user, a.Ticket)
					if pr.status != 200 {
						t.Errorf("poll: %s", pr)
						return
					}
					if p.Status == StatusWon {
						wins.Add(1)
					}
					if p.Status != StatusQueued {
						break
					}
					time.Sleep(5 * time.Millisecond)
				}
			}
		})
	}
	wg.Wait()
	ctx := context.Background()
	waitFor(t, 10*time.Second, "every reservation expired and returned", func() bool {
		d, _ := e.c.Do(ctx, e.c.B().Zcard().Key(keyspace.SaleDeadlines("s")).Build()).AsInt64()
		q, _ := e.c.Do(ctx, e.c.B().Zcard().Key(keyspace.SaleQueue("s")).Build()).AsInt64()
		return d == 0 && q == 0
	})
	l := e.checkAtRest("after churn", "s")
	t.Logf("%d attempts, %d wins; ledger %+v", tries.Load(), wins.Load(), l.Ledger)
	if l.Remaining != stock || l.Reserved != 0 || l.Won != wins.Load() || l.ExpiredReturned != l.Won || l.Expired != l.Won {
		t.Errorf("after churn: won %d (seen %d), expired %d, returned %d, remaining %d",
			l.Won, wins.Load(), l.Expired, l.ExpiredReturned, l.Remaining)
	}
	if wins.Load() <= stock {
		t.Errorf("only %d wins: units did not go round", wins.Load())
	}
	if l.SoldOutFlag {
		t.Error("sold-out flag set with every unit back in stock")
	}
	held, _ := e.c.Do(ctx, e.c.B().Hlen().Key(keyspace.SaleUsers("s")).Build()).AsInt64()
	if held != 0 {
		t.Errorf("%d users still hold units", held)
	}
}

// TestStopFinishesCurrentMessage: a worker told to stop in the middle of a message finishes it
// and acknowledges it before Run returns.
func TestStopFinishesCurrentMessage(t *testing.T) {
	e := newEnv(t, Options{})
	e.createSale(saleSpec{id: "s", stock: 1, shards: 1})
	ticket := admittedTicket(t, e.attempt("s", "alice", "k"))
	reached, resume := make(chan struct{}), make(chan struct{})
	w, err := NewWorker(e.svc, WorkerOptions{Consumer: "stopper", Concurrency: 1, Block: 50 * time.Millisecond,
		hook: func(stage, _ string) bool {
			if stage == "claimed" {
				close(reached)
				<-resume
			}
			return false
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	select {
	case <-reached:
	case <-time.After(10 * time.Second):
		t.Fatal("worker never reached the message")
	}
	cancel()
	close(resume)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after stop")
	}
	if p, _ := e.poll("s", "alice", ticket); p.Status != StatusWon {
		t.Errorf("ticket = %+v, want won", p)
	}
	if n := e.pending(); n != 0 {
		t.Errorf("%d messages pending after a clean stop", n)
	}
}

// TestStreamDeleted: a worker whose stream (and group) vanished recreates them and goes on.
func TestStreamDeleted(t *testing.T) {
	e := newEnv(t, Options{})
	e.createSale(saleSpec{id: "s", stock: 2, shards: 1})
	e.startWorkers(1, WorkerOptions{SweepEvery: -1, TrimEvery: -1})
	first := admittedTicket(t, e.attempt("s", "alice", "k"))
	e.decided("s", "alice", first, 5*time.Second)
	if err := e.c.Do(context.Background(), e.c.B().Del().Key(keyspace.AttemptStream()).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	// The attempt's XADD recreates the stream without the group; the worker recreates the group
	// from id 0, so the message is still decided.
	second := admittedTicket(t, e.attempt("s", "bob", "k"))
	if p := e.decided("s", "bob", second, 10*time.Second); p.Status != StatusWon {
		t.Errorf("ticket after the stream was deleted = %+v, want won", p)
	}
}

// TestStrandedTicketEndsLost: a ticket no worker decides within its requeues ends lost
// ("stranded") with the unit a dead run had claimed back in its shard, and its user can try
// again: every admitted attempt reaches a final state within a bound.
func TestStrandedTicketEndsLost(t *testing.T) {
	e := newEnv(t, Options{RequeueAfter: time.Second, MaxRequeues: 2})
	e.createSale(saleSpec{id: "s", stock: 1, shards: 2, limit: 1})
	ticket := admittedTicket(t, e.attempt("s", "alice", "k"))
	ctx := context.Background()
	sl, _ := e.svc.loadSale(ctx, "s")
	// A run that died right after claiming the only unit; no worker runs afterwards.
	if _, err := e.svc.decide(ctx, sl, ticket, func(stage, _ string) bool { return stage == "claimed" }); err != errCrash {
		t.Fatalf("decide = %v, want the simulated crash", err)
	}
	for range 4 { // two requeues, then the end
		e.clock.Advance(2 * time.Second)
		if _, err := e.svc.Sweep(ctx); err != nil {
			t.Fatal(err)
		}
	}
	p, _ := e.poll("s", "alice", ticket)
	if p.Status != StatusLost || p.Reason != OutcomeStranded {
		t.Fatalf("ticket = %+v, want lost stranded", p)
	}
	l := e.checkAtRest("after the stranded end", "s")
	if l.Reserved != 0 || l.Remaining != 1 || l.Queued != 0 || l.SoldOutFlag {
		t.Fatalf("ledger = %+v, want the unit back, nothing queued, not sold out", l)
	}
	// A worker that picks the old message up later finds the ticket decided and takes nothing.
	if _, err := e.svc.decide(ctx, sl, ticket, nil); err != nil {
		t.Fatal(err)
	}
	if l := e.ledger("s"); l.Remaining != 1 || l.Won != 0 {
		t.Fatalf("ledger after a late run = %+v", l)
	}
	// Alice may try again and win the unit.
	e.startWorkers(1, WorkerOptions{})
	again := admittedTicket(t, e.attempt("s", "alice", "k2"))
	waitFor(t, 5*time.Second, "the new attempt decided", func() bool {
		p, _ := e.poll("s", "alice", again)
		return p.Status == StatusWon
	})
}
