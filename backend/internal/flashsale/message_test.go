package flashsale

import (
	"context"
	"testing"

	"github.com/redis/rueidis"

	"flashedge/shared/keyspace"
)

// TestAdmissionMessage: an admission's stream message carries the user and the sale's return
// epoch the gate read, so the worker decides it without worker_begin.lua; delivered again after
// the decision (a lost XACK, a takeover), every message is a duplicate that changes nothing, and
// a message naming an unknown ticket takes nothing. The sale then audits clean at rest.
func TestAdmissionMessage(t *testing.T) {
	e := newEnv(t, Options{})
	e.createSale(saleSpec{id: "s", stock: 1, shards: 2, limit: 1})
	ctx := context.Background()
	tickets := map[string]string{}
	for _, u := range []string{"alice", "bob"} {
		tickets[u] = admittedTicket(t, e.attempt("s", u, "k-"+u))
	}
	entries, err := e.c.Do(ctx, e.c.B().Xrange().Key(keyspace.AttemptStream()).Start("-").End("+").Build()).AsXRange()
	if err != nil || len(entries) != 2 {
		t.Fatalf("stream = %v, %v; want the two admissions", entries, err)
	}
	msgs := toMessages(entries)
	for _, m := range msgs {
		if m.sale != "s" || tickets[m.user] != m.ticket || m.epoch != "0" {
			t.Errorf("message %+v: want sale s, the user's ticket and epoch 0", m)
		}
	}
	w, err := NewWorker(e.svc, WorkerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"alice": resultWon, "bob": resultSoldOut}
	for _, m := range msgs {
		if res, err := w.process(m); err != nil || res != want[m.user] {
			t.Errorf("%s's message: %q, %v; want %q", m.user, res, err, want[m.user])
		}
	}
	claims := e.claimsOf("s", 2)
	unknown := message{id: "0-1", sale: "s", ticket: newID(), user: "carol", epoch: "0"}
	for _, m := range append(msgs, unknown) {
		if res, err := w.process(m); err != nil || res != resultDuplicate {
			t.Errorf("%s's message again: %q, %v; want %q", m.user, res, err, resultDuplicate)
		}
	}
	after := e.claimsOf("s", 2)
	for _, u := range []string{"alice", "bob"} {
		if got, was := after[tickets[u]], claims[tickets[u]]; len(got) != len(was) || !sameClaims(got, was) {
			t.Errorf("%s's claims moved on redelivery: %v -> %v", u, was, got)
		}
	}
	if n, err := e.c.Do(ctx, e.c.B().Hget().Key(keyspace.SaleUsers("s")).Field("carol").Build()).AsInt64(); !rueidis.IsRedisNil(err) || n != 0 {
		t.Errorf("the unknown ticket's user holds %d (%v), want no entry", n, err)
	}
	e.checkAtRest("after redelivery", "s")

	// An unknown ticket on a sale with stock: the unit its walk claimed goes back.
	e.createSale(saleSpec{id: "t", stock: 2, shards: 2, limit: 1})
	if res, err := w.process(message{id: "0-2", sale: "t", ticket: newID(), user: "carol", epoch: "0"}); err != nil || res != resultDuplicate {
		t.Errorf("unknown ticket on a sale with stock: %q, %v; want %q", res, err, resultDuplicate)
	}
	if l := e.checkAtRest("unknown ticket", "t"); l.Remaining != 2 {
		t.Errorf("remaining after an unknown ticket's message = %d, want 2", l.Remaining)
	}
}

func sameClaims(a, b map[int]string) bool {
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
