package order_test

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"flashedge/backend/internal/order"
	"flashedge/shared/httpapi"
	"flashedge/shared/obs"
)

func TestCheckout(t *testing.T) {
	e := newEnv(t)
	phone := e.product("Điện thoại", 5_000_000, 10)
	pho := e.product("Phở bò", 45_000, 100)
	e.addToCart("u-alice", phone, 2)
	e.addToCart("u-alice", pho, 3)

	before := time.Now().UTC().Add(-time.Second)
	r := e.checkout("u-alice", "key-1", "")
	if r.status != 201 {
		t.Fatalf("checkout: %d %s, want 201", r.status, r.body)
	}
	o := decodeOrder(t, r.body)
	want := []order.Item{
		{ProductID: phone, Name: "Điện thoại", Quantity: 2, Price: 5_000_000},
		{ProductID: pho, Name: "Phở bò", Quantity: 3, Price: 45_000},
	}
	if o.ID == "" || o.UserID != "u-alice" || o.Status != "placed" || o.Total != 2*5_000_000+3*45_000 ||
		fmt.Sprint(o.Items) != fmt.Sprint(want) || o.FlashSaleID != "" {
		t.Fatalf("order %+v, want alice's placed order of %v", o, want)
	}
	created, err := time.Parse(time.RFC3339, o.CreatedAt)
	if err != nil || created.Before(before) || created.After(time.Now().Add(time.Second)) {
		t.Fatalf("created_at %q: %v", o.CreatedAt, err)
	}
	if bytes.Contains(r.body, []byte("flash_sale_id")) {
		t.Errorf("order without a sale carries flash_sale_id: %s", r.body)
	}
	if e.stock(phone) != 8 || e.stock(pho) != 97 {
		t.Errorf("stock after checkout: phone %d, pho %d; want 8, 97", e.stock(phone), e.stock(pho))
	}
	if lines := e.cartLines("u-alice"); len(lines) != 0 {
		t.Errorf("cart after checkout: %v, want empty", lines)
	}
	got := e.call(e.order, "GET", "/api/v1/orders/"+o.ID, "u-alice", "")
	if got.status != 200 || !bytes.Equal(got.body, r.body) {
		t.Errorf("GET order: %d %s, want the checkout's answer %s", got.status, got.body, r.body)
	}
	if list := e.orders("u-alice"); len(list) != 1 || list[0].ID != o.ID {
		t.Errorf("alice's orders: %+v", list)
	}
}

// TestConcurrentCheckoutNoOversell: two shoppers check out at the same moment against a product
// with less stock than they want together. Run several rounds to give the race a chance.
func TestConcurrentCheckoutNoOversell(t *testing.T) {
	e := newEnv(t)
	for round := range 8 {
		t.Run(fmt.Sprintf("round %d", round), func(t *testing.T) {
			id := e.product(fmt.Sprintf("Flash phone %d", round), 1_000_000, 3)
			users := []string{fmt.Sprintf("u-alice-%d", round), fmt.Sprintf("u-bob-%d", round)}
			for _, u := range users {
				e.addToCart(u, id, 2)
			}
			results := make([]response, len(users))
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i, u := range users {
				wg.Go(func() {
					<-start
					results[i] = e.checkout(u, "k-"+u, "")
				})
			}
			close(start)
			wg.Wait()

			winners := 0
			for i, r := range results {
				u := users[i]
				switch r.status {
				case 201:
					winners++
					if o := decodeOrder(t, r.body); o.UserID != u || o.Total != 2_000_000 {
						t.Errorf("%s's order %+v", u, o)
					}
					if lines := e.cartLines(u); len(lines) != 0 {
						t.Errorf("winner %s's cart %v, want empty", u, lines)
					}
					if n := len(e.orders(u)); n != 1 {
						t.Errorf("winner %s has %d orders, want 1", u, n)
					}
				case 409:
					er := errorOf(t, r.body)
					if er.Code != "out_of_stock" || !strings.Contains(er.Message, fmt.Sprintf("Flash phone %d", round)) || !strings.Contains(er.Message, id) {
						t.Errorf("loser %s: %+v, want out_of_stock naming the product and its id", u, er)
					}
					if lines := e.cartLines(u); lines[id] != "2" {
						t.Errorf("loser %s's cart %v, want it untouched", u, lines)
					}
					if n := len(e.orders(u)); n != 0 {
						t.Errorf("loser %s has %d orders, want 0", u, n)
					}
				default:
					t.Errorf("%s: %d %s, want 201 or 409", u, r.status, r.body)
				}
			}
			if winners != 1 || e.stock(id) != 1 {
				t.Fatalf("%d winners, stock left %d; want 1 winner and 1 unit left", winners, e.stock(id))
			}
		})
	}
}

// TestManyBuyersNoOversell: more buyers than units, all at once: exactly the stock is sold.
func TestManyBuyersNoOversell(t *testing.T) {
	e := newEnv(t)
	const stock, buyers = 4, 12
	id := e.product("Hot item", 10, stock)
	for i := range buyers {
		e.addToCart(fmt.Sprintf("u-buyer-%d", i), id, 1)
	}
	codes := make([]int, buyers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range buyers {
		wg.Go(func() {
			<-start
			codes[i] = e.checkout(fmt.Sprintf("u-buyer-%d", i), "k", "").status
		})
	}
	close(start)
	wg.Wait()
	sold := 0
	for i, c := range codes {
		switch c {
		case 201:
			sold++
		case 409:
		default:
			t.Errorf("buyer %d: status %d", i, c)
		}
	}
	if sold != stock || e.stock(id) != 0 {
		t.Fatalf("sold %d, stock left %d; want %d sold and 0 left (statuses %v)", sold, e.stock(id), stock, codes)
	}
}

// TestRollback: when one product of the cart is short, the others' reservations are given back.
func TestRollback(t *testing.T) {
	e := newEnv(t)
	a := e.product("Plenty", 10, 10)
	b := e.product("Scarce", 20, 3)
	c := e.product("Also plenty", 30, 10)
	e.addToCart("u-alice", a, 2)
	e.addToCart("u-alice", b, 5)
	e.addToCart("u-alice", c, 1)
	r := e.checkout("u-alice", "k1", "")
	if r.status != 409 {
		t.Fatalf("checkout: %d %s, want 409", r.status, r.body)
	}
	if er := errorOf(t, r.body); er.Code != "out_of_stock" || !strings.Contains(er.Message, `"Scarce"`) || !strings.Contains(er.Message, b) {
		t.Fatalf("error %+v, want out_of_stock naming Scarce (%s)", er, b)
	}
	if e.stock(a) != 10 || e.stock(b) != 3 || e.stock(c) != 10 {
		t.Fatalf("stock after the failed checkout: %d %d %d, want 10 3 10", e.stock(a), e.stock(b), e.stock(c))
	}
	if lines := e.cartLines("u-alice"); len(lines) != 3 {
		t.Fatalf("cart after the failed checkout: %v, want untouched", lines)
	}
	if n := len(e.orders("u-alice")); n != 0 {
		t.Fatalf("%d orders after the failed checkout", n)
	}
}

func TestIdempotency(t *testing.T) {
	t.Run("same key and body: the first answer again", func(t *testing.T) {
		e := newEnv(t)
		id := e.product("Thing", 100, 10)
		e.addToCart("u-alice", id, 2)
		first := e.checkout("u-alice", "same-1", `{"expected_total":200}`)
		if first.status != 201 {
			t.Fatalf("first: %d %s", first.status, first.body)
		}
		e.addToCart("u-alice", id, 1) // a new cart must not change the repeated answer
		for range 3 {
			again := e.checkout("u-alice", "same-1", `{"expected_total":200}`)
			if again.status != 201 || !bytes.Equal(again.body, first.body) || string(again.header.Peek(order.HeaderReplayed)) != "true" {
				t.Fatalf("repeat: %d %s (replayed %q), want 201 %s", again.status, again.body, again.header.Peek(order.HeaderReplayed), first.body)
			}
		}
		if n := len(e.orders("u-alice")); n != 1 || e.stock(id) != 8 {
			t.Fatalf("%d orders, stock %d; want 1 order and stock 8", n, e.stock(id))
		}
		// Keys are per user: bob's same key is his own.
		e.addToCart("u-bob", id, 1)
		if r := e.checkout("u-bob", "same-1", `{"expected_total":200}`); r.status != 409 || errorOf(t, r.body).Code != "total_changed" {
			t.Fatalf("bob with alice's key: %d %s, want his own answer (409 total_changed)", r.status, r.body)
		}
	})

	t.Run("a business refusal is the first answer too", func(t *testing.T) {
		e := newEnv(t)
		first := e.checkout("u-alice", "empty-1", "")
		if first.status != 422 || errorOf(t, first.body).Code != "empty_cart" {
			t.Fatalf("empty cart: %d %s", first.status, first.body)
		}
		e.addToCart("u-alice", e.product("Thing", 1, 1), 1)
		if again := e.checkout("u-alice", "empty-1", ""); again.status != 422 || !bytes.Equal(again.body, first.body) {
			t.Fatalf("repeat: %d %s, want the first 422", again.status, again.body)
		}
		if r := e.checkout("u-alice", "empty-2", ""); r.status != 201 {
			t.Fatalf("new key: %d %s, want 201", r.status, r.body)
		}
	})

	t.Run("same key, other body: 422", func(t *testing.T) {
		e := newEnv(t)
		id := e.product("Thing", 100, 10)
		e.addToCart("u-alice", id, 1)
		if r := e.checkout("u-alice", "k", `{"expected_total":100}`); r.status != 201 {
			t.Fatalf("first: %d %s", r.status, r.body)
		}
		for _, body := range []string{`{"expected_total":300}`, `{}`, ``, `{"expected_total": 100}`} {
			r := e.checkout("u-alice", "k", body)
			if r.status != 422 || errorOf(t, r.body).Code != "idempotency_key_reused" {
				t.Fatalf("other body %q: %d %s, want 422 idempotency_key_reused", body, r.status, r.body)
			}
		}
		if n := len(e.orders("u-alice")); n != 1 || e.stock(id) != 9 {
			t.Fatalf("%d orders, stock %d; want 1 and 9", n, e.stock(id))
		}
	})

	t.Run("retry while the first runs: 409, then the first answer", func(t *testing.T) {
		e := newEnv(t)
		id := e.product("Thing", 100, 10)
		e.addToCart("u-alice", id, 1)
		h := e.holdCatalog()
		var first response
		done := make(chan struct{})
		go func() { defer close(done); first = e.checkout("u-alice", "slow", "") }()
		select {
		case <-h.entered:
		case <-time.After(10 * time.Second):
			t.Fatal("the first checkout never reached the catalog")
		}
		r := e.checkout("u-alice", "slow", "")
		if r.status != 409 || errorOf(t, r.body).Code != "idempotency_in_progress" || string(r.header.Peek("Retry-After")) == "" {
			t.Errorf("retry while running: %d %s, want 409 idempotency_in_progress with Retry-After", r.status, r.body)
		}
		if r := e.checkout("u-alice", "slow", `{}`); r.status != 422 {
			t.Errorf("other body while running: %d %s, want 422", r.status, r.body)
		}
		e.hold.Store(nil)
		h.open()
		<-done
		if first.status != 201 {
			t.Fatalf("first: %d %s", first.status, first.body)
		}
		if again := e.checkout("u-alice", "slow", ""); again.status != 201 || !bytes.Equal(again.body, first.body) {
			t.Fatalf("retry after: %d %s, want %s", again.status, again.body, first.body)
		}
		if n := len(e.orders("u-alice")); n != 1 || e.stock(id) != 9 {
			t.Fatalf("%d orders, stock %d; want 1 and 9", n, e.stock(id))
		}
	})

	t.Run("a dependency failure frees the key", func(t *testing.T) {
		e := newEnv(t)
		id := e.product("Thing", 100, 10)
		e.addToCart("u-alice", id, 1)
		e.catalogFail.Store(true)
		r := e.checkout("u-alice", "k", "")
		if r.status != 503 || errorOf(t, r.body).Code != "catalog_unavailable" || string(r.header.Peek("Retry-After")) == "" {
			t.Fatalf("catalog failing: %d %s, want 503 catalog_unavailable with Retry-After", r.status, r.body)
		}
		if e.stock(id) != 10 {
			t.Fatalf("stock %d after a failed checkout", e.stock(id))
		}
		e.catalogFail.Store(false)
		if r := e.checkout("u-alice", "k", ""); r.status != 201 || r.header.Peek(order.HeaderReplayed) != nil {
			t.Fatalf("same key after recovery: %d %s, want a fresh 201", r.status, r.body)
		}
	})
}

func TestRefusals(t *testing.T) {
	e := newEnv(t)
	id := e.product("Thing", 100, 10)
	gone := e.product("Gone", 50, 10)
	e.addToCart("u-alice", id, 2)
	e.addToCart("u-carol", gone, 1)
	if err := e.products.Delete(t.Context(), gone); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		user   string
		key    string
		body   string
		status int
		code   string
	}{
		{"no user", "", "k1", "", 401, "unauthorized"},
		{"forged-looking user", "u-{alice}", "k1", "", 401, "unauthorized"},
		{"no key", "u-alice", "", "", 400, "idempotency_key_required"},
		{"bad key", "u-alice", "a}b", "", 400, "invalid_idempotency_key"},
		{"long key", "u-alice", strings.Repeat("k", 129), "", 400, "invalid_idempotency_key"},
		{"total sent", "u-alice", "k2", `{"total":1}`, 400, "malformed_json"},
		{"price sent", "u-alice", "k3", `{"items":[{"product_id":"` + id + `","quantity":2,"price":1}]}`, 400, "malformed_json"},
		{"user sent", "u-alice", "k4", `{"user_id":"u-bob"}`, 400, "malformed_json"},
		{"status sent", "u-alice", "k5", `{"status":"paid"}`, 400, "malformed_json"},
		{"not json", "u-alice", "k6", `total=1`, 400, "malformed_json"},
		{"total changed", "u-alice", "k7", `{"expected_total":199}`, 409, "total_changed"},
		{"empty cart", "u-dave", "k8", "", 422, "empty_cart"},
		{"product withdrawn", "u-carol", "k9", "", 409, "product_unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.checkout(tt.user, tt.key, tt.body)
			if r.status != tt.status || errorOf(t, r.body).Code != tt.code {
				t.Fatalf("checkout %q: %d %s, want %d %s", tt.body, r.status, r.body, tt.status, tt.code)
			}
		})
	}
	if e.stock(id) != 10 || len(e.orders("u-alice")) != 0 {
		t.Fatalf("refusals changed something: stock %d, orders %v", e.stock(id), e.orders("u-alice"))
	}
	// A refused body never claimed its key: the key still works.
	if r := e.checkout("u-alice", "k2", ""); r.status != 201 {
		t.Fatalf("key of a refused body: %d %s, want 201", r.status, r.body)
	}
	if o := e.orders("u-alice"); len(o) != 1 || o[0].Total != 200 || o[0].UserID != "u-alice" || o[0].Status != "placed" {
		t.Fatalf("order after refusals: %+v", o)
	}
}

// TestAuthorization: a user sees only their own orders; another user's order id is 404.
func TestAuthorization(t *testing.T) {
	e := newEnv(t)
	id := e.product("Thing", 100, 10)
	e.addToCart("u-alice", id, 1)
	r := e.checkout("u-alice", "k", "")
	if r.status != 201 {
		t.Fatalf("checkout: %d %s", r.status, r.body)
	}
	aliceOrder := decodeOrder(t, r.body).ID

	if r := e.call(e.order, "GET", "/api/v1/orders/"+aliceOrder, "u-bob", ""); r.status != 404 || errorOf(t, r.body).Code != "order_not_found" {
		t.Fatalf("bob reads alice's order: %d %s, want 404", r.status, r.body)
	}
	if list := e.orders("u-bob"); len(list) != 0 {
		t.Fatalf("bob's list shows %+v", list)
	}
	for _, path := range []string{"/api/v1/orders", "/api/v1/orders/" + aliceOrder} {
		for _, user := range []string{"", "U-ALICE", "u-alice}"} {
			if r := e.call(e.order, "GET", path, user, ""); r.status != 401 {
				t.Fatalf("GET %s as %q: %d %s, want 401", path, user, r.status, r.body)
			}
		}
	}
	for _, bad := range []string{"nope", "..%2F..", "a.b"} {
		if r := e.call(e.order, "GET", "/api/v1/orders/"+bad, "u-alice", ""); r.status != 404 {
			t.Fatalf("GET order %q: %d %s, want 404", bad, r.status, r.body)
		}
	}
}

func TestListPaging(t *testing.T) {
	e := newEnv(t)
	id := e.product("Thing", 100, 100)
	var ids []string
	for i := range 3 {
		e.addToCart("u-alice", id, 1)
		r := e.checkout("u-alice", fmt.Sprintf("k%d", i), "")
		if r.status != 201 {
			t.Fatalf("checkout %d: %d %s", i, r.status, r.body)
		}
		ids = append(ids, decodeOrder(t, r.body).ID)
	}
	tests := []struct {
		query  string
		status int
		want   string
	}{
		{"?limit=2", 200, fmt.Sprintf(`"id":%q.*"id":%q.*"next_cursor":"2"`, ids[2], ids[1])},
		{"?limit=2&cursor=2", 200, fmt.Sprintf(`"id":%q.*"next_cursor":""`, ids[0])},
		{"", 200, fmt.Sprintf(`"id":%q.*"id":%q.*"id":%q.*"next_cursor":""`, ids[2], ids[1], ids[0])},
		{"?cursor=10", 200, `^\{"items":\[\],"next_cursor":""\}$`},
		{"?limit=0", 400, "invalid_limit"},
		{"?limit=101", 400, "invalid_limit"},
		{"?cursor=-1", 400, "invalid_cursor"},
		{"?cursor=x", 400, "invalid_cursor"},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			r := e.call(e.order, "GET", "/api/v1/orders"+tt.query, "u-alice", "")
			if r.status != tt.status || !matches(tt.want, string(r.body)) {
				t.Fatalf("GET /api/v1/orders%s: %d %s, want %d matching %s", tt.query, r.status, r.body, tt.status, tt.want)
			}
		})
	}
}

// TestRequestIDsPropagate: the calls a checkout makes carry its X-Request-ID.
func TestRequestIDsPropagate(t *testing.T) {
	e := newEnv(t)
	id := e.product("Thing", 100, 10)
	e.addToCart("u-alice", id, 1)
	e.mu.Lock()
	e.seenIDs = map[string][]string{}
	e.mu.Unlock()
	r := e.call(e.order, "POST", "/api/v1/orders", "u-alice", "", httpapi.HeaderIdempotencyKey, "k", obs.HeaderRequestID, "trace-42")
	if r.status != 201 || string(r.header.Peek(obs.HeaderRequestID)) != "trace-42" {
		t.Fatalf("checkout: %d %s, X-Request-ID %q", r.status, r.body, r.header.Peek(obs.HeaderRequestID))
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, svc := range []string{"cart", "catalog"} {
		seen := e.seenIDs[svc]
		if len(seen) == 0 {
			t.Errorf("%s saw no call", svc)
		}
		for _, got := range seen {
			if got != "trace-42" {
				t.Errorf("%s saw X-Request-ID %q, want trace-42", svc, got)
			}
		}
	}
}

// BenchmarkCheckout measures one checkout of a one-line cart over loopback HTTP: the order
// service reading the cart service, the catalog service, reserving and placing in redis, and
// emptying the cart. Filling the cart is outside the timed part.
func BenchmarkCheckout(b *testing.B) {
	e := newEnv(b)
	id := e.product("Thing", 100, 1_000_000_000)
	i := 0
	for b.Loop() {
		b.StopTimer()
		e.addToCart("u-bench", id, 1)
		i++
		b.StartTimer()
		if r := e.checkout("u-bench", fmt.Sprintf("k%d", i), ""); r.status != 201 {
			b.Fatalf("checkout: %d %s", r.status, r.body)
		}
	}
}
