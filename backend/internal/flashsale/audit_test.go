package flashsale

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"flashedge/shared/keyspace"
)

// TestAuditFindsBrokenRecords breaks a sale's primary records the way the races of issue 10 and
// a drifting counter would, and checks the audit names each break; a sound sale audits clean,
// live, still and at rest.
func TestAuditFindsBrokenRecords(t *testing.T) {
	ctx := context.Background()
	type world struct {
		e      *env
		sl     *Sale
		ticket map[string]string // user -> ticket
	}
	// decide runs the worker's steps for user's ticket (admitted first) and returns the result.
	admitAndDecide := func(t *testing.T, w *world, user string) pollReply {
		t.Helper()
		tk := admittedTicket(t, w.e.attempt("s", user, "k-"+user))
		w.ticket[user] = tk
		if _, err := w.e.svc.decide(ctx, w.sl, tk, nil); err != nil {
			t.Fatalf("decide %s: %v", user, err)
		}
		p, _ := w.e.poll("s", user, tk)
		return p
	}
	claimShard := func(t *testing.T, w *world, user string) int {
		t.Helper()
		for sh, st := range w.e.claimsOf("s", w.sl.Shards)[w.ticket[user]] {
			if st != "-" {
				return sh
			}
		}
		t.Fatalf("no claim for %s", user)
		return -1
	}
	tests := []struct {
		name   string
		stock  int64
		break_ func(t *testing.T, w *world)
		// want: checks (or counters) the audit must name: as violations even live, when the
		// store is still, at rest only, or as disagreements; none means the sale is sound.
		want, wantStill, wantAtRest, wantCounter []string
	}{
		{name: "sound sale", stock: 3, break_: func(t *testing.T, w *world) {
			won := admitAndDecide(t, w, "alice")
			if r := w.e.do("POST", "/api/v1/flash-sales/s/checkout", "alice", "", "", map[string]string{"token": won.Token}); r.status != 201 {
				t.Fatalf("checkout: %s", r)
			}
			admitAndDecide(t, w, "bob")
		}},
		{name: "a won ticket's unit released (race 1, before checkout)", stock: 1, break_: func(t *testing.T, w *world) {
			admitAndDecide(t, w, "alice")
			releaseByHand(t, w.e, claimShard(t, w, "alice"), w.ticket["alice"])
		}, want: []string{"won_claim"}, wantStill: []string{"unbalanced"}},
		{name: "two orders for one unit (race 1, after checkout)", stock: 1, break_: func(t *testing.T, w *world) {
			a := admitAndDecide(t, w, "alice")
			releaseByHand(t, w.e, claimShard(t, w, "alice"), w.ticket["alice"])
			// Reopen the sale as the release path does (the release alone leaves the flag).
			if err := w.e.c.Do(ctx, w.e.c.B().Del().Key(keyspace.SoldOut("s")).Build()).Error(); err != nil {
				t.Fatal(err)
			}
			b := admitAndDecide(t, w, "bob")
			if b.Status != StatusWon {
				t.Fatalf("bob = %+v, want won (the unit went back)", b)
			}
			w.e.do("POST", "/api/v1/flash-sales/s/checkout", "alice", "", "", map[string]string{"token": a.Token}) // fails half way: its claim is gone
			if r := w.e.do("POST", "/api/v1/flash-sales/s/checkout", "bob", "", "", map[string]string{"token": b.Token}); r.status != 201 {
				t.Fatalf("bob's checkout: %s", r)
			}
		}, want: []string{"oversell", "order_without_unit"}, wantStill: []string{"unbalanced"}},
		{name: "a claim for a decided ticket (race 2)", stock: 2, break_: func(t *testing.T, w *world) {
			tk := admittedTicket(t, w.e.attempt("s", "alice", "k"))
			if _, err := w.e.svc.finish(ctx, "s", tk, "lost", "", OutcomeStranded, nil); err != nil {
				t.Fatal(err)
			}
			if _, err := strs(w.e.svc.lua.shardClaim.Exec(ctx, w.e.c, []string{keyspace.StockShard("s", 0),
				keyspace.ShardClaims("s", 0), keyspace.ShardStats("s", 0)}, []string{tk})); err != nil {
				t.Fatal(err)
			}
		}, wantAtRest: []string{"claim_of_decided_ticket"}},
		{name: "a shard counter drifts", stock: 2, break_: func(t *testing.T, w *world) {
			admitAndDecide(t, w, "alice")
			if err := w.e.c.Do(ctx, w.e.c.B().Hincrby().Key(keyspace.ShardStats("s", 1)).Field("returned").Increment(1).Build()).Error(); err != nil {
				t.Fatal(err)
			}
		}, wantCounter: []string{"shard[1].returned", "returned"}},
		{name: "a ticket undecided past its bound", stock: 1, break_: func(t *testing.T, w *world) {
			admittedTicket(t, w.e.attempt("s", "alice", "k"))
			w.e.clock.Advance(time.Duration(DefaultMaxRequeues+3) * DefaultRequeueAfter)
		}, want: []string{"undecided_past_bound"}, wantAtRest: []string{"ticket_queued"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, Options{})
			e.createSale(saleSpec{id: "s", stock: tt.stock, shards: 2, limit: 1})
			sl, err := e.svc.loadSale(ctx, "s")
			if err != nil {
				t.Fatal(err)
			}
			w := &world{e: e, sl: sl, ticket: map[string]string{}}
			tt.break_(t, w)
			for _, mode := range []AuditOptions{{}, {Still: true}, {Settled: true}} {
				a, err := e.svc.Audit(ctx, "s", mode)
				if err != nil {
					t.Fatal(err)
				}
				var checks, counters []string
				for _, f := range a.Violations {
					checks = append(checks, f.Check)
				}
				if mode.Settled {
					for _, f := range a.Unsettled {
						checks = append(checks, f.Check)
					}
				}
				for _, d := range a.Disagreements {
					counters = append(counters, d.Counter)
				}
				want := tt.want
				if mode.Still || mode.Settled {
					want = append(slices.Clone(want), tt.wantStill...)
				}
				if mode.Settled {
					want = append(want, tt.wantAtRest...)
				}
				for _, c := range want {
					if !slices.Contains(checks, c) {
						t.Errorf("%+v: violations %v lack %s (audit %+v)", mode, checks, c, a)
					}
				}
				for _, c := range tt.wantCounter {
					if !slices.Contains(counters, c) {
						t.Errorf("%+v: disagreements %v lack %s", mode, counters, c)
					}
				}
				sound := len(want) == 0 && len(tt.wantCounter) == 0
				if a.OK != sound || sound && len(a.Problems()) > 0 {
					t.Errorf("%+v: ok = %v, want %v; problems %q", mode, a.OK, sound, a.Problems())
				}
			}
		})
	}
}

// releaseByHand gives a ticket's reserved unit back to its shard the way the sweeper's stranded
// end did before issue 10 was fixed, whatever the ticket's decision.
func releaseByHand(t *testing.T, e *env, shard int, ticket string) {
	t.Helper()
	c := e.c
	for _, r := range c.DoMulti(context.Background(),
		c.B().Hset().Key(keyspace.ShardClaims("s", shard)).FieldValue().FieldValue(ticket, "u").Build(),
		c.B().Incr().Key(keyspace.StockShard("s", shard)).Build(),
		c.B().Hincrby().Key(keyspace.ShardStats("s", shard)).Field("reserved").Increment(-1).Build(),
		c.B().Hincrby().Key(keyspace.ShardStats("s", shard)).Field("released").Increment(1).Build()) {
		if err := r.Error(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestLedgerRouteAudit: the ledger route keeps its counters and adds the audit; a bad query is a
// 400 with a JSON error.
func TestLedgerRouteAudit(t *testing.T) {
	e := newEnv(t, Options{})
	e.createSale(saleSpec{id: "s", stock: 2, shards: 2})
	r := e.do("GET", "/api/v1/admin/flash-sales/s/ledger?settled=true", "", testAdmin, "", nil)
	for _, field := range []string{`"initial":2`, `"remaining":2`, `"audit":{"ok":true,"still":true,"settled":true`, `"balanced":true`} {
		if r.status != 200 || !strings.Contains(string(r.body), field) {
			t.Errorf("ledger = %s; want %s in it", r, field)
		}
	}
	if r := e.do("GET", "/api/v1/admin/flash-sales/s/ledger?audit=false", "", testAdmin, "", nil); r.status != 200 ||
		!strings.Contains(string(r.body), `"initial":2`) || strings.Contains(string(r.body), `"audit"`) {
		t.Errorf("ledger?audit=false = %s, want the counters without the audit", r)
	}
	for _, q := range []string{"?settled=maybe", "?final_within=soon", "?final_within=0", "?audit=perhaps"} {
		if r := e.do("GET", "/api/v1/admin/flash-sales/s/ledger"+q, "", testAdmin, "", nil); r.status != 400 || !strings.Contains(string(r.body), `"invalid_request"`) {
			t.Errorf("ledger%s = %s, want 400 invalid_request", q, r)
		}
	}
}

// TestDecisionTimes checks the admission-to-decision summary: only decided tickets with both
// times count, and the quantiles come from the sorted durations.
func TestDecisionTimes(t *testing.T) {
	if got := decisionTimes(map[string]*auditTicket{"q": {status: StatusQueued, created: 1}}); got != nil {
		t.Fatalf("no decided ticket: got %+v, want nil", got)
	}
	tickets := map[string]*auditTicket{
		"queued":  {status: StatusQueued, created: 1000},
		"no-time": {status: StatusWon},
	}
	for i := range 100 { // decided after 1..100 ms
		tickets[fmt.Sprint(i)] = &auditTicket{status: StatusSoldOut, created: 5000, decided: 5000 + int64(i) + 1}
	}
	got := decisionTimes(tickets)
	want := DecisionTimes{Tickets: 100, P50MS: 51, P99MS: 100, MaxMS: 100}
	if got == nil || *got != want {
		t.Fatalf("decisionTimes = %+v, want %+v", got, want)
	}
}
