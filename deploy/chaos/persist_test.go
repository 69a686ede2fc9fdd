package chaos

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"flashedge/deploy/stack"
)

// TestStoreRestartKeepsAcknowledgedOrders: with the store writing an append-only file and
// fsyncing every write (the Redis setting a deployment that needs it would use; Dragonfly
// has snapshots only, see deploy/README.md), shoppers check out through the edge while the
// store is killed with SIGKILL and started again 3s later. Every order answered 201 must still be
// there afterwards, and the services must recover by themselves: same processes, no restart.
func TestStoreRestartKeepsAcknowledgedOrders(t *testing.T) {
	services := []string{"catalog", "cart", "order", "edge"}
	st := stack.Start(t, quiet(stack.Options{
		Services:  services,
		StoreArgs: []string{"--appendonly", "yes", "--appendfsync", "always"},
	}))
	hc := newHTTP(t)
	edge := st.URL("edge", 0)
	admin := &client{base: edge, token: st.AdminToken(), http: hc}
	var p struct {
		ID string `json:"id"`
	}
	admin.must(t, "create the product", 201, "POST", "/api/v1/admin/products",
		map[string]any{"name": "Bánh mì bền vững", "price": 25000, "stock": 1_000_000}).json(t, &p)
	pids := map[string]int{}
	for _, svc := range services {
		pids[svc] = st.PID(svc, 0)
	}

	const workers = 6
	users := make([]*client, workers)
	for w := range users {
		users[w] = login(t, hc, edge, fmt.Sprintf("aof-%d", w))
	}
	// Each iteration puts one unit in the cart and checks out with a fresh key; its sample is
	// the checkout's answer (or the cart's when that failed) timed over both calls.
	l := startLoad(t, workers, 10*time.Millisecond, 5000, func(w, i int) (string, func() reply) {
		return fmt.Sprint(w), func() reply {
			add := users[w].call("PUT", "/api/v1/cart/items/"+p.ID, map[string]int{"quantity": 1})
			if !add.ok() {
				return add
			}
			r := users[w].call("POST", "/api/v1/orders", nil, "Idempotency-Key", fmt.Sprintf("aof-%d-%d", w, i))
			r.lat, r.start = r.start.Add(r.lat).Sub(add.start), add.start
			return r
		}
	})
	// Enough acknowledged orders before the kill and after the recovery that "none lost" means
	// something, however busy the machine: counted, not timed.
	const before, after = 30, 20
	poll(t, "orders acknowledged before the kill", 60*time.Second, func() error {
		if n := l.OKs(); n < before {
			return fmt.Errorf("%d of %d", n, before)
		}
		return nil
	})
	killAt := time.Now()
	st.Store().Stop() // SIGKILL
	time.Sleep(3 * time.Second)
	st.Store().Restart() // the same port and data folder; returns once PING answers
	upAt := time.Now()
	probe := login(t, hc, edge, "aof-probe")
	n := 0
	recovered := poll(t, "a checkout after the store restart", 15*time.Second, func() error {
		n++
		if r := probe.call("PUT", "/api/v1/cart/items/"+p.ID, map[string]int{"quantity": 1}); r.status != 200 {
			return fmt.Errorf("cart: %s", r)
		}
		if r := probe.call("POST", "/api/v1/orders", nil, "Idempotency-Key", fmt.Sprint("aof-probe-", n)); r.status != 201 {
			return fmt.Errorf("checkout: %s", r)
		}
		return nil
	})
	atUp := l.OKs()
	poll(t, "orders acknowledged after the recovery", 60*time.Second, func() error {
		if n := l.OKs() - atUp; n < after {
			return fmt.Errorf("%d of %d", n, after)
		}
		return nil
	})
	all := l.Stop()

	acked := map[string]map[string]bool{} // user -> acknowledged order ids
	var failed []sample
	for _, s := range all {
		if s.status == 201 {
			var o struct {
				ID string `json:"id"`
			}
			if err := json.Unmarshal(s.body, &o); err != nil || o.ID == "" {
				t.Fatalf("a 201 without an order id: %s", s)
			}
			if acked[s.op] == nil {
				acked[s.op] = map[string]bool{}
			}
			acked[s.op][o.ID] = true
		} else {
			failed = append(failed, s)
		}
	}
	if bad := firstBad(failed, func(s sample) bool { return !s.clear503() }); bad != "" {
		t.Errorf("a cart add or checkout failed with something else than a clear 503: %s", bad)
	}
	total, lost, extra := 0, 0, 0
	for w := range workers {
		have := listOrders(t, users[w])
		mine := acked[fmt.Sprint(w)]
		for id := range mine {
			total++
			if !have[id] {
				lost++
				if lost <= 3 {
					t.Errorf("user aof-%d: order %s was acknowledged (201) but is gone after the store restart", w, id)
				}
			}
		}
		for id := range have {
			if !mine[id] {
				extra++ // written, but its answer was lost in the restart (a 503 for the shopper)
			}
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d acknowledged orders lost", lost, total)
	}
	if total < before+after {
		t.Errorf("only %d orders acknowledged: the load did not run", total)
	}
	for svc, before := range pids {
		if now := st.PID(svc, 0); now != before {
			t.Errorf("%s was restarted (pid %d -> %d); the services must recover by themselves", svc, before, now)
		}
	}
	during := pick(all, func(s sample) bool { return !s.end().Before(killAt) && s.start.Before(upAt) })
	t.Logf("store SIGKILL + restart with appendfsync always: %d orders acknowledged, %d lost, %d written but unacknowledged; "+
		"store down %s (SIGKILL to PING); %d cart adds + checkouts in flight or sent while it was down: %s, answered after p50 %s max %s (the services wait for the store up to their deadlines); first checkout through the edge %s after the store answered again, no service restarted",
		total, lost, extra, upAt.Sub(killAt).Round(time.Millisecond), len(during), statuses(during), ms(pct(lats(during), 50)), ms(pct(lats(during), 100)), recovered.Round(time.Millisecond))
}

// listOrders returns the ids of every order of the client's user, following the cursor.
func listOrders(t testing.TB, c *client) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	cursor := ""
	for range 1000 {
		var page struct {
			Items []struct {
				ID string `json:"id"`
			} `json:"items"`
			Next string `json:"next_cursor"`
		}
		c.must(t, "list orders", 200, "GET", "/api/v1/orders?limit=100&cursor="+cursor, nil).json(t, &page)
		for _, o := range page.Items {
			out[o.ID] = true
		}
		if page.Next == "" {
			return out
		}
		cursor = page.Next
	}
	t.Fatalf("more than 1000 pages of orders")
	return nil
}
