package nginxpeer

import (
	"context"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"flashedge/shared/keyspace"
	"flashedge/shared/kv/kvtest"
	"flashedge/shared/product"
)

func TestCPUMask(t *testing.T) {
	for _, tt := range []struct{ cpu, want string }{{"0", "1"}, {"1", "10"}, {"3", "1000"}, {"", ""}, {"0-1", ""}, {"x", ""}} {
		if got := cpuMask(tt.cpu); got != tt.want {
			t.Errorf("cpuMask(%q) = %q, want %q", tt.cpu, got, tt.want)
		}
	}
}

// TestPeerAnswers runs the real nginx peer against a real redis-server and checks it renders
// what the edge renders: the stored document plus stock_state, 404 for an unknown product, and
// 410 sold out from the sale's flag, on both the per-request and the lrucache port.
func TestPeerAnswers(t *testing.T) {
	if err := Check(Config{}); err != nil {
		t.Skipf("nginx peer not installed: %v (make deps-bench installs it)", err)
	}
	srv := kvtest.Start(t)
	c := srv.Client(t)
	ctx := context.Background()
	doc := product.Marshal(product.Doc{ID: "00000042", Name: "Peer", Price: 1000, Currency: "VND", Image: "/img/p.svg"})
	for _, cmd := range [][]string{
		{"SET", keyspace.Product("00000042"), string(doc)},
		{"SET", keyspace.ProductStock("00000042"), "7"},
		{"SET", keyspace.SoldOut("gone"), "1"},
	} {
		if err := c.Do(ctx, c.B().Arbitrary(cmd...).Build()).Error(); err != nil {
			t.Fatalf("%v: %v", cmd, err)
		}
	}
	want, _ := product.AppendPublic(nil, doc, 7)

	peer, err := Start(ctx, Config{Dir: t.TempDir(), StoreAddr: srv.Addr, TTL: time.Second})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(peer.Stop)

	for _, base := range []string{peer.PlainBase, peer.LRUBase} {
		tests := []struct {
			name, method, path string
			status             int
			body               string
		}{
			{"product", "GET", "/api/v1/products/00000042", 200, string(want)},
			{"unknown product", "GET", "/api/v1/products/99999999", 404, `"code":"not_found"`},
			{"sold out", "POST", "/api/v1/flash-sales/gone/attempts", 410, `{"status":"sold_out"}`},
			{"not sold out", "POST", "/api/v1/flash-sales/live/attempts", 503, `"code":"no_backend"`},
			{"page", "GET", "/api/v1/products?limit=1&cursor=41", 200, `{"items":[` + string(want) + `],"next_cursor":"42"}`},
			{"last page", "GET", "/api/v1/products?limit=2&cursor=41", 200, `{"items":[` + string(want) + `],"next_cursor":""}`},
			{"bad limit", "GET", "/api/v1/products?limit=101", 400, `"code":"invalid_limit"`},
			{"bad cursor", "GET", "/api/v1/products?cursor=x", 400, `"code":"invalid_cursor"`},
		}
		for _, tt := range tests {
			t.Run(base+" "+tt.name, func(t *testing.T) {
				req, _ := http.NewRequest(tt.method, base+tt.path, strings.NewReader(`{"challenge_id":"x","answer":"y"}`))
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != tt.status || !strings.Contains(string(b), tt.body) {
					t.Errorf("%s %s = %d %s, want %d with %s", tt.method, tt.path, resp.StatusCode, b, tt.status, tt.body)
				}
				if resp.Header.Get("X-Request-ID") == "" {
					t.Errorf("%s %s: no X-Request-ID", tt.method, tt.path)
				}
			})
		}
	}
}

// TestPeerAdmits checks the admission peer against a real redis-server: it admits while stock
// lasts (202 with a ticket, one stream entry each), answers 410 once the units are gone and the
// flag is set, and never takes the stock below zero.
func TestPeerAdmits(t *testing.T) {
	if err := Check(Config{}); err != nil {
		t.Skipf("nginx peer not installed: %v (make deps-bench installs it)", err)
	}
	srv := kvtest.Start(t)
	c := srv.Client(t)
	ctx := context.Background()
	if err := c.Do(ctx, c.B().Set().Key(AdmitStockKey("s1")).Value("3").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	peer, err := Start(ctx, Config{Dir: t.TempDir(), StoreAddr: srv.Addr, TTL: time.Second})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(peer.Stop)
	var got []int
	for range 5 {
		req, _ := http.NewRequest("POST", peer.AdmitBase+"/api/v1/flash-sales/s1/attempts", strings.NewReader(`{"challenge_id":"x","answer":"0"}`))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got = append(got, resp.StatusCode)
		if resp.StatusCode == 202 && !strings.Contains(string(b), `"ticket":"`) {
			t.Errorf("202 without a ticket: %s", b)
		}
	}
	if want := []int{202, 202, 202, 410, 410}; !slices.Equal(got, want) {
		t.Errorf("statuses %v, want %v", got, want)
	}
	n, err := c.Do(ctx, c.B().Xlen().Key(AdmitStream).Build()).AsInt64()
	if err != nil || n != 3 {
		t.Errorf("stream holds %d entries (%v), want 3", n, err)
	}
	left, err := c.Do(ctx, c.B().Get().Key(AdmitStockKey("s1")).Build()).AsInt64()
	if err != nil || left != 0 {
		t.Errorf("stock %d (%v), want 0", left, err)
	}
	if n, _ := c.Do(ctx, c.B().Exists().Key(keyspace.SoldOut("s1")).Build()).AsInt64(); n != 1 {
		t.Errorf("sold-out flag not set")
	}
}

// TestPeerCartAdds checks the cart add at the balancer against a real redis-server: the user
// comes from HeaderUser, the line is written to the peer's cart hash, the answer is the whole
// cart in product id order with names and prices from the product documents and its total;
// bad input and unknown products get a JSON 4xx; the per-user limit of attempts holds.
func TestPeerCartAdds(t *testing.T) {
	if err := Check(Config{}); err != nil {
		t.Skipf("nginx peer not installed: %v (make deps-bench installs it)", err)
	}
	srv := kvtest.Start(t)
	c := srv.Client(t)
	ctx := context.Background()
	for _, d := range []product.Doc{
		{ID: "00000002", Name: `Tea "green"`, Price: 250, Currency: "VND", Image: "/img/t.svg"},
		{ID: "00000001", Name: "Cup", Price: 1000, Currency: "VND", Image: "/img/c.svg"},
	} {
		if err := c.Do(ctx, c.B().Set().Key(keyspace.Product(d.ID)).Value(string(product.Marshal(d))).Build()).Error(); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Do(ctx, c.B().Set().Key(AdmitStockKey("s1")).Value("5").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	peer, err := Start(ctx, Config{Dir: t.TempDir(), StoreAddr: srv.Addr, TTL: time.Second})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(peer.Stop)
	do := func(method, path, user, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, peer.AdmitBase+path, strings.NewReader(body))
		if user != "" {
			req.Header.Set(HeaderUser, user)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b)
	}
	for _, tt := range []struct {
		method, path, user, body string
		status                   int
		want                     string
	}{
		{"PUT", "/api/v1/cart/items/00000002", "u1", `{"quantity":3}`, 200,
			`{"items":[{"product_id":"00000002","name":"Tea \"green\"","quantity":3,"price":250}],"total":750}` + "\n"},
		{"PUT", "/api/v1/cart/items/00000001", "u1", `{"quantity":2}`, 200,
			`{"items":[{"product_id":"00000001","name":"Cup","quantity":2,"price":1000},{"product_id":"00000002","name":"Tea \"green\"","quantity":3,"price":250}],"total":2750}` + "\n"},
		{"PUT", "/api/v1/cart/items/00000002", "u2", `{"quantity":1}`, 200,
			`{"items":[{"product_id":"00000002","name":"Tea \"green\"","quantity":1,"price":250}],"total":250}` + "\n"},
		{"PUT", "/api/v1/cart/items/00000001", "", `{"quantity":1}`, 401, `"code":"unauthorized"`},
		{"PUT", "/api/v1/cart/items/00000001", "u1", `{"quantity":0}`, 400, `"code":"invalid_quantity"`},
		{"PUT", "/api/v1/cart/items/00000001", "u1", `{"quantity":"x"}`, 400, `"code":"invalid_quantity"`},
		{"PUT", "/api/v1/cart/items/99999999", "u1", `{"quantity":1}`, 404, `"code":"not_found"`},
		{"POST", "/api/v1/flash-sales/s1/attempts", "u1", `{}`, 202, `"ticket":"`},
		{"POST", "/api/v1/flash-sales/s1/attempts", "u1", `{}`, 409, `"code":"limit_reached"`},
		{"POST", "/api/v1/flash-sales/s1/attempts", "u2", `{}`, 202, `"ticket":"`},
	} {
		status, body := do(tt.method, tt.path, tt.user, tt.body)
		if status != tt.status || !strings.Contains(body, tt.want) {
			t.Errorf("%s %s as %q with %s = %d %s, want %d with %s", tt.method, tt.path, tt.user, tt.body, status, body, tt.status, tt.want)
		}
	}
	// The primary records: the carts' hashes and the admitted users.
	m, err := c.Do(ctx, c.B().Hgetall().Key(CartKey("u1")).Build()).AsStrMap()
	if err != nil || len(m) != 2 || m["00000001"] != "2" || m["00000002"] != "3" {
		t.Errorf("u1's cart hash %v (%v), want 00000001=2 00000002=3", m, err)
	}
	// The same work as the cart service's set script: the cart is kept for cart.TTL (30 days).
	if ms, err := c.Do(ctx, c.B().Pttl().Key(CartKey("u1")).Build()).AsInt64(); err != nil || ms <= 29*24*3600*1000 || ms > 30*24*3600*1000 {
		t.Errorf("u1's cart kept for %d ms (%v), want 30 days as the cart service keeps it", ms, err)
	}
	users, err := c.Do(ctx, c.B().Smembers().Key(AdmitUsersKey("s1")).Build()).AsStrSlice()
	if slices.Sort(users); err != nil || !slices.Equal(users, []string{"u1", "u2"}) {
		t.Errorf("admitted users %v (%v), want u1 u2", users, err)
	}
	if left, _ := c.Do(ctx, c.B().Get().Key(AdmitStockKey("s1")).Build()).AsInt64(); left != 3 {
		t.Errorf("stock %d, want 3", left)
	}
}
