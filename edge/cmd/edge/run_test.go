package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"flashedge/shared/flagenv/flagenvtest"
	"flashedge/shared/keyspace"
	"flashedge/shared/kv/kvtest"
	"flashedge/shared/metrics/metricstest"
	"flashedge/shared/proc"
)

func TestRunServesAndStopsCleanly(t *testing.T) {
	srv := kvtest.Start(t)
	port, err := proc.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	opsPort, err := proc.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	ops := fmt.Sprintf("127.0.0.1:%d", opsPort)
	env := map[string]string{
		"FLASHEDGE_STORE_ADDR":      srv.Addr,
		"FLASHEDGE_EDGE_LISTEN":     addr,
		"FLASHEDGE_EDGE_OPS_LISTEN": ops,
		"FLASHEDGE_ADMIN_TOKEN":     "admin-token-for-tests-0123",
		"FLASHEDGE_SESSION_SECRET":  "k1:0123456789abcdef0123456789abcdef",
		// Backends that do not exist: the edge must start anyway and answer 503 for them.
		"FLASHEDGE_CATALOG_ADDRS": "127.0.0.1:1",
		"FLASHEDGE_CART_ADDRS":    "127.0.0.1:1",
		"FLASHEDGE_ORDER_ADDRS":   "127.0.0.1:1",
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, func(k string) string { return env[k] }, io.Discard) }()

	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("edge not ready within 10s: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	getFrom := func(base, path string) (int, []byte) {
		t.Helper()
		resp, err := http.Get("http://" + base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	get := func(path string) (int, []byte) { t.Helper(); return getFrom(addr, path) }
	// Operations are on the ops listener only.
	for _, path := range []string{"/metrics", "/metrics.json", "/dashboard", "/dashboard/data.json", "/dashboard/app.js"} {
		if code, b := get(path); code != 404 {
			t.Errorf("public %s: %d %s, want 404", path, code, b)
		}
		if code, _ := getFrom(ops, path); code != 200 {
			t.Errorf("ops %s: %d, want 200", path, code)
		}
	}
	if code, _ := get("/api/v1/products/00000009"); code != 404 {
		t.Fatalf("unknown product: %d, want 404", code)
	}
	// The missing catalog answers the maintenance 503 at once (an admin write is forwarded).
	req, _ := http.NewRequest("POST", "http://"+addr+"/api/v1/admin/products", strings.NewReader(`{"name":"x","price":1,"stock":1}`))
	req.Header.Set("Authorization", "Bearer admin-token-for-tests-0123")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), `"error"`) {
		t.Errorf("admin write with the catalog missing: %d Retry-After %q %s; want 503 with Retry-After and a JSON error",
			resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	c := srv.Client(t)
	doc := `{"id":"00000001","name":"x","description":"","price":1000,"currency":"VND","image":""}`
	c.Do(context.Background(), c.B().Set().Key(keyspace.Product("00000001")).Value(doc).Build())
	for range 5 {
		if code, b := get("/api/v1/products/00000001"); code != 200 {
			t.Fatalf("product: %d %s", code, b)
		}
	}
	page := metricstest.Scrape(t, "http://"+ops+"/metrics") // also checks names, types, labels
	count := func(family string, labels map[string]string) float64 {
		var kv []string
		for k, v := range labels {
			kv = append(kv, k, v)
		}
		return page.Value(family, kv...)
	}
	route := "/api/v1/products/{id}"
	if n := count("flashedge_edge_requests_total", map[string]string{"route": route, "code": "200"}); n != 5 {
		t.Errorf("requests_total{route=%s,code=200} = %v, want 5", route, n)
	}
	if n := count("flashedge_edge_requests_total", map[string]string{"route": route, "code": "404"}); n != 1 {
		t.Errorf("requests_total{route=%s,code=404} = %v, want 1", route, n)
	}
	// 6 reads: 2 filled the caches (the 404 and the first 200), the other 4 were rendered-body hits.
	if n := count("flashedge_edge_cache_hits_total", map[string]string{"layer": "body"}); n < 3 {
		t.Errorf("body-cache hits = %v, want >= 3", n)
	}
	for _, f := range []string{"flashedge_edge_breaker_state", "flashedge_edge_backend_healthy", "flashedge_edge_invalidations_total"} {
		if page[f] == nil {
			t.Errorf("/metrics lacks %s", f)
		}
	}
	if s := metricstest.ReadSummary(t, "http://"+ops+"/metrics.json"); s.Success < 5 {
		t.Errorf("/metrics.json: %d successes, want >= 5", s.Success)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run returned %v, want nil", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("run did not return after cancel")
	}
}

func TestConfigRefusesMissingSecrets(t *testing.T) {
	for _, tt := range []struct {
		name string
		env  map[string]string
	}{
		{"no admin token", map[string]string{"FLASHEDGE_SESSION_SECRET": "k1:0123456789abcdef0123456789abcdef"}},
		{"short admin token", map[string]string{"FLASHEDGE_ADMIN_TOKEN": "short", "FLASHEDGE_SESSION_SECRET": "k1:0123456789abcdef0123456789abcdef"}},
		{"no session secret", map[string]string{"FLASHEDGE_ADMIN_TOKEN": "admin-token-for-tests-0123"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := loadConfig(nil, func(k string) string { return tt.env[k] }, io.Discard); err == nil {
				t.Fatalf("loadConfig(%v) accepted it", tt.env)
			}
		})
	}
}

func TestSecureCookieDefault(t *testing.T) {
	tests := []struct {
		setting, listen string
		want            bool
	}{
		{"auto", "127.0.0.1:8000", false},
		{"auto", "[::1]:8000", false},
		{"auto", "localhost:8000", false},
		{"auto", "0.0.0.0:8000", true},
		{"auto", ":8000", true},
		{"auto", "10.1.2.3:8000", true},
		{"on", "127.0.0.1:8000", true},
		{"off", "0.0.0.0:8000", false},
	}
	for _, tt := range tests {
		got, err := secureCookie(tt.setting, tt.listen)
		if err != nil || got != tt.want {
			t.Errorf("secureCookie(%q, %q) = %v, %v; want %v", tt.setting, tt.listen, got, err, tt.want)
		}
	}
	if _, err := secureCookie("yes", "127.0.0.1:8000"); err == nil {
		t.Error("secureCookie accepted \"yes\"")
	}
}

func TestServiceFlags(t *testing.T) {
	flagenvtest.CheckService(t, "edge", map[string]string{"FLASHEDGE_ADMIN_TOKEN": "admin-token-for-tests-0123", "FLASHEDGE_SESSION_SECRET": "k1:0123456789abcdef0123456789abcdef"}, loadConfig, run)
}
