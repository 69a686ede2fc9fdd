package chaos

import (
	"fmt"
	"testing"
	"time"

	"flashedge/deploy/stack"
)

// TestKillCatalogUnderLoad: SIGKILL the catalog service while shoppers read products, add to
// their carts, check out and list their orders and an admin edits and creates products. Product
// reads, cart adds, checkouts and order lists must keep working (the edge serves products from
// its cache; the cart and order services read the catalog's documents from the store while the
// catalog is down). The catalog's own routes (admin writes) must answer at once with the edge's
// maintenance 503; none may hang or answer 500. After a restart the edge must route to the
// catalog again by itself.
func TestKillCatalogUnderLoad(t *testing.T) {
	const seeded = 40
	st := stack.Start(t, quiet(stack.Options{
		Services:   []string{"catalog", "cart", "order", "edge"},
		NoRestart:  true,
		ServiceEnv: map[string]map[string]string{"catalog": {"FLASHEDGE_SEED_DEMO": fmt.Sprint(seeded)}},
	}))
	hc := newHTTP(t)
	edge := st.URL("edge", 0)
	ops := st.OpsURL(0) // metrics and dashboard data
	anon := &client{base: edge, http: hc}
	admin := &client{base: edge, token: st.AdminToken(), http: hc}
	for i := 1; i <= seeded; i++ { // every product is in the edge's cache before the fault
		anon.must(t, "warm the edge cache", 200, "GET", "/api/v1/products/"+pid(i), nil)
	}
	const workers = 4
	users := make([]*client, workers)
	for w := range users {
		users[w] = login(t, hc, edge, fmt.Sprintf("kill-catalog-%d", w))
	}

	// Per worker and 10 requests: 4 product reads, 2 admin edits, 1 admin create, 1 cart add,
	// 1 checkout, 1 order list; one request per 5ms per worker (at most 800 requests/s in all).
	catalogOps := map[string]bool{"admin-put": true, "admin-post": true}
	l := startLoad(t, workers, 5*time.Millisecond, 4000, func(w, i int) (string, func() reply) {
		n := w*1000 + i
		switch i % 10 {
		case 0, 1, 2, 3:
			return "read", func() reply { return anon.call("GET", "/api/v1/products/"+pid(1+n%seeded), nil) }
		case 4, 5:
			return "admin-put", func() reply {
				return admin.call("PUT", "/api/v1/admin/products/"+pid(1+n%seeded), map[string]any{"price": 10000 + n})
			}
		case 6:
			return "admin-post", func() reply {
				return admin.call("POST", "/api/v1/admin/products", map[string]any{"name": fmt.Sprintf("chaos %d", n), "price": 5000, "stock": 3})
			}
		case 7:
			return "cart-put", func() reply {
				return users[w].call("PUT", "/api/v1/cart/items/"+pid(1+n%seeded), map[string]int{"quantity": 1 + n%3})
			}
		case 8:
			return "checkout", func() reply {
				return users[w].call("POST", "/api/v1/orders", nil, "Idempotency-Key", fmt.Sprintf("k-%d", n))
			}
		default:
			return "orders", func() reply { return users[w].call("GET", "/api/v1/orders", nil) }
		}
	})

	time.Sleep(1500 * time.Millisecond) // a steady baseline before the fault
	killAt := time.Now()
	st.Kill("catalog", 0) // returns once the process is gone
	deadAt := time.Now()
	catalogAddr := st.Addr("catalog", 0)
	noticed := waitBackend(t, hc, ops, "catalog", catalogAddr, 5*time.Second, "unhealthy", unhealthy)
	time.Sleep(killAt.Add(2500 * time.Millisecond).Sub(time.Now())) // the outage lasts 2.5s
	restartAt := time.Now()
	st.Restart("catalog", 0) // returns once the new process answers /ready
	readyAt := time.Now()
	usableAt := waitBackend(t, hc, ops, "catalog", catalogAddr, 15*time.Second, "healthy with its breaker closed", usable)
	time.Sleep(500 * time.Millisecond) // some load after recovery
	all := l.Stop()

	if bad := firstBad(all, func(s sample) bool { return s.end().Before(killAt) && !served(s) }); bad != "" {
		t.Errorf("a request failed before the fault: %s", bad)
	}
	// Whatever the phase, reads and order lists answer 200 and the catalog-dependent routes
	// answer 2xx or a clear 503: never a 500, a transport error or a hang.
	if bad := firstBad(all, func(s sample) bool { return (s.op == "read" || s.op == "orders") && s.status != 200 }); bad != "" {
		t.Errorf("a product read or order list failed while the catalog was down: %s", bad)
	}
	admins := func(s sample) bool { return s.op == "admin-put" || s.op == "admin-post" }
	if bad := firstBad(all, func(s sample) bool { return admins(s) && !s.ok() && !s.maintenance() }); bad != "" {
		t.Errorf("an admin write got something else than success or the edge's maintenance 503: %s", bad)
	}
	if bad := firstBad(all, func(s sample) bool { return (s.op == "cart-put" || s.op == "checkout") && !served(s) }); bad != "" {
		t.Errorf("a cart add or checkout failed while the catalog was down (they fall back to the store): %s", bad)
	}

	outage := pick(all, func(s sample) bool { return !s.start.Before(killAt) && s.start.Before(restartAt) })
	outCat := pick(outage, func(s sample) bool { return catalogOps[s.op] })
	outFailed := pick(outCat, func(s sample) bool { return !served(s) })
	// The fail-fast bound judges the 503s of requests sent once the catalog was dead (reaped):
	// one sent between the SIGKILL and the process's end waits for that end, which takes up to a
	// second on a busy machine.
	failed := pick(all, func(s sample) bool { return catalogOps[s.op] && s.status == 503 && !s.start.Before(deadAt) })
	p99 := pct(lats(failed), 99)
	if p99 > failFast {
		t.Errorf("p99 of the 503 answers is %s, want under %s (they must not wait on the dead service)", ms(p99), failFast)
	}
	outReads := pick(outage, func(s sample) bool { return s.op == "read" })
	if len(outReads) < 100 || len(outCat) < 50 {
		t.Errorf("only %d reads and %d catalog-dependent requests during the outage: the load did not run", len(outReads), len(outCat))
	}
	var recovered time.Time
	for _, s := range all {
		if catalogOps[s.op] && s.ok() && !s.start.Before(restartAt) && (recovered.IsZero() || s.end().Before(recovered)) {
			recovered = s.end()
		}
	}
	if recovered.IsZero() {
		t.Fatalf("no catalog-dependent request succeeded after the restart (edge saw the catalog usable %s after the restart)", usableAt.Sub(restartAt))
	}
	if d := recovered.Sub(restartAt); d > 10*time.Second {
		t.Errorf("recovery took %s after the restart, want under 10s (breaker timeout 5s + probe interval 1s)", d)
	}
	outOrders := pick(outage, func(s sample) bool { return s.op == "orders" })
	outShop := pick(outage, func(s sample) bool { return s.op == "cart-put" || s.op == "checkout" })
	t.Logf("kill -9 catalog under load: %d requests (%d during the 2.5s outage); outage: %d product reads, %d order lists and %d cart adds and checkouts all answered (no 5xx), "+
		"%d admin writes, %.1f%% failed (%s), each a 503 with Retry-After; "+
		"503 latency p50 %s p99 %s max %s over %d; edge noticed after %s; restart to /ready %s, to first success through the edge %s",
		len(all), len(outage), len(outReads), len(outOrders), len(outShop), len(outCat), 100*float64(len(outFailed))/float64(max(len(outCat), 1)), statuses(outFailed),
		ms(pct(lats(failed), 50)), ms(p99), ms(pct(lats(failed), 100)), len(failed), noticed.Sub(killAt).Round(time.Millisecond),
		readyAt.Sub(restartAt).Round(time.Millisecond), recovered.Sub(restartAt).Round(time.Millisecond))
}
