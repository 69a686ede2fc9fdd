package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"flashedge/shared/kv/kvtest"
)

func TestRunServesAndStopsCleanly(t *testing.T) {
	srv := kvtest.Start(t)
	port, err := kvtest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	env := map[string]string{
		"FLASHEDGE_STORE_ADDR":     srv.Addr,
		"FLASHEDGE_EDGE_LISTEN":    addr,
		"FLASHEDGE_ADMIN_TOKEN":    "admin-token-for-tests-0123",
		"FLASHEDGE_SESSION_SECRET": "k1:0123456789abcdef0123456789abcdef",
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
	resp, err := http.Get("http://" + addr + "/api/v1/products/00000001")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("unknown product: %d, want 404", resp.StatusCode)
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
			if _, err := loadConfig(nil, func(k string) string { return tt.env[k] }); err == nil {
				t.Fatalf("loadConfig(%v) accepted it", tt.env)
			}
		})
	}
}
