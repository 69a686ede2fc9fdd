package chaos

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"sync"
	"testing"
	"time"

	"flashedge/deploy/stack"
	"flashedge/shared/netfault"
)

// secrets returns the Env every stack of one test shares, so that processes of several stacks
// accept the same admin token and session tokens.
func secrets() map[string]string {
	b := make([]byte, 48)
	_, _ = rand.Read(b)
	return map[string]string{
		"FLASHEDGE_ADMIN_TOKEN":    "chaos-admin-" + base64.RawURLEncoding.EncodeToString(b[:18]),
		"FLASHEDGE_SESSION_SECRET": base64.RawURLEncoding.EncodeToString(b),
	}
}

// noBackend is an address nothing listens on (port 1 on loopback refuses connections), for
// the backends an edge of a test does not need.
const noBackend = "127.0.0.1:1"

// TestEdgeToCatalogFaults puts a netfault proxy between the edge and the catalog service (two
// stacks: the catalog, then an edge pointed at the proxy) and injects, in turn: latency (the
// calls succeed, slower), a black hole (the breaker opens on the calls that time out, then
// every call fails fast; after the fault the breaker closes by itself) and a storm of
// connection resets (answers stay 200 or the maintenance 503, never a 500 or a hang).
func TestEdgeToCatalogFaults(t *testing.T) {
	env := secrets()
	back := stack.Start(t, quiet(stack.Options{
		Services: []string{"catalog"}, Env: env,
		ServiceEnv: map[string]map[string]string{"catalog": {"FLASHEDGE_SEED_DEMO": "10"}},
	}))
	px := netfault.Start(t, back.Addr("catalog", 0))
	front := stack.Start(t, quiet(stack.Options{
		Services: []string{"edge"}, Env: env, StoreAddr: back.StoreAddr(),
		ServiceEnv: map[string]map[string]string{"edge": {
			"FLASHEDGE_CATALOG_ADDRS": px.Addr(), "FLASHEDGE_CART_ADDRS": noBackend, "FLASHEDGE_ORDER_ADDRS": noBackend,
		}},
	}))
	hc := newHTTP(t)
	edge := front.URL("edge", 0)
	ops := front.OpsURL(0) // metrics and dashboard data
	admin := &client{base: edge, token: env["FLASHEDGE_ADMIN_TOKEN"], http: hc}
	edit := func(n int) reply {
		return admin.call("PUT", "/api/v1/admin/products/"+pid(1+n%10), map[string]any{"price": 20000 + n})
	}

	// Healthy, then with 40ms added each way: every edit succeeds. Together 20 successes in the
	// breaker's 10s window.
	var base, slow []time.Duration
	for i := range 10 {
		r := edit(i)
		if r.status != 200 {
			t.Fatalf("edit through a healthy proxy: %s", r)
		}
		base = append(base, r.lat)
	}
	px.SetLatency(40 * time.Millisecond)
	for i := range 10 {
		r := edit(i)
		if r.status != 200 {
			t.Fatalf("edit with 40ms latency: %s", r)
		}
		slow = append(slow, r.lat)
	}
	px.SetLatency(0)

	// Black hole: 40 edits at once hang until the edge's 3s budget and count as failures
	// (40 of 60 outcomes: over the 50% ratio, over the volume of 20), so the breaker opens;
	// meanwhile the health probe (300ms timeout) takes the replica out and a steady trickle
	// of edits is answered at once.
	blockAt := time.Now()
	px.Block(true)
	burst := make([]reply, 40)
	var wg sync.WaitGroup
	for i := range burst {
		wg.Go(func() { burst[i] = edit(100 + i) })
	}
	steady := startLoad(t, 2, 20*time.Millisecond, 1000, func(w, i int) (string, func() reply) {
		return "edit", func() reply { return edit(1000*w + i) }
	})
	addr := px.Addr()
	noticed := waitBackend(t, hc, ops, "catalog", addr, 3*time.Second, "unhealthy", unhealthy)
	opened := waitBackend(t, hc, ops, "catalog", addr, 6*time.Second, "with its breaker open", isOpen)
	wg.Wait()
	time.Sleep(500 * time.Millisecond) // the fault lasts a little longer
	liftAt := time.Now()
	px.Block(false)
	back1 := waitBackend(t, hc, ops, "catalog", addr, 3*time.Second, "healthy again", healthy)
	closed := waitBackend(t, hc, ops, "catalog", addr, 10*time.Second, "with its breaker closed", usable)
	time.Sleep(300 * time.Millisecond)
	all := steady.Stop()

	for i, r := range burst {
		if !r.maintenance() || r.lat > 4*time.Second {
			t.Errorf("hung edit %d: %s; want the maintenance 503 within the 3s budget (+1s)", i, r)
		}
	}
	fast := pick(all, func(s sample) bool { return !s.start.Before(noticed) && s.start.Before(liftAt) })
	byBreaker := pick(all, func(s sample) bool { return !s.start.Before(back1) && s.end().Before(closed) && !s.ok() })
	after := pick(all, func(s sample) bool { return s.start.After(closed) })
	if bad := firstBad(fast, func(s sample) bool { return !s.maintenance() }); bad != "" {
		t.Errorf("an edit during the black hole, after the edge noticed, was not the maintenance 503: %s", bad)
	}
	if bad := firstBad(byBreaker, func(s sample) bool { return !s.maintenance() }); bad != "" {
		t.Errorf("an edit refused by the open breaker was not the maintenance 503: %s", bad)
	}
	if bad := firstBad(after, func(s sample) bool { return s.status != 200 }); bad != "" {
		t.Errorf("an edit failed after the breaker closed: %s", bad)
	}
	fastLats := append(lats(fast), lats(byBreaker)...)
	if p99 := pct(fastLats, 99); p99 > failFast || len(fast) < 20 {
		t.Errorf("%d fail-fast answers, p99 %s; want at least 20 and under %s", len(fastLats), ms(p99), failFast)
	}
	var recovered time.Time
	for _, s := range all {
		if s.ok() && s.start.After(liftAt) && (recovered.IsZero() || s.end().Before(recovered)) {
			recovered = s.end()
		}
	}
	if recovered.IsZero() {
		t.Fatalf("no edit succeeded after the black hole ended")
	}
	t.Logf("edge -> catalog black hole: breaker opened %s after the fault began (health probe noticed after %s); the 40 hung edits answered 503 after %s-%s; "+
		"%d edits during the fault answered the maintenance 503 in p50 %s p99 %s; fault lifted: healthy again after %s, breaker closed after %s "+
		"(%d edits refused by the breaker meanwhile, p99 %s), first success %s after the fault ended",
		opened.Sub(blockAt).Round(time.Millisecond), noticed.Sub(blockAt).Round(time.Millisecond),
		pct(lats(asSamples(burst)), 1).Round(10*time.Millisecond), pct(lats(asSamples(burst)), 100).Round(10*time.Millisecond),
		len(fast), ms(pct(lats(fast), 50)), ms(pct(lats(fast), 99)), back1.Sub(liftAt).Round(time.Millisecond),
		closed.Sub(liftAt).Round(time.Millisecond), len(byBreaker), ms(pct(lats(byBreaker), 99)), recovered.Sub(liftAt).Round(time.Millisecond))
	t.Logf("edge -> catalog latency +40ms each way: edits p50 %s (healthy %s), all 200", ms(pct(slow, 50)), ms(pct(base, 50)))

	// Reset storm: every connection through the proxy is reset every 20ms for 2s under load.
	storm := startLoad(t, 4, 5*time.Millisecond, 2000, func(w, i int) (string, func() reply) {
		return "edit", func() reply { return edit(5000 + 1000*w + i) }
	})
	stormAt := time.Now()
	resets, looks, outSeen, openSeen := 0, 0, 0, 0
	for i := 0; time.Since(stormAt) < 2*time.Second; i++ {
		resets += px.ResetConnections()
		time.Sleep(20 * time.Millisecond)
		if i%5 == 4 { // what the edge thinks of the catalog, every 100ms
			if all, err := edgeBackends(hc, edge); err == nil {
				looks++
				if s := all["catalog "+addr]; s.healthy == 0 {
					outSeen++
				} else if s.breaker == 2 {
					openSeen++
				}
			}
		}
	}
	calmAt := time.Now()
	calm := waitBackend(t, hc, ops, "catalog", addr, 10*time.Second, "usable after the storm", usable)
	time.Sleep(300 * time.Millisecond)
	all = storm.Stop()
	during := pick(all, func(s sample) bool { return s.start.Before(calmAt) })
	if bad := firstBad(all, func(s sample) bool { return !s.ok() && !s.maintenance() }); bad != "" {
		t.Errorf("an edit during the reset storm got something else than 200 or the maintenance 503: %s", bad)
	}
	if bad := firstBad(all, func(s sample) bool { return s.start.After(calm) && !s.ok() }); bad != "" {
		t.Errorf("an edit failed after the storm, once the catalog was usable again: %s", bad)
	}
	failed := pick(during, func(s sample) bool { return !s.ok() })
	t.Logf("edge -> catalog reset storm (%d connections reset over 2s): %d edits, %d failed (%.1f%%, %s), latency p50 %s p99 %s max %s; "+
		"the edge had the catalog out of rotation in %d and its breaker open in %d of %d looks; usable again %s after the storm",
		resets, len(during), len(failed), 100*float64(len(failed))/float64(max(len(during), 1)), statuses(failed),
		ms(pct(lats(during), 50)), ms(pct(lats(during), 99)), ms(pct(lats(during), 100)), outSeen, openSeen, looks, calm.Sub(calmAt).Round(time.Millisecond))
}

func asSamples(rs []reply) []sample {
	out := make([]sample, len(rs))
	for i, r := range rs {
		out[i] = sample{reply: r}
	}
	return out
}

// TestDeadlines: a backend that accepts connections and never answers (a netfault black hole)
// must not hang anything. Three stacks chain the hops through proxies: catalog; cart and
// order (calling the catalog through its proxy); the edge (calling all three through theirs).
// Each hung hop must be answered within its caller's budget: edge -> catalog 3s, edge -> cart
// 4s, edge -> order 5s per attempt; the cart prices from the store, so a hung catalog does not
// slow a cart add.
func TestDeadlines(t *testing.T) {
	env := secrets()
	cat := stack.Start(t, quiet(stack.Options{
		Services: []string{"catalog"}, Env: env,
		ServiceEnv: map[string]map[string]string{"catalog": {"FLASHEDGE_SEED_DEMO": "10"}},
	}))
	pxCat := netfault.Start(t, cat.Addr("catalog", 0))
	mid := stack.Start(t, quiet(stack.Options{
		Services: []string{"cart", "order"}, Env: env, StoreAddr: cat.StoreAddr(),
		ServiceEnv: map[string]map[string]string{
			"cart":  {"FLASHEDGE_CATALOG_ADDRS": pxCat.Addr()},
			"order": {"FLASHEDGE_CATALOG_ADDRS": pxCat.Addr()},
		},
	}))
	pxCart := netfault.Start(t, mid.Addr("cart", 0))
	pxOrder := netfault.Start(t, mid.Addr("order", 0))
	front := stack.Start(t, quiet(stack.Options{
		Services: []string{"edge"}, Env: env, StoreAddr: cat.StoreAddr(),
		ServiceEnv: map[string]map[string]string{"edge": {
			"FLASHEDGE_CATALOG_ADDRS": pxCat.Addr(), "FLASHEDGE_CART_ADDRS": pxCart.Addr(), "FLASHEDGE_ORDER_ADDRS": pxOrder.Addr(),
		}},
	}))
	hc := newHTTP(t)
	edge := front.URL("edge", 0)
	ops := front.OpsURL(0) // metrics and dashboard data
	admin := &client{base: edge, token: env["FLASHEDGE_ADMIN_TOKEN"], http: hc}
	anon := &client{base: edge, http: hc}
	shopper := login(t, hc, edge, "deadline")
	anon.must(t, "product read", 200, "GET", "/api/v1/products/"+pid(1), nil)
	shopper.must(t, "cart add", 200, "PUT", "/api/v1/cart/items/"+pid(1), map[string]int{"quantity": 1})
	shopper.must(t, "order list", 200, "GET", "/api/v1/orders", nil)

	// hang sends each request 3 times at once and returns the replies by name.
	type req struct {
		name, method, path string
		c                  *client
		body               any
		headers            []string
	}
	hang := func(reqs ...req) map[string][]reply {
		out := map[string][]reply{}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, r := range reqs {
			for i := range 3 {
				wg.Go(func() {
					headers := r.headers
					if len(headers) > 0 {
						headers = []string{headers[0], fmt.Sprintf("%s-%d", headers[1], i)}
					}
					got := r.c.call(r.method, r.path, r.body, headers...)
					mu.Lock()
					out[r.name] = append(out[r.name], got)
					mu.Unlock()
				})
			}
		}
		wg.Wait()
		return out
	}
	check := func(replies []reply, what string, budget time.Duration, ok func(reply) bool) (lo, hi time.Duration) {
		t.Helper()
		lo = time.Hour
		for _, r := range replies {
			if !ok(r) || r.lat > budget+time.Second {
				t.Errorf("%s: %s; want the expected answer within %s (+1s)", what, r, budget)
			}
			lo, hi = min(lo, r.lat), max(hi, r.lat)
		}
		return lo, hi
	}
	span := func(lo, hi time.Duration) string {
		return fmt.Sprintf("%.2f-%.2fs", lo.Seconds(), hi.Seconds())
	}

	// The catalog hangs.
	pxCat.Block(true)
	got := hang(
		req{name: "admin", method: "PUT", path: "/api/v1/admin/products/" + pid(2), c: admin, body: map[string]int{"price": 1234}},
		req{name: "cart", method: "PUT", path: "/api/v1/cart/items/" + pid(3), c: shopper, body: map[string]int{"quantity": 1}},
		req{name: "read", method: "GET", path: "/api/v1/products/" + pid(1), c: anon},
	)
	pxCat.Block(false)
	adminLo, adminHi := check(got["admin"], "admin edit with the catalog hung", 3*time.Second, reply.maintenance)
	// The cart prices from the catalog's documents in the store: a hung catalog is not in its path.
	cartLo, cartHi := check(got["cart"], "cart add with the catalog hung (behind the cart)", 3*time.Second,
		func(r reply) bool { return r.status == 200 })
	for _, r := range got["read"] {
		if r.status != 200 || r.lat > failFast {
			t.Errorf("product read with the catalog hung: %s; want 200 from the edge's cache at once", r)
		}
	}
	waitBackend(t, hc, ops, "catalog", pxCat.Addr(), 10*time.Second, "usable", usable)
	poll(t, "cart add after the catalog came back", 10*time.Second, func() error {
		if r := shopper.call("PUT", "/api/v1/cart/items/"+pid(3), map[string]int{"quantity": 1}); r.status != 200 {
			return fmt.Errorf("%s", r)
		}
		return nil
	})

	// The cart and the order service hang.
	pxCart.Block(true)
	pxOrder.Block(true)
	got = hang(
		req{name: "cart", method: "GET", path: "/api/v1/cart", c: shopper},
		req{name: "orders", method: "GET", path: "/api/v1/orders", c: shopper},
		req{name: "checkout", method: "POST", path: "/api/v1/orders", c: shopper, headers: []string{"Idempotency-Key", "deadline"}},
	)
	pxCart.Block(false)
	pxOrder.Block(false)
	cartGetLo, cartGetHi := check(got["cart"], "cart read with the cart hung", 4*time.Second, reply.maintenance)
	ordersLo, ordersHi := check(got["orders"], "order list with the order service hung", 5*time.Second, reply.maintenance)
	coLo, coHi := check(got["checkout"], "checkout with the order service hung", 5*time.Second, reply.maintenance)
	t.Logf("deadlines, hung backend -> answer time: edge->catalog %s (budget 3s, maintenance 503); cart add with the catalog hung %s (200: prices from the store); "+
		"edge->cart %s (budget 4s); edge->order %s for order lists, %s for checkouts (budget 5s); product reads meanwhile 200 from the edge cache",
		span(adminLo, adminHi), span(cartLo, cartHi), span(cartGetLo, cartGetHi), span(ordersLo, ordersHi), span(coLo, coHi))
}
