package upstream

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// TestLimitQueueStress: many callers over a small limit, some cancelling while queued,
// some with short deadlines, some holding their slot long enough to shrink the expected-wait
// budget, one call in five a first call (ahead of the others); every slot handed out is released once. Afterwards nothing is in flight or queued,
// and at no moment did more than the limit hold a slot.
func TestLimitQueueStress(t *testing.T) {
	const limit, callers, rounds = 4, 64, 40
	l := newLimiter(limit, 1, false, 16, 5*time.Millisecond)
	var holding, peak atomic.Int64
	var served, refused, cancelled atomic.Int64
	var wg sync.WaitGroup
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(c), 7))
			for range rounds {
				ctx, cancel := context.Background(), context.CancelFunc(func() {})
				switch rng.IntN(4) {
				case 0:
					ctx, cancel = context.WithTimeout(ctx, time.Duration(rng.IntN(3000))*time.Microsecond)
				case 1:
					ctx, cancel = context.WithCancel(ctx)
					go func(d time.Duration) { time.Sleep(d); cancel() }(time.Duration(rng.IntN(2000)) * time.Microsecond)
				}
				err := l.acquire(ctx, rng.IntN(5) == 0)
				switch {
				case err == nil:
					n := holding.Add(1)
					for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
					}
					hold := time.Duration(rng.IntN(400)) * time.Microsecond
					time.Sleep(hold)
					holding.Add(-1)
					l.release(hold)
					served.Add(1)
				case errors.Is(err, ErrOverloaded):
					refused.Add(1)
				case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
					cancelled.Add(1)
				default:
					t.Errorf("acquire: %v", err)
				}
				cancel()
			}
		}()
	}
	wg.Wait()
	_, inFlight := l.state()
	l.qmu.Lock()
	head, tail, firstTail, firstQueued := l.head, l.tail, l.firstTail, l.firstQueued
	l.qmu.Unlock()
	t.Logf("served %d, refused %d, cancelled %d, peak %d", served.Load(), refused.Load(), cancelled.Load(), peak.Load())
	if inFlight != 0 || l.queued.Load() != 0 || head != nil || tail != nil || firstTail != nil || firstQueued != 0 {
		t.Fatalf("after all callers returned: in flight %d, queued %d (first %d), head %p, tail %p, first tail %p; want 0, 0, nil",
			inFlight, l.queued.Load(), firstQueued, head, tail, firstTail)
	}
	if peak.Load() > limit {
		t.Fatalf("%d callers held a slot at once, limit %d", peak.Load(), limit)
	}
	if served.Load() == 0 || served.Load()+refused.Load()+cancelled.Load() != callers*rounds {
		t.Fatalf("outcomes do not add up: %d+%d+%d != %d", served.Load(), refused.Load(), cancelled.Load(), callers*rounds)
	}
}

// TestPoolQueueNoLeak: Do over real loopback replicas (one slow and failing every other
// call with 500, one refusing connections) with the queue on, callers cancelling, timing out or
// waiting: once every Do returned, no slot is held and no waiter is left.
func TestPoolQueueNoLeak(t *testing.T) {
	var at, peak, n atomic.Int64
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close() // nothing listens there: connections are refused
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		c := at.Add(1)
		defer at.Add(-1)
		for p := peak.Load(); c > p && !peak.CompareAndSwap(p, c); p = peak.Load() {
		}
		time.Sleep(2 * time.Millisecond)
		if n.Add(1)%2 == 0 {
			ctx.SetStatusCode(500)
		}
	}}
	go func() { _ = srv.Serve(ln) }()
	defer func() { _ = srv.Shutdown() }()
	p, err := New(Options{Name: "stress", Addrs: []string{ln.Addr().String(), deadAddr}, Timeout: 200 * time.Millisecond,
		MaxInFlight: 3, MaxQueued: 8, QueueWait: 10 * time.Millisecond, Retries: 1}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var wg sync.WaitGroup
	var ok, over, other atomic.Int64
	for c := range 48 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(c), 11))
			for range 15 {
				ctx, cancel := context.Background(), context.CancelFunc(func() {})
				switch rng.IntN(3) {
				case 0:
					ctx, cancel = context.WithTimeout(ctx, time.Duration(1+rng.IntN(5))*time.Millisecond)
				case 1:
					ctx, cancel = context.WithCancel(ctx)
					go func(d time.Duration) { time.Sleep(d); cancel() }(time.Duration(rng.IntN(3000)) * time.Microsecond)
				}
				req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
				req.SetRequestURI("/x")
				err := p.Do(ctx, req, resp)
				switch {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, ErrOverloaded):
					over.Add(1)
				default:
					other.Add(1)
				}
				fasthttp.ReleaseRequest(req)
				fasthttp.ReleaseResponse(resp)
				cancel()
			}
		}()
	}
	wg.Wait()
	limit, inFlight := p.limit.state()
	t.Logf("ok %d, overloaded %d, other errors %d; replica peak %d, limit %d", ok.Load(), over.Load(), other.Load(), peak.Load(), limit)
	if inFlight != 0 || p.limit.queued.Load() != 0 {
		t.Fatalf("after every Do returned: %d in flight, %d queued; want 0, 0", inFlight, p.limit.queued.Load())
	}
	// The replica's own peak is only logged: a caller whose deadline ends its attempt releases
	// its slot while the replica still works on the abandoned request (fasthttp's client does
	// not cancel it), so the replica can see MaxInFlight+1 at once. TestLimitQueueStress
	// checks the bound where the limiter keeps it, between acquire and release.
}

// TestQueueWaitHalfTheDeadline: a waiter whose caller has a deadline gives up at half the
// time left (refused as overloaded), so the caller still has time to answer; the slot and the
// queue are clean afterwards.
func TestQueueWaitHalfTheDeadline(t *testing.T) {
	l := newLimiter(1, 1, false, 8, time.Minute)
	if err := l.acquire(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	err := l.acquire(ctx, false)
	waited := time.Since(start)
	if !errors.Is(err, ErrOverloaded) || ctx.Err() != nil || l.expired.Load() != 1 {
		t.Fatalf("after %v: %v (ctx %v, expired %d), want ErrOverloaded counted as expired with the caller's deadline not reached",
			waited, err, ctx.Err(), l.expired.Load())
	}
	if waited < 900*time.Millisecond {
		t.Fatalf("gave up after %v, want about half of 2s", waited)
	}
	l.release(time.Millisecond)
	if _, n := l.state(); n != 0 || l.queued.Load() != 0 {
		t.Fatalf("in flight %d, queued %d", n, l.queued.Load())
	}
}
