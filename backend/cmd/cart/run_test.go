package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"flashedge/shared/kv/kvtest"
)

// lockedBuffer collects what run writes to stdout while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// listenAddr polls the JSON log for the "listening" line and returns its address.
func listenAddr(t *testing.T, out *lockedBuffer, errc <-chan error) string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		for _, line := range strings.Split(out.String(), "\n") {
			var rec struct{ Msg, Addr string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "listening" && rec.Addr != "" {
				return rec.Addr
			}
		}
		select {
		case err := <-errc:
			t.Fatalf("run returned before listening: %v\n%s", err, out)
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Fatalf("no listening line within 15s:\n%s", out)
	return ""
}

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
	env := map[string]string{
		"FLASHEDGE_STORE_ADDR":    srv.Addr,
		"FLASHEDGE_CART_LISTEN":   "127.0.0.1:0",
		"FLASHEDGE_CATALOG_ADDRS": "127.0.0.1:1", // nothing listens: the catalog is down
		"FLASHEDGE_LOG_FORMAT":    "json",
	}
	out := &lockedBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- run(ctx, nil, func(k string) string { return env[k] }, out) }()
	base := "http://" + listenAddr(t, out, errc)

	tests := []struct {
		name, method, path, body string
		header                   []string
		status                   int
		want                     string
	}{
		{"health", "GET", "/health", "", nil, 200, `"ok"`},
		{"no user", "GET", "/api/v1/cart", "", nil, 401, `"unauthorized"`},
		{"empty cart needs no catalog", "GET", "/api/v1/cart", "", []string{"X-Flashedge-User", "u-alice"}, 200, `{"items":[],"total":0}`},
		{"put with the catalog down", "PUT", "/api/v1/cart/items/00000001", `{"quantity":1}`, []string{"X-Flashedge-User", "u-alice"}, 503, `"catalog_unavailable"`},
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

	// The catalog's probe fails, so the service reports itself not ready.
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, body, _ := call(t, "GET", base+"/ready", "")
		if st == 503 && strings.Contains(body, "catalog") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/ready with the catalog down: %d %s, want 503 naming the catalog", st, body)
		}
		time.Sleep(20 * time.Millisecond)
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
		{"replicas", nil, map[string]string{"FLASHEDGE_CATALOG_ADDRS": "10.0.0.1:5001, 10.0.0.2:5001"}, ""},
		{"no catalog", []string{"-catalog", " , "}, nil, "no catalog address"},
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
				if c.Addr != "127.0.0.1:5002" || len(c.CatalogAddrs) == 0 {
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
