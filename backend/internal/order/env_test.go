package order_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fasthttp/router"
	"github.com/redis/rueidis"
	"github.com/valyala/fasthttp"

	"flashedge/backend/internal/cart"
	"flashedge/backend/internal/catalog"
	"flashedge/backend/internal/order"
	"flashedge/shared/httpapi"
	"flashedge/shared/keyspace"
	"flashedge/shared/kv/kvtest"
	"flashedge/shared/obs"
	"flashedge/shared/product"
	"flashedge/shared/upstream"
)

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// serve runs h on a real loopback listener until the test ends and returns its address.
func serve(t testing.TB, h fasthttp.RequestHandler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httpapi.NewServer(h, httpapi.ServerOptions{Name: "test"}, discard())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- httpapi.Serve(ctx, srv, ln, time.Second) }()
	t.Cleanup(func() { cancel(); <-done })
	return ln.Addr().String()
}

func pool(t testing.TB, name, addr string) *upstream.Pool {
	t.Helper()
	p, err := upstream.New(upstream.Options{Name: name, Addrs: []string{addr}, Timeout: 5 * time.Second, Retries: -1}, discard())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// hold makes the catalog wait before answering, so a checkout can be caught while it runs.
type hold struct {
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func (h *hold) open() { h.once.Do(func() { close(h.release) }) }

// env is the order service with a real cart service, a real catalog service and a real
// redis-server behind it, each on its own loopback port.
type env struct {
	t        testing.TB
	kv       rueidis.Client
	products *catalog.Store
	order    string
	cart     string
	client   *fasthttp.Client

	hold        atomic.Pointer[hold]
	catalogFail atomic.Bool // the catalog answers 500
	mu          sync.Mutex
	seenIDs     map[string][]string // service -> X-Request-IDs it received
}

func newEnv(t testing.TB) *env {
	t.Helper()
	srv := kvtest.Start(t)
	e := &env{t: t, kv: srv.Client(t), client: &fasthttp.Client{}, seenIDs: map[string][]string{}}
	e.products = catalog.NewStore(e.kv)
	ch, err := catalog.NewHandler(e.products, catalog.Options{AdminToken: "test-admin-token-0123"})
	if err != nil {
		t.Fatal(err)
	}
	catAddr := serve(t, func(ctx *fasthttp.RequestCtx) {
		e.see("catalog", ctx)
		if h := e.hold.Load(); h != nil {
			select {
			case h.entered <- struct{}{}:
			default:
			}
			<-h.release
		}
		if e.catalogFail.Load() {
			httpapi.WriteError(ctx, 500, "internal", "test failure")
			return
		}
		ch(ctx)
	})

	cr := router.New()
	cart.New(cart.NewStore(e.kv), cart.CatalogPrices(pool(t, "catalog", catAddr)), cart.Options{Log: discard()}).Register(cr)
	e.cart = serve(t, httpapi.RequestIDs(func(ctx *fasthttp.RequestCtx) { e.see("cart", ctx); cr.Handler(ctx) }, obs.NewIDs()))

	svc, err := order.New(order.NewStore(e.kv), pool(t, "cart", e.cart), pool(t, "catalog", catAddr), order.Options{Log: discard()})
	if err != nil {
		t.Fatal(err)
	}
	or := router.New()
	svc.Register(or)
	e.order = serve(t, httpapi.RequestIDs(or.Handler, obs.NewIDs()))
	return e
}

func (e *env) see(service string, ctx *fasthttp.RequestCtx) {
	e.mu.Lock()
	e.seenIDs[service] = append(e.seenIDs[service], string(ctx.Request.Header.Peek(obs.HeaderRequestID)))
	e.mu.Unlock()
}

func (e *env) holdCatalog() *hold {
	h := &hold{entered: make(chan struct{}, 1), release: make(chan struct{})}
	e.hold.Store(h)
	e.t.Cleanup(h.open)
	return h
}

func (e *env) product(name string, price, stock int64) string {
	e.t.Helper()
	p, err := e.products.Create(context.Background(), product.Input{Name: &name, Price: &price, Stock: &stock})
	if err != nil {
		e.t.Fatal(err)
	}
	return p.ID
}

func (e *env) stock(id string) int64 {
	e.t.Helper()
	n, err := e.kv.Do(context.Background(), e.kv.B().Get().Key(keyspace.ProductStock(id)).Build()).AsInt64()
	if err != nil {
		e.t.Fatalf("stock of %s: %v", id, err)
	}
	return n
}

func (e *env) cartLines(user string) map[string]string {
	e.t.Helper()
	m, err := e.kv.Do(context.Background(), e.kv.B().Hgetall().Key(keyspace.Cart(user)).Build()).AsStrMap()
	if err != nil {
		e.t.Fatal(err)
	}
	return m
}

type response struct {
	status int
	body   []byte
	header *fasthttp.ResponseHeader
}

// call sends a request to addr as user (no user header when user is ""); headers are name,
// value pairs.
func (e *env) call(addr, method, path, user, body string, headers ...string) response {
	e.t.Helper()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://" + addr + path)
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
	if err := e.client.DoTimeout(req, resp, 15*time.Second); err != nil {
		e.t.Errorf("%s %s: %v", method, path, err)
		return response{}
	}
	r := response{status: resp.StatusCode(), body: append([]byte(nil), resp.Body()...), header: &fasthttp.ResponseHeader{}}
	resp.Header.CopyTo(r.header)
	return r
}

func (e *env) addToCart(user, id string, qty int) {
	e.t.Helper()
	if r := e.call(e.cart, "PUT", "/api/v1/cart/items/"+id, user, `{"quantity":`+strconv.Itoa(qty)+`}`); r.status != 200 {
		e.t.Fatalf("add %d of %s to %s's cart: %d %s", qty, id, user, r.status, r.body)
	}
}

func (e *env) checkout(user, key, body string) response {
	e.t.Helper()
	var h []string
	if key != "" {
		h = []string{httpapi.HeaderIdempotencyKey, key}
	}
	return e.call(e.order, "POST", "/api/v1/orders", user, body, h...)
}

func (e *env) orders(user string) []order.Order {
	e.t.Helper()
	r := e.call(e.order, "GET", "/api/v1/orders?limit=100", user, "")
	if r.status != 200 {
		e.t.Fatalf("list %s's orders: %d %s", user, r.status, r.body)
	}
	var page struct {
		Items      []order.Order `json:"items"`
		NextCursor string        `json:"next_cursor"`
	}
	if err := json.Unmarshal(r.body, &page); err != nil {
		e.t.Fatalf("list body %s: %v", r.body, err)
	}
	return page.Items
}

func decodeOrder(t *testing.T, body []byte) order.Order {
	t.Helper()
	var o order.Order
	if err := json.Unmarshal(body, &o); err != nil {
		t.Fatalf("order body %s: %v", body, err)
	}
	return o
}

func errorOf(t *testing.T, body []byte) httpapi.ErrorDetail {
	t.Helper()
	var e httpapi.ErrorBody
	if err := json.Unmarshal(body, &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
		t.Fatalf("body %s is not the contract's error shape", body)
	}
	return e.Error
}
