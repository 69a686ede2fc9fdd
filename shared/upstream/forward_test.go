package upstream_test

import (
	"context"
	"encoding/json"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"flashedge/shared/httpapi"
	"flashedge/shared/upstream"
)

// hasHeader reports whether h has key, compared case-insensitively.
func hasHeader(h map[string]string, key string) bool {
	for k := range h {
		if strings.EqualFold(k, key) {
			return true
		}
	}
	return false
}

func TestForwardCopiesRequestAndResponse(t *testing.T) {
	b := startBackendWith(t, func(ctx *fasthttp.RequestCtx) {
		ctx.SetStatusCode(fasthttp.StatusCreated)
		ctx.SetContentType("application/json")
		ctx.Response.Header.Set("X-Backend", "yes")
		ctx.Response.Header.Set("Keep-Alive", "timeout=9")
		ctx.Response.Header.Set("Proxy-Authenticate", "Basic")
		ctx.Response.Header.Set("Upgrade", "h2c")
		ctx.Response.Header.Set("Connection", "X-Hop")
		ctx.Response.Header.Set("X-Hop", "only for the next hop")
		ctx.Response.Header.Set("Set-Cookie", "a=1; Path=/")
		ctx.SetBodyString(`{"ok":true}`)
	})
	p := newPool(t, upstream.Options{Addrs: addrs(b)})
	edge := startEdge(t, p.Forward)

	const (
		uri  = "/api/v1/things?a=1&b=two%20words&b=3&empty="
		body = `{"name":"áo dài","qty":2}`
	)
	tests := []struct {
		name    string
		chunked bool
	}{
		{"content-length body", false},
		{"chunked body", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := send(t, edge, func(req *fasthttp.Request) {
				req.Header.SetMethod(fasthttp.MethodPost)
				req.SetRequestURI("http://" + edge + uri)
				req.Header.SetContentType("application/json")
				req.Header.Set("X-Request-ID", "req-123")
				req.Header.Set("X-Custom", "kept")
				req.Header.Set("Keep-Alive", "timeout=5")
				req.Header.Set("Proxy-Authorization", "Basic c2VjcmV0")
				req.Header.Set("TE", "trailers")
				req.Header.Set("Upgrade", "websocket")
				req.Header.Set("Connection", "keep-alive, X-Private")
				req.Header.Set("X-Private", "for the edge only")
				if tt.chunked {
					req.SetBodyStream(strings.NewReader(body), -1)
				} else {
					req.SetBodyString(body)
				}
			})
			defer fasthttp.ReleaseResponse(resp)

			seen := b.lastRequest()
			if seen.method != fasthttp.MethodPost || seen.uri != uri || seen.body != body {
				t.Fatalf("replica saw %s %s body %q; want POST %s body %q", seen.method, seen.uri, seen.body, uri, body)
			}
			if seen.host != b.addr {
				t.Errorf("replica saw Host %q; want its own address %q", seen.host, b.addr)
			}
			for k, want := range map[string]string{"X-Request-Id": "req-123", "X-Custom": "kept", "Content-Type": "application/json"} {
				if got := seen.header[k]; got != want {
					t.Errorf("replica saw %s = %q; want %q (all: %v)", k, got, want, seen.header)
				}
			}
			for _, k := range []string{"Keep-Alive", "Proxy-Authorization", "TE", "Upgrade", "Connection", "X-Private", "Transfer-Encoding"} {
				if hasHeader(seen.header, k) {
					t.Errorf("hop-by-hop request header %s reached the replica (all: %v)", k, seen.header)
				}
			}

			if resp.StatusCode() != fasthttp.StatusCreated || string(resp.Body()) != `{"ok":true}` {
				t.Fatalf("client got %d %q; want 201 {\"ok\":true}", resp.StatusCode(), resp.Body())
			}
			got := map[string]string{}
			for k, v := range resp.Header.All() {
				got[string(k)] = string(v)
			}
			for k, want := range map[string]string{"X-Backend": "yes", "X-Request-Id": "req-123", "Set-Cookie": "a=1; path=/"} {
				if !strings.EqualFold(got[k], want) {
					t.Errorf("client got %s = %q; want %q (all: %v)", k, got[k], want, got)
				}
			}
			for _, k := range []string{"Keep-Alive", "Proxy-Authenticate", "Upgrade", "X-Hop"} {
				if hasHeader(got, k) {
					t.Errorf("hop-by-hop response header %s reached the client (all: %v)", k, got)
				}
			}
		})
	}
}

func TestForwardPassesClientErrorsThrough(t *testing.T) {
	const notFound = `{"error":{"code":"not_found","message":"no such product"}}`
	b := startBackendWith(t, func(ctx *fasthttp.RequestCtx) {
		httpapi.WriteRawJSON(ctx, fasthttp.StatusNotFound, []byte(notFound))
	})
	p := newPool(t, upstream.Options{Addrs: addrs(b), MinRequests: 5})
	edge := startEdge(t, p.Forward)
	for range 20 {
		resp := send(t, edge, func(req *fasthttp.Request) { req.SetRequestURI("http://" + edge + "/api/v1/products/404") })
		status, body := resp.StatusCode(), string(resp.Body())
		fasthttp.ReleaseResponse(resp)
		if status != fasthttp.StatusNotFound || body != notFound {
			t.Fatalf("client got %d %q; want the replica's 404 untouched", status, body)
		}
	}
	if s := state(p, b.addr); s.Breaker != "closed" || s.Failures != 0 {
		t.Fatalf("after 404s: breaker %s, failures %d; want closed, 0", s.Breaker, s.Failures)
	}
}

func TestForwardAnswersMaintenanceWhenDown(t *testing.T) {
	tests := []struct {
		name       string
		setup      func(t *testing.T) *upstream.Pool
		retryAfter string
	}{
		{"every replica refuses connections", func(t *testing.T) *upstream.Pool {
			return newPool(t, upstream.Options{Addrs: []string{deadAddr(t), deadAddr(t)}})
		}, "5"},
		{"every replica unhealthy", func(t *testing.T) *upstream.Pool {
			b := startBackend(t)
			b.health.Store(503)
			p := newPool(t, upstream.Options{Addrs: addrs(b), HealthInterval: 20 * time.Millisecond,
				BreakerTimeout: 300 * time.Millisecond})
			runPool(t, p)
			waitFor(t, 2*time.Second, "the replica to be marked unhealthy", func() bool { return !p.Available() })
			return p
		}, "1"},
		{"breaker open", func(t *testing.T) *upstream.Pool {
			b := startBackend(t)
			b.status.Store(500)
			p := newPool(t, upstream.Options{Addrs: addrs(b), MinRequests: 3, BreakerTimeout: 2500 * time.Millisecond})
			for range 3 {
				_, _, _ = get(p)
			}
			if p.Available() {
				t.Fatal("breaker did not open after 3 x 500")
			}
			return p
		}, "3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.setup(t)
			edge := startEdge(t, p.Forward)
			start := time.Now()
			resp := send(t, edge, func(req *fasthttp.Request) {
				req.Header.SetMethod(fasthttp.MethodPost)
				req.SetRequestURI("http://" + edge + "/api/v1/cart/items/1")
				req.SetBodyString(`{"quantity":1}`)
			})
			took := time.Since(start)
			defer fasthttp.ReleaseResponse(resp)
			if resp.StatusCode() != fasthttp.StatusServiceUnavailable {
				t.Fatalf("status %d; want 503", resp.StatusCode())
			}
			if got := string(resp.Header.Peek("Retry-After")); got != tt.retryAfter {
				t.Errorf("Retry-After %q; want %q", got, tt.retryAfter)
			}
			if ct := string(resp.Header.ContentType()); ct != "application/json" {
				t.Errorf("Content-Type %q; want application/json", ct)
			}
			var eb httpapi.ErrorBody
			if err := json.Unmarshal(resp.Body(), &eb); err != nil {
				t.Fatalf("body %q is not the JSON error shape: %v", resp.Body(), err)
			}
			if eb.Error.Code != "service_unavailable" {
				t.Errorf("code %q; want service_unavailable", eb.Error.Code)
			}
			for _, want := range []string{"maintenance", "come back", "Dịch vụ đang bảo trì", "quay lại sau"} {
				if !strings.Contains(eb.Error.Message, want) {
					t.Errorf("message %q lacks %q", eb.Error.Message, want)
				}
			}
			if took > 500*time.Millisecond {
				t.Errorf("maintenance answer took %s; want it at once", took)
			}
			t.Logf("503 in %s", took)
		})
	}
}

// A request the edge is still serving when its graceful shutdown begins must be forwarded, not
// answered 503: fasthttp cancels the RequestCtx (as a context) at the start of the shutdown.
func TestForwardDuringEdgeShutdown(t *testing.T) {
	b := startBackend(t)
	p := newPool(t, upstream.Options{Addrs: addrs(b)})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	edge := ln.Addr().String()
	entered := make(chan struct{})
	h := func(rctx *fasthttp.RequestCtx) {
		close(entered)
		start := time.Now()
		for rctx.Err() == nil && time.Since(start) < 3*time.Second {
			time.Sleep(2 * time.Millisecond) // poll until the shutdown has begun
		}
		p.Forward(rctx)
	}
	srv := httpapi.NewServer(h, httpapi.ServerOptions{}, discardLog())
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- httpapi.Serve(ctx, srv, ln, 5*time.Second) }()

	var wg sync.WaitGroup
	var status int
	wg.Go(func() {
		resp := send(t, edge, func(req *fasthttp.Request) { req.SetRequestURI("http://" + edge + "/x") })
		status = resp.StatusCode()
		fasthttp.ReleaseResponse(resp)
	})
	<-entered
	cancel()
	wg.Wait()
	if err := <-served; err != nil {
		t.Fatalf("serve: %v", err)
	}
	if status != fasthttp.StatusOK || b.hits.Load() != 1 {
		t.Fatalf("request drained during shutdown got %d (replica hits %d); want 200 from the replica", status, b.hits.Load())
	}
}
