package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"flashedge/edge/internal/gateway"
	"flashedge/shared/kv/kvtest"
	"flashedge/shared/proc"
)

// TestSlowClientsAndConnectionCap: slowloris connections (a header byte every second) from many
// addresses are closed by the server at its read timeout while an ordinary client keeps being
// answered, and one address cannot hold more connections than the cap.
func TestSlowClientsAndConnectionCap(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the read timeout")
	}
	srv := kvtest.Start(t)
	port, err := proc.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	ops, err := proc.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	env := map[string]string{
		"FLASHEDGE_STORE_ADDR": srv.Addr, "FLASHEDGE_EDGE_LISTEN": addr,
		"FLASHEDGE_EDGE_OPS_LISTEN": fmt.Sprintf("127.0.0.1:%d", ops),
		"FLASHEDGE_ADMIN_TOKEN":     "admin-token-for-tests-0123", "FLASHEDGE_SESSION_SECRET": "k1:0123456789abcdef0123456789abcdef",
		"FLASHEDGE_CATALOG_ADDRS": "127.0.0.1:1", "FLASHEDGE_CART_ADDRS": "127.0.0.1:1", "FLASHEDGE_ORDER_ADDRS": "127.0.0.1:1",
		"FLASHEDGE_MAX_CONNS_PER_ADDR": "20",
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, func(k string) string { return env[k] }, io.Discard) }()
	t.Cleanup(func() { cancel(); <-done })
	hc := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if resp, err := hc.Get("http://" + addr + "/health"); err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("edge not up within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}

	// 400 slowloris connections, 20 from each of 20 addresses (at the cap).
	const addrs, per = 20, 20
	var slow []net.Conn
	for a := range addrs {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 7, byte(a+1))}}
		for range per {
			c, err := d.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			c.Write([]byte("GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: "))
			slow = append(slow, c)
		}
	}
	started := time.Now()
	// One more from a full address is closed at once.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 7, 1)}}
	over, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	over.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := over.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("a connection over the cap was not closed at once: %v", err)
	}
	over.Close()

	// The slow ones trickle a byte a second until the server closes them.
	var wg sync.WaitGroup
	closedAt := make([]time.Duration, len(slow))
	for i, c := range slow {
		wg.Go(func() {
			defer c.Close()
			buf := make([]byte, 512)
			for time.Since(started) < 3*gateway.ReadTimeout {
				c.SetReadDeadline(time.Now().Add(time.Second))
				if _, err := c.Read(buf); err != nil && !isTimeout(err) {
					closedAt[i] = time.Since(started)
					return
				}
				if _, err := c.Write([]byte("a")); err != nil {
					closedAt[i] = time.Since(started)
					return
				}
			}
		})
	}
	// Meanwhile an ordinary client is answered every time.
	for i := range 50 {
		resp, err := hc.Get("http://" + addr + "/health")
		if err != nil {
			t.Fatalf("ordinary request %d during the slowloris: %v", i, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("ordinary request %d: %d", i, resp.StatusCode)
		}
	}
	wg.Wait()
	for i, at := range closedAt {
		if at == 0 || at > gateway.ReadTimeout+3*time.Second {
			t.Fatalf("slow connection %d closed after %v, want by the read timeout %v (+3s)", i, at, gateway.ReadTimeout)
		}
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
