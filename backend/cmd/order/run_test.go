package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/router"
	"github.com/valyala/fasthttp"

	"flashedge/backend/internal/cart"
	"flashedge/backend/internal/catalog"
	"flashedge/shared/flagenv/flagenvtest"
	"flashedge/shared/httpapi"
	"flashedge/shared/kv/kvtest"
	"flashedge/shared/obs/obstest"
	"flashedge/shared/product"
	"flashedge/shared/upstream"
)

func call(t *testing.T, method, url, body string, header ...string) (int, string) {
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
	if err := fasthttp.DoTimeout(req, resp, 10*time.Second); err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return resp.StatusCode(), string(resp.Body())
}

// serve runs h on a loopback port until the test ends.
func serve(t *testing.T, h fasthttp.RequestHandler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- httpapi.Serve(ctx, httpapi.NewServer(h, httpapi.ServerOptions{}, log), ln, time.Second)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return ln.Addr().String()
}

// TestRunChecksOut runs the order binary against a real catalog and cart service and a real
// redis-server, checks out once, and stops it.
func TestRunChecksOut(t *testing.T) {
	srv := kvtest.Start(t)
	kvc := srv.Client(t)
	products := catalog.NewStore(kvc)
	name, price, stock := "Áo dài", int64(500_000), int64(3)
	p, err := products.Create(context.Background(), product.Input{Name: &name, Price: &price, Stock: &stock})
	if err != nil {
		t.Fatal(err)
	}
	ch, err := catalog.NewHandler(products, catalog.Options{AdminToken: "test-admin-token-0123"})
	if err != nil {
		t.Fatal(err)
	}
	catalogAddr := serve(t, ch)
	catalogPool, err := upstream.New(upstream.Options{Name: "catalog", Addrs: []string{catalogAddr}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer catalogPool.Close()
	cr := router.New()
	cr.GET("/health", (&httpapi.Probe{}).Health) // the order binary's pool probes it
	cart.New(cart.NewStore(kvc), cart.CatalogPrices(catalogPool), cart.Options{}).Register(cr)
	cartAddr := serve(t, cr.Handler)

	env := map[string]string{
		"FLASHEDGE_STORE_ADDR":     srv.Addr,
		"FLASHEDGE_ADMIN_TOKEN":    "order-test-admin-token-0123",
		"FLASHEDGE_SESSION_SECRET": testSessionSecret,
		"FLASHEDGE_ORDER_LISTEN":   "127.0.0.1:0",
		"FLASHEDGE_CART_ADDRS":     cartAddr,
		"FLASHEDGE_CATALOG_ADDRS":  catalogAddr,
		"FLASHEDGE_LOG_FORMAT":     "json",
	}
	out := &obstest.Buffer{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- run(ctx, nil, func(k string) string { return env[k] }, out) }()
	base := "http://" + obstest.ListenAddr(t, out, errc)

	if st, body := call(t, "PUT", "http://"+cartAddr+"/api/v1/cart/items/"+p.ID, `{"quantity":2}`, httpapi.HeaderUserID, "u-alice"); st != 200 {
		t.Fatalf("fill cart: %d %s", st, body)
	}
	user := []string{httpapi.HeaderUserID, "u-alice"}
	tests := []struct {
		name, method, path, body string
		header                   []string
		status                   int
		want                     string
	}{
		{"health", "GET", "/health", "", nil, 200, `"ok"`},
		{"ready", "GET", "/ready", "", nil, 200, `"ready"`},
		{"no user", "POST", "/api/v1/orders", "", []string{httpapi.HeaderIdempotencyKey, "k1"}, 401, `"unauthorized"`},
		{"no key", "POST", "/api/v1/orders", "", user, 400, `"idempotency_key_required"`},
		{"checkout", "POST", "/api/v1/orders", "", append([]string{httpapi.HeaderIdempotencyKey, "k1"}, user...), 201, `"total":1000000`},
		{"history", "GET", "/api/v1/orders", "", user, 200, `"status":"placed"`},
		{"cart now empty", "POST", "/api/v1/orders", "", append([]string{httpapi.HeaderIdempotencyKey, "k2"}, user...), 422, `"empty_cart"`},
		{"unknown route", "GET", "/internal/v1/cart", "", user, 404, `"route_not_found"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, body := call(t, tt.method, base+tt.path, tt.body, tt.header...)
			if st != tt.status || !strings.Contains(body, tt.want) {
				t.Fatalf("%s %s: %d %s, want %d with %s", tt.method, tt.path, st, body, tt.status, tt.want)
			}
		})
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
		{"replicas", nil, map[string]string{"FLASHEDGE_CART_ADDRS": "10.0.0.1:5002,10.0.0.2:5002"}, ""},
		{"no cart", []string{"-cart", ""}, map[string]string{"FLASHEDGE_CART_ADDRS": ","}, "-cart (FLASHEDGE_CART_ADDRS) is empty"},
		{"pending shorter than checkout", []string{"-pending-ttl", "3s", "-checkout-timeout", "4s"}, nil, "-pending-ttl"},
		{"checkout outlasts the edge", []string{"-checkout-timeout", "6s"}, nil, "lower -checkout-timeout"},
		{"call outlasts the checkout", []string{"-call-timeout", "4s"}, nil, "lower -call-timeout"},
		{"bad sample", nil, map[string]string{"FLASHEDGE_ACCESS_LOG_SAMPLE": "x"}, "FLASHEDGE_ACCESS_LOG_SAMPLE"},
		{"stray argument", []string{"extra"}, nil, "unexpected arguments"},
		{"no session secret", nil, map[string]string{"FLASHEDGE_SESSION_SECRET": " "}, "FLASHEDGE_SESSION_SECRET"},
		{"short session secret", nil, map[string]string{"FLASHEDGE_SESSION_SECRET": "k1:short"}, "at least 32"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			getenv := func(k string) string {
				if v, ok := tt.env[k]; ok {
					return v
				}
				return map[string]string{"FLASHEDGE_SESSION_SECRET": testSessionSecret}[k]
			}
			c, err := loadConfig(tt.args, getenv, io.Discard)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("loadConfig(%v, %v): %v", tt.args, tt.env, err)
				}
				if c.Addr != "127.0.0.1:5003" || len(c.CartAddrs) == 0 || len(c.CatalogAddrs) == 0 {
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

// testSessionSecret is the FLASHEDGE_SESSION_SECRET of these tests (the order service derives the
// challenge keys from it).
const testSessionSecret = "k1:0123456789abcdef0123456789abcdef"

func TestServiceFlags(t *testing.T) {
	flagenvtest.CheckService(t, "order", map[string]string{"FLASHEDGE_SESSION_SECRET": testSessionSecret}, loadConfig, run)
}
