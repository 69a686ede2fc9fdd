package cart_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/router"
	"github.com/redis/rueidis"
	"github.com/valyala/fasthttp"

	"flashedge/backend/internal/cart"
	"flashedge/backend/internal/catalog"
	"flashedge/shared/httpapi"
	"flashedge/shared/keyspace"
	"flashedge/shared/kv/kvtest"
	"flashedge/shared/obs"
	"flashedge/shared/product"
	"flashedge/shared/upstream"
)

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// serve runs h on a real loopback listener and returns its address and a stop function (also
// run when the test ends; calling it twice is fine).
func serve(t testing.TB, h fasthttp.RequestHandler) (addr string, stop func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httpapi.NewServer(h, httpapi.ServerOptions{Name: "test"}, discard())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- httpapi.Serve(ctx, srv, ln, time.Second) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return ln.Addr().String(), stop
}

type env struct {
	t        *testing.T
	store    rueidis.Client
	products *catalog.Store
	addr     string
	client   *fasthttp.Client
	stopCat  func()

	mu         sync.Mutex
	catalogIDs []string // X-Request-ID of every request the catalog saw
}

// Where an env's cart service reads prices.
type pricing int

const (
	fromCatalog      pricing = iota // the catalog's batch route (CatalogPrices)
	fromStore                       // the store's documents through DoCache (StorePrices)
	fromStoreTracked                // the same, parses kept until a push drops them (the cart binary)
)

func (p pricing) String() string {
	return [...]string{"catalog", "store", "store tracked"}[p]
}

// newEnv starts a redis-server, a real catalog service and the cart service in front of it,
// pricing carts through the catalog's batch route.
func newEnv(t *testing.T) *env { return newEnvWith(t, fromCatalog) }

// newEnvWith is newEnv with carts priced as pricing says.
func newEnvWith(t *testing.T, pricing pricing) *env {
	t.Helper()
	srv := kvtest.Start(t)
	e := &env{t: t, store: srv.Client(t)}
	e.products = catalog.NewStore(e.store)
	ch, err := catalog.NewHandler(e.products, catalog.Options{AdminToken: "test-admin-token-0123"})
	if err != nil {
		t.Fatal(err)
	}
	catAddr, stopCat := serve(t, func(ctx *fasthttp.RequestCtx) {
		e.mu.Lock()
		e.catalogIDs = append(e.catalogIDs, string(ctx.Request.Header.Peek(obs.HeaderRequestID)))
		e.mu.Unlock()
		ch(ctx)
	})
	e.stopCat = stopCat
	pool, err := upstream.New(upstream.Options{Name: "catalog", Addrs: []string{catAddr}, Timeout: time.Second}, discard())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)

	var prices cart.Prices = cart.CatalogPrices(pool)
	switch pricing {
	case fromStore:
		// Its own client, as the cart binary has: the catalog's writes reach it as invalidations.
		prices = &cart.StorePrices{KV: srv.Client(t)}
	case fromStoreTracked:
		sp := &cart.StorePrices{Tracked: true}
		o := srv.Options()
		o.OnInvalidations = sp.Invalidate
		sp.KV = srv.ClientWith(t, o)
		prices = sp
	}
	r := router.New()
	cart.New(cart.NewStore(e.store), prices, cart.Options{Log: discard()}).Register(r)
	e.addr, _ = serve(t, httpapi.RequestIDs(r.Handler, obs.NewIDs()))
	e.client = &fasthttp.Client{}
	return e
}

func (e *env) product(name string, price, stock int64) string {
	e.t.Helper()
	p, err := e.products.Create(context.Background(), product.Input{Name: &name, Price: &price, Stock: &stock})
	if err != nil {
		e.t.Fatal(err)
	}
	return p.ID
}

// do sends a request to the cart service as user (no header when user is "") and returns the
// status and body.
func (e *env) do(method, path, user, body string, headers ...string) (int, []byte) {
	e.t.Helper()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://" + e.addr + path)
	req.Header.SetMethod(method)
	if user != "" {
		req.Header.Set(httpapi.HeaderUserID, user)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	if body != "" {
		req.SetBodyString(body)
	}
	if err := e.client.DoTimeout(req, resp, 5*time.Second); err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp.StatusCode(), append([]byte(nil), resp.Body()...)
}

func (e *env) view(user string) cart.View {
	e.t.Helper()
	st, body := e.do("GET", "/api/v1/cart", user, "")
	if st != 200 {
		e.t.Fatalf("GET cart of %s: %d %s", user, st, body)
	}
	return decodeView(e.t, body)
}

func decodeView(t *testing.T, body []byte) cart.View {
	t.Helper()
	var v cart.View
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("cart body %s: %v", body, err)
	}
	return v
}

// raw returns the stored cart hash of user.
func (e *env) raw(user string) map[string]string {
	e.t.Helper()
	m, err := e.store.Do(context.Background(), e.store.B().Hgetall().Key(keyspace.Cart(user)).Build()).AsStrMap()
	if err != nil {
		e.t.Fatal(err)
	}
	return m
}

func errCode(t *testing.T, body []byte) string {
	t.Helper()
	var e httpapi.ErrorBody
	if err := json.Unmarshal(body, &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
		t.Fatalf("body %s is not the contract's error shape", body)
	}
	return e.Error.Code
}

func TestPutValidation(t *testing.T) {
	e := newEnv(t)
	phone := e.product("Điện thoại", 5_000_000, 10)

	tests := []struct {
		name     string
		path     string
		body     string
		status   int
		code     string
		wantQty  string // stored quantity afterwards, "" for none
		wantLine bool
	}{
		{"add", "/api/v1/cart/items/" + phone, `{"quantity":2}`, 200, "", "2", true},
		{"change", "/api/v1/cart/items/" + phone, `{"quantity":5}`, 200, "", "5", true},
		{"max", "/api/v1/cart/items/" + phone, `{"quantity":99}`, 200, "", "99", true},
		{"above max", "/api/v1/cart/items/" + phone, `{"quantity":100}`, 422, "invalid_quantity", "99", true},
		{"negative", "/api/v1/cart/items/" + phone, `{"quantity":-1}`, 422, "invalid_quantity", "99", true},
		{"missing quantity", "/api/v1/cart/items/" + phone, `{}`, 422, "invalid_quantity", "99", true},
		{"fraction", "/api/v1/cart/items/" + phone, `{"quantity":1.5}`, 400, "malformed_json", "99", true},
		{"price sent by client", "/api/v1/cart/items/" + phone, `{"quantity":1,"price":1}`, 400, "malformed_json", "99", true},
		{"user id sent by client", "/api/v1/cart/items/" + phone, `{"quantity":1,"user_id":"u-bob"}`, 400, "malformed_json", "99", true},
		{"no body", "/api/v1/cart/items/" + phone, ``, 400, "empty_body", "99", true},
		{"unknown product", "/api/v1/cart/items/99999999", `{"quantity":1}`, 404, "product_not_found", "99", true},
		{"invalid product id", "/api/v1/cart/items/a.b", `{"quantity":1}`, 404, "product_not_found", "99", true},
		{"zero removes", "/api/v1/cart/items/" + phone, `{"quantity":0}`, 200, "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, body := e.do("PUT", tt.path, "u-alice", tt.body)
			if st != tt.status {
				t.Fatalf("PUT %s %s: %d %s, want %d", tt.path, tt.body, st, body, tt.status)
			}
			if tt.code != "" && errCode(t, body) != tt.code {
				t.Fatalf("PUT %s %s: body %s, want code %s", tt.path, tt.body, body, tt.code)
			}
			raw := e.raw("u-alice")
			if got, ok := raw[phone]; ok != tt.wantLine || got != tt.wantQty {
				t.Fatalf("after PUT %s: stored cart %v, want %s=%q", tt.body, raw, phone, tt.wantQty)
			}
			if len(raw) > 1 {
				t.Fatalf("after PUT %s: stored cart %v has extra lines", tt.body, raw)
			}
		})
	}
}

func TestViewPricesFromCatalog(t *testing.T) {
	e := newEnv(t)
	phone := e.product("Phone", 5_000_000, 10)
	pho := e.product("Phở bò", 45_000, 100)
	gone := e.product("Gone", 1, 1)

	if st, body := e.do("PUT", "/api/v1/cart/items/"+phone, "u-alice", `{"quantity":2}`); st != 200 {
		t.Fatalf("PUT phone: %d %s", st, body)
	}
	if st, body := e.do("PUT", "/api/v1/cart/items/"+gone, "u-alice", `{"quantity":1}`); st != 200 {
		t.Fatalf("PUT gone: %d %s", st, body)
	}
	st, body := e.do("PUT", "/api/v1/cart/items/"+pho, "u-alice", `{"quantity":3}`)
	if st != 200 {
		t.Fatalf("PUT pho: %d %s", st, body)
	}
	v := decodeView(t, body)
	if len(v.Items) != 3 || v.Total != 2*5_000_000+3*45_000+1 {
		t.Fatalf("view after PUTs: %+v", v)
	}
	want := cart.ViewItem{ProductID: pho, Name: "Phở bò", Quantity: 3, Price: 45_000}
	if v.Items[1] != want {
		t.Errorf("line %+v, want %+v", v.Items[1], want)
	}

	// The price changes in the catalog: the cart shows the new one; a product withdrawn from the
	// catalog disappears from the view and the total.
	newPrice := int64(4_000_000)
	if _, err := e.products.Update(context.Background(), phone, product.Input{Price: &newPrice}); err != nil {
		t.Fatal(err)
	}
	if err := e.products.Delete(context.Background(), gone); err != nil {
		t.Fatal(err)
	}
	v = e.view("u-alice")
	if len(v.Items) != 2 || v.Total != 2*4_000_000+3*45_000 || v.Items[0].Price != 4_000_000 {
		t.Fatalf("view after price change and withdrawal: %+v", v)
	}

	st, body = e.do("DELETE", "/api/v1/cart/items/"+phone, "u-alice", "")
	if v = decodeView(t, body); st != 200 || len(v.Items) != 1 || v.Total != 3*45_000 {
		t.Fatalf("DELETE phone: %d %s", st, body)
	}
	// Deleting what is not there is fine.
	if st, body := e.do("DELETE", "/api/v1/cart/items/"+phone, "u-alice", ""); st != 200 {
		t.Fatalf("DELETE absent: %d %s", st, body)
	}
	if v := e.view("u-nobody"); len(v.Items) != 0 || v.Total != 0 || v.Items == nil {
		t.Fatalf("empty cart: %+v, want items [] and total 0", v)
	}
}

// TestAuthorization: without a verified user nothing is served, and every operation touches
// only the header user's cart.
func TestAuthorization(t *testing.T) {
	e := newEnv(t)
	p := e.product("Thing", 100, 10)
	if st, _ := e.do("PUT", "/api/v1/cart/items/"+p, "u-bob", `{"quantity":7}`); st != 200 {
		t.Fatal("bob's PUT failed")
	}

	routes := []struct{ method, path, body string }{
		{"GET", "/api/v1/cart", ""},
		{"PUT", "/api/v1/cart/items/" + p, `{"quantity":1}`},
		{"DELETE", "/api/v1/cart/items/" + p, ""},
		{"GET", "/internal/v1/cart", ""},
		{"DELETE", "/internal/v1/cart", ""},
	}
	for _, r := range routes {
		for _, user := range []string{"", "u-{bob}", "U-BOB", "u-bob x"} {
			t.Run(fmt.Sprintf("%s %s as %q", r.method, r.path, user), func(t *testing.T) {
				st, body := e.do(r.method, r.path, user, r.body)
				if st != 401 || errCode(t, body) != "unauthorized" {
					t.Fatalf("%s %s without a valid user: %d %s, want 401 unauthorized", r.method, r.path, st, body)
				}
			})
		}
	}

	// Alice's every operation leaves bob's cart as it was.
	for _, r := range routes {
		if st, body := e.do(r.method, r.path, "u-alice", r.body); st >= 300 {
			t.Fatalf("alice %s %s: %d %s", r.method, r.path, st, body)
		}
		if raw := e.raw("u-bob"); raw[p] != "7" || len(raw) != 1 {
			t.Fatalf("after alice's %s %s bob's cart is %v, want %s=7", r.method, r.path, raw, p)
		}
	}
	if v := e.view("u-bob"); len(v.Items) != 1 || v.Items[0].Quantity != 7 {
		t.Fatalf("bob's view: %+v", v)
	}
}

func TestCartFull(t *testing.T) {
	e := newEnv(t)
	var ids []string
	for i := range cart.MaxLines + 1 {
		ids = append(ids, e.product("P"+strconv.Itoa(i), 10, 10))
	}
	for _, id := range ids[:cart.MaxLines] {
		if st, body := e.do("PUT", "/api/v1/cart/items/"+id, "u-alice", `{"quantity":1}`); st != 200 {
			t.Fatalf("PUT %s: %d %s", id, st, body)
		}
	}
	st, body := e.do("PUT", "/api/v1/cart/items/"+ids[cart.MaxLines], "u-alice", `{"quantity":1}`)
	if st != 422 || errCode(t, body) != "cart_full" {
		t.Fatalf("line %d: %d %s, want 422 cart_full", cart.MaxLines+1, st, body)
	}
	// Changing a line already there still works in a full cart.
	if st, body := e.do("PUT", "/api/v1/cart/items/"+ids[0], "u-alice", `{"quantity":3}`); st != 200 {
		t.Fatalf("change in full cart: %d %s", st, body)
	}
}

// TestCartExpires: a cart is kept for cart.TTL after its last change, not for ever (anyone can
// fill one under any name), and a change starts the time again.
func TestCartExpires(t *testing.T) {
	e := newEnv(t)
	id := e.product("Quạt", 10, 10)
	key := keyspace.Cart("u-idle")
	ttl := func() time.Duration {
		ms, err := e.store.Do(context.Background(), e.store.B().Pttl().Key(key).Build()).AsInt64()
		if err != nil {
			t.Fatal(err)
		}
		return time.Duration(ms) * time.Millisecond
	}
	if st, body := e.do("PUT", "/api/v1/cart/items/"+id, "u-idle", `{"quantity":1}`); st != 200 {
		t.Fatalf("add: %d %s", st, body)
	}
	if got := ttl(); got <= cart.TTL-time.Minute || got > cart.TTL {
		t.Fatalf("cart kept for %v after an add, want %v", got, cart.TTL)
	}
	e.store.Do(context.Background(), e.store.B().Pexpire().Key(key).Milliseconds(60_000).Build())
	if st, body := e.do("PUT", "/api/v1/cart/items/"+id, "u-idle", `{"quantity":2}`); st != 200 {
		t.Fatalf("change: %d %s", st, body)
	}
	if got := ttl(); got <= cart.TTL-time.Minute {
		t.Fatalf("cart kept for %v after a change, want %v again", got, cart.TTL)
	}
}

func TestInternalRoutes(t *testing.T) {
	e := newEnv(t)
	a, b, c := e.product("A", 10, 10), e.product("B", 20, 10), e.product("C", 30, 10)
	for id, q := range map[string]int{a: 2, b: 3, c: 1} {
		if st, body := e.do("PUT", "/api/v1/cart/items/"+id, "u-alice", `{"quantity":`+strconv.Itoa(q)+`}`); st != 200 {
			t.Fatalf("PUT %s: %d %s", id, st, body)
		}
	}
	st, body := e.do("GET", "/internal/v1/cart", "u-alice", "")
	want := fmt.Sprintf(`{"items":[{"product_id":%q,"quantity":2},{"product_id":%q,"quantity":3},{"product_id":%q,"quantity":1}]}`+"\n", a, b, c)
	if st != 200 || string(body) != want {
		t.Fatalf("GET /internal/v1/cart: %d %s, want %s", st, body, want)
	}

	// Subtracting an order of a=2, b=1 (as if b was raised from 1 to 3 during the checkout).
	tests := []struct {
		name   string
		body   string
		status int
		want   map[string]string
	}{
		{"bad line", `{"items":[{"product_id":"` + a + `","quantity":0}]}`, 400, map[string]string{a: "2", b: "3", c: "1"}},
		{"unknown field", `{"items":[],"user_id":"u-bob"}`, 400, map[string]string{a: "2", b: "3", c: "1"}},
		{"subtract", `{"items":[{"product_id":"` + a + `","quantity":2},{"product_id":"` + b + `","quantity":1}]}`, 204, map[string]string{b: "2", c: "1"}},
		{"subtract again is harmless", `{"items":[{"product_id":"` + a + `","quantity":2}]}`, 204, map[string]string{b: "2", c: "1"}},
		{"subtract for an order", `{"order_id":"17","items":[{"product_id":"` + b + `","quantity":1}]}`, 204, map[string]string{b: "1", c: "1"}},
		{"retry for the same order changes nothing", `{"order_id":"17","items":[{"product_id":"` + b + `","quantity":1}]}`, 204, map[string]string{b: "1", c: "1"}},
		{"bad order id", `{"order_id":"a.b","items":[]}`, 400, map[string]string{b: "1", c: "1"}},
		{"clear", ``, 204, map[string]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, body := e.do("DELETE", "/internal/v1/cart", "u-alice", tt.body)
			if st != tt.status {
				t.Fatalf("DELETE /internal/v1/cart %s: %d %s, want %d", tt.body, st, body, tt.status)
			}
			if raw := e.raw("u-alice"); fmt.Sprint(raw) != fmt.Sprint(tt.want) {
				t.Fatalf("after %s: cart %v, want %v", tt.name, raw, tt.want)
			}
		})
	}
}

func TestCatalogDownAndRequestIDs(t *testing.T) {
	e := newEnv(t)
	p := e.product("A", 10, 10)
	if st, body := e.do("PUT", "/api/v1/cart/items/"+p, "u-alice", `{"quantity":1}`, obs.HeaderRequestID, "trace-me-1"); st != 200 {
		t.Fatalf("PUT: %d %s", st, body)
	}
	e.mu.Lock()
	seen := append([]string(nil), e.catalogIDs...)
	e.mu.Unlock()
	if len(seen) == 0 || seen[0] != "trace-me-1" {
		t.Fatalf("catalog saw request ids %v, want trace-me-1 passed on", seen)
	}

	e.stopCat()
	for _, r := range []struct{ method, path, body string }{
		{"GET", "/api/v1/cart", ""},
		{"PUT", "/api/v1/cart/items/" + p, `{"quantity":2}`},
	} {
		st, body := e.do(r.method, r.path, "u-alice", r.body)
		if st != 503 || errCode(t, body) != "catalog_unavailable" {
			t.Fatalf("%s %s with the catalog down: %d %s, want 503 catalog_unavailable", r.method, r.path, st, body)
		}
	}
	// What needs no catalog keeps working.
	if st, body := e.do("GET", "/internal/v1/cart", "u-alice", ""); st != 200 {
		t.Fatalf("internal read with the catalog down: %d %s", st, body)
	}
	if raw := e.raw("u-alice"); raw[p] != "1" {
		t.Fatalf("a failed PUT changed the cart: %v", raw)
	}
}

// TestOneCatalogCallPerRequest: however many lines a cart holds, an add, a view and a removal
// each make exactly one catalog call (the batch read), and the answer prices every line.
func TestOneCatalogCallPerRequest(t *testing.T) {
	e := newEnv(t)
	var ids []string
	for i := range 12 {
		ids = append(ids, e.product(fmt.Sprintf("P%d", i), int64(100+i), 50))
	}
	calls := func() int {
		e.mu.Lock()
		defer e.mu.Unlock()
		return len(e.catalogIDs)
	}
	for i, id := range ids {
		before := calls()
		st, body := e.do("PUT", "/api/v1/cart/items/"+id, "u-carol", `{"quantity":2}`)
		if st != 200 {
			t.Fatalf("PUT %s: %d %s", id, st, body)
		}
		if v := decodeView(t, body); len(v.Items) != i+1 || calls()-before != 1 {
			t.Fatalf("add %d: %d lines after %d catalog calls, want %d lines after 1", i+1, len(v.Items), calls()-before, i+1)
		}
	}
	before := calls()
	v := e.view("u-carol")
	var want int64
	for i := range ids {
		want += 2 * int64(100+i)
	}
	if calls()-before != 1 || v.Total != want {
		t.Fatalf("view: %d catalog calls, total %d; want 1 and %d", calls()-before, v.Total, want)
	}
	before = calls()
	if st, body := e.do("DELETE", "/api/v1/cart/items/"+ids[0], "u-carol", ""); st != 200 || calls()-before != 1 {
		t.Fatalf("DELETE: %d %s after %d catalog calls, want 200 after 1", st, body, calls()-before)
	}
	if st, body := e.do("PUT", "/api/v1/cart/items/nope", "u-carol", `{"quantity":1}`); st != 404 || errCode(t, body) != "product_not_found" {
		t.Fatalf("PUT unknown product: %d %s, want 404 product_not_found", st, body)
	}
}

// TestPricesFromTheStore: with StorePrices (the cart binary's wiring, and without the pushes
// wired) an add and a view are priced from the catalog's documents through the client-side
// cache without a single call to the catalog service, an unknown product is still refused, and
// a price the catalog changes or a product it withdraws reaches the next view through the
// store's invalidation push.
func TestPricesFromTheStore(t *testing.T) {
	for _, pricing := range []pricing{fromStore, fromStoreTracked} {
		t.Run(pricing.String(), func(t *testing.T) {
			e := newEnvWith(t, pricing)
			id := e.product("Khăn lụa", 120000, 10)
			other := e.product("Quạt giấy", 30000, 10)
			if st, body := e.do("PUT", "/api/v1/cart/items/"+id, "u-lan", `{"quantity":2}`); st != 200 {
				t.Fatalf("add: %d %s", st, body)
			}
			st, body := e.do("PUT", "/api/v1/cart/items/"+other, "u-lan", `{"quantity":1}`)
			if st != 200 {
				t.Fatalf("second add: %d %s", st, body)
			}
			if v := decodeView(t, body); len(v.Items) != 2 || v.Total != 2*120000+30000 || v.Items[0].Name != "Khăn lụa" {
				t.Fatalf("view after two adds = %+v, want both lines and total 270000", v)
			}
			if st, body := e.do("PUT", "/api/v1/cart/items/99999999", "u-lan", `{"quantity":1}`); st != 404 || errCode(t, body) != "product_not_found" {
				t.Fatalf("unknown product: %d %s, want 404 product_not_found", st, body)
			}
			// Changes reach the view: a price, a name, a withdrawal (each in an add's answer too).
			price, name := int64(99000), "Khăn lụa tơ tằm"
			if _, err := e.products.Update(context.Background(), id, product.Input{Price: &price, Name: &name}); err != nil {
				t.Fatal(err)
			}
			e.eventually("the changed price and name", func() bool {
				v := e.view("u-lan")
				return v.Total == 2*99000+30000 && v.Items[0].Name == name
			})
			if err := e.products.Delete(context.Background(), other); err != nil {
				t.Fatal(err)
			}
			e.eventually("the withdrawal", func() bool {
				st, body := e.do("PUT", "/api/v1/cart/items/"+id, "u-lan", `{"quantity":3}`)
				v := decodeView(t, body)
				return st == 200 && len(v.Items) == 1 && v.Total == 3*99000
			})
			e.mu.Lock()
			defer e.mu.Unlock()
			if len(e.catalogIDs) != 0 {
				t.Fatalf("the catalog service was called %d times, want 0 (prices come from the store)", len(e.catalogIDs))
			}
		})
	}
}

// eventually polls cond for up to 10s.
func (e *env) eventually(what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("%s did not show within 10s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
