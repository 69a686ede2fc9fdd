package e2e

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"flashedge/deploy/stack"
	"flashedge/shared/challenge"
)

// TestSaleRenderedAlikeByEdgeAndOrder asks the edge (which renders from its cache of the sale
// hash) and the order service (which renders from its own read) for the same sales and tickets,
// and compares the bytes: both sides answer through shared/sale, so a drift in one renderer,
// time format or refusal body fails here. The product name carries quotes, a backslash, a
// control character and non-ASCII text, and the start time has milliseconds.
func TestSaleRenderedAlikeByEdgeAndOrder(t *testing.T) {
	st := stack.Start(t, stack.Options{
		Services:   []string{"catalog", "cart", "order", "worker", "edge"},
		ServiceEnv: map[string]map[string]string{"edge": {"FLASHEDGE_RATE_IP": "off", "FLASHEDGE_RATE_USER": "off"}},
	})
	edgeURL, orderURL := st.URL("edge", 0), st.URL("order", 0)
	admin := newClient(t, edgeURL, st.AdminToken())
	var p struct {
		ID string `json:"id"`
	}
	admin.do("POST", "/api/v1/admin/products", map[string]any{
		"name": "Tai nghe \"Pro\" \\ <b>&</b> \u0007 tiếng Việt \u2028", "price": 120000, "stock": 5,
	}).want(t, "create product", 201, "").json(t, &p)
	now := time.Now().UTC().Truncate(time.Millisecond)
	start := now.Add(-1500 * time.Millisecond).Add(250 * time.Millisecond)
	for _, s := range []struct {
		id    string
		stock int
		start time.Time
	}{{"alike", 1, start}, {"alike-later", 3, now.Add(time.Hour + 125*time.Millisecond)}} {
		admin.do("POST", "/api/v1/admin/flash-sales", map[string]any{
			"id": s.id, "product_id": p.ID, "price": 99000, "stock": s.stock, "shards": 2,
			"starts_at": s.start.Format(time.RFC3339Nano), "ends_at": s.start.Add(2 * time.Hour).Format(time.RFC3339Nano),
			"difficulty": 0,
		}).want(t, "create sale "+s.id, 201, "")
	}

	alice := login(t, edgeURL, "alice")
	order := newClient(t, orderURL, "")
	asAlice := []string{"X-Flashedge-User", alice.user}
	same := func(what, path string, headers ...string) []byte {
		t.Helper()
		var e, o reply
		// The edge learns of changes by invalidation: give it a moment to agree.
		poll(t, what+" alike at edge and order service", 5*time.Second, func() error {
			e = alice.do("GET", path, nil)
			o = order.do("GET", path, nil, headers...)
			if e.status != o.status || !bytes.Equal(e.body, o.body) {
				return fmt.Errorf("edge %d %s\norder %d %s", e.status, e.body, o.status, o.body)
			}
			return nil
		})
		return e.body
	}
	same("one sale", "/api/v1/flash-sales/alike")
	same("the sale list", "/api/v1/flash-sales")
	same("an upcoming sale", "/api/v1/flash-sales/alike-later")
	roomStart := now.Add(time.Hour + 375*time.Millisecond)
	admin.do("POST", "/api/v1/admin/flash-sales", map[string]any{
		"id": "alike-room", "product_id": p.ID, "price": 99000, "stock": 3,
		"starts_at": roomStart.Format(time.RFC3339Nano), "ends_at": roomStart.Add(time.Hour).Format(time.RFC3339Nano),
		"waiting_room": map[string]any{"opens_at": now.Add(time.Minute + 5*time.Millisecond).Format(time.RFC3339Nano),
			"admit_per_second": 5, "pass_seconds": 60, "hold_seconds": 30},
	}).want(t, "create sale with a waiting room", 201, "")
	same("a sale with a waiting room", "/api/v1/flash-sales/alike-room")
	same("an unknown sale", "/api/v1/flash-sales/nosuchsale")

	// Bob takes a challenge from the edge while the sale can still sell (the edge mints them; once
	// sold out it refuses to), and spends it at the order service after the sell-out below.
	bob := login(t, edgeURL, "bob")
	var ch challenge.Body
	bob.do("POST", "/api/v1/flash-sales/alike/challenge", nil).want(t, "challenge at the edge", 200, "").json(t, &ch)

	r := attempt(t, alice, "alike", "alike-1").want(t, "attempt", 202, "")
	var q struct {
		Ticket string `json:"ticket"`
	}
	r.json(t, &q)
	ticket := "/api/v1/flash-sales/alike/attempts/" + q.Ticket
	poll(t, "ticket decided", 10*time.Second, func() error {
		if b := same("the ticket", ticket, asAlice...); !bytes.Contains(b, []byte(`"won"`)) {
			return fmt.Errorf("ticket %s", b)
		}
		return nil
	})
	same("a ticket of nobody", "/api/v1/flash-sales/alike/attempts/0123456789abcdef0123456789abcdef", asAlice...)
	same("the sold-out sale", "/api/v1/flash-sales/alike")

	// A late shopper: the edge refuses from its cache, the order service from the store.
	atEdge := attempt(t, bob, "alike", "alike-2")
	atOrder := order.do("POST", "/api/v1/flash-sales/alike/attempts",
		map[string]string{"challenge_id": ch.ChallengeID, "answer": solve(ch.Payload.Prefix, ch.Payload.Difficulty)},
		"X-Flashedge-User", bob.user, "Idempotency-Key", "alike-3")
	if atEdge.status != 410 || atOrder.status != 410 || !bytes.Equal(atEdge.body, atOrder.body) {
		t.Fatalf("sold-out refusal: edge %d %s, order service %d %s", atEdge.status, atEdge.body, atOrder.status, atOrder.body)
	}
}
