package flashsale

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"flashedge/shared/keyspace"
)

// consumers returns consumer name -> pending count of the default group.
func (e *env) consumers() map[string]int64 {
	e.t.Helper()
	arr, err := e.c.Do(context.Background(), e.c.B().XinfoConsumers().Key(keyspace.AttemptStream()).Group(DefaultGroup).Build()).ToArray()
	if err != nil && strings.HasPrefix(err.Error(), "NOGROUP") {
		return map[string]int64{}
	}
	if err != nil {
		e.t.Fatalf("XINFO CONSUMERS: %v", err)
	}
	out := map[string]int64{}
	for _, m := range arr {
		info, err := m.AsMap()
		if err != nil {
			e.t.Fatal(err)
		}
		name, pending := info["name"], info["pending"]
		n, _ := name.ToString()
		p, _ := pending.AsInt64()
		out[n] = p
	}
	return out
}

// TestRetireConsumerKeepsPending: a consumer holding pending entries is never deleted (deleting
// it would drop them); once another consumer has claimed them, it is.
func TestRetireConsumerKeepsPending(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := context.Background()
	stream := keyspace.AttemptStream()
	do := func(cmd ...string) {
		t.Helper()
		if err := e.c.Do(ctx, e.c.B().Arbitrary(cmd[0]).Args(cmd[1:]...).Build()).Error(); err != nil {
			t.Fatalf("%v: %v", cmd, err)
		}
	}
	do("XGROUP", "CREATE", stream, DefaultGroup, "0", "MKSTREAM")
	for i := 1; i <= 3; i++ {
		do("XADD", stream, fmt.Sprintf("%d-1", i), "n", fmt.Sprint(i))
	}
	do("XREADGROUP", "GROUP", DefaultGroup, "dead", "COUNT", "2", "STREAMS", stream, ">")
	do("XREADGROUP", "GROUP", DefaultGroup, "idle", "COUNT", "1", "STREAMS", stream, ">")
	do("XACK", stream, DefaultGroup, "3-1")

	gone, err := e.svc.RetireConsumer(ctx, DefaultGroup, "dead")
	if err != nil || gone {
		t.Fatalf("RetireConsumer(dead with 2 pending) = %v, %v; want kept", gone, err)
	}
	n, err := e.svc.RetireIdleConsumers(ctx, DefaultGroup, 0)
	if err != nil || n != 1 {
		t.Fatalf("RetireIdleConsumers = %d, %v; want 1 (idle only)", n, err)
	}
	if got := e.consumers(); len(got) != 1 || got["dead"] != 2 {
		t.Fatalf("consumers after retiring = %v, want only dead with 2 pending", got)
	}

	do("XAUTOCLAIM", stream, DefaultGroup, "rescuer", "0", "0-0")
	if n, err := e.svc.RetireIdleConsumers(ctx, DefaultGroup, 0); err != nil || n != 1 {
		t.Fatalf("RetireIdleConsumers after the claim = %d, %v; want 1 (dead)", n, err)
	}
	if got := e.consumers(); len(got) != 1 || got["rescuer"] != 2 {
		t.Fatalf("consumers = %v, want only rescuer holding both entries", got)
	}
	if p := e.pending(); p != 2 {
		t.Fatalf("%d entries pending, want 2: retiring lost entries", p)
	}
}

// TestWorkerScaleDown: of two workers, one stops cleanly (its consumers go at once) and one dies
// holding a message. The dead worker's consumer stays until the survivor has claimed and decided
// its message, then is retired. Every ticket ends, nothing stays pending.
func TestWorkerScaleDown(t *testing.T) {
	e := newEnv(t, Options{})
	const stock, demand = 4, 10
	e.createSale(saleSpec{id: "s", stock: stock, shards: 2, limit: 1})
	users := make([]string, demand)
	for i := range users {
		users[i] = fmt.Sprintf("u%d", i)
	}

	// A clean stop after deciding a first sale: the worker leaves the group.
	e.createSale(saleSpec{id: "first", stock: 1, shards: 1, limit: 1})
	first := e.rush("first", users[:3])
	stopClean := e.startWorkers(1, WorkerOptions{Consumer: "clean", SweepEvery: -1, TrimEvery: -1})
	e.settleAll("first", first, 10*time.Second)
	if got := e.consumers(); len(got) == 0 {
		t.Fatal("no consumer in the group while the clean worker runs")
	}
	stopClean()
	if got := e.consumers(); len(got) != 0 {
		t.Fatalf("consumers after a clean stop = %v, want none", got)
	}

	outs := e.rush("s", users)

	// A crash holding a message (like kill -9 after the Lua call, before XACK).
	var crashed atomic.Bool
	doomed, err := NewWorker(e.svc, WorkerOptions{Consumer: "doomed", Concurrency: 1, Batch: 1,
		Block: 50 * time.Millisecond, SweepEvery: -1, TrimEvery: -1,
		hook: func(stage, _ string) bool { return stage == "claimed" && crashed.CompareAndSwap(false, true) }})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- doomed.Run(context.Background()) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the doomed worker did not reach its crash point")
	}
	if got := e.consumers(); got["doomed-0"] != 1 {
		t.Fatalf("consumers after the crash = %v: want doomed-0 kept with its 1 pending entry", got)
	}

	// The survivor claims the entry, decides every ticket, and then retires the dead consumer.
	e.startWorkers(1, WorkerOptions{Consumer: "survivor", ClaimIdle: 50 * time.Millisecond,
		ClaimEvery: 20 * time.Millisecond, SweepEvery: -1, TrimEvery: 50 * time.Millisecond})
	e.settleAll("s", outs, 10*time.Second)
	waitFor(t, 10*time.Second, "the dead consumer retired", func() bool {
		_, ok := e.consumers()["doomed-0"]
		return !ok
	})
	if p := e.pending(); p != 0 {
		t.Errorf("%d entries pending after recovery", p)
	}
	won := 0
	for _, o := range outs {
		if o.final.Status == StatusWon {
			won++
		}
	}
	if won != stock {
		t.Errorf("%d winners, want %d", won, stock)
	}
	checkBalanced(t, "after the scale-down", e.ledger("s"))
	e.checkOneUnitPerTicket("s", 2, stock)
	for name := range e.consumers() {
		if !strings.HasPrefix(name, "survivor-") {
			t.Errorf("consumer %s left in the group, want only the survivor's", name)
		}
	}
}
