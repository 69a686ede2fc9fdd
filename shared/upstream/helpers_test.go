package upstream_test

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"flashedge/shared/httpapi"
	"flashedge/shared/obs"
	"flashedge/shared/upstream"
)

// backend is a real fasthttp server on a free loopback port standing in for one replica.
// Its answers are switched at run time through the atomics.
type backend struct {
	addr string

	srv  *fasthttp.Server
	errc chan error
	once sync.Once

	health      atomic.Int32 // status of /health; 200 at start
	healthDelay atomic.Int64 // time.Duration before answering /health
	status      atomic.Int32 // status of every other path; 200 at start
	delay       atomic.Int64 // time.Duration before answering other paths
	// failEvery, when > 0, answers 500 to the requests whose number n (from 0) has
	// n % failEvery < failFirst, and status to the others.
	failEvery, failFirst atomic.Int32

	hits atomic.Int64 // requests to paths other than /health

	mu   sync.Mutex
	last seenRequest
	// respond, when set, writes the answer instead of the status logic (after delay).
	respond func(ctx *fasthttp.RequestCtx)
}

// seenRequest is a copy of what the backend received (never the RequestCtx's own bytes).
type seenRequest struct {
	method, uri, host, body string
	header                  map[string]string
}

func discardLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

func startBackend(t testing.TB) *backend {
	t.Helper()
	return startBackendWith(t, nil)
}

func startBackendWith(t testing.TB, respond func(ctx *fasthttp.RequestCtx)) *backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{addr: ln.Addr().String(), errc: make(chan error, 1), respond: respond}
	b.health.Store(200)
	b.status.Store(200)
	b.srv = httpapi.NewServer(b.handle, httpapi.ServerOptions{Name: "test-backend"}, discardLog())
	go func() { b.errc <- b.srv.Serve(ln) }()
	t.Cleanup(b.kill)
	return b
}

func (b *backend) handle(ctx *fasthttp.RequestCtx) {
	if string(ctx.Path()) == "/health" {
		if d := time.Duration(b.healthDelay.Load()); d > 0 {
			time.Sleep(d) // the fault under test: a probe that hangs
		}
		ctx.SetStatusCode(int(b.health.Load()))
		ctx.SetBodyString(`{"status":"ok"}`)
		return
	}
	n := b.hits.Add(1) - 1
	seen := seenRequest{
		method: string(ctx.Method()), uri: string(ctx.RequestURI()), host: string(ctx.Host()),
		body: string(ctx.PostBody()), header: map[string]string{},
	}
	for k, v := range ctx.Request.Header.All() {
		seen.header[string(k)] = string(v)
	}
	b.mu.Lock()
	b.last = seen
	b.mu.Unlock()
	if d := time.Duration(b.delay.Load()); d > 0 {
		time.Sleep(d) // the fault under test: a replica slower than the pool's timeout
	}
	if b.respond != nil {
		b.respond(ctx)
		return
	}
	status := int(b.status.Load())
	if every := int64(b.failEvery.Load()); every > 0 && n%every < int64(b.failFirst.Load()) {
		status = 500
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBodyString(`{"replica":"` + b.addr + `"}`)
}

func (b *backend) lastRequest() seenRequest {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.last
}

// kill shuts the server down: the listener closes, idle connections close, in-flight requests
// finish. Later connects are refused.
func (b *backend) kill() {
	b.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_ = b.srv.ShutdownWithContext(ctx)
		<-b.errc
	})
}

// deadAddr returns a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

func addrs(bs ...*backend) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = b.addr
	}
	return out
}

func newPool(t *testing.T, o upstream.Options) *upstream.Pool {
	t.Helper()
	if o.Name == "" {
		o.Name = "test"
	}
	p, err := upstream.New(o, discardLog())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(p.Close)
	return p
}

// runPool starts p.Run and stops it at the end of the test, failing if Run does not return.
func runPool(t *testing.T, p *upstream.Pool) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(3 * time.Second):
			t.Error("Run did not return within 3s of its context being cancelled")
		}
	})
}

// call sends method path through p.Do and returns the status and body (copied).
func call(p *upstream.Pool, ctx context.Context, method, path string, hdr map[string]string) (int, string, error) {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(method)
	req.SetRequestURI("http://" + p.Name() + path)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if method == fasthttp.MethodPost || method == fasthttp.MethodPut {
		req.SetBodyString(`{}`)
	}
	err := p.Do(ctx, req, resp)
	return resp.StatusCode(), string(resp.Body()), err
}

func get(p *upstream.Pool) (int, string, error) {
	return call(p, context.Background(), fasthttp.MethodGet, "/x", nil)
}

// waitFor polls cond every few milliseconds until it holds or the deadline passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("waited %s for %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

func state(p *upstream.Pool, addr string) upstream.ReplicaState {
	for _, s := range p.Snapshot() {
		if s.Addr == addr {
			return s
		}
	}
	return upstream.ReplicaState{}
}

// startEdge serves h (wrapped with request ids, as the edge does) on a free loopback port.
func startEdge(t *testing.T, h fasthttp.RequestHandler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httpapi.NewServer(httpapi.RequestIDs(h, obs.NewIDs()), httpapi.ServerOptions{Name: "test-edge"}, discardLog())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- httpapi.Serve(ctx, srv, ln, 2*time.Second) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("edge serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// send makes one real HTTP request to addr and returns the response (release it).
func send(t *testing.T, addr string, build func(req *fasthttp.Request)) *fasthttp.Response {
	t.Helper()
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	req.SetRequestURI("http://" + addr + "/")
	build(req)
	resp := fasthttp.AcquireResponse()
	c := &fasthttp.HostClient{Addr: addr, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second,
		DisablePathNormalizing: true}
	defer c.CloseIdleConnections()
	if err := c.DoTimeout(req, resp, 5*time.Second); err != nil {
		t.Fatalf("request to %s: %v", addr, err)
	}
	return resp
}
