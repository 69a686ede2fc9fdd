package flashsale

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"flashedge/shared/keyspace"
)

// splitClient runs a chosen DoMulti command by command and calls between(i) after command i,
// so another process's step lands between two commands of one pipeline (as it can on a
// multi-threaded Dragonfly or whenever the server reads a pipeline in two parts).
type splitClient struct {
	rueidis.Client
	match   func(cmds []rueidis.Completed) bool
	between func(i int)
}

func (c *splitClient) DoMulti(ctx context.Context, multi ...rueidis.Completed) []rueidis.RedisResult {
	if c.match == nil || !c.match(multi) {
		return c.Client.DoMulti(ctx, multi...)
	}
	out := make([]rueidis.RedisResult, 0, len(multi))
	for i, cmd := range multi {
		out = append(out, c.Client.DoMulti(ctx, cmd)...)
		c.between(i)
	}
	return out
}

// TestRetireSeesTicketMovingDuringReads: the sweep reads what is left of an ended sale in one
// pipeline, which is not atomic. A worker's win landing between two of its reads moves the ticket
// from the queue to the deadlines; read in the wrong order both reads say 0, the sale leaves the
// live index holding a reservation nobody would ever expire (found in review).
func TestRetireSeesTicketMovingDuringReads(t *testing.T) {
	e := newEnv(t, Options{})
	e.createSale(saleSpec{id: "s", stock: 1, shards: 1, limit: 1, lasts: 2 * time.Minute}) // ends in 1 min
	ctx := context.Background()
	sl, _ := e.svc.loadSale(ctx, "s")
	alice := admittedTicket(t, e.attempt("s", "alice", "k"))
	// Backlog: alice's ticket is still undecided 1 min + liveAfterEnd after the end.
	e.clock.Advance(2*time.Minute + 5*time.Second)
	// First sweep: alice's ticket is stale, it is requeued (so this sweep does not retire).
	if rep, err := e.svc.Sweep(ctx); err != nil || rep.Requeued != 1 {
		t.Fatalf("sweep 1 = %+v, %v; want 1 requeued", rep, err)
	}
	fired := false
	sc := &splitClient{Client: e.c}
	sc.match = func(cmds []rueidis.Completed) bool {
		// The sweep's reads of what is left of sale s, in whatever order it sends them.
		if fired || len(cmds) != 3 {
			return false
		}
		for _, c := range cmds {
			if c.Commands()[0] == "ZCARD" && c.Commands()[1] == keyspace.SaleQueue("s") {
				return true
			}
		}
		return false
	}
	sc.between = func(i int) {
		if i != 0 || fired {
			return
		}
		fired = true
		// A worker (its own connection) decides alice's ticket now.
		if res, err := e.svc.decide(ctx, sl, alice, nil); err != nil || res != resultWon {
			t.Fatalf("decide = %q, %v", res, err)
		}
	}
	sweeper, err := New(sc, e.svc.o)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := sweeper.Sweep(ctx)
	if !fired {
		t.Fatalf("sweep 2 = %+v, %v: the win was never placed between the sweep's reads", rep, err)
	}
	if rep.Retired != 0 {
		t.Errorf("sweep 2 = %+v: retired a sale whose ticket had just been won", rep)
	}
	// Alice never pays; her reservation's deadline passes; sweeps go on.
	e.clock.Advance(10 * time.Minute)
	for range 3 {
		if _, err := e.svc.Sweep(ctx); err != nil {
			t.Fatalf("sweep: %v", err)
		}
	}
	a, err := e.svc.Audit(ctx, "s", AuditOptions{Settled: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("audit: remaining %d reserved %d ordered %d; problems: %s", a.Remaining, a.Reserved, a.Ordered, strings.Join(a.Problems(), " | "))
	if a.Remaining != 1 {
		t.Errorf("the unit alice did not pay for never went back (remaining %d, reserved %d)", a.Remaining, a.Reserved)
	}
	if p := a.Problems(); len(p) > 0 {
		t.Errorf("audit at rest: %s", strings.Join(p, " | "))
	}
}

// failIndexClient fails the index pipeline of CreateSale (ZADD sales + ZADD live), as if the
// process died between the commit and the index.
type failIndexClient struct{ rueidis.Client }

func (c *failIndexClient) DoMulti(ctx context.Context, multi ...rueidis.Completed) []rueidis.RedisResult {
	if len(multi) == 2 && multi[0].Commands()[0] == "ZADD" && multi[0].Commands()[1] == keyspace.Sales() {
		return []rueidis.RedisResult{rueidis.NewErrorResult(context.DeadlineExceeded), rueidis.NewErrorResult(context.DeadlineExceeded)}
	}
	return c.Client.DoMulti(ctx, multi...)
}

// TestSaleSweptWhenCreateStopsAfterCommit: a create that stops between the commit (the sale is
// live at once) and its index, with no retry, must still leave a sale the sweep reaches:
// reservations expire and stranded tickets end (found in review: the live index was written after
// the commit).
func TestSaleSweptWhenCreateStopsAfterCommit(t *testing.T) {
	e := newEnv(t, Options{Reservation: time.Minute})
	ctx := context.Background()
	// A worker started before: the one-time IndexLiveSales pass is done (marker set).
	if err := e.svc.IndexLiveSales(ctx); err != nil {
		t.Fatal(err)
	}
	e.putProduct("p-s")
	admin, err := New(&failIndexClient{e.c}, e.svc.o)
	if err != nil {
		t.Fatal(err)
	}
	id, price, stock, one := "s", int64(100), int64(2), int64(1)
	now := e.clock.Now()
	_, _, err = admin.CreateSale(ctx, SaleInput{ID: &id, ProductID: "p-s", Price: &price, Stock: &stock, PerUserLimit: &one,
		StartsAt: now.Add(-time.Minute).UTC().Format(time.RFC3339), EndsAt: now.Add(time.Hour).UTC().Format(time.RFC3339)})
	if err == nil {
		t.Fatal("CreateSale succeeded although its index failed")
	}
	sl, err := e.svc.loadSale(ctx, "s")
	if err != nil {
		t.Fatalf("sale not committed: %v", err)
	}
	alice := admittedTicket(t, e.attempt("s", "alice", "k"))
	if res, err := e.svc.decide(ctx, sl, alice, nil); err != nil || res != resultWon {
		t.Fatalf("decide = %q, %v", res, err)
	}
	bob := admittedTicket(t, e.attempt("s", "bob", "k")) // never enqueued: XADD not done (order service died)
	_ = bob
	// A new worker starts later: marker set, nothing indexed.
	if err := e.svc.IndexLiveSales(ctx); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(10 * time.Minute)
	// No worker runs: bob's ticket is requeued, then ended stranded once its requeues are spent.
	for range e.svc.o.MaxRequeues + 3 {
		if _, err := e.svc.Sweep(ctx); err != nil {
			t.Fatalf("sweep: %v", err)
		}
		e.clock.Advance(e.svc.o.RequeueAfter + time.Second)
	}
	a, err := e.svc.Audit(ctx, "s", AuditOptions{Settled: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("audit: remaining %d reserved %d; tickets %v; problems: %s", a.Remaining, a.Reserved, a.Tickets, strings.Join(a.Problems(), " | "))
	if a.Reserved != 0 {
		t.Errorf("alice's expired reservation never went back (remaining %d, reserved %d)", a.Remaining, a.Reserved)
	}
	if a.Tickets[StatusQueued] != 0 {
		t.Errorf("bob's ticket still queued 10 min after admission (bound %v)", time.Duration(e.svc.o.MaxRequeues+2)*e.svc.o.RequeueAfter)
	}
}

// A result TTL that could expire before a later run of the same ticket is refused at start.
func TestResultTTLMustOutliveReservation(t *testing.T) {
	o := Options{ResultTTL: 300 * time.Millisecond}
	if err := o.fill(); err == nil {
		t.Fatalf("ResultTTL %v accepted", o.ResultTTL)
	}
	o = Options{Reservation: time.Hour, ResultTTL: 90 * time.Minute}
	if err := o.fill(); err == nil {
		t.Fatalf("ResultTTL %v accepted with a one-hour reservation", o.ResultTTL)
	}
	o = Options{}
	if err := o.fill(); err != nil {
		t.Fatalf("defaults refused: %v", err)
	}
}
