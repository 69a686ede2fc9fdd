package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/redis/rueidis"
	"github.com/valyala/fasthttp"

	"flashedge/edge/internal/productcache"
	"flashedge/shared/httpapi"
	"flashedge/shared/keyspace"
	"flashedge/shared/kv/kvtest"
	"flashedge/shared/metrics"
	"flashedge/shared/obs"
	"flashedge/shared/product"
)

const testAdminToken = "test-admin-token-0123456789"

// recordingForwarder stands in for a backend pool in routing tests: it records what reached it
// and answers 299 so the test can tell a forwarded request from one answered at the edge.
type recordingForwarder struct{ got []string }

func (f *recordingForwarder) Forward(ctx *fasthttp.RequestCtx) {
	f.got = append(f.got, string(ctx.Method())+" "+string(ctx.RequestURI())+" user="+string(ctx.Request.Header.Peek("X-Flashedge-User")))
	ctx.SetStatusCode(299)
}

type staticSessions struct{}

func (staticSessions) FromRequest(ctx *fasthttp.RequestCtx) (string, error) {
	if string(ctx.Request.Header.Peek("Authorization")) == "Bearer good" {
		return "u-alice", nil
	}
	return "", io.EOF
}

type fixture struct {
	tb      testing.TB
	kv      rueidis.Client
	g       *Gateway
	pc      *productcache.Cache
	catalog *recordingForwarder
	cart    *recordingForwarder
}

func newGateway(tb testing.TB) *fixture {
	tb.Helper()
	return newGatewayWith(tb, nil)
}

func newGatewayWith(tb testing.TB, reg *metrics.Registry) *fixture {
	tb.Helper()
	srv := kvtest.Start(tb)
	var hook atomic.Pointer[productcache.Cache]
	o := srv.Options()
	o.OnInvalidations = func(msgs []rueidis.RedisMessage) {
		if c := hook.Load(); c != nil {
			c.Invalidate(msgs)
		}
	}
	cl := srv.ClientWith(tb, o)
	pc, err := productcache.New(cl, productcache.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pc.Close)
	hook.Store(pc)
	doc := product.Marshal(product.Doc{ID: "00000001", Name: "Tai nghe không dây", Description: "Pin 30 giờ, chống ồn.", Price: 450000, Currency: "VND", Image: "/img/headphones.svg"})
	ctx := context.Background()
	for _, c := range []struct{ k, v string }{
		{keyspace.Product("00000001"), string(doc)},
		{keyspace.ProductStock("00000001"), "42"},
	} {
		if err := cl.Do(ctx, cl.B().Set().Key(c.k).Value(c.v).Build()).Error(); err != nil {
			tb.Fatal(err)
		}
	}
	cl.Do(ctx, cl.B().Zadd().Key(keyspace.ProductIndex()).ScoreMember().ScoreMember(0, "00000001").Build())
	f := &fixture{tb: tb, kv: cl, pc: pc, catalog: &recordingForwarder{}, cart: &recordingForwarder{}}
	f.g, err = New(Config{
		Products: pc, Catalog: f.catalog, Cart: f.cart, Sessions: staticSessions{},
		AdminToken: testAdminToken, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), IDs: obs.NewIDs(),
		Metrics: reg,
	})
	if err != nil {
		tb.Fatal(err)
	}
	return f
}

// do runs one request through the handler, read from its wire form as the server reads it (the
// hot paths look at the raw header bytes).
func (f *fixture) do(method, uri string, headers map[string]string, body string) *fasthttp.Response {
	var ctx fasthttp.RequestCtx
	readRequest(f.tb, &ctx.Request, method, uri, headers, body)
	f.g.Handler()(&ctx)
	var resp fasthttp.Response
	ctx.Response.CopyTo(&resp)
	return &resp
}

// readRequest fills req from the HTTP/1.1 wire form of the given request.
func readRequest(tb testing.TB, req *fasthttp.Request, method, uri string, headers map[string]string, body string) {
	tb.Helper()
	var b strings.Builder
	b.WriteString(method + " " + uri + " HTTP/1.1\r\nHost: edge.test\r\n")
	for k, v := range headers {
		b.WriteString(k + ": " + v + "\r\n")
	}
	if body != "" || method == "POST" || method == "PUT" {
		b.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\n")
	}
	b.WriteString("\r\n" + body)
	if err := req.Read(bufio.NewReader(strings.NewReader(b.String()))); err != nil {
		tb.Fatalf("read request %s %s: %v", method, uri, err)
	}
}

// TestForgedUserHeaderDropped: a client's X-Flashedge-User never survives the edge's hot product
// path, whatever its case, read from the wire or built in memory.
func TestForgedUserHeaderDropped(t *testing.T) {
	f := newGateway(t)
	for _, name := range []string{"X-Flashedge-User", "x-flashedge-user", "X-FLASHEDGE-USER"} {
		var ctx fasthttp.RequestCtx
		readRequest(t, &ctx.Request, "GET", "/api/v1/products/00000001", map[string]string{name: "u-bob", "Accept": "application/json"}, "")
		f.g.Handler()(&ctx)
		if got := ctx.Request.Header.Peek(httpapiHeaderUser); len(got) != 0 || ctx.Response.StatusCode() != 200 {
			t.Errorf("wire header %s: after the read the request holds user %q (status %d), want none", name, got, ctx.Response.StatusCode())
		}
		var mem fasthttp.RequestCtx
		mem.Request.Header.SetMethod("GET")
		mem.Request.SetRequestURI("/api/v1/products/00000001")
		mem.Request.Header.Set(name, "u-bob")
		f.g.Handler()(&mem)
		if got := mem.Request.Header.Peek(httpapiHeaderUser); len(got) != 0 {
			t.Errorf("in-memory header %s: after the read the request holds user %q, want none", name, got)
		}
	}
}

const httpapiHeaderUser = "X-Flashedge-User"

func TestRoutes(t *testing.T) {
	f := newGateway(t)
	admin := map[string]string{"Authorization": "Bearer " + testAdminToken}
	tests := []struct {
		name       string
		method     string
		uri        string
		headers    map[string]string
		wantStatus int
		wantCode   string // error code, when an error is expected
		wantBody   string // substring of the body
	}{
		{"product", "GET", "/api/v1/products/00000001", nil, 200, "", `"stock_state":"in_stock"`},
		{"unknown product", "GET", "/api/v1/products/99999999", nil, 404, "not_found", ""},
		{"bad product id", "GET", "/api/v1/products/%3Cscript%3E", nil, 400, "invalid_id", ""},
		{"list", "GET", "/api/v1/products?limit=5", nil, 200, "", `"next_cursor":""`},
		{"bad cursor", "GET", "/api/v1/products?cursor=@@", nil, 400, "invalid_cursor", ""},
		{"bad limit", "GET", "/api/v1/products?limit=1000", nil, 400, "invalid_limit", ""},
		{"negative limit", "GET", "/api/v1/products?limit=-1", nil, 400, "invalid_limit", ""},
		{"no route", "GET", "/api/v1/nope", nil, 404, "route_not_found", ""},
		{"wrong method", "DELETE", "/api/v1/products", nil, 405, "method_not_allowed", ""},
		{"admin without token", "PUT", "/api/v1/admin/products/00000001", nil, 401, "unauthorized", ""},
		{"admin wrong token", "PUT", "/api/v1/admin/products/00000001", map[string]string{"Authorization": "Bearer nope"}, 401, "unauthorized", ""},
		{"admin forwarded", "PUT", "/api/v1/admin/products/00000001", admin, 299, "", ""},
		{"cart without session", "GET", "/api/v1/cart", nil, 401, "unauthorized", ""},
		{"cart forged header only", "GET", "/api/v1/cart", map[string]string{"X-Flashedge-User": "u-bob"}, 401, "unauthorized", ""},
		{"cart with session", "GET", "/api/v1/cart", map[string]string{"Authorization": "Bearer good", "X-Flashedge-User": "u-bob"}, 299, "", ""},
		{"orders not configured", "GET", "/api/v1/orders", map[string]string{"Authorization": "Bearer good"}, 503, "service_unavailable", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := f.do(tt.method, tt.uri, tt.headers, "")
			if resp.StatusCode() != tt.wantStatus {
				t.Fatalf("%s %s = %d %s, want %d", tt.method, tt.uri, resp.StatusCode(), resp.Body(), tt.wantStatus)
			}
			if len(resp.Header.Peek("X-Request-ID")) == 0 {
				t.Errorf("%s %s: no X-Request-ID", tt.method, tt.uri)
			}
			if tt.wantCode != "" {
				var e struct {
					Error struct{ Code, Message string }
				}
				if err := json.Unmarshal(resp.Body(), &e); err != nil || e.Error.Code != tt.wantCode || e.Error.Message == "" {
					t.Fatalf("%s %s body %s: want JSON error code %q", tt.method, tt.uri, resp.Body(), tt.wantCode)
				}
			}
			if tt.wantBody != "" && !strings.Contains(string(resp.Body()), tt.wantBody) {
				t.Fatalf("%s %s body %s: want it to contain %s", tt.method, tt.uri, resp.Body(), tt.wantBody)
			}
		})
	}
	// The user header reaching the cart is the verified one, never the client's.
	if len(f.cart.got) != 1 || !strings.HasSuffix(f.cart.got[0], "user=u-alice") {
		t.Fatalf("cart saw %v, want one request as u-alice", f.cart.got)
	}
}

func TestRequestIDEchoed(t *testing.T) {
	f := newGateway(t)
	resp := f.do("GET", "/api/v1/products/00000001", map[string]string{"X-Request-ID": "client-id-1"}, "")
	if got := string(resp.Header.Peek("X-Request-ID")); got != "client-id-1" {
		t.Fatalf("X-Request-ID = %q, want the client's", got)
	}
	resp = f.do("GET", "/api/v1/products/00000001", map[string]string{"X-Request-ID": "bad id with spaces"}, "")
	if got := string(resp.Header.Peek("X-Request-ID")); got == "" || strings.Contains(got, " ") {
		t.Fatalf("X-Request-ID = %q, want a fresh id", got)
	}
}

// idRecorder records the X-Request-ID each forwarded request carries.
type idRecorder struct{ ids []string }

func (f *idRecorder) Forward(ctx *fasthttp.RequestCtx) {
	f.ids = append(f.ids, string(ctx.Request.Header.Peek("X-Request-ID")))
	ctx.SetStatusCode(202)
}

// TestRequestIDReachesBackends: whatever path forwards a request (the router's routes, or Fast
// through WithRequestID), the backend gets the id the answer carries, a fresh one or the
// client's; answers from memory set it on the answer only.
func TestRequestIDReachesBackends(t *testing.T) {
	srv := kvtest.Start(t)
	pc, err := productcache.New(srv.Client(t), productcache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pc.Close)
	routed, fast := &idRecorder{}, &idRecorder{}
	fastFwd := WithRequestID(fast)
	g, err := New(Config{
		Products: pc, Catalog: routed, Cart: routed, Sessions: staticSessions{},
		AdminToken: testAdminToken, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), IDs: obs.NewIDs(),
		Fast: func(ctx *fasthttp.RequestCtx, _, _ []byte) bool {
			if string(ctx.Path()) != "/fast" {
				return false
			}
			fastFwd.Forward(ctx)
			return true
		},
		FastRoute: "/fast",
	})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{tb: t, g: g}
	tests := []struct {
		name, method, path, clientID string
		fwd                          *idRecorder
	}{
		{"routed, fresh id", "GET", "/api/v1/cart", "", routed},
		{"routed, client id", "GET", "/api/v1/cart", "client-id-7", routed},
		{"fast, fresh id", "POST", "/fast", "", fast},
		{"fast, client id", "POST", "/fast", "client-id-8", fast},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := map[string]string{"Authorization": "Bearer good"}
			if tt.clientID != "" {
				h["X-Request-ID"] = tt.clientID
			}
			n := len(tt.fwd.ids)
			resp := f.do(tt.method, tt.path, h, "")
			answer := string(resp.Header.Peek("X-Request-ID"))
			if len(tt.fwd.ids) != n+1 {
				t.Fatalf("%s %s: forwarded %d times, want once", tt.method, tt.path, len(tt.fwd.ids)-n)
			}
			got := tt.fwd.ids[n]
			if answer == "" || got != answer || (tt.clientID != "" && got != tt.clientID) {
				t.Fatalf("%s %s: backend saw X-Request-ID %q, answer carries %q, client sent %q", tt.method, tt.path, got, answer, tt.clientID)
			}
		})
	}
}

func TestProductHitAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under -race")
	}
	f := newGateway(t)
	h := f.g.Handler()
	var ctx fasthttp.RequestCtx
	readRequest(t, &ctx.Request, "GET", "/api/v1/products/00000001", map[string]string{"Accept": "application/json"}, "")
	h(&ctx) // fill the cache
	for range 100 {
		ctx.Response.Reset()
		h(&ctx)
	}
	// AllocsPerRun counts every goroutine's allocations, and rueidis runs
	// background goroutines (lazy connection set-up, buffer flushes): take the best of three.
	allocs := 1e9
	for range 3 {
		allocs = min(allocs, testing.AllocsPerRun(500, func() {
			ctx.Response.Reset()
			h(&ctx)
		}))
	}
	if ctx.Response.StatusCode() != 200 {
		t.Fatalf("status %d", ctx.Response.StatusCode())
	}
	if allocs > 0 {
		t.Fatalf("product read hit allocates %v times per request, want 0", allocs)
	}
}

// BenchmarkProductRead measures the edge's product read handler in memory (no network) on a
// cache hit, with a request read from its wire form: routing, request id, access-log sampling,
// cache lookup and body copy.
func BenchmarkProductRead(b *testing.B) {
	f := newGateway(b)
	h := f.g.Handler()
	var warm fasthttp.RequestCtx
	warm.Request.Header.SetMethod("GET")
	warm.Request.SetRequestURI("/api/v1/products/00000001")
	h(&warm)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var ctx fasthttp.RequestCtx
		readRequest(b, &ctx.Request, "GET", "/api/v1/products/00000001", map[string]string{"Accept": "application/json"}, "")
		for pb.Next() {
			ctx.Response.Reset()
			h(&ctx)
		}
	})
}

// TestHTTPCaching: product and catalog-page answers carry a strong ETag and Cache-Control, a
// matching If-None-Match answers 304 without a body, and a large page comes compressed.
func TestHTTPCaching(t *testing.T) {
	f := newGateway(t)
	plain := f.do("GET", "/api/v1/products/00000001", nil, "")
	etag := string(plain.Header.Peek("ETag"))
	if len(etag) < 10 || etag[0] != '"' || string(plain.Header.Peek("Cache-Control")) != CacheProducts {
		t.Fatalf("product: ETag %q, Cache-Control %q; want a strong ETag and %q", etag, plain.Header.Peek("Cache-Control"), CacheProducts)
	}
	nm := f.do("GET", "/api/v1/products/00000001", map[string]string{"If-None-Match": etag}, "")
	if nm.StatusCode() != 304 || len(nm.Body()) != 0 || string(nm.Header.Peek("ETag")) != etag {
		t.Fatalf("If-None-Match %s: %d with %d bytes, ETag %q; want 304, none, the same ETag", etag, nm.StatusCode(), len(nm.Body()), nm.Header.Peek("ETag"))
	}
	// A page large enough to compress: 30 products.
	ctx := context.Background()
	cl := f.kv
	for i := 2; i <= 30; i++ {
		id := fmt.Sprintf("%08d", i)
		doc := product.Marshal(product.Doc{ID: id, Name: "Sản phẩm " + id, Description: "Mô tả dài của sản phẩm " + id, Price: 1000, Currency: "VND", Image: "/img/x.svg"})
		cl.Do(ctx, cl.B().Set().Key(keyspace.Product(id)).Value(string(doc)).Build())
		cl.Do(ctx, cl.B().Zadd().Key(keyspace.ProductIndex()).ScoreMember().ScoreMember(0, id).Build())
	}
	page := f.do("GET", "/api/v1/products?limit=30", map[string]string{"Accept-Encoding": "gzip, deflate, br"}, "")
	if page.StatusCode() != 200 || string(page.Header.Peek("Content-Encoding")) != "br" || string(page.Header.Peek("Vary")) != "Accept-Encoding" {
		t.Fatalf("page: %d, Content-Encoding %q, Vary %q; want 200, br, Accept-Encoding", page.StatusCode(), page.Header.Peek("Content-Encoding"), page.Header.Peek("Vary"))
	}
	body, err := fasthttp.AppendUnbrotliBytes(nil, page.Body())
	if err != nil || !strings.Contains(string(body), `"id":"00000030"`) {
		t.Fatalf("page body does not decode to the page (err %v): %.100s", err, body)
	}
}

// TestProduct304Allocs: a revalidated product read (304) allocates nothing.
func TestProduct304Allocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under -race")
	}
	f := newGateway(t)
	h := f.g.Handler()
	etag := string(f.do("GET", "/api/v1/products/00000001", nil, "").Header.Peek("ETag"))
	var ctx fasthttp.RequestCtx
	readRequest(t, &ctx.Request, "GET", "/api/v1/products/00000001", map[string]string{"If-None-Match": etag, "Accept-Encoding": "gzip, br"}, "")
	h(&ctx)
	allocs := 1e9
	for range 3 {
		allocs = min(allocs, testing.AllocsPerRun(500, func() {
			ctx.Response.Reset()
			h(&ctx)
		}))
	}
	if ctx.Response.StatusCode() != 304 {
		t.Fatalf("status %d, want 304", ctx.Response.StatusCode())
	}
	if allocs > 0 {
		t.Fatalf("a 304 product read allocates %v times per request, want 0", allocs)
	}
}

// TestShopCharged: cart and order calls are charged to the user's shopping budget, and product
// reads and catalog pages only when they miss the cache, before anything reaches a backend or
// the store; a refused call never reaches the cart.
func TestShopCharged(t *testing.T) {
	f := newGateway(t)
	for _, uri := range []string{"/api/v1/products/00000001", "/api/v1/products?limit=1"} {
		if r := f.do("GET", uri, nil, ""); r.StatusCode() != 200 { // cached before the budget is on
			t.Fatalf("warm %s: %d", uri, r.StatusCode())
		}
	}
	var charged []string
	refuse := false
	cfg := f.g.cfg
	cfg.Shop = func(ctx *fasthttp.RequestCtx, uid string) bool {
		charged = append(charged, string(ctx.Path())+" uid="+uid)
		if refuse {
			httpapi.WriteError(ctx, fasthttp.StatusTooManyRequests, "rate_limited", "slow down")
		}
		return refuse
	}
	var err error
	if f.g, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	auth := map[string]string{"Authorization": "Bearer good"}
	for _, c := range []struct {
		uri     string
		headers map[string]string
		want    int
	}{
		{"/api/v1/products/00000001", nil, 200}, // hit: free
		{"/api/v1/products?limit=1", nil, 200},  // hit: free
		{"/api/v1/products/00000002", nil, 404}, // miss: charged to the address
		{"/api/v1/products?limit=2", nil, 200},  // miss: charged to the address
		{"/api/v1/cart", auth, 299},             // charged to the user
		{"/api/v1/cart", nil, 401},              // no session: not charged, not forwarded
	} {
		if r := f.do("GET", c.uri, c.headers, ""); r.StatusCode() != c.want {
			t.Fatalf("GET %s: %d, want %d", c.uri, r.StatusCode(), c.want)
		}
	}
	want := "[/api/v1/products/00000002 uid= /api/v1/products uid= /api/v1/cart uid=u-alice]"
	if fmt.Sprint(charged) != want {
		t.Fatalf("charged %v, want %s", charged, want)
	}
	refuse = true
	for _, uri := range []string{"/api/v1/cart", "/api/v1/products/00000003", "/api/v1/products?limit=3"} {
		if r := f.do("GET", uri, auth, ""); r.StatusCode() != 429 {
			t.Fatalf("GET %s over budget: %d, want 429", uri, r.StatusCode())
		}
	}
	if len(f.cart.got) != 1 {
		t.Fatalf("cart saw %v, want only the call within budget", f.cart.got)
	}
	if r := f.do("GET", "/api/v1/products/00000001", nil, ""); r.StatusCode() != 200 {
		t.Fatalf("cache hit over budget: %d, want 200 (hits are free)", r.StatusCode())
	}
}

// firstRecorder is a backend pool stand-in that tells Forward from ForwardFirst.
type firstRecorder struct{ got []string }

func (f *firstRecorder) Forward(ctx *fasthttp.RequestCtx) {
	f.got = append(f.got, string(ctx.Method())+" "+string(ctx.Path()))
	ctx.SetStatusCode(299)
}

func (f *firstRecorder) ForwardFirst(ctx *fasthttp.RequestCtx) {
	f.got = append(f.got, "first "+string(ctx.Method())+" "+string(ctx.Path()))
	ctx.SetStatusCode(299)
}

// TestCheckoutGoesFirst: the cart checkout (POST /api/v1/orders) is forwarded with
// ForwardFirst, ahead of other calls waiting for the order service; the order reads are not,
// and WithRequestID keeps the difference.
func TestCheckoutGoesFirst(t *testing.T) {
	srv := kvtest.Start(t)
	pc, err := productcache.New(srv.Client(t), productcache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pc.Close)
	order := &firstRecorder{}
	g, err := New(Config{
		Products: pc, Catalog: &recordingForwarder{}, Order: order, Sessions: staticSessions{},
		AdminToken: testAdminToken, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), IDs: obs.NewIDs(),
	})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{tb: t, g: g}
	auth := map[string]string{"Authorization": "Bearer good", "Idempotency-Key": "k1"}
	f.do("POST", "/api/v1/orders", auth, "")
	f.do("GET", "/api/v1/orders", auth, "")
	f.do("GET", "/api/v1/orders/o1", auth, "")
	want := "[first POST /api/v1/orders GET /api/v1/orders GET /api/v1/orders/o1]"
	if got := fmt.Sprint(order.got); got != want {
		t.Errorf("order service got %s, want %s", got, want)
	}
	order.got = nil
	var ctx fasthttp.RequestCtx
	WithRequestID(order).(FirstForwarder).ForwardFirst(&ctx)
	if got := fmt.Sprint(order.got); got != "[first GET /]" {
		t.Errorf("ForwardFirst through WithRequestID reached the pool as %s", got)
	}
}
