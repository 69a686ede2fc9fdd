package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"flashedge/deploy/stack"
)

// TestEdgesBehindBalancer runs three edges behind a real HAProxy (health checks on /ready, PROXY
// protocol v2 to the edges) and checks, edge by edge on each edge's own port, that every admin
// product update, a sell-out and the reopening when stock returns (an unpaid reservation
// expiring) are served by every edge.
func TestEdgesBehindBalancer(t *testing.T) {
	const edges = 3
	st := stack.Start(t, stack.Options{
		Services: []string{"catalog", "cart", "order", "worker", "edge"},
		Replicas: map[string]int{"edge": edges},
		Balancer: true,
		Env:      map[string]string{"FLASHEDGE_FLASHSALE_RESERVATION": "2s"},
		ServiceEnv: map[string]map[string]string{
			"catalog": {"FLASHEDGE_SEED_DEMO": "10"},
			"edge":    {"FLASHEDGE_RATE_IP": "off"},
		},
	})
	lb := newClient(t, st.BalancerURL(), "")
	admin := newClient(t, st.BalancerURL(), st.AdminToken())
	var at []*client
	for i := range edges {
		at = append(at, newClient(t, st.URL("edge", i), ""))
	}
	lb.do("GET", "/api/v1/products/00000001", nil).want(t, "a product through the balancer", 200, "")

	// every waits until check passes on every edge and returns how long each took.
	every := func(what string, within time.Duration, check func(c *client) error) []time.Duration {
		t.Helper()
		start := time.Now()
		took := make([]time.Duration, edges)
		for i, c := range at {
			poll(t, fmt.Sprintf("%s at edge %d", what, i), within, func() error { return check(c) })
			took[i] = time.Since(start)
		}
		return took
	}

	var worst []time.Duration
	for i := range 10 {
		name := fmt.Sprintf("Nón lá Huế #%d", i)
		admin.do("PUT", "/api/v1/admin/products/00000002", map[string]any{"name": name}).want(t, "admin PUT", 200, "")
		took := every("update "+name, 2*time.Second, func(c *client) error {
			if r := c.do("GET", "/api/v1/products/00000002", nil); !strings.Contains(string(r.body), name) {
				return fmt.Errorf("still serves %s", r.body)
			}
			return nil
		})
		worst = append(worst, slices.Max(took))
	}
	slices.Sort(worst)
	t.Logf("10 admin updates through the balancer, every edge checked on its own port: slowest edge p50 %v, max %v",
		worst[len(worst)/2], worst[len(worst)-1])

	// A sale of 2 units; two shoppers win through the balancer and do not pay.
	now := time.Now().UTC()
	admin.do("POST", "/api/v1/admin/flash-sales", map[string]any{
		"id": "lb", "product_id": "00000001", "price": 99000, "stock": 2, "shards": 1,
		"starts_at": now.Add(-time.Second).Format(time.RFC3339), "ends_at": now.Add(time.Hour).Format(time.RFC3339),
		"per_user_limit": 1, "difficulty": 4,
	}).want(t, "create sale", 201, "")
	state := func(want string) func(c *client) error {
		return func(c *client) error {
			var s map[string]any
			c.do("GET", "/api/v1/flash-sales/lb", nil).want(t, "sale", 200, "").json(t, &s)
			if s["state"] != want {
				return fmt.Errorf("state %v, want %s", s["state"], want)
			}
			return nil
		}
	}
	every("sale live", 2*time.Second, state("live"))
	for i := range 2 {
		c := login(t, st.BalancerURL(), fmt.Sprintf("lb%d", i))
		attempt(t, c, "lb", fmt.Sprintf("lb-%d", i)).want(t, "attempt", 202, "")
	}
	soldOut := every("sold out", 10*time.Second, state("sold_out"))
	for i := range edges {
		c := login(t, st.URL("edge", i), fmt.Sprintf("late%d", i))
		c.do("POST", "/api/v1/flash-sales/lb/attempts", map[string]string{"challenge_id": "x", "answer": "0"},
			"Idempotency-Key", fmt.Sprintf("late-%d", i)).want(t, fmt.Sprintf("attempt at edge %d after the sell-out", i), 410, "sold_out")
	}
	// The two reservations expire unpaid (2 s): the units return and every edge reopens.
	reopened := every("reopened", 20*time.Second, state("live"))
	t.Logf("sell-out seen by every edge within %v; reopening after the reservations expired within %v", slices.Max(soldOut), slices.Max(reopened))
}
