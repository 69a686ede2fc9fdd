package e2e

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"math"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"flashedge/deploy/stack"
	"flashedge/shared/keyspace"
)

// monitor records every command the store runs (redis MONITOR), for tests that must know from
// the store itself which requests reached it.
type monitor struct {
	conn net.Conn
	mu   sync.Mutex
	out  strings.Builder
	done chan struct{}
}

func startMonitor(t *testing.T, addr string) *monitor {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("monitor: %v", err)
	}
	m := &monitor{conn: conn, done: make(chan struct{})}
	t.Cleanup(func() { conn.Close(); <-m.done })
	if _, err := conn.Write([]byte("MONITOR\r\n")); err != nil {
		t.Fatalf("monitor: %v", err)
	}
	rd := bufio.NewReaderSize(conn, 1<<16)
	if line, err := rd.ReadString('\n'); err != nil || !strings.HasPrefix(line, "+OK") {
		t.Fatalf("monitor: %q %v", line, err)
	}
	go func() {
		defer close(m.done)
		for {
			line, err := rd.ReadString('\n')
			if err != nil {
				return
			}
			m.mu.Lock()
			m.out.WriteString(line)
			m.mu.Unlock()
		}
	}()
	return m
}

// sync returns what the store ran up to now: it sends a command of its own through client c and
// waits until the monitor shows it.
func (m *monitor) sync(t *testing.T, st *stack.Stack) string {
	t.Helper()
	c := st.Store().Client(t)
	mark := fmt.Sprintf("monitor-sync-%d", time.Now().UnixNano())
	if err := c.Do(context.Background(), c.B().Echo().Message(mark).Build()).Error(); err != nil {
		t.Fatalf("monitor sync: %v", err)
	}
	var out string
	poll(t, "the monitor catching up", 10*time.Second, func() error {
		m.mu.Lock()
		out = m.out.String()
		m.mu.Unlock()
		if !strings.Contains(out, mark) {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	return out
}

// TestEveryRouteIsChargedFirst drives each edge route that can reach the store or a backend
// well past its limit from one address (and one user where the limit is per user), with the
// default limits on (the shopping budgets lowered so 200 requests exceed them), and checks
// from the store's own record of its commands (MONITOR) that no refused request reached it:
// every request carries a marker of its own (an id, ticket, key or token) that any store
// command made for it names. Refusals are JSON 429 with Retry-After (or 403 blacklisted once
// the abuse budget is spent); what got through stays within the budget. Requests with a bad
// admin token never reach the catalog, and a flood of /ready costs the store almost nothing.
func TestEveryRouteIsChargedFirst(t *testing.T) {
	const shopRate = 20 // burst 40
	st := stack.Start(t, stack.Options{
		Services: []string{"catalog", "cart", "order", "edge"},
		ServiceEnv: map[string]map[string]string{
			"catalog": {"FLASHEDGE_SEED_DEMO": "3"},
			"edge":    {"FLASHEDGE_RATE_SHOP_IP": strconv.Itoa(shopRate), "FLASHEDGE_RATE_SHOP_USER": strconv.Itoa(shopRate)},
		},
	})
	edgeURL, edge := st.URL("edge", 0), st.Addr("edge", 0)
	admin := newClient(t, edgeURL, st.AdminToken())
	now := time.Now().UTC()
	for _, s := range []struct {
		id    string
		stock int
	}{{"cf-held", 5}, {"cf-soldout", 0}} {
		admin.do("POST", "/api/v1/admin/flash-sales", map[string]any{
			"id": s.id, "product_id": "00000001", "price": 1000, "stock": s.stock, "shards": 1,
			"starts_at": now.Add(-time.Minute).Format(time.RFC3339), "ends_at": now.Add(time.Hour).Format(time.RFC3339),
			"per_user_limit": 1, "difficulty": 0,
		}).want(t, "create sale "+s.id, 201, "")
	}
	// The edge holds both sales from now on (their views are answered from memory).
	newClient(t, edgeURL, "").do("GET", "/api/v1/flash-sales/cf-held", nil).want(t, "view held sale", 200, "")
	poll(t, "the edge seeing the sell-out", 10*time.Second, func() error {
		if r := newClient(t, edgeURL, "").do("GET", "/api/v1/flash-sales/cf-soldout", nil); !strings.Contains(string(r.body), `"sold_out"`) {
			return fmt.Errorf("%s", r.body)
		}
		return nil
	})
	const n = 200
	replayer := login(t, edgeURL, "cf-replayer")
	store := st.Store().Client(t)
	for i := range n {
		err := store.Do(context.Background(), store.B().Hset().Key(keyspace.SaleIdempotency("cf-soldout", replayer.user, fmt.Sprintf("cf5x%04d", i))).
			FieldValue().FieldValue("outcome", "queued").Build()).Error()
		if err != nil {
			t.Fatal(err)
		}
	}

	type route struct {
		name      string
		user      string // log in as this user ("" for none)
		req       func(i int) rawRequest
		marker    func(i int) string // what a store command made for request i names; nil for none
		refusal   int                // the status of a refusal when not 429/403 (a replay keeps the sale's 410)
		rate      float64            // the budget that applies: rate per second and burst
		burst     float64
		n         int
		backend   string
		backendRe string // the backend's request counter label for the route
	}
	mark := func(prefix string) func(int) string {
		return func(i int) string { return fmt.Sprintf("%sx%04d", prefix, i) } // fixed width: no marker is a prefix of another
	}
	get := func(format string, m func(int) string) func(int) rawRequest {
		return func(i int) rawRequest { return rawRequest{method: "GET", target: fmt.Sprintf(format, m(i))} }
	}
	post := func(format string, m func(int) string, body string, headers ...string) func(int) rawRequest {
		return func(i int) rawRequest {
			b, target := body, format
			if strings.Contains(body, "%s") {
				b = fmt.Sprintf(body, m(i))
			}
			if strings.Contains(format, "%s") {
				target = fmt.Sprintf(format, m(i))
			}
			return rawRequest{method: "POST", target: target, body: b, headers: append([]string{"Content-Type: application/json"}, headers...)}
		}
	}
	const ipRate, ipBurst = 50, 100 // the edge's defaults (guard.Options)
	const userRate, userBurst = 2, 6
	hexMark := func(i int) string { return fmt.Sprintf("cafe04%026x", i) } // tickets and tokens: 32 hex digits
	hexMark6 := func(i int) string { return fmt.Sprintf("cafe06%026x", i) }
	routes := []route{
		{name: "sale view, unknown id", req: get("/api/v1/flash-sales/%s", mark("cf1")), marker: mark("cf1"), rate: ipRate, burst: ipBurst, n: n},
		{name: "attempt, unknown sale", user: "cf-u2", req: post("/api/v1/flash-sales/%s/attempts", mark("cf2"), `{"challenge_id":"c","answer":"0"}`, "Idempotency-Key: k"), marker: mark("cf2"), rate: ipRate, burst: ipBurst, n: n},
		{name: "challenge, unknown sale", user: "cf-u3", req: post("/api/v1/flash-sales/%s/challenge", mark("cf3"), ""), marker: mark("cf3"), rate: ipRate, burst: ipBurst, n: n},
		{name: "ticket poll, made-up ticket", user: "cf-u4", req: get("/api/v1/flash-sales/cf-held/attempts/%s", hexMark), marker: hexMark, rate: ipRate, burst: ipBurst, n: n},
		{name: "replay after the sell-out", user: replayer.user[2:], req: func(i int) rawRequest {
			return rawRequest{method: "POST", target: "/api/v1/flash-sales/cf-soldout/attempts", body: `{"challenge_id":"c","answer":"0"}`,
				headers: []string{"Content-Type: application/json", "Idempotency-Key: " + mark("cf5")(i)}}
		}, marker: mark("cf5"), refusal: 410, rate: userRate, burst: userBurst, n: n,
			backend: "order", backendRe: `route="/api/v1/flash-sales/{id}/attempts"`},
		{name: "checkout", user: "cf-u6", req: post("/api/v1/flash-sales/cf-held/checkout", hexMark6, `{"token":"%s"}`), marker: hexMark6, rate: ipRate, burst: ipBurst, n: n,
			backend: "order", backendRe: `route="/api/v1/flash-sales/{id}/checkout"`},
		{name: "waiting room poll, unknown sale", user: "cf-u7", req: get("/api/v1/flash-sales/%s/queue", mark("cf7")), marker: mark("cf7"), rate: 5, burst: 10, n: n},
		{name: "waiting room join, unknown sale", user: "cf-u8", req: post("/api/v1/flash-sales/%s/queue", mark("cf8"), ""), marker: mark("cf8"), rate: 5, burst: 10, n: n},
		{name: "fairness, unknown sale", req: get("/api/v1/flash-sales/%s/queue/fairness", mark("cf9")), marker: mark("cf9"), rate: 200, burst: 400, n: 3 * n},
		{name: "product read, cache miss", req: get("/api/v1/products/%s", mark("cf10")), marker: mark("cf10"), rate: shopRate, burst: 2 * shopRate, n: n},
		{name: "catalog page, cache miss", req: get("/api/v1/products?cursor=%s", func(i int) string {
			return base64.RawURLEncoding.EncodeToString([]byte(mark("cf11")(i)))
		}), marker: mark("cf11"), rate: shopRate, burst: 2 * shopRate, n: n},
		{name: "cart add", user: "cf-u12", req: func(i int) rawRequest {
			return rawRequest{method: "PUT", target: "/api/v1/cart/items/" + mark("cf12")(i), body: `{"quantity":1}`, headers: []string{"Content-Type: application/json"}}
		}, marker: mark("cf12"), rate: shopRate, burst: 2 * shopRate, n: n, backend: "cart", backendRe: `route="/api/v1/cart/items/{product_id}"`},
		{name: "order read", user: "cf-u13", req: get("/api/v1/orders/%s", mark("cf13")), marker: mark("cf13"), rate: shopRate, burst: 2 * shopRate, n: n,
			backend: "order", backendRe: `route="/api/v1/orders/{id}"`},
		{name: "checkout of the cart", user: "cf-u14", req: func(i int) rawRequest {
			return rawRequest{method: "POST", target: "/api/v1/orders", headers: []string{"Idempotency-Key: " + mark("cf14")(i)}}
		}, marker: mark("cf14"), rate: shopRate, burst: 2 * shopRate, n: n, backend: "order", backendRe: `route="/api/v1/orders"`},
		{name: "sale list", req: func(int) rawRequest { return rawRequest{method: "GET", target: "/api/v1/flash-sales"} }, rate: ipRate, burst: ipBurst, n: n},
		{name: "attempt on a live sale", user: "cf-u16", req: func(i int) rawRequest {
			return rawRequest{method: "POST", target: "/api/v1/flash-sales/cf-held/attempts", body: `{"challenge_id":"c","answer":"0"}`,
				headers: []string{"Content-Type: application/json", "Idempotency-Key: " + mark("cf16")(i)}}
		}, rate: userRate, burst: userBurst, n: n, backend: "order", backendRe: `route="/api/v1/flash-sales/{id}/attempts"`},
		{name: "login", req: post("/api/v1/session", mark("cf15"), `{"user":"%s"}`), rate: ipRate, burst: ipBurst, n: n},
	}

	mon := startMonitor(t, st.StoreAddr())
	for ri, rt := range routes {
		t.Run(rt.name, func(t *testing.T) {
			from := fmt.Sprintf("127.0.%d.%d", 100+ri/200, 1+ri%200)
			var auth string
			if rt.user != "" {
				c := login(t, edgeURL, rt.user)
				auth = "Authorization: Bearer " + c.token
			}
			var before float64
			if rt.backend != "" {
				before = metricSum(t, st.URL(rt.backend, 0), metricOf(rt.backend), rt.backendRe)
			}
			status := make([]int, rt.n)
			refusedAt := make([]bool, rt.n) // refused by a limit (or, for a replay, left with the sale's own answer)
			start := time.Now()
			var wg sync.WaitGroup
			var mu sync.Mutex
			var failure string
			next := make(chan int)
			for range 8 { // a few at once, so a slow machine still goes well past the budget
				wg.Go(func() {
					for i := range next {
						req := rt.req(i)
						if auth != "" {
							req.headers = append(req.headers, auth)
						}
						r, err := req.try(edge, from)
						msg := ""
						switch {
						case err != nil:
							msg = err.Error()
						case rt.refusal != 0 && r.status == rt.refusal:
							refusedAt[i] = true
							if r.errCode() == "" && !strings.Contains(string(r.body), `"sold_out"`) {
								msg = fmt.Sprintf("%d %s: not the sale's own answer", r.status, r.body)
							}
						case r.status == 429 || r.errCode() == "blacklisted":
							refusedAt[i] = true
							msg = checkRefused(r)
						}
						status[i] = r.status
						if msg != "" {
							mu.Lock()
							failure = fmt.Sprintf("request %d: %s", i, msg)
							mu.Unlock()
						}
					}
				})
			}
			for i := range rt.n {
				next <- i
			}
			close(next)
			wg.Wait()
			elapsed := time.Since(start)
			if failure != "" {
				t.Fatal(failure)
			}
			seen := mon.sync(t, st)
			passed, refusals, failed := 0, 0, 0
			for i, s := range status {
				if !refusedAt[i] {
					passed++
					if s >= 500 {
						failed++ // shed or timed out at the edge's call: the backend may or may not have seen it
					}
					continue
				}
				refusals++
				if rt.marker != nil && strings.Contains(seen, rt.marker(i)) {
					t.Errorf("request %d was refused %d, yet the store ran a command naming %s", i, s, rt.marker(i))
				}
			}
			most := int(rt.burst+math.Ceil(elapsed.Seconds()*rt.rate)) + 1
			if passed > most {
				t.Errorf("%d of %d requests in %v got through, want at most %d (burst %v + %v/s)", passed, rt.n, elapsed.Round(time.Millisecond), most, rt.burst, rt.rate)
			}
			if rt.n > most && refusals == 0 {
				t.Errorf("none of %d requests refused", rt.n)
			}
			if rt.marker != nil {
				reached := 0
				for i := range rt.n {
					if strings.Contains(seen, rt.marker(i)) {
						reached++
					}
				}
				if reached > passed {
					t.Errorf("the store saw %d markers, %d requests got through", reached, passed)
				}
				if reached == 0 && passed > 0 {
					t.Errorf("the store saw none of the markers of the %d requests that got through: the check would miss a leak", passed)
				}
				t.Logf("the store saw the markers of %d requests", reached)
			}
			if rt.backend != "" {
				var got float64
				poll(t, "the backend counting", 10*time.Second, func() error {
					got = metricSum(t, st.URL(rt.backend, 0), metricOf(rt.backend), rt.backendRe) - before
					if got < float64(passed-failed) {
						return fmt.Errorf("%s counted %v, %d got through", rt.backend, got, passed-failed)
					}
					return nil
				})
				if got > float64(passed) {
					t.Logf("statuses %v", status)
					t.Errorf("%s counted %v requests; %d got through the edge and %d were refused there", rt.backend, got, passed, refusals)
				}
			}
			hist := map[int]int{}
			for _, s := range status {
				hist[s]++
			}
			t.Logf("%d requests in %v: %d through, %d refused; answers %v", rt.n, elapsed.Round(time.Millisecond), passed, refusals, hist)
		})
	}

	t.Run("admin with a wrong token", func(t *testing.T) {
		before := metricSum(t, st.URL("catalog", 0), "flashedge_catalog_requests_total", `route="/api/v1/admin/products"`)
		for i := range n {
			r := rawRequest{method: "POST", target: "/api/v1/admin/products", body: `{"name":"x","price":1,"stock":1}`,
				headers: []string{"Content-Type: application/json", "Authorization: Bearer wrong-token-" + strconv.Itoa(i)}}
			if got := r.send(t, edge, "127.0.99.1"); got.status != 401 || got.errCode() != "unauthorized" {
				t.Fatalf("request %d: %d %s, want 401 unauthorized", i, got.status, got.body)
			}
		}
		if got := metricSum(t, st.URL("catalog", 0), "flashedge_catalog_requests_total", `route="/api/v1/admin/products"`) - before; got != 0 {
			t.Fatalf("%v admin calls with a wrong token reached the catalog", got)
		}
	})

	t.Run("readiness flood", func(t *testing.T) {
		before := st.Store().CommandCalls(t, store, "ping")
		for range n {
			if r := (rawRequest{method: "GET", target: "/ready"}).send(t, edge, "127.0.99.2"); r.status != 200 {
				t.Fatalf("/ready: %d %s", r.status, r.body)
			}
		}
		// Every process pings the store now and then on its own; 200 probes must not add 200.
		if got := st.Store().CommandCalls(t, store, "ping") - before; got > n/4 {
			t.Fatalf("%d GET /ready made %d store PINGs, want a few (one check per interval)", n, got)
		}
	})
}

// checkRefused says what is wrong with a refusal, "" when it is the contract's: JSON 429
// rate_limited with a Retry-After of whole seconds, or 403 blacklisted.
func checkRefused(r reply) string {
	switch {
	case r.status == 403 && r.errCode() == "blacklisted":
		return ""
	case r.status == 403:
		return fmt.Sprintf("403 %s, want error code blacklisted", r.body)
	case r.errCode() != "rate_limited":
		return fmt.Sprintf("429 %s, want error code rate_limited", r.body)
	}
	if s, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || s < 1 {
		return fmt.Sprintf("429 with Retry-After %q, want whole seconds >= 1", r.header.Get("Retry-After"))
	}
	return ""
}

// metricOf is the request counter of a backend service.
func metricOf(service string) string { return "flashedge_" + service + "_requests_total" }
