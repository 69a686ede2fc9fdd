package e2e

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"math/bits"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"flashedge/deploy/stack"
	"flashedge/shared/challenge"
)

type ledger struct {
	Initial          int64            `json:"initial"`
	Remaining        int64            `json:"remaining"`
	Shards           []int64          `json:"shards"`
	Reserved         int64            `json:"reserved"`
	Ordered          int64            `json:"ordered"`
	Admitted         int64            `json:"admitted"`
	RejectedByReason map[string]int64 `json:"rejected_by_reason"`
	SoldOutFlag      bool             `json:"sold_out_flag"`
	// Audit is the sale recomputed from its primary records (orders, tokens, claims, shards).
	Audit struct {
		OK            bool              `json:"ok"`
		Settled       bool              `json:"settled"`
		Ordered       int64             `json:"ordered"`
		Violations    []json.RawMessage `json:"violations"`
		Unsettled     []json.RawMessage `json:"unsettled"`
		Disagreements []json.RawMessage `json:"disagreements"`
	} `json:"audit"`
}

// seen is how many attempts the order service has answered: admitted plus refused.
func (l ledger) seen() int64 {
	n := l.Admitted
	for _, v := range l.RejectedByReason {
		n += v
	}
	return n
}

func (l ledger) check(t testing.TB) {
	t.Helper()
	var sum int64
	for i, s := range l.Shards {
		if s < 0 {
			t.Fatalf("shard %d below zero: %+v", i, l)
		}
		sum += s
	}
	if sum != l.Remaining || l.Initial != l.Remaining+l.Reserved+l.Ordered {
		t.Fatalf("ledger does not balance: %+v", l)
	}
	if !l.Audit.OK {
		t.Fatalf("the audit from the primary records fails: violations %s, unsettled %s (at rest: %v), counters %s",
			l.Audit.Violations, l.Audit.Unsettled, l.Audit.Settled, l.Audit.Disagreements)
	}
}

// solve finds a nonce such that SHA-256(prefix+nonce) starts with difficulty zero bits: the
// honest way, as the bench tools and the web page do.
func solve(prefix string, difficulty int) string {
	for n := 0; ; n++ {
		nonce := strconv.Itoa(n)
		sum := sha256.Sum256([]byte(prefix + nonce))
		zeros := 0
		for _, b := range sum {
			if b == 0 {
				zeros += 8
				continue
			}
			zeros += bits.LeadingZeros8(b)
			break
		}
		if zeros >= difficulty {
			return nonce
		}
	}
}

// attempt fetches a challenge, solves it and posts the attempt.
func attempt(t testing.TB, c *client, sale, key string) reply {
	var ch challenge.Body
	r := c.do("POST", "/api/v1/flash-sales/"+sale+"/challenge", nil)
	if r.status != 200 {
		return r
	}
	r.json(t, &ch)
	return c.do("POST", "/api/v1/flash-sales/"+sale+"/attempts",
		map[string]string{"challenge_id": ch.ChallengeID, "answer": solve(ch.Payload.Prefix, ch.Payload.Difficulty)},
		"Idempotency-Key", key)
}

// TestFlashSaleThroughTheEdge runs a small rush through every real process: 60 shoppers for
// 12 units in 4 shards, limit 1; winners pay; after the sell-out the edge answers alone.
func TestFlashSaleThroughTheEdge(t *testing.T) {
	st := stack.Start(t, stack.Options{
		Services: []string{"catalog", "cart", "order", "worker", "edge"},
		ServiceEnv: map[string]map[string]string{
			"catalog": {"FLASHEDGE_SEED_DEMO": "10"},
			"edge":    {"FLASHEDGE_RATE_IP": "off"},
		},
	})
	edgeURL := st.URL("edge", 0)
	admin := newClient(t, edgeURL, st.AdminToken())
	now := time.Now().UTC()
	admin.do("POST", "/api/v1/admin/flash-sales", map[string]any{
		"id": "e2e", "product_id": "00000001", "price": 99000, "stock": 12, "shards": 4,
		"starts_at": now.Add(-time.Second).Format(time.RFC3339), "ends_at": now.Add(time.Hour).Format(time.RFC3339),
		"per_user_limit": 1, "difficulty": 6,
	}).want(t, "create sale", 201, "")
	var sale map[string]any
	newClient(t, edgeURL, "").do("GET", "/api/v1/flash-sales/e2e", nil).want(t, "sale at the edge", 200, "").json(t, &sale)
	if sale["state"] != "live" {
		t.Fatalf("sale %v: want live", sale)
	}

	const shoppers = 60
	var winners atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, shoppers)
	for i := range shoppers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := login(t, edgeURL, fmt.Sprintf("shopper%d", i))
			key := fmt.Sprintf("attempt-%d", i)
			r := attempt(t, c, "e2e", key)
			if r.status == 410 || r.status == 429 {
				return // sold out (at the edge or the gate) or busy: both final for this test
			}
			if r.status != 202 {
				errs <- fmt.Errorf("shopper %d attempt: %d %s", i, r.status, r.body)
				return
			}
			var q struct {
				Ticket string `json:"ticket"`
			}
			r.json(t, &q)
			var res struct {
				Status string `json:"status"`
				Token  string `json:"token"`
			}
			deadline := time.Now().Add(10 * time.Second)
			for res.Status == "" || res.Status == "queued" {
				if time.Now().After(deadline) {
					errs <- fmt.Errorf("shopper %d: ticket not final within 10s", i)
					return
				}
				time.Sleep(20 * time.Millisecond)
				c.do("GET", "/api/v1/flash-sales/e2e/attempts/"+q.Ticket, nil).want(t, "poll", 200, "").json(t, &res)
			}
			if res.Status != "won" {
				return
			}
			winners.Add(1)
			c.do("POST", "/api/v1/flash-sales/e2e/checkout", map[string]string{"token": res.Token}).
				want(t, "checkout", 201, "")
			c.do("POST", "/api/v1/flash-sales/e2e/checkout", map[string]string{"token": res.Token}).
				want(t, "second checkout with the same token", 409, "")
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if winners.Load() != 12 {
		t.Fatalf("%d winners for 12 units", winners.Load())
	}
	var l ledger
	admin.do("GET", "/api/v1/admin/flash-sales/e2e/ledger?settled=true", nil).want(t, "ledger", 200, "").json(t, &l)
	l.check(t)
	if l.Ordered != 12 || l.Remaining != 0 || !l.SoldOutFlag || l.Audit.Ordered != 12 {
		t.Fatalf("ledger after the rush: %+v", l)
	}
	// Every attempt reached the order service in a batch (the edge's ForwardBatched).
	if n := metricSum(t, st.OpsURL(0), "flashedge_edge_batched_requests_total", `backend="order"`); n == 0 || n < float64(l.seen()) {
		t.Errorf("the edge sent %v requests to the order service in batches; the order service saw %d attempts: want every one batched", n, l.seen())
	}

	// Sold out: the edge answers every further attempt without the order service.
	poll(t, "edge sees the sold-out flag", time.Second, func() error {
		var s map[string]any
		newClient(t, edgeURL, "").do("GET", "/api/v1/flash-sales/e2e", nil).json(t, &s)
		if s["state"] != "sold_out" {
			return fmt.Errorf("state %v", s["state"])
		}
		return nil
	})
	before := l.seen()
	late := login(t, edgeURL, "late")
	for i := range 50 {
		late.do("POST", "/api/v1/flash-sales/e2e/attempts", map[string]string{"challenge_id": "x", "answer": "0"},
			"Idempotency-Key", fmt.Sprintf("late-%d", i)).want(t, "attempt after sell-out", 410, "sold_out")
	}
	admin.do("GET", "/api/v1/admin/flash-sales/e2e/ledger", nil).want(t, "ledger", 200, "").json(t, &l)
	if l.seen() != before {
		t.Fatalf("the order service saw %d attempts after the sell-out, want 0", l.seen()-before)
	}

	// Every winner has exactly one order of the sale; a shopper's ticket is theirs only.
	var orders struct {
		Items []struct {
			FlashSaleID string `json:"flash_sale_id"`
		} `json:"items"`
	}
	var total int
	for i := range shoppers {
		login(t, edgeURL, fmt.Sprintf("shopper%d", i)).do("GET", "/api/v1/orders", nil).want(t, "orders", 200, "").json(t, &orders)
		if len(orders.Items) > 1 {
			t.Fatalf("shopper %d has %d orders with limit 1", i, len(orders.Items))
		}
		total += len(orders.Items)
	}
	if total != 12 {
		t.Fatalf("%d flash-sale orders, want 12", total)
	}
}

// TestAttemptIdempotencyAndWindow: a repeated Idempotency-Key gets the first answer; attempts
// before the start are refused at the edge with 425.
func TestAttemptIdempotencyAndWindow(t *testing.T) {
	st := stack.Start(t, stack.Options{
		Services:   []string{"catalog", "cart", "order", "worker", "edge"},
		ServiceEnv: map[string]map[string]string{"catalog": {"FLASHEDGE_SEED_DEMO": "10"}},
	})
	edgeURL := st.URL("edge", 0)
	admin := newClient(t, edgeURL, st.AdminToken())
	now := time.Now().UTC()
	for _, s := range []struct {
		id     string
		starts time.Time
	}{{"now", now.Add(-time.Second)}, {"soon", now.Add(time.Hour)}} {
		admin.do("POST", "/api/v1/admin/flash-sales", map[string]any{
			"id": s.id, "product_id": "00000002", "price": 50000, "stock": 5,
			"starts_at": s.starts.Format(time.RFC3339), "ends_at": now.Add(2 * time.Hour).Format(time.RFC3339), "difficulty": 0,
		}).want(t, "create sale "+s.id, 201, "")
	}
	dan := login(t, edgeURL, "dan")
	var ch challenge.Body
	dan.do("POST", "/api/v1/flash-sales/now/challenge", nil).want(t, "challenge", 200, "").json(t, &ch)
	body := map[string]string{"challenge_id": ch.ChallengeID, "answer": solve(ch.Payload.Prefix, ch.Payload.Difficulty)}
	first := dan.do("POST", "/api/v1/flash-sales/now/attempts", body, "Idempotency-Key", "same-key").want(t, "first attempt", 202, "")
	// A client retrying after a lost answer sends the same request again: it gets the first
	// answer, not a second ticket.
	again := dan.do("POST", "/api/v1/flash-sales/now/attempts", body, "Idempotency-Key", "same-key")
	if again.status != first.status || string(again.body) != string(first.body) {
		t.Fatalf("replayed attempt: %d %s, want the first answer %d %s", again.status, again.body, first.status, first.body)
	}
	// The same key with another challenge is refused rather than answered as a new attempt.
	attempt(t, dan, "now", "same-key").want(t, "same key, other challenge", 422, "idempotency_key_reused")
	dan.do("POST", "/api/v1/flash-sales/soon/attempts", map[string]string{"challenge_id": "x", "answer": "0"},
		"Idempotency-Key", "k").want(t, "attempt before the start", 425, "not_started")

	// A retry whose first answer was lost, after its own win sold the sale out, still gets the
	// first answer (the ticket), not the edge's "sold out".
	admin.do("POST", "/api/v1/admin/flash-sales", map[string]any{
		"id": "one", "product_id": "00000003", "price": 1000, "stock": 1,
		"starts_at": now.Add(-time.Second).Format(time.RFC3339), "ends_at": now.Add(time.Hour).Format(time.RFC3339), "difficulty": 0,
	}).want(t, "create sale one", 201, "")
	fay := login(t, edgeURL, "fay")
	var ch2 challenge.Body
	fay.do("POST", "/api/v1/flash-sales/one/challenge", nil).want(t, "challenge", 200, "").json(t, &ch2)
	body2 := map[string]string{"challenge_id": ch2.ChallengeID, "answer": solve(ch2.Payload.Prefix, ch2.Payload.Difficulty)}
	won := fay.do("POST", "/api/v1/flash-sales/one/attempts", body2, "Idempotency-Key", "lost-answer").want(t, "winning attempt", 202, "")
	poll(t, "sale one sold out at the edge", 5*time.Second, func() error {
		var s map[string]any
		newClient(t, edgeURL, "").do("GET", "/api/v1/flash-sales/one", nil).json(t, &s)
		if s["state"] != "sold_out" {
			return fmt.Errorf("state %v", s["state"])
		}
		return nil
	})
	retry := fay.do("POST", "/api/v1/flash-sales/one/attempts", body2, "Idempotency-Key", "lost-answer")
	if retry.status != 202 || string(retry.body) != string(won.body) {
		t.Fatalf("retry after the sell-out: %d %s, want the first answer %s", retry.status, retry.body, won.body)
	}
	fay.do("POST", "/api/v1/flash-sales/one/attempts", body2, "Idempotency-Key", "another-key").
		want(t, "a new attempt after the sell-out", 410, "sold_out")
	// Another user cannot read dan's ticket.
	var q struct {
		Ticket string `json:"ticket"`
	}
	first.json(t, &q)
	login(t, edgeURL, "eve").do("GET", "/api/v1/flash-sales/now/attempts/"+q.Ticket, nil).want(t, "foreign ticket", 404, "")
	dan.do("GET", "/api/v1/flash-sales/now/attempts/"+q.Ticket, nil).want(t, "own ticket", 200, "")
}
