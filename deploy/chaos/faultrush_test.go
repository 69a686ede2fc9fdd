package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"flashedge/deploy/stack"
	"flashedge/shared/keyspace"
	"flashedge/shared/kv/kvtest"
	"flashedge/shared/netfault"
)

// TestFaultRush is a flash-sale rush through the real edge, order service and two workers while
// the workers are killed with SIGKILL again and again (the supervisor restarts them), the store
// is frozen with SIGSTOP long enough for tickets to strand (RequeueAfter 1s, one requeue), and
// the workers' store connections are slowed and cut (a netfault proxy). Half of the winners pay,
// the other half let their reservation expire, so units go round. Once every reservation is
// paid or expired, the sale is audited from its primary records (order documents, claims per
// shard, shard values, result records), not from the counters the scripts keep: no oversell, no
// unit lost, no shopper above the limit, every ticket final.
func TestFaultRush(t *testing.T) {
	const (
		sale     = "faultrush"
		stock    = 40
		shards   = 8
		shoppers = 160
		rushFor  = 18 * time.Second
		slow     = 50 * time.Millisecond // each way, on the workers' store connections, for 9s
	)
	srv := kvtest.Start(t)
	pxWorker := netfault.Start(t, srv.Addr)
	st := stack.Start(t, quiet(stack.Options{
		Services:  []string{"catalog", "cart", "order", "worker", "edge"},
		Replicas:  map[string]int{"worker": 2},
		StoreAddr: srv.Addr,
		Env: map[string]string{ // the order service and the workers share these
			// A ticket undecided for 300ms is enqueued again once; undecided 300ms after that
			// (at the next sweep, every second) it ends lost "stranded".
			"FLASHEDGE_FLASHSALE_REQUEUE_AFTER": "100ms",
			"FLASHEDGE_FLASHSALE_K":             "4",
			"FLASHEDGE_FLASHSALE_MAX_REQUEUES":  "1",
			"FLASHEDGE_FLASHSALE_RESERVATION":   "3s",
			"FLASHEDGE_FLASHSALE_POLL_AFTER":    "100ms",
		},
		ServiceEnv: map[string]map[string]string{
			"worker": {"FLASHEDGE_STORE_ADDR": pxWorker.Addr()},
			"edge":   {"FLASHEDGE_RATE_IP": "off"},
		},
	}))
	hc := newHTTP(t)
	edge := st.URL("edge", 0)
	admin := &client{base: edge, token: st.AdminToken(), http: hc}
	kv := srv.Client(t)
	ctx := context.Background()
	doc := `{"id":"fr","name":"Bánh mì","description":"","price":30000,"currency":"VND","image":""}`
	if err := kv.Do(ctx, kv.B().Set().Key(keyspace.Product("fr")).Value(doc).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	admin.must(t, "create the sale", 201, "POST", "/api/v1/admin/flash-sales", map[string]any{
		"id": sale, "product_id": "fr", "price": 25000, "stock": stock, "shards": shards, "per_user_limit": 1,
		"difficulty": 0, "starts_at": now.Add(-time.Second).Format(time.RFC3339), "ends_at": now.Add(time.Hour).Format(time.RFC3339),
	})
	users := make([]*client, shoppers)
	ids := make([]string, shoppers) // the user ids the edge gives the backend, which key orders
	for i := range users {
		var s struct {
			Token  string `json:"token"`
			UserID string `json:"user_id"`
		}
		(&client{base: edge, http: hc}).must(t, "login", 200, "POST", "/api/v1/session", map[string]string{"user": fmt.Sprint("fr-", i)}).json(t, &s)
		users[i], ids[i] = &client{base: edge, token: s.Token, http: hc}, s.UserID
	}

	var (
		mu       sync.Mutex
		codes    = map[string]int{} // answers to attempts, by status
		won      atomic.Int64
		paid     atomic.Int64
		payFails atomic.Int64
	)
	count := func(what string) { mu.Lock(); codes[what]++; mu.Unlock() }
	pxWorker.SetLatency(slow)
	start := time.Now()
	end := start.Add(rushFor)
	path := "/api/v1/flash-sales/" + sale
	var wg sync.WaitGroup
	for i, c := range users {
		pays := i%2 == 0
		wg.Go(func() {
			pause := func() { time.Sleep(150 * time.Millisecond) }
			for n := 0; time.Now().Before(end); n++ {
				var ch struct {
					ID string `json:"challenge_id"`
				}
				r := c.call("POST", path+"/challenge", nil)
				if r.status != 200 || json.Unmarshal(r.body, &ch) != nil {
					count(fmt.Sprint("challenge ", r.status))
					pause()
					continue
				}
				r = c.call("POST", path+"/attempts", map[string]string{"challenge_id": ch.ID, "answer": "0"},
					"Idempotency-Key", fmt.Sprintf("a%d", n))
				count(fmt.Sprint(r.status))
				var a struct{ Ticket string }
				if r.status != 202 || json.Unmarshal(r.body, &a) != nil {
					pause()
					continue
				}
				var res struct{ Status, Token, Reason string }
				for time.Now().Before(end.Add(5 * time.Second)) {
					time.Sleep(100 * time.Millisecond)
					p := c.call("GET", path+"/attempts/"+a.Ticket, nil)
					if p.status == 200 && json.Unmarshal(p.body, &res) == nil && res.Status != "queued" {
						break
					}
				}
				if res.Status != "won" {
					continue // lost (stranded), sold out, or still queued: try again
				}
				won.Add(1)
				if !pays {
					return // the reservation expires and the unit goes back
				}
				for k := 0; k < 20; k++ {
					p := c.call("POST", path+"/checkout", map[string]string{"token": res.Token})
					if p.status == 201 {
						paid.Add(1)
						return
					}
					if p.status == 409 || p.status == 410 {
						break
					}
					pause()
				}
				payFails.Add(1)
				return
			}
		})
	}

	// The faults, on a fixed schedule from the start of the rush. The workers' store round trips
	// are slow for the first 9s, so a backlog of admitted tickets builds up that the sweep
	// strands while workers still hold their messages: those workers then find the tickets
	// ended between two of their steps (races 1 and 2 of issue 10).
	var kills, resets int
	var frozen time.Duration
	const holed = 1500 * time.Millisecond
	at := func(d time.Duration) { time.Sleep(time.Until(start.Add(d))) }
	kill := func(i int) {
		if st.PID("worker", i) != 0 { // not in its restart backoff
			st.Kill("worker", i)
			kills++
		}
	}
	freeze := func(d time.Duration) {
		srv.Pause()
		time.Sleep(d)
		srv.Resume()
		frozen += d
	}
	at(time.Second)
	kill(0)
	at(2 * time.Second)
	freeze(3 * time.Second)
	// A black hole on the workers' store connections holds their commands in flight; when it
	// lifts they land late, then the connections are cut.
	at(6 * time.Second)
	pxWorker.Block(true)
	time.Sleep(holed)
	pxWorker.Block(false)
	at(8 * time.Second)
	resets += pxWorker.ResetConnections()
	kill(1)
	at(9 * time.Second)
	pxWorker.SetLatency(0)
	at(10 * time.Second)
	kill(0)
	at(11 * time.Second)
	freeze(2 * time.Second)
	at(14 * time.Second)
	resets += pxWorker.ResetConnections()
	kill(1)
	wg.Wait()
	rushed := time.Since(start)

	// Every ticket decided, every reservation paid or expired, every closing done.
	sets := []string{keyspace.SaleQueue(sale), keyspace.SaleDeadlines(sale), keyspace.SaleClosing(sale)}
	settled := poll(t, "every ticket final and every reservation paid or expired", 40*time.Second, func() error {
		for _, k := range sets {
			n, err := kv.Do(ctx, kv.B().Zcard().Key(k).Build()).AsInt64()
			if err != nil {
				return err
			}
			if n != 0 {
				return fmt.Errorf("%s holds %d", k, n)
			}
		}
		return nil
	})

	// The audit from the primary records, at rest.
	var l saleLedger
	admin.must(t, "ledger", 200, "GET", "/api/v1/admin/flash-sales/"+sale+"/ledger?settled=true", nil).json(t, &l)
	l.check(t) // the counters balance and the audit finds no violation, nothing unsettled, no counter off
	var a struct {
		Audit struct {
			Remaining int64            `json:"remaining"`
			Ordered   int64            `json:"ordered"`
			Reserved  int64            `json:"reserved"`
			InFlight  int64            `json:"in_flight"`
			Claims    map[string]int64 `json:"claims"`
			Tickets   map[string]int64 `json:"tickets"`
			MaxHeld   int64            `json:"max_held"`
		} `json:"audit"`
	}
	admin.must(t, "ledger", 200, "GET", "/api/v1/admin/flash-sales/"+sale+"/ledger?settled=true", nil).json(t, &a)
	au := a.Audit
	if au.Ordered > stock {
		t.Errorf("oversell: %d order documents for %d units", au.Ordered, stock)
	}
	if lost := stock - au.Remaining - au.Ordered - au.Reserved - au.InFlight; lost != 0 || au.Reserved+au.InFlight != 0 {
		t.Errorf("%d units lost: %+v", lost, au)
	}
	if q := au.Tickets["queued"]; q != 0 {
		t.Errorf("%d tickets not final", q)
	}
	if paid.Load() != au.Ordered {
		t.Errorf("%d checkouts answered 201, %d order documents", paid.Load(), au.Ordered)
	}
	if au.Tickets["lost"] == 0 {
		// Whether a ticket strands depends on timing: the batched worker (4 loops of 64) often
		// decides everything between the faults. The stranded end is proved deterministically by
		// races_test.go and the seeded simulator; here the invariants above must hold either way.
		t.Logf("no ticket ended stranded this run: the faults did not reach the stranded end")
	}
	if kills < 4 || resets == 0 {
		t.Errorf("the faults did not land: %d kills, %d connections cut", kills, resets)
	}
	mu.Lock()
	answers := fmt.Sprint(codes)
	mu.Unlock()
	t.Logf("fault rush: %d shoppers for %d units over %s, answers to attempts %s; faults: %d worker SIGKILLs, store frozen (SIGSTOP) %s in 2 pauses, "+
		"the workers' store connections slowed %s each way for 9s, black-holed %s and cut twice (%d connections reset); "+
		"%d wins seen, %d paid (%d checkouts refused), settled %s after the rush; "+
		"audit from primary records at rest: tickets %v, claims %v, %d order documents, shards remaining %d + reserved %d + in flight %d + ordered %d of %d, most held by one user %d: "+
		"0 oversell, 0 lost units, every ticket final, no counter disagreeing",
		shoppers, stock, rushed.Round(time.Millisecond), answers, kills, frozen, slow, holed, resets,
		won.Load(), paid.Load(), payFails.Load(), settled.Round(time.Millisecond),
		au.Tickets, au.Claims, au.Ordered, au.Remaining, au.Reserved, au.InFlight, au.Ordered, stock, au.MaxHeld)
}
