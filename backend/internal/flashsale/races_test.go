package flashsale

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"testing"
	"time"

	"flashedge/backend/internal/order"
	"flashedge/shared/keyspace"
)

// ordersOf counts the order documents of sale held by users: a primary record, not a counter.
func (e *env) ordersOf(sale string, users ...string) int {
	e.t.Helper()
	ctx := context.Background()
	n := 0
	for _, u := range users {
		ids, err := e.c.Do(ctx, e.c.B().Zrange().Key(keyspace.UserOrders(u)).Min("0").Max("-1").Build()).AsStrSlice()
		if err != nil {
			e.t.Fatalf("orders of %s: %v", u, err)
		}
		for _, id := range ids {
			doc, err := e.c.Do(ctx, e.c.B().Get().Key(keyspace.Order(u, id)).Build()).AsBytes()
			if err != nil {
				e.t.Fatalf("order %s of %s: %v", id, u, err)
			}
			var o order.Order
			if err := json.Unmarshal(doc, &o); err != nil {
				e.t.Fatalf("order %s of %s: %v", id, u, err)
			}
			if o.FlashSaleID == sale {
				n++
			}
		}
	}
	return n
}

// liveClaims returns the shards where ticket holds a reserved ("r") claim.
func (e *env) liveClaims(sale string, shards int, ticket string) []int {
	e.t.Helper()
	var out []int
	for i, st := range e.claimsOf(sale, shards)[ticket] {
		if st == "r" {
			out = append(out, i)
		}
	}
	return out
}

// TestRaceStrandedEndAfterWin is race 1 of issue 10, step by step: the sweeper's requeue_mark.lua
// has answered "exhausted" for a ticket; before its endStranded runs, a worker wins the ticket.
// endStranded then finds the ticket decided and must leave the winner's unit alone. Before the
// fix it released that unit: a second shopper won it too and both checked out (two orders for
// one unit) while the ledger still balanced.
func TestRaceStrandedEndAfterWin(t *testing.T) {
	e := newEnv(t, Options{RequeueAfter: time.Second, MaxRequeues: 1})
	e.createSale(saleSpec{id: "s", stock: 1, shards: 1, limit: 1})
	ctx := context.Background()
	sl, err := e.svc.loadSale(ctx, "s")
	if err != nil {
		t.Fatal(err)
	}
	alice := admittedTicket(t, e.attempt("s", "alice", "k"))

	// 1. The worker decides alice's ticket: won.
	if res, err := e.svc.decide(ctx, sl, alice, nil); err != nil || res != resultWon {
		t.Fatalf("decide = %q, %v; want won", res, err)
	}
	// 2. The sweeper, acting on its earlier "exhausted", ends the ticket as stranded.
	if err := e.svc.endStranded(ctx, sl, alice); err != nil {
		t.Fatalf("endStranded: %v", err)
	}

	pa, _ := e.poll("s", "alice", alice)
	if pa.Status != StatusWon {
		t.Fatalf("alice's ticket = %+v, want still won", pa)
	}
	if got := e.liveClaims("s", 1, alice); len(got) != 1 {
		t.Errorf("alice's won claim after endStranded: reserved in shards %v, want one", got)
	}
	if l := e.ledger("s"); l.Reserved != 1 || l.Remaining != 0 {
		t.Errorf("ledger after endStranded = remaining %d reserved %d, want 0 and 1", l.Remaining, l.Reserved)
	}

	// 3. Bob tries; there is no unit for him.
	e.startWorkers(1, WorkerOptions{SweepEvery: -1, TrimEvery: -1})
	r := e.attempt("s", "bob", "k")
	if r.status == 202 {
		bob := admittedTicket(t, r)
		if p := e.decided("s", "bob", bob, 5*time.Second); p.Status == StatusWon {
			if c := e.do("POST", "/api/v1/flash-sales/s/checkout", "bob", "", "", map[string]string{"token": p.Token}); c.status == 201 {
				t.Errorf("bob bought the unit alice holds")
			}
		}
	}
	if c := e.do("POST", "/api/v1/flash-sales/s/checkout", "alice", "", "", map[string]string{"token": pa.Token}); c.status != 201 {
		t.Errorf("alice's checkout = %s, want 201", c)
	}
	if n := e.ordersOf("s", "alice", "bob"); n != 1 {
		t.Errorf("%d order documents for a sale of 1 unit", n)
	}
	e.checkAtRest("after both checkouts", "s")
}

// TestRaceClaimAfterStrandedEnd is race 2 of issue 10, step by step: a worker passes
// worker_begin ("go"); the sweeper ends the ticket as stranded; the worker then claims a unit
// and dies before recording the win. Its redelivered message finds the ticket decided. Before the
// fix nothing ever gave that unit back: one unit reserved forever with no token.
func TestRaceClaimAfterStrandedEnd(t *testing.T) {
	e := newEnv(t, Options{RequeueAfter: time.Second, MaxRequeues: 1})
	const shards = 2
	e.createSale(saleSpec{id: "s", stock: 1, shards: shards, limit: 1})
	ctx := context.Background()
	sl, err := e.svc.loadSale(ctx, "s")
	if err != nil {
		t.Fatal(err)
	}
	alice := admittedTicket(t, e.attempt("s", "alice", "k"))

	// 1. The worker passes begin.
	rep, err := strs(e.svc.lua.begin.Exec(ctx, e.c,
		[]string{keyspace.SaleResult("s", alice), keyspace.SaleUsers("s"), keyspace.SaleStats("s")},
		[]string{strconv.FormatInt(sl.PerUserLimit, 10)}))
	if err != nil || rep[0] != "go" {
		t.Fatalf("begin = %v, %v; want go", rep, err)
	}
	// 2. The sweeper ends the ticket as stranded.
	if err := e.svc.endStranded(ctx, sl, alice); err != nil {
		t.Fatalf("endStranded: %v", err)
	}
	// 3. The worker walks the shards as decide does, claims, and dies before the win.
	start := int(fnv32(alice) % uint32(shards))
	for j := range shards {
		i := (start + j) % shards
		c, err := strs(e.svc.lua.shardClaim.Exec(ctx, e.c,
			[]string{keyspace.StockShard("s", i), keyspace.ShardClaims("s", i), keyspace.ShardStats("s", i)},
			[]string{alice}))
		if err != nil {
			t.Fatal(err)
		}
		if c[0] == "claimed" {
			break
		}
	}
	// 4. The message is delivered again; then the sweeper runs as it does every second.
	if _, err := e.svc.decide(ctx, sl, alice, nil); err != nil {
		t.Fatalf("redelivered decide: %v", err)
	}
	for range 3 {
		e.clock.Advance(2 * time.Second)
		if _, err := e.svc.Sweep(ctx); err != nil {
			t.Fatalf("sweep: %v", err)
		}
	}

	if p, _ := e.poll("s", "alice", alice); p.Status != StatusLost || p.Reason != OutcomeStranded {
		t.Errorf("alice's ticket = %+v, want lost stranded", p)
	}
	if got := e.liveClaims("s", shards, alice); len(got) != 0 {
		t.Errorf("alice's ended ticket still holds a unit in shards %v", got)
	}
	l := e.checkAtRest("after the late claim", "s")
	if l.Remaining != 1 || l.Reserved != 0 {
		t.Fatalf("ledger = remaining %d reserved %d, want the unit back in stock", l.Remaining, l.Reserved)
	}
	// The unit is for sale again.
	e.startWorkers(1, WorkerOptions{SweepEvery: -1, TrimEvery: -1})
	bob := admittedTicket(t, e.attempt("s", "bob", "k"))
	if p := e.decided("s", "bob", bob, 5*time.Second); p.Status != StatusWon {
		t.Errorf("bob's ticket = %+v, want won", p)
	}
}

// TestStrandedFreesAdmission: tickets that ended stranded without a unit give their admission
// back, so the cap k x (initial + returned) still lets shoppers in while stock remains.
func TestStrandedFreesAdmission(t *testing.T) {
	e := newEnv(t, Options{K: 1, RequeueAfter: time.Second, MaxRequeues: 1})
	e.createSale(saleSpec{id: "s", stock: 1, shards: 1, limit: 1})
	ctx := context.Background()
	admittedTicket(t, e.attempt("s", "alice", "k"))
	// The message is lost and no worker runs: the ticket can only end stranded.
	if err := e.c.Do(ctx, e.c.B().Del().Key(keyspace.AttemptStream()).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	if r := e.attempt("s", "bob", "k"); r.status != 429 {
		t.Fatalf("bob before the stranded end = %s, want 429 (cap k x 1 reached)", r)
	}
	for range 4 {
		e.clock.Advance(2 * time.Second)
		if _, err := e.svc.Sweep(ctx); err != nil {
			t.Fatal(err)
		}
		if err := e.c.Do(ctx, e.c.B().Del().Key(keyspace.AttemptStream()).Build()).Error(); err != nil {
			t.Fatal(err)
		}
	}
	if l := e.ledger("s"); l.Queued != 0 || l.Lost != 1 || l.Remaining != 1 {
		t.Fatalf("ledger after the stranded end = %+v", l)
	}
	carol := e.attempt("s", "carol", "k")
	if carol.status != 202 {
		t.Fatalf("carol after the stranded end = %s, want 202: the stranded ticket took no unit", carol)
	}
	// Once only: the freed admission is used now.
	if r := e.attempt("s", "dave", "k"); r.status != 429 {
		t.Errorf("dave = %s, want 429", r)
	}
}

// TestSweepReachesEverySale: a live sale older than many later ones still has its reservations
// expired; ended sales with nothing left to sweep leave the live index.
func TestSweepReachesEverySale(t *testing.T) {
	e := newEnv(t, Options{Reservation: time.Minute})
	ctx := context.Background()
	// The oldest sale, long-running, with one reservation.
	e.createSale(saleSpec{id: "old", stock: 1, shards: 1, startsIn: -48 * time.Hour, lasts: 96 * time.Hour})
	ticket := admittedTicket(t, e.attempt("old", "alice", "k"))
	sl, _ := e.svc.loadSale(ctx, "old")
	if res, err := e.svc.decide(ctx, sl, ticket, nil); err != nil || res != resultWon {
		t.Fatalf("decide = %q, %v", res, err)
	}
	// 1,100 later sales, started after it (a few ended ones among them).
	e.putProduct("p-many")
	price, stock, one := int64(100), int64(1), int64(1)
	for i := range 1100 {
		id := fmt.Sprintf("n%04d", i)
		start := e.clock.Now().Add(-47*time.Hour + time.Duration(i)*time.Second)
		end := start.Add(96 * time.Hour)
		if i < 10 {
			end = start.Add(time.Minute) // long over
		}
		in := SaleInput{ID: &id, ProductID: "p-many", Price: &price, Stock: &stock, PerUserLimit: &one,
			StartsAt: start.UTC().Format(time.RFC3339), EndsAt: end.UTC().Format(time.RFC3339)}
		if _, _, err := e.svc.CreateSale(ctx, in); err != nil {
			t.Fatalf("create %s: %v", id, err)
		}
	}
	e.clock.Advance(2 * time.Minute)
	rep, err := e.svc.Sweep(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Expired != 1 {
		t.Errorf("sweep = %+v, want the old sale's reservation expired", rep)
	}
	if l := e.ledger("old"); l.Remaining != 1 || l.Reserved != 0 {
		t.Errorf("old sale's ledger = %+v, want its unit back", l)
	}
	n, err := e.c.Do(ctx, e.c.B().Zcard().Key(keyspace.LiveSales()).Build()).AsInt64()
	if err != nil {
		t.Fatal(err)
	}
	if n != 1091 {
		t.Errorf("%d sales in the live index, want 1091 (the 10 ended ones removed)", n)
	}
}

// TestClosingFinishedByOthers: a ticket decided lost whose decider died before closing its claims
// (it is left in the closing set) is closed by the next one to find it: the worker holding the
// claim when its win finds the ticket decided, or else the sweep. The unit goes back once.
func TestClosingFinishedByOthers(t *testing.T) {
	for _, closer := range []string{"worker", "sweep"} {
		t.Run(closer, func(t *testing.T) {
			e := newEnv(t, Options{})
			const shards = 2
			e.createSale(saleSpec{id: "s", stock: 2, shards: shards, limit: 1})
			ctx := context.Background()
			sl, _ := e.svc.loadSale(ctx, "s")
			alice := admittedTicket(t, e.attempt("s", "alice", "k"))
			// A worker claims a unit for the ticket...
			var shard int
			_, err := e.svc.decide(ctx, sl, alice, func(stage, _ string) bool {
				if stage == "claimed" {
					shard = e.liveClaims("s", shards, alice)[0]
					return true
				}
				return false
			})
			if err != errCrash {
				t.Fatalf("decide = %v, want the simulated crash", err)
			}
			// ...and the ticket is decided lost by a step that dies right after its decision.
			if res, err := e.svc.finish(ctx, "s", alice, "lost", "", OutcomeStranded, nil); err != nil || res != resultLost {
				t.Fatalf("finish = %q, %v", res, err)
			}
			switch closer {
			case "worker":
				if res, err := e.svc.recordWin(ctx, sl, alice, "alice", shard, "0", false, nil); err != nil || res != resultDuplicate {
					t.Fatalf("recordWin = %q, %v; want duplicate", res, err)
				}
			case "sweep":
				if rep, err := e.svc.Sweep(ctx); err != nil || rep.Closed != 1 {
					t.Fatalf("sweep = %+v, %v; want 1 closed", rep, err)
				}
			}
			// Closing again changes nothing.
			if rep, err := e.svc.Sweep(ctx); err != nil || rep.Closed != 0 {
				t.Fatalf("second sweep = %+v, %v; want nothing closed", rep, err)
			}
			if ok, err := e.svc.closeClaims(ctx, sl, alice); err != nil || ok {
				t.Fatalf("closeClaims after the close = %v, %v", ok, err)
			}
			l := e.checkAtRest("after the close", "s")
			if l.Remaining != 2 || l.Reserved != 0 || l.Released != 1 {
				t.Errorf("ledger = %+v, want the unit back once", l)
			}
			for i, st := range e.claimsOf("s", shards)[alice] {
				if st != "u" && st != "-" {
					t.Errorf("shard %d holds claim %q for the lost ticket", i, st)
				}
			}
			if n, _ := e.c.Do(ctx, e.c.B().Hget().Key(keyspace.SaleStats("s")).Field("epoch").Build()).AsInt64(); n != 1 {
				t.Errorf("return epoch = %d, want 1 (one unit given back)", n)
			}
		})
	}
}

// TestSecondSweeperDoesNotStrandEarly: two sweepers read the same stale ticket from the queue;
// the first enqueues it again. The second must see that it is fresh again, not end it at once.
func TestSecondSweeperDoesNotStrandEarly(t *testing.T) {
	e := newEnv(t, Options{RequeueAfter: time.Second, MaxRequeues: 1})
	e.createSale(saleSpec{id: "s", stock: 1, shards: 1, limit: 1})
	ctx := context.Background()
	sl, _ := e.svc.loadSale(ctx, "s")
	ticket := admittedTicket(t, e.attempt("s", "alice", "k"))
	e.clock.Advance(2 * time.Second)
	for i, want := range []bool{true, false} { // both read the queue before either acted
		if ok, err := e.svc.requeue(ctx, sl, ticket); err != nil || ok != want {
			t.Fatalf("sweeper %d: requeue = %v, %v; want %v", i+1, ok, err, want)
		}
	}
	if p, _ := e.poll("s", "alice", ticket); p.Status != StatusQueued {
		t.Fatalf("ticket = %+v, want still queued after one requeue", p)
	}
	e.clock.Advance(2 * time.Second) // undecided a full RequeueAfter after its last requeue
	if _, err := e.svc.requeue(ctx, sl, ticket); err != nil {
		t.Fatal(err)
	}
	if p, _ := e.poll("s", "alice", ticket); p.Status != StatusLost || p.Reason != OutcomeStranded {
		t.Errorf("ticket = %+v, want lost stranded", p)
	}
}

// TestIndexLiveSales: a store whose sales predate the live index gets them indexed once, and the
// sweep then reaches them.
func TestIndexLiveSales(t *testing.T) {
	e := newEnv(t, Options{Reservation: time.Minute})
	ctx := context.Background()
	e.createSale(saleSpec{id: "old", stock: 1, shards: 1})
	ticket := admittedTicket(t, e.attempt("old", "alice", "k"))
	sl, _ := e.svc.loadSale(ctx, "old")
	if res, err := e.svc.decide(ctx, sl, ticket, nil); err != nil || res != resultWon {
		t.Fatalf("decide = %q, %v", res, err)
	}
	// As an older version left it: in the sale list only.
	if err := e.c.Do(ctx, e.c.B().Del().Key(keyspace.LiveSales()).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(2 * time.Minute)
	if rep, err := e.svc.Sweep(ctx); err != nil || rep.Expired != 0 {
		t.Fatalf("sweep before indexing = %+v, %v; want nothing seen", rep, err)
	}
	for range 2 { // the second call finds the marker
		if err := e.svc.IndexLiveSales(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if rep, err := e.svc.Sweep(ctx); err != nil || rep.Expired != 1 {
		t.Fatalf("sweep after indexing = %+v, %v; want the reservation expired", rep, err)
	}
	if n, _ := e.c.Do(ctx, e.c.B().Exists().Key(keyspace.LiveSalesIndexed()).Build()).AsInt64(); n != 1 {
		t.Error("no marker after a complete pass")
	}
}
