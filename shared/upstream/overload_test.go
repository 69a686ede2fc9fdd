package upstream_test

import (
	"bytes"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"flashedge/shared/upstream"
)

// TestOverloadIsShedAtOnce: with MaxInFlight calls held by a slow replica and no wait queue,
// every further call is answered 503 overloaded with Retry-After without reaching the replica; once the held calls
// finish, calls go through again at once.
func TestOverloadIsShedAtOnce(t *testing.T) {
	release, inside, b := heldBackend(t)
	const bound = 8
	p := newPool(t, upstream.Options{Name: "cart", Addrs: addrs(b), MaxInFlight: bound, Timeout: 10 * time.Second})
	edge := startEdge(t, p.Forward)

	var held sync.WaitGroup
	for range bound {
		held.Go(func() {
			r := send(t, edge, func(req *fasthttp.Request) { req.SetRequestURI("http://" + edge + "/api/v1/cart") })
			defer fasthttp.ReleaseResponse(r)
			if r.StatusCode() != 200 {
				t.Errorf("held call: %d", r.StatusCode())
			}
		})
	}
	waitFor(t, 5*time.Second, "the held calls to reach the replica", func() bool { return inside.Load() == bound })

	const extra = 50
	for i := range extra {
		r := send(t, edge, func(req *fasthttp.Request) { req.SetRequestURI("http://" + edge + "/api/v1/cart") })
		if r.StatusCode() != 503 || string(r.Header.Peek("Retry-After")) != "1" || !bytes.Contains(r.Body(), []byte(`"overloaded"`)) {
			t.Fatalf("call %d over the bound: %d %q Retry-After %q, want 503 overloaded with Retry-After 1",
				i, r.StatusCode(), r.Body(), r.Header.Peek("Retry-After"))
		}
		fasthttp.ReleaseResponse(r)
	}
	if got := inside.Load(); got != bound {
		t.Fatalf("the replica saw %d calls, want only the %d held ones", got, bound)
	}
	if p.Shed() != extra {
		t.Fatalf("Shed() = %d, want %d", p.Shed(), extra)
	}
	close(release)
	held.Wait()
	if p.InFlight() != 0 {
		t.Fatalf("InFlight() = %d after every call ended", p.InFlight())
	}
	r := send(t, edge, func(req *fasthttp.Request) { req.SetRequestURI("http://" + edge + "/api/v1/cart") })
	defer fasthttp.ReleaseResponse(r)
	if r.StatusCode() != 200 {
		t.Fatalf("after the overload: %d, want 200", r.StatusCode())
	}
	if s := state(p, b.addr); s.Failures != 0 || s.Breaker != "closed" {
		t.Fatalf("shed calls counted against the replica: %+v", s)
	}
}

// TestOverloadWaitsInTheQueue: with MaxInFlight calls held by a slow replica, further calls wait
// in the queue without reaching the replica, and are all served once the held calls finish.
func TestOverloadWaitsInTheQueue(t *testing.T) {
	release, inside, b := heldBackend(t)
	const bound, extra = 4, 12
	p := newPool(t, upstream.Options{Name: "cart", Addrs: addrs(b), MaxInFlight: bound, MaxQueued: upstream.DefaultMaxQueued, QueueWait: time.Minute, Timeout: time.Minute})
	edge := startEdge(t, p.Forward)

	var calls sync.WaitGroup
	call := func() {
		r := send(t, edge, func(req *fasthttp.Request) { req.SetRequestURI("http://" + edge + "/api/v1/cart") })
		defer fasthttp.ReleaseResponse(r)
		if r.StatusCode() != 200 {
			t.Errorf("call: %d %s, want 200 after waiting", r.StatusCode(), r.Body())
		}
	}
	for range bound {
		calls.Go(call)
	}
	waitFor(t, 10*time.Second, "the held calls to reach the replica", func() bool { return inside.Load() == bound })
	for range extra {
		calls.Go(call)
	}
	waitFor(t, 10*time.Second, "the extra calls to queue", func() bool { return p.Queued() == extra })
	if got := inside.Load(); got != bound || p.InFlight() != bound {
		t.Fatalf("with %d queued: the replica saw %d calls, %d in flight; want %d and %d", extra, got, p.InFlight(), bound, bound)
	}
	close(release)
	calls.Wait()
	if got := inside.Load(); got != bound+extra || p.Shed() != 0 || p.InFlight() != 0 || p.Queued() != 0 {
		t.Fatalf("after the release: replica saw %d, shed %d, in flight %d, queued %d; want %d, 0, 0, 0",
			got, p.Shed(), p.InFlight(), p.Queued(), bound+extra)
	}
}

// TestForwardSendsTheRoutedPath: a request the edge matched on its parsed path is forwarded
// with that path, never with the raw request line the client sent.
func TestForwardSendsTheRoutedPath(t *testing.T) {
	b := startBackend(t)
	p := newPool(t, upstream.Options{Name: "cart", Addrs: addrs(b)})
	var routed atomic.Value
	// Matched on the parsed, normalised path, as the edge's fast paths (flash-sale attempts,
	// product reads) match before the router.
	h := func(ctx *fasthttp.RequestCtx) {
		routed.Store(string(ctx.Path()))
		if string(ctx.Path()) != "/api/v1/cart" {
			ctx.SetStatusCode(404)
			return
		}
		p.Forward(ctx)
	}
	edge := startEdge(t, h)
	tests := []struct{ name, raw, want string }{
		{"plain", "/api/v1/cart?x=1", "/api/v1/cart?x=1"},
		{"doubled slash first", "//api/v1/cart", "/api/v1/cart"},
		{"doubled slash inside", "/api//v1/cart?y=2", "/api/v1/cart?y=2"},
		{"dot segment", "/x/../api/v1/cart", "/api/v1/cart"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			routed.Store("")
			resp := send(t, edge, func(req *fasthttp.Request) {
				req.Header.SetRequestURI(tt.raw)
				req.Header.SetHost(edge)
			})
			defer fasthttp.ReleaseResponse(resp)
			if resp.StatusCode() != 200 {
				t.Fatalf("%s: %d %s (routed %v)", tt.raw, resp.StatusCode(), resp.Body(), routed.Load())
			}
			if got := b.lastRequest().uri; got != tt.want {
				t.Fatalf("%s was routed as %v and forwarded as %q, want %q", tt.raw, routed.Load(), got, tt.want)
			}
		})
	}
}

// heldBackend starts a replica that counts the calls it gets (inside) and holds each one until
// release is closed.
func heldBackend(t *testing.T) (release chan struct{}, inside *atomic.Int64, b *backend) {
	release, inside = make(chan struct{}), new(atomic.Int64)
	b = startBackendWith(t, func(ctx *fasthttp.RequestCtx) {
		inside.Add(1)
		<-release
		ctx.SetStatusCode(200)
	})
	return release, inside, b
}
