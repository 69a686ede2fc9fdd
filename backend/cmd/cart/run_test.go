package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"flashedge/backend/internal/catalog"
	"flashedge/shared/flagenv/flagenvtest"
	"flashedge/shared/httpapi"
	"flashedge/shared/keyspace"
	"flashedge/shared/kv/kvtest"
	"flashedge/shared/metrics/metricstest"
	"flashedge/shared/obs/obstest"
	"flashedge/shared/product"
)

func call(t *testing.T, method, url, body string, header ...string) (int, string, *fasthttp.ResponseHeader) {
	t.Helper()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(url)
	req.Header.SetMethod(method)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	if body != "" {
		req.SetBodyString(body)
	}
	if err := fasthttp.DoTimeout(req, resp, 5*time.Second); err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	var h fasthttp.ResponseHeader
	resp.Header.CopyTo(&h)
	return resp.StatusCode(), string(resp.Body()), &h
}

func TestRunServesAndStopsCleanly(t *testing.T) {
	srv := kvtest.Start(t)
	kv := srv.Client(t)
	doc := product.Marshal(product.Doc{ID: "00000002", Name: "Balo", Price: 250000, Currency: "VND"})
	if err := kv.Do(context.Background(), kv.B().Set().Key(keyspace.Product("00000002")).Value(string(doc)).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"FLASHEDGE_STORE_ADDR":    srv.Addr,
		"FLASHEDGE_CART_LISTEN":   "127.0.0.1:0",
		"FLASHEDGE_CATALOG_ADDRS": "127.0.0.1:1", // ignored: the cart reads prices from the store
		"FLASHEDGE_LOG_FORMAT":    "json",
	}
	out := &obstest.Buffer{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- run(ctx, nil, func(k string) string { return env[k] }, out) }()
	base := "http://" + obstest.ListenAddr(t, out, errc)

	tests := []struct {
		name, method, path, body string
		header                   []string
		status                   int
		want                     string
	}{
		{"health", "GET", "/health", "", nil, 200, `"ok"`},
		{"no user", "GET", "/api/v1/cart", "", nil, 401, `"unauthorized"`},
		{"empty cart needs no catalog", "GET", "/api/v1/cart", "", []string{"X-Flashedge-User", "u-alice"}, 200, `{"items":[],"total":0}`},
		// The catalog is down: product reads fall back to the store, which knows 00000002 only.
		{"unknown product with the catalog down", "PUT", "/api/v1/cart/items/00000001", `{"quantity":1}`, []string{"X-Flashedge-User", "u-alice"}, 404, `"product_not_found"`},
		{"put with the catalog down", "PUT", "/api/v1/cart/items/00000002", `{"quantity":1}`, []string{"X-Flashedge-User", "u-alice"}, 200, `"total":250000`},
		{"unknown route", "GET", "/api/v1/nope", "", nil, 404, `"route_not_found"`},
		{"wrong method", "POST", "/api/v1/cart", "", nil, 405, `"method_not_allowed"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, body, h := call(t, tt.method, base+tt.path, tt.body, append([]string{"X-Request-ID", "req-" + strings.ReplaceAll(tt.name, " ", "-")}, tt.header...)...)
			if st != tt.status || !strings.Contains(body, tt.want) {
				t.Fatalf("%s %s: %d %s, want %d with %s", tt.method, tt.path, st, body, tt.status, tt.want)
			}
			if got := string(h.Peek("X-Request-ID")); got != "req-"+strings.ReplaceAll(tt.name, " ", "-") {
				t.Fatalf("X-Request-ID %q not echoed", got)
			}
		})
	}

	// The catalog's probe fails, yet the service stays ready: it does not need the catalog.
	if st, body, _ := call(t, "GET", base+"/ready", ""); st != 200 {
		t.Fatalf("/ready with the catalog down: %d %s, want 200", st, body)
	}

	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("run returned %v, want nil", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("run did not return within 15s of cancel")
	}
}

func TestConfig(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string
	}{
		{"defaults", nil, nil, ""},
		{"bad sample", nil, map[string]string{"FLASHEDGE_ACCESS_LOG_SAMPLE": "0"}, "FLASHEDGE_ACCESS_LOG_SAMPLE"},
		{"bad cluster flag", nil, map[string]string{"FLASHEDGE_STORE_CLUSTER": "maybe"}, "FLASHEDGE_STORE_CLUSTER"},
		{"stray argument", []string{"extra"}, nil, "unexpected arguments"},
		{"zero timeout", []string{"-timeout", "0s"}, nil, "must be positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := loadConfig(tt.args, func(k string) string { return tt.env[k] }, io.Discard)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("loadConfig(%v, %v): %v", tt.args, tt.env, err)
				}
				if c.Addr != "127.0.0.1:5002" || c.Timeout != 3*time.Second {
					t.Fatalf("config %s", c)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("loadConfig(%v, %v) err = %v, want one mentioning %q", tt.args, tt.env, err, tt.wantErr)
			}
		})
	}
}

// serveCatalog runs the real catalog routes over the test's store on a loopback port until the
// test ends, and returns its address and one product id.
func serveCatalog(t *testing.T, srv *kvtest.Server) (addr, productID string) {
	t.Helper()
	products := catalog.NewStore(srv.Client(t))
	name, price, stock := "Bánh mì", int64(25_000), int64(10)
	p, err := products.Create(context.Background(), product.Input{Name: &name, Price: &price, Stock: &stock})
	if err != nil {
		t.Fatal(err)
	}
	h, err := catalog.NewHandler(products, catalog.Options{AdminToken: "cart-test-admin-token"})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- httpapi.Serve(ctx, httpapi.NewServer(h, httpapi.ServerOptions{}, slog.New(slog.DiscardHandler)), ln, time.Second)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return ln.Addr().String(), p.ID
}

// TestRunMetrics sends known traffic to a running cart service, then checks /metrics (parsed
// with the Prometheus text parser) for exact counts by route pattern and status, and
// /metrics.json.
func TestRunMetrics(t *testing.T) {
	srv := kvtest.Start(t)
	catalogAddr, pid := serveCatalog(t, srv)
	env := map[string]string{
		"FLASHEDGE_STORE_ADDR":    srv.Addr,
		"FLASHEDGE_CART_LISTEN":   "127.0.0.1:0",
		"FLASHEDGE_CATALOG_ADDRS": catalogAddr,
		"FLASHEDGE_LOG_FORMAT":    "json",
	}
	out := &obstest.Buffer{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- run(ctx, nil, func(k string) string { return env[k] }, out) }()
	defer func() { cancel(); <-errc }()
	base := "http://" + obstest.ListenAddr(t, out, errc)

	alice := []string{"X-Flashedge-User", "u-alice"}
	traffic := []struct {
		method, path, body string
		header             []string
		status             int
	}{
		{"PUT", "/api/v1/cart/items/" + pid, `{"quantity":1}`, alice, 200},
		{"PUT", "/api/v1/cart/items/" + pid, `{"quantity":3}`, alice, 200},
		{"PUT", "/api/v1/cart/items/00009999", `{"quantity":1}`, alice, 404},
		{"PUT", "/api/v1/cart/items/" + pid, `{"quantity":-1}`, alice, 422},
		{"GET", "/api/v1/cart", "", alice, 200},
		{"GET", "/api/v1/cart", "", nil, 401},
		{"GET", "/internal/v1/cart", "", alice, 200},
		{"DELETE", "/api/v1/cart/items/" + pid, "", alice, 200},
		{"GET", "/nope/" + pid, "", nil, 404},
	}
	for _, tr := range traffic {
		if st, body, _ := call(t, tr.method, base+tr.path, tr.body, tr.header...); st != tr.status {
			t.Fatalf("%s %s: %d %s, want %d", tr.method, tr.path, st, body, tr.status)
		}
	}
	page := metricstest.Scrape(t, base+"/metrics")
	for _, w := range []struct {
		route, code string
		n           float64
	}{
		{"/api/v1/cart/items/{product_id}", "200", 3}, // two PUTs and the DELETE share the pattern
		{"/api/v1/cart/items/{product_id}", "404", 1},
		{"/api/v1/cart/items/{product_id}", "422", 1},
		{"/api/v1/cart", "200", 1},
		{"/api/v1/cart", "401", 1},
		{"/internal/v1/cart", "200", 1},
		{"other", "404", 1},
	} {
		if got := page.Requests("cart", w.route, w.code); got != w.n {
			t.Errorf("flashedge_cart_requests_total{route=%q,code=%q} = %v, want %v", w.route, w.code, got, w.n)
		}
	}
	if got := page.Value("flashedge_cart_request_duration_seconds", "route", "/api/v1/cart/items/{product_id}"); got != 5 {
		t.Errorf("request_duration_seconds{route=/api/v1/cart/items/{product_id}} count = %v, want 5", got)
	}
	for _, m := range page["flashedge_cart_requests_total"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "route" && strings.Contains(l.GetValue(), pid) {
				t.Errorf("route label %q holds a raw path", l.GetValue())
			}
		}
	}
	s := metricstest.ReadSummary(t, base+"/metrics.json")
	if s.Service != "cart" || s.Client != 4 || s.Server != 0 || s.Success < 5 {
		t.Errorf("/metrics.json = %+v, want service cart, 4 client errors, no server error, >= 5 successes", s)
	}
}

func TestServiceFlags(t *testing.T) { flagenvtest.CheckService(t, "cart", nil, loadConfig, run) }
