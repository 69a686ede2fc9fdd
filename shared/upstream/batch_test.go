package upstream_test

import (
	"bytes"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"flashedge/shared/httpapi"
	"flashedge/shared/upstream"
)

// echoServer is a real server on a free loopback port whose /echo/{n} answers status 200 + n%3
// (so 200, 201, 202), an X-Echo header with n, and a body naming n, the request's
// Idempotency-Key and its body; after delay. batch serves httpapi.BatchPath (a replica of an
// older build does not).
func echoServer(t *testing.T, batch bool, delay time.Duration) string {
	t.Helper()
	return echoServerTB(t, batch, delay)
}

func echoServerTB(t testing.TB, batch bool, delay time.Duration) string {
	t.Helper()
	return echoServerLimit(t, batch, delay, 0)
}

// echoServerLimit is echoServer taking bodies of at most limit bytes (0: the default 64 KiB).
func echoServerLimit(t testing.TB, batch bool, delay time.Duration, limit int) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := func(ctx *fasthttp.RequestCtx) {
		n, ok := bytes.CutPrefix(ctx.Path(), []byte("/echo/"))
		if !ok {
			httpapi.WriteError(ctx, fasthttp.StatusNotFound, "not_found", "no such route")
			return
		}
		time.Sleep(delay) // a service taking its time: the requests arriving meanwhile batch
		i, _ := strconv.Atoi(string(n))
		ctx.Response.Header.Set("X-Echo", string(n))
		ctx.SetStatusCode(200 + i%3)
		ctx.SetBodyString(fmt.Sprintf("n=%s key=%s body=%s", n, ctx.Request.Header.Peek("Idempotency-Key"), ctx.PostBody()))
	}
	srv := httpapi.NewServer(h, httpapi.ServerOptions{Name: "echo", Batch: batch, MaxRequestBodySize: limit}, discardLog())
	done := make(chan struct{})
	go func() { _ = srv.Serve(ln); close(done) }()
	t.Cleanup(func() { _ = srv.Shutdown(); <-done })
	return ln.Addr().String()
}

func batchPool(t *testing.T, addrs ...string) *upstream.Pool {
	t.Helper()
	p, err := upstream.New(upstream.Options{Name: "order", Addrs: addrs, BatchPath: httpapi.BatchPath, Timeout: 2 * time.Second}, discardLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// forwardEcho sends POST /echo/{n} through ForwardBatched and returns the answer as the client
// would see it.
func forwardEcho(p *upstream.Pool, n int) (status int, echo, body string) {
	var req fasthttp.Request
	req.Header.SetMethod(fasthttp.MethodPost)
	req.SetRequestURI("/echo/" + strconv.Itoa(n))
	req.Header.Set("Idempotency-Key", "k"+strconv.Itoa(n))
	req.SetBodyString(`{"n":` + strconv.Itoa(n) + `}`)
	var ctx fasthttp.RequestCtx
	ctx.Init(&req, nil, nil)
	p.ForwardBatched(&ctx)
	return ctx.Response.StatusCode(), string(ctx.Response.Header.Peek("X-Echo")), string(ctx.Response.Body())
}

func wantEcho(t *testing.T, n, status int, echo, body string) {
	t.Helper()
	wantBody := fmt.Sprintf(`n=%d key=k%d body={"n":%d}`, n, n, n)
	if status != 200+n%3 || echo != strconv.Itoa(n) || body != wantBody {
		t.Errorf("request %d: got %d X-Echo %q body %q; want %d X-Echo %d body %q", n, status, echo, body, 200+n%3, n, wantBody)
	}
}

// Every request of a batch gets its own answer, status, headers and body, and the requests that
// arrive while a batch is out go together.
func TestForwardBatchedAnswersEachRequest(t *testing.T) {
	p := batchPool(t, echoServer(t, true, 5*time.Millisecond))
	const n = 300
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			status, echo, body := forwardEcho(p, i)
			wantEcho(t, i, status, echo, body)
		})
	}
	wg.Wait()
	batches, requests, _ := p.Batched()
	if requests != n || batches == 0 || batches >= requests/4 {
		t.Errorf("%d requests went in %d batches carrying %d: want every request batched, at least 4 a batch on average", n, batches, requests)
	}
}

// A batch's body stays within BatchBytes, which the replicas' body limit allows: large requests
// go in batches of their own, or alone when one would not fit, so a large request never makes
// the others' batch too large (413 for every request in it).
func TestForwardBatchedKeepsBatchesUnderTheLimit(t *testing.T) {
	const limit = 8 << 10
	addr := echoServerLimit(t, true, 2*time.Millisecond, limit)
	p, err := upstream.New(upstream.Options{Name: "order", Addrs: []string{addr}, BatchPath: httpapi.BatchPath, BatchBytes: limit}, discardLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	var wg sync.WaitGroup
	for i := range 120 {
		wg.Go(func() {
			pad := strings.Repeat("x", []int{10, 3000, 8150}[i%3]) // small, a few to a batch, alone (with its headers over the limit)
			var req fasthttp.Request
			req.Header.SetMethod(fasthttp.MethodPost)
			req.SetRequestURI("/echo/" + strconv.Itoa(i))
			req.Header.Set("Idempotency-Key", "k"+strconv.Itoa(i))
			req.SetBodyString(pad)
			var ctx fasthttp.RequestCtx
			ctx.Init(&req, nil, nil)
			p.ForwardBatched(&ctx)
			want := fmt.Sprintf("n=%d key=k%d body=%s", i, i, pad)
			if ctx.Response.StatusCode() != 200+i%3 || string(ctx.Response.Body()) != want {
				t.Errorf("request %d (%d bytes): %d %.80s", i, len(pad), ctx.Response.StatusCode(), ctx.Response.Body())
			}
		})
	}
	wg.Wait()
	if batches, requests, _ := p.Batched(); requests != 80 || batches >= requests {
		t.Errorf("%d batches carried %d requests: want the 80 small and medium ones batched, the 40 large ones alone", batches, requests)
	}
}

// A replica that does not serve batches (an older build during a rolling update answers the
// batch route 404) gets the requests one by one, with the same answers.
func TestForwardBatchedFallsBackOneByOne(t *testing.T) {
	p := batchPool(t, echoServer(t, false, 0))
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			status, echo, body := forwardEcho(p, i)
			wantEcho(t, i, status, echo, body)
		})
	}
	wg.Wait()
}

// A batch that cannot be sent answers each of its requests as Forward would: 503 under
// maintenance, with Retry-After.
func TestForwardBatchedReplicaDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	p := batchPool(t, addr)
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() {
			status, _, body := forwardEcho(p, i)
			if status != fasthttp.StatusServiceUnavailable || !bytes.Contains([]byte(body), []byte(`"service_unavailable"`)) {
				t.Errorf("request %d with the replica down: %d %s; want 503 service_unavailable", i, status, body)
			}
		})
	}
	wg.Wait()
}

// Close lets the batches already queued go out: a request that took its slot is answered by the
// replica, not dropped.
func TestForwardBatchedCloseSendsWhatIsQueued(t *testing.T) {
	addr := echoServer(t, true, 20*time.Millisecond)
	p, err := upstream.New(upstream.Options{Name: "order", Addrs: []string{addr}, BatchPath: httpapi.BatchPath, BatchSenders: 1, BatchMax: 2}, discardLog())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() {
			status, echo, body := forwardEcho(p, i)
			if status == fasthttp.StatusServiceUnavailable {
				return // it arrived after Close: refused before it was queued
			}
			wantEcho(t, i, status, echo, body)
		})
	}
	// With one sender of two requests a batch and a replica taking 20ms a batch, requests are
	// still queued when Close runs.
	deadline := time.Now().Add(5 * time.Second)
	for p.InFlight() < 10 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	p.Close()
	wg.Wait()
	if _, requests, _ := p.Batched(); requests != 10 {
		t.Errorf("after Close, %d of the 10 requests queued were sent; want all", requests)
	}
}

// BenchmarkForwardBatched is one request through ForwardBatched to a replica on loopback, with
// 64 callers at once (so that they batch); allocations are per request.
func BenchmarkForwardBatched(b *testing.B) {
	addr := echoServerTB(b, true, 0)
	p, err := upstream.New(upstream.Options{Name: "order", Addrs: []string{addr}, BatchPath: httpapi.BatchPath}, discardLog())
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	b.ReportAllocs()
	b.SetParallelism(64)
	b.RunParallel(func(pb *testing.PB) {
		var ctx fasthttp.RequestCtx
		for pb.Next() {
			ctx.Request.Reset()
			ctx.Response.Reset()
			ctx.Request.Header.SetMethod(fasthttp.MethodPost)
			ctx.Request.SetRequestURI("/echo/7")
			ctx.Request.Header.Set("Idempotency-Key", "k7")
			ctx.Request.SetBodyString(`{"n":7}`)
			p.ForwardBatched(&ctx)
			if ctx.Response.StatusCode() != 201 {
				b.Errorf("status %d", ctx.Response.StatusCode())
				return
			}
		}
	})
}
