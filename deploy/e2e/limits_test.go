package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"flashedge/deploy/stack"
)

// TestShopBudget is issue 15's shopping budget against the real edge and cart service: a user
// over the per-user budget of cart calls gets 429 rate_limited JSON with Retry-After, and the
// cart service's own request counter shows the refused calls never reached it; another user is
// unaffected. Many names logged in from one address share that address's budget (logins are
// free: a budget per user alone would give the address one per name). Product reads that miss
// the cache (unknown ids) from one address are limited, cache hits stay free for that address,
// and another address is unaffected.
func TestShopBudget(t *testing.T) {
	// The edge's shopping budgets (burst: twice the rate); low, so a slow machine still goes over.
	const rate, burst = 2, 4
	const addrRate, addrBurst = 6, 12
	st := stack.Start(t, stack.Options{
		Services: []string{"catalog", "cart", "edge"},
		ServiceEnv: map[string]map[string]string{
			"catalog": {"FLASHEDGE_SEED_DEMO": "5"},
			"edge":    {"FLASHEDGE_RATE_SHOP_USER": strconv.Itoa(rate), "FLASHEDGE_RATE_SHOP_IP": strconv.Itoa(addrRate)},
		},
	})
	edge, cartURL := st.URL("edge", 0), st.URL("cart", 0)
	alice, bob := login(t, edge, "shop-budget-alice"), login(t, edge, "shop-budget-bob")

	// Cart reads through the edge, each from one of from (in turn): at most the budget's burst
	// plus what refilled meanwhile (and one for rounding) gets through, some are refused, and
	// the cart service counts exactly the calls let through.
	cartReads := func(what string, from []*client, burst, rate int) {
		t.Helper()
		before := metricSum(t, cartURL, "flashedge_cart_requests_total", `route="/api/`)
		start := time.Now()
		ok, refused := 0, 0
		for _, c := range from {
			r := c.do("GET", "/api/v1/cart", nil)
			switch r.status {
			case 200:
				ok++
			case 429:
				refused++
				checkRefusal(t, r)
			default:
				t.Fatalf("%s: cart read: status %d %s", what, r.status, r.body)
			}
		}
		if most := burst + int(time.Since(start).Seconds()*float64(rate)) + 1; ok > most || refused == 0 {
			t.Fatalf("%s: %d cart reads: %d answered, %d refused; want at most %d answered", what, len(from), ok, refused, most)
		}
		poll(t, "the cart service counting the calls let through", 10*time.Second, func() error {
			if got := metricSum(t, cartURL, "flashedge_cart_requests_total", `route="/api/`) - before; got < float64(ok) {
				return fmt.Errorf("cart service counted %v calls, %d were let through", got, ok)
			}
			return nil
		})
		if got := metricSum(t, cartURL, "flashedge_cart_requests_total", `route="/api/`) - before; got != float64(ok) {
			t.Fatalf("%s: cart service counted %v calls; the edge let %d through and refused %d", what, got, ok, refused)
		}
	}

	// Cart calls over one user's budget.
	const calls = 40
	cartReads("one user", slices.Repeat([]*client{alice}, calls), burst, rate)
	bob.do("GET", "/api/v1/cart", nil).want(t, "another user's cart read", 200, "")

	// One cart read each from many names logged in from one address (127.0.0.5): the address's
	// budget bounds them all.
	names := make([]*client, 40)
	for i := range names {
		names[i] = login(t, edge, fmt.Sprintf("shop-budget-n%d", i))
		names[i].http = fromAddr("127.0.0.5")
	}
	cartReads("many names from one address", names, addrBurst, addrRate)

	// Cache misses from one address: unknown product ids each reach the store.
	anon := newClient(t, edge, "")
	var page struct {
		Items []struct {
			ID string `json:"id"`
		} `json:"items"`
	}
	anon.do("GET", "/api/v1/products?limit=1", nil).want(t, "catalog page", 200, "").json(t, &page)
	if len(page.Items) != 1 {
		t.Fatalf("catalog page: %d items, want 1", len(page.Items))
	}
	known := "/api/v1/products/" + page.Items[0].ID
	anon.do("GET", known, nil).want(t, "warm a product", 200, "")
	start := time.Now()
	ok, refused := 0, 0
	for i := range calls {
		r := anon.do("GET", fmt.Sprintf("/api/v1/products/no-such-%d", i), nil)
		switch r.status {
		case 404:
			ok++
		case 429:
			refused++
			checkRefusal(t, r)
		default:
			t.Fatalf("unknown product read: status %d %s", r.status, r.body)
		}
	}
	if most := addrBurst + int(time.Since(start).Seconds()*addrRate) + 1; ok > most || refused == 0 {
		t.Fatalf("%d cache misses: %d answered, %d refused; want at most %d answered", calls, ok, refused, most)
	}
	// A cache hit costs the address nothing; another address has its own budget.
	for range 3 * addrBurst {
		anon.do("GET", known, nil).want(t, "cached product read from the limited address", 200, "")
	}
	other := newClient(t, edge, "")
	other.http = fromAddr("127.0.0.2")
	other.do("GET", "/api/v1/products/no-such-other", nil).want(t, "cache miss from another address", 404, "not_found")

	// The refusals are counted under their own reasons.
	for _, reason := range []string{"shop_limit_user", "shop_limit_ip"} {
		if n := metricSum(t, st.OpsURL(0), "flashedge_edge_rejections_total", `reason="`+reason+`"`); n < 1 {
			t.Errorf("flashedge_edge_rejections_total{reason=%q} = %v, want the refusals counted", reason, n)
		}
	}
}

// checkRefusal fails unless r is the shopping budget's refusal: 429 rate_limited with a
// Retry-After of whole seconds.
func checkRefusal(t *testing.T, r reply) {
	t.Helper()
	if r.errCode() != "rate_limited" {
		t.Fatalf("refusal %s: want error code rate_limited", r.body)
	}
	if s, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || s < 1 {
		t.Fatalf("refusal Retry-After %q: want whole seconds >= 1", r.header.Get("Retry-After"))
	}
}

// fromAddr returns an HTTP client whose connections leave from the loopback address ip.
func fromAddr(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		},
	}}
}

// metricSum adds up the samples of metric name at base/metrics whose labels contain match.
func metricSum(t testing.TB, base, name, match string) float64 {
	t.Helper()
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(base + "/metrics")
	if err != nil {
		t.Fatalf("%s/metrics: %v", base, err)
	}
	defer resp.Body.Close()
	var n float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") || !strings.Contains(line, match) {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		n += v
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("%s/metrics: %v", base, err)
	}
	return n
}
