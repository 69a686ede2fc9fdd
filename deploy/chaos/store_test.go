package chaos

import (
	"fmt"
	"os"
	"testing"
	"time"

	"flashedge/deploy/stack"
	"flashedge/shared/kv/kvtest"
	"flashedge/shared/netfault"
)

// TestStoreFaults puts a netfault proxy between every service and the store and injects, in
// turn: latency (everything answers, slower), a black hole (product reads the edge has cached
// keep answering 200, stale-if-error; uncached reads and every write get a clear 503 within
// their budgets, never a hang) and a storm of connection resets; after each fault everything
// works again without restarting anything.
func TestStoreFaults(t *testing.T) {
	const seeded = 40 // 1-20 are read (cached at the edge) before the faults; 21-40 are not
	srv := kvtest.Start(t)
	px := netfault.Start(t, srv.Addr)
	st := stack.Start(t, quiet(stack.Options{
		Services: []string{"catalog", "cart", "edge"}, StoreAddr: px.Addr(),
		ServiceEnv: map[string]map[string]string{"catalog": {"FLASHEDGE_SEED_DEMO": fmt.Sprint(seeded)}},
	}))
	hc := newHTTP(t)
	edge := st.URL("edge", 0)
	ops := st.OpsURL(0) // metrics and dashboard data
	anon := &client{base: edge, http: hc}
	admin := &client{base: edge, token: st.AdminToken(), http: hc}
	shopper := login(t, hc, edge, "store-faults")
	for i := 1; i <= 20; i++ {
		anon.must(t, "warm the edge cache", 200, "GET", "/api/v1/products/"+pid(i), nil)
	}

	// Latency: 20ms each way on every store round trip.
	px.SetLatency(20 * time.Millisecond)
	slow := map[string]reply{
		"cached read":   anon.call("GET", "/api/v1/products/"+pid(1), nil),
		"uncached read": anon.call("GET", "/api/v1/products/"+pid(21), nil),
		"admin edit":    admin.call("PUT", "/api/v1/admin/products/"+pid(22), map[string]int{"price": 4242}),
		"cart add":      shopper.call("PUT", "/api/v1/cart/items/"+pid(2), map[string]int{"quantity": 1}),
	}
	px.SetLatency(0)
	for what, r := range slow {
		if r.status != 200 || r.lat > 2*time.Second {
			t.Errorf("%s with 20ms store latency: %s; want 200", what, r)
		}
	}

	// Black hole for 6s: long enough for the writes, which the edge retries once after a 503
	// (2 x the catalog's 2s store deadline), to be answered while it lasts.
	const misses, hits = "flashedge_edge_cache_misses_total", "flashedge_edge_cache_hits_total"
	missesBefore := edgeCounter(t, hc, ops, misses, "layer", "body")
	hitsBefore := edgeCounter(t, hc, ops, hits, "layer", "body")
	blockAt := time.Now()
	px.Block(true)
	l := startLoad(t, 6, 20*time.Millisecond, 1000, func(w, i int) (string, func() reply) {
		switch w {
		case 0, 1:
			return "cached", func() reply { return anon.call("GET", "/api/v1/products/"+pid(1+(2*i+w)%20), nil) }
		case 2:
			return "uncached", func() reply { return anon.call("GET", "/api/v1/products/"+pid(25+i%16), nil) }
		case 3:
			return "admin", func() reply {
				return admin.call("PUT", "/api/v1/admin/products/"+pid(25+i%16), map[string]int{"price": 5000 + i})
			}
		case 4:
			return "create", func() reply {
				return admin.call("POST", "/api/v1/admin/products", map[string]any{"name": fmt.Sprint("blackhole ", i), "price": 1, "stock": 1})
			}
		default:
			return "cart", func() reply {
				return shopper.call("PUT", "/api/v1/cart/items/"+pid(1+i%5), map[string]int{"quantity": 1 + i%3})
			}
		}
	})
	time.Sleep(6 * time.Second)
	// Every read during the fault was a rendered-body hit (the edge had not yet noticed its
	// store connection was dead: no invalidation can arrive, the body is current as far as
	// it can know) or a miss: an uncached read, or a cached one served stale-if-error.
	missed := edgeCounter(t, hc, ops, misses, "layer", "body") - missesBefore
	hit := edgeCounter(t, hc, ops, hits, "layer", "body") - hitsBefore
	liftAt := time.Now()
	px.Block(false)
	all := l.Stop()                                                             // waits for the writes still in flight
	blocked := pick(all, func(s sample) bool { return s.end().Before(liftAt) }) // answered during the fault
	of := func(op string) []sample { return pick(blocked, func(s sample) bool { return s.op == op }) }
	budgets := map[string]time.Duration{
		"cached":   time.Second,     // a hit, or one store read cut at 500ms then stale
		"uncached": time.Second,     // one store read cut at 500ms
		"admin":    7 * time.Second, // edge -> catalog: 2 attempts x 3s (a 503 of an edit is retried)
		"create":   4 * time.Second, // edge -> catalog: 1 attempt (not repeatable)
		"cart":     9 * time.Second, // edge -> cart: 2 attempts x 4s
	}
	for _, s := range blocked {
		switch {
		case s.err != nil || s.lat > budgets[s.op]:
			t.Errorf("%s during the store black hole: %s; want an answer within %s", s.op, s, budgets[s.op])
		case s.op == "cached" && s.status != 200:
			t.Errorf("cached product read during the store black hole: %s; want 200 (stale-if-error)", s)
		case s.op != "cached" && !s.ok() && !s.clear503():
			t.Errorf("%s during the store black hole: %s; want a clear 503 (JSON error, Retry-After)", s.op, s)
		}
	}
	for _, op := range []string{"uncached", "admin", "create", "cart"} {
		if ss := of(op); len(ss) == 0 || len(pick(ss, func(s sample) bool { return s.ok() })) > 0 {
			t.Errorf("%s requests answered during the black hole: %s; want 503s only, at least one", op, statuses(ss))
		}
	}
	recovery := map[string]time.Duration{}
	for _, c := range []struct {
		what string
		send func() reply
	}{
		{"uncached read", func() reply { return anon.call("GET", "/api/v1/products/"+pid(40), nil) }},
		{"admin edit", func() reply {
			return admin.call("PUT", "/api/v1/admin/products/"+pid(39), map[string]int{"price": 777})
		}},
		{"cart add", func() reply {
			return shopper.call("PUT", "/api/v1/cart/items/"+pid(3), map[string]int{"quantity": 2})
		}},
	} {
		poll(t, c.what+" after the black hole", 15*time.Second, func() error {
			if r := c.send(); r.status != 200 {
				return fmt.Errorf("%s", r)
			}
			return nil
		})
		recovery[c.what] = time.Since(liftAt)
	}
	line := func(op string) string {
		ss := of(op)
		return fmt.Sprintf("%s %d: %s p50 %s max %s", op, len(ss), statuses(ss), ms(pct(lats(ss), 50)), ms(pct(lats(ss), 100)))
	}
	t.Logf("store +20ms each way: cached read %s, uncached read %s, admin edit %s, cart add %s, all 200",
		ms(slow["cached read"].lat), ms(slow["uncached read"].lat), ms(slow["admin edit"].lat), ms(slow["cart add"].lat))
	uncachedSent := len(pick(all, func(s sample) bool { return s.op == "uncached" && s.start.Before(liftAt) }))
	t.Logf("store black hole %.1fs, edge cache: %.0f cached reads answered as hits, about %.0f stale-if-error after the edge dropped its dead store connection",
		liftAt.Sub(blockAt).Seconds(), hit, missed-float64(uncachedSent))
	t.Logf("store black hole %.1fs, answers during it: %s | %s | %s | %s | %s; recovered after the fault (first 200): uncached read %s, admin edit %s, cart add %s",
		liftAt.Sub(blockAt).Seconds(), line("cached"), line("uncached"), line("admin"), line("create"), line("cart"),
		recovery["uncached read"].Round(time.Millisecond), recovery["admin edit"].Round(time.Millisecond), recovery["cart add"].Round(time.Millisecond))

	// Reset storm: every store connection of every service is reset every 50ms for 2s.
	storm := startLoad(t, 4, 10*time.Millisecond, 1000, func(w, i int) (string, func() reply) {
		switch w {
		case 0, 1:
			return "cached", func() reply { return anon.call("GET", "/api/v1/products/"+pid(1+(2*i+w)%20), nil) }
		case 2:
			return "admin", func() reply {
				return admin.call("PUT", "/api/v1/admin/products/"+pid(21+i%20), map[string]int{"price": 6000 + i})
			}
		default:
			return "cart", func() reply {
				return shopper.call("PUT", "/api/v1/cart/items/"+pid(1+i%5), map[string]int{"quantity": 1 + i%3})
			}
		}
	})
	stormAt := time.Now()
	resets := 0
	for time.Since(stormAt) < 2*time.Second {
		resets += px.ResetConnections()
		time.Sleep(50 * time.Millisecond)
	}
	all = storm.Stop()
	for _, s := range all {
		switch {
		case s.err != nil || s.lat > budgets[s.op]:
			t.Errorf("%s during the store reset storm: %s; want an answer within %s", s.op, s, budgets[s.op])
		case !s.ok() && !s.clear503():
			t.Errorf("%s during the store reset storm: %s; want 200 or a clear 503", s.op, s)
		}
	}
	// A cached body is served stale only if it was filled since the connection before the
	// latest loss came up (productcache: a body filled before an earlier loss may have changed
	// while a connection that did not track it was up). With a loss every 50 ms, a product not
	// read again since the last one is read from the store, and a read that meets a reset is a
	// clear 503 (checked above): most cached reads still answer 200.
	cachedAll := pick(all, func(s sample) bool { return s.op == "cached" })
	if ok := len(pick(cachedAll, func(s sample) bool { return s.status == 200 })); len(cachedAll) == 0 || ok*10 < len(cachedAll)*9 {
		t.Errorf("cached product reads during the store reset storm: %s; want at least 90%% answered 200", statuses(cachedAll))
	}
	calm := poll(t, "an admin edit after the reset storm", 15*time.Second, func() error {
		if r := admin.call("PUT", "/api/v1/admin/products/"+pid(38), map[string]int{"price": 888}); r.status != 200 {
			return fmt.Errorf("%s", r)
		}
		return nil
	})
	storms := func(op string) string {
		ss := pick(all, func(s sample) bool { return s.op == op })
		return fmt.Sprintf("%s %d: %s p99 %s", op, len(ss), statuses(ss), ms(pct(lats(ss), 99)))
	}
	t.Logf("store reset storm (%d connections reset over 2s): %s | %s | %s; edits work again %s after the storm",
		resets, storms("cached"), storms("admin"), storms("cart"), calm.Round(time.Millisecond))
}

// TestStaleIfErrorBound checks the documented bound of stale-if-error end to end: with the
// store black-holed, the edge serves a product it had cached for StaleIfError (60s) after it
// notices the dead connection (about 5s: rueidis' ping and its 3s write timeout), then answers
// 503. It takes over a minute, so it runs only with FLASHEDGE_CHAOS_FULL=1 (make chaos).
func TestStaleIfErrorBound(t *testing.T) {
	if os.Getenv("FLASHEDGE_CHAOS_FULL") != "1" {
		t.Skip("set FLASHEDGE_CHAOS_FULL=1 to run the 70s stale-if-error bound test")
	}
	srv := kvtest.Start(t)
	px := netfault.Start(t, srv.Addr)
	st := stack.Start(t, quiet(stack.Options{
		Services: []string{"catalog", "edge"}, StoreAddr: px.Addr(),
		ServiceEnv: map[string]map[string]string{"catalog": {"FLASHEDGE_SEED_DEMO": "5"}},
	}))
	hc := newHTTP(t)
	anon := &client{base: st.URL("edge", 0), http: hc}
	anon.must(t, "warm the edge cache", 200, "GET", "/api/v1/products/"+pid(1), nil)
	blockAt := time.Now()
	px.Block(true)
	var last reply
	served := 0
	for {
		last = anon.call("GET", "/api/v1/products/"+pid(1), nil)
		if last.status != 200 {
			break
		}
		served++
		if time.Since(blockAt) > 90*time.Second {
			t.Fatalf("the edge still serves the cached product %s after the store became unreachable; the documented bound is 60s", time.Since(blockAt))
		}
		time.Sleep(100 * time.Millisecond)
	}
	endAt := last.start
	px.Block(false)
	if !last.clear503() || last.lat > time.Second {
		t.Errorf("the first refused read: %s; want a clear 503 within 1s", last)
	}
	if d := endAt.Sub(blockAt); d < 60*time.Second || d > 68*time.Second {
		t.Errorf("stale-if-error ended %s after the store became unreachable; want 60s after the edge noticed (about 5s)", d)
	}
	back := poll(t, "the product after the store came back", 10*time.Second, func() error {
		if r := anon.call("GET", "/api/v1/products/"+pid(1), nil); r.status != 200 {
			return fmt.Errorf("%s", r)
		}
		return nil
	})
	t.Logf("stale-if-error bound: with the store black-holed the edge served its cached product %d times for %s, then a 503 %s (in %s); 200 again %s after the store came back",
		served, endAt.Sub(blockAt).Round(100*time.Millisecond), last.errCode(), ms(last.lat), back.Round(time.Millisecond))
}
