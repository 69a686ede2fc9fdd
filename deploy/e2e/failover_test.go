package e2e

import (
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"flashedge/deploy/stack"
	"flashedge/shared/keyspace"
)

// TestFailoverDuringRush runs the whole stack on a Redis Cluster (3 primaries, a replica each),
// starts a rush, and kills -9 the primary holding stock shard 0 while shoppers arrive. Its
// replica is promoted (node timeout 2 s) and the services' cluster clients follow. Shoppers may
// see 503 with a JSON error body during the failover window, never another 5xx, and every one of
// them reaches a final answer afterwards; the audit from the primary records then holds or says
// what the lost writes broke. The figures are logged (deploy/README.md quotes them).
func TestFailoverDuringRush(t *testing.T) {
	st := stack.Start(t, stack.Options{
		Services:     []string{"catalog", "cart", "order", "worker", "edge"},
		StoreCluster: true,
		ServiceEnv: map[string]map[string]string{
			"catalog": {"FLASHEDGE_SEED_DEMO": "10"},
			"edge":    {"FLASHEDGE_RATE_IP": "off"},
		},
	})
	edgeURL := st.URL("edge", 0)
	admin := newClient(t, edgeURL, st.AdminToken())
	now := time.Now().UTC()
	const stock, shoppers = 30, 120
	admin.do("POST", "/api/v1/admin/flash-sales", map[string]any{
		"id": "fo", "product_id": "00000001", "price": 99000, "stock": stock, "shards": 4,
		"starts_at": now.Add(-time.Second).Format(time.RFC3339), "ends_at": now.Add(time.Hour).Format(time.RFC3339),
		"per_user_limit": 1, "difficulty": 4,
	}).want(t, "create sale", 201, "")
	victim := st.Cluster().PrimaryOf(t, keyspace.StockShard("fo", 0))

	var mu sync.Mutex
	var unavailable []time.Time // every 503 a shopper saw
	var noBody, other atomic.Int64
	// retry sends req until the answer is not 503, for at most 60 s.
	retry := func(what string, req func() reply) reply {
		deadline := time.Now().Add(60 * time.Second)
		for {
			r := req()
			if r.status != 503 {
				if r.status >= 500 {
					other.Add(1)
					t.Errorf("%s: %d %s (want 503 or success)", what, r.status, r.body)
				}
				return r
			}
			mu.Lock()
			unavailable = append(unavailable, time.Now())
			mu.Unlock()
			if r.errCode() == "" {
				noBody.Add(1)
			}
			if time.Now().After(deadline) {
				t.Errorf("%s: still 503 after 60 s: %s", what, r.body)
				return r
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	var winners, paid atomic.Int64
	var killedAt time.Time
	start := time.Now()
	var wg sync.WaitGroup
	for i := range shoppers {
		wg.Go(func() {
			time.Sleep(time.Duration(i) * 25 * time.Millisecond) // arrivals spread over 3 s
			c := login(t, edgeURL, fmt.Sprintf("fo%d", i))
			r := retry("attempt", func() reply { return attempt(t, c, "fo", fmt.Sprintf("fo-%d", i)) })
			if r.status != 202 {
				return // sold out or busy: final
			}
			var q struct {
				Ticket string `json:"ticket"`
			}
			r.json(t, &q)
			var res struct {
				Status string `json:"status"`
				Token  string `json:"token"`
			}
			deadline := time.Now().Add(60 * time.Second)
			for res.Status == "" || res.Status == "queued" {
				if time.Now().After(deadline) {
					t.Errorf("shopper %d: ticket not final within 60 s", i)
					return
				}
				time.Sleep(50 * time.Millisecond)
				retry("poll", func() reply { return c.do("GET", "/api/v1/flash-sales/fo/attempts/"+q.Ticket, nil) }).json(t, &res)
			}
			if res.Status != "won" {
				return
			}
			winners.Add(1)
			r = retry("checkout", func() reply {
				return c.do("POST", "/api/v1/flash-sales/fo/checkout", map[string]string{"token": res.Token})
			})
			if r.status == 201 || r.status == 409 { // 409: a retry after a checkout whose answer was a 503
				paid.Add(1)
			} else {
				t.Errorf("shopper %d checkout: %d %s", i, r.status, r.body)
			}
		})
	}
	time.Sleep(700 * time.Millisecond)
	killedAt = time.Now()
	victim.Stop() // SIGKILL
	wg.Wait()
	took := time.Since(start)

	sort.Slice(unavailable, func(a, b int) bool { return unavailable[a].Before(unavailable[b]) })
	window := time.Duration(0)
	if n := len(unavailable); n > 0 {
		window = unavailable[n-1].Sub(killedAt)
	}
	if noBody.Load() > 0 {
		t.Errorf("%d answers were 503 without the JSON error body", noBody.Load())
	}
	if window > 20*time.Second {
		t.Errorf("503s for %v after the kill, want the failover window (a few seconds)", window)
	}

	var l ledger
	poll(t, "the ledger answers after the failover", 30*time.Second, func() error {
		r := admin.do("GET", "/api/v1/admin/flash-sales/fo/ledger?settled=true", nil)
		if r.status != 200 {
			return fmt.Errorf("ledger: %d %s", r.status, r.body)
		}
		r.json(t, &l)
		return nil
	})
	t.Logf("failover: killed the primary of stock shard 0 (%s) %v into a rush of %d shoppers for %d units; "+
		"503 answers: %d, the last %v after the kill; other 5xx: %d; winners %d, paid %d, ordered %d, remaining %d, reserved %d; rush took %v; audit ok=%v violations=%s unsettled=%s disagreements=%s",
		victim.Addr, killedAt.Sub(start).Round(time.Millisecond), shoppers, stock, len(unavailable), window.Round(time.Millisecond),
		other.Load(), winners.Load(), paid.Load(), l.Ordered, l.Remaining, l.Reserved, took.Round(time.Millisecond),
		l.Audit.OK, l.Audit.Violations, l.Audit.Unsettled, l.Audit.Disagreements)
	if winners.Load() > stock || l.Ordered > stock {
		t.Fatalf("%d winners and %d orders for %d units", winners.Load(), l.Ordered, stock)
	}
	if paid.Load() != winners.Load() {
		t.Errorf("%d winners, %d paid", winners.Load(), paid.Load())
	}
	l.check(t)
}
