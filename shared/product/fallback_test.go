package product_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"flashedge/shared/keyspace"
	"flashedge/shared/kv/kvtest"
	"flashedge/shared/proc"
	"flashedge/shared/product"
	"flashedge/shared/upstream"
)

// TestStoreFallbackWhenCatalogIsDown points a real upstream pool at a port nothing listens on
// (the catalog is down) and checks product reads are answered from a real store.
func TestStoreFallbackWhenCatalogIsDown(t *testing.T) {
	srv := kvtest.Start(t)
	kv := srv.Client(t)
	ctx := context.Background()
	doc := product.Marshal(product.Doc{ID: "00000007", Name: "Quạt điện", Price: 450000, Currency: "VND"})
	kv.Do(ctx, kv.B().Set().Key(keyspace.Product("00000007")).Value(string(doc)).Build())
	kv.Do(ctx, kv.B().Set().Key(keyspace.ProductStock("00000007")).Value("3").Build())

	port, _ := proc.FreePort() // free, so nothing answers there
	pool, err := upstream.New(upstream.Options{Name: "catalog", Addrs: []string{"127.0.0.1:" + itoa(port)}, Timeout: time.Second},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	f := &product.StoreFallback{Catalog: pool, KV: kv}

	tests := []struct {
		name, method, path string
		status             int
		fallback           bool
	}{
		{"product from the store", "GET", "/api/v1/products/00000007", 200, true},
		{"unknown product", "GET", "/api/v1/products/00000008", 404, true},
		{"writes are not answered", "PUT", "/api/v1/admin/products/00000007", 0, false},
		{"pages are not answered", "GET", "/api/v1/products", 0, false},
		{"batch read from the store", "GET", product.BatchPath + "?ids=00000008,00000007", 200, true},
		{"bad batch is not answered", "GET", product.BatchPath + "?ids=a,,b", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			req.Header.SetMethod(tt.method)
			req.SetRequestURI(tt.path)
			err := f.Do(ctx, req, resp)
			if !tt.fallback {
				if err == nil && resp.StatusCode() < 500 {
					t.Fatalf("%s %s answered %d with the catalog down", tt.method, tt.path, resp.StatusCode())
				}
				return
			}
			if err != nil || resp.StatusCode() != tt.status || string(resp.Header.Peek("X-Flashedge-Fallback")) != "store" {
				t.Fatalf("%s %s: %v %d %s, want %d from the store", tt.method, tt.path, err, resp.StatusCode(), resp.Body(), tt.status)
			}
			if tt.status == 200 {
				var p map[string]any
				if b, ok := bytes.CutPrefix(resp.Body(), []byte(`{"items":[`)); ok { // the batch names one product
					resp.SetBody(bytes.TrimSuffix(b, []byte("]}")))
				}
				if err := json.Unmarshal(resp.Body(), &p); err != nil || p["name"] != "Quạt điện" || p["price"] != 450000.0 || p["stock_state"] != "low" {
					t.Fatalf("fallback body %s", resp.Body())
				}
			}
		})
	}
	if f.Served() != 3 {
		t.Fatalf("served %d reads from the store, want 3", f.Served())
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }
