package upstream_test

import (
	"bytes"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"flashedge/shared/httpapi"
	"flashedge/shared/upstream"
)

// saturated returns a pool whose one slot is held by a call to a replica that does not answer
// until the test ends, with queued calls more waiting in its queue: every further call is
// refused at arrival (the queue is full, or there is none).
// With batch, the pool batches (Options.BatchPath): ForwardBatched is refused the same way.
func saturated(tb testing.TB, queued int, batch bool) *upstream.Pool {
	tb.Helper()
	release, inside := make(chan struct{}), new(atomic.Int64)
	b := startBackendWith(tb, func(ctx *fasthttp.RequestCtx) {
		inside.Add(1)
		<-release
	})
	o := upstream.Options{Name: "cart", Addrs: addrs(b), MaxInFlight: 1, Timeout: time.Minute}
	if queued > 0 {
		o.MaxQueued, o.QueueWait = queued, time.Minute
	}
	if batch {
		o.BatchPath = httpapi.BatchPath
	}
	p, err := upstream.New(o, discardLog())
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	var held sync.WaitGroup
	for range 1 + queued {
		held.Go(func() { _, _, _ = get(p) })
	}
	tb.Cleanup(func() { close(release); held.Wait(); p.Close() })
	for deadline := time.Now().Add(10 * time.Second); inside.Load() != 1 || p.Queued() != int64(queued); {
		if time.Now().After(deadline) {
			tb.Fatalf("after 10s: %d call(s) at the replica and %d queued, want 1 and %d", inside.Load(), p.Queued(), queued)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return p
}

// refusedCtx is a cart add as the edge receives it (headers and a body to copy).
func refusedCtx() *fasthttp.RequestCtx {
	var rctx fasthttp.RequestCtx
	rctx.Request.Header.SetMethod(fasthttp.MethodPut)
	rctx.Request.SetRequestURI("/api/v1/cart/items/00000001")
	rctx.Request.Header.Set("Authorization", "Bearer a-session-token-of-some-length")
	rctx.Request.Header.Set("X-Request-ID", "0123456789abcdef")
	rctx.Request.Header.SetContentType("application/json")
	rctx.Request.SetBodyString(`{"quantity":2}`)
	return &rctx
}

// TestRefusalAllocs: a call refused at the in-flight limit (the bulk of the edge's work in a
// surge) is answered 503 overloaded with Retry-After and makes no allocation, with or without a
// wait queue: the slot is asked for before the request is copied.
func TestRefusalAllocs(t *testing.T) {
	for _, tc := range []struct {
		name   string
		queued int
		batch  bool
	}{{"no queue", 0, false}, {"queue full", 2, false}, {"batched, no queue", 0, true}, {"batched, queue full", 2, true}} {
		t.Run(tc.name, func(t *testing.T) {
			p := saturated(t, tc.queued, tc.batch)
			forward := p.Forward
			if tc.batch {
				forward = p.ForwardBatched
			}
			rctx := refusedCtx()
			forward(rctx)
			if rctx.Response.StatusCode() != 503 || string(rctx.Response.Header.Peek("Retry-After")) != "1" ||
				!bytes.Contains(rctx.Response.Body(), []byte(`"overloaded"`)) {
				t.Fatalf("refused call: %d Retry-After %q %s, want 503 overloaded with Retry-After 1",
					rctx.Response.StatusCode(), rctx.Response.Header.Peek("Retry-After"), rctx.Response.Body())
			}
			shed := p.Shed()
			// AllocsPerRun counts every goroutine's allocations (the held calls' timers, the
			// test runner): the least of a few runs is the refusal's own.
			allocs := 1e9
			for range 5 {
				allocs = min(allocs, testing.AllocsPerRun(200, func() {
					rctx.Response.Reset()
					forward(rctx)
				}))
			}
			if allocs != 0 {
				t.Errorf("a refused call makes %v allocations, want 0", allocs)
			}
			if got := p.Shed() - shed; got < 1000 {
				t.Errorf("Shed() grew by %d during the runs, want every call refused", got)
			}
		})
	}
}

// BenchmarkRefusal is the CPU of one call refused at the in-flight limit, in process (no
// socket): the part of a refusal the edge's code decides.
func BenchmarkRefusal(b *testing.B) {
	for _, tc := range []struct {
		name   string
		queued int
	}{{"no-queue", 0}, {"queue-full", 2}} {
		b.Run(tc.name, func(b *testing.B) {
			p := saturated(b, tc.queued, false)
			rctx := refusedCtx()
			b.ReportAllocs()
			for b.Loop() {
				rctx.Response.Reset()
				p.Forward(rctx)
			}
			if rctx.Response.StatusCode() != 503 {
				b.Fatalf("status %d, want 503", rctx.Response.StatusCode())
			}
		})
	}
}
