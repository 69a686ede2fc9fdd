package httpapi

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// HeaderUserID carries the verified user id from the edge to the backends. The edge deletes any
// client-sent copy and sets it itself; backends trust it only because they are not public.
const HeaderUserID = "X-Flashedge-User"

// HeaderIdempotencyKey is the client's idempotency key for writes that must happen once.
const HeaderIdempotencyKey = "Idempotency-Key"

// Probe answers /health (alive: 200 until shutdown begins) and /ready (200 when Check returns nil within
// Timeout, 503 otherwise). Draining, when it returns true, makes /ready answer 503 so load
// balancers stop sending new work during shutdown.
//
// /ready is reachable by anyone who reaches the port (the edge's is public, for the balancers'
// health checks), and a Check is a store round trip: Ready runs at most one Check at a time and
// answers from the last one for CheckEvery, so a flood of /ready calls costs the store at most
// one Check per CheckEvery whatever its rate. A Probe is safe for concurrent use; it must not be
// copied after first use.
type Probe struct {
	// Check reports whether the service's dependencies answer. Nil means always ready.
	Check func(ctx context.Context) error
	// Timeout bounds Check. Zero means 1s.
	Timeout time.Duration
	// CheckEvery is how long a Check's result answers /ready. Zero means 250ms.
	CheckEvery time.Duration
	// Draining reports that the service is shutting down. Nil means never.
	Draining func() bool
	// Public keeps the failed dependency's error (addresses, store errors) out of the answer,
	// for a probe on a public port: the answer then says only that a dependency does not
	// answer, and the error is logged to Log when readiness changes.
	Public bool
	// Log receives the changes of readiness of a Public probe. Nil discards them.
	Log *slog.Logger

	mu      sync.Mutex
	at      time.Time     // when the last Check ended; zero before the first
	last    error         // its result
	running chan struct{} // closed when the Check in progress ends; nil when none runs
}

// Health answers 200 {"status":"ok"} while the process serves, and 503 draining once it is
// shutting down, so the edge's health probes stop sending it new work during the drain.
func (p *Probe) Health(ctx *fasthttp.RequestCtx) {
	if p.Draining != nil && p.Draining() {
		WriteError(ctx, fasthttp.StatusServiceUnavailable, "draining", "the service is shutting down")
		return
	}
	WriteRawJSON(ctx, fasthttp.StatusOK, []byte(`{"status":"ok"}`))
}

// Ready answers 200 {"status":"ready"} or 503 not_ready (naming the failed dependency unless
// Public).
func (p *Probe) Ready(ctx *fasthttp.RequestCtx) {
	if p.Draining != nil && p.Draining() {
		WriteError(ctx, fasthttp.StatusServiceUnavailable, "draining", "the service is shutting down")
		return
	}
	if err := p.check(); err != nil {
		msg := err.Error()
		if p.Public {
			msg = "a dependency of this service does not answer"
		}
		ctx.Response.Header.Set(fasthttp.HeaderRetryAfter, "1")
		WriteError(ctx, fasthttp.StatusServiceUnavailable, "not_ready", msg)
		return
	}
	WriteRawJSON(ctx, fasthttp.StatusOK, []byte(`{"status":"ready"}`))
}

// check returns the result of a Check that ended less than CheckEvery ago, or runs one. While one
// runs, other callers get the previous result, or wait for it when there is none yet.
func (p *Probe) check() error {
	if p.Check == nil {
		return nil
	}
	every := p.CheckEvery
	if every == 0 {
		every = 250 * time.Millisecond
	}
	p.mu.Lock()
	if !p.at.IsZero() && (time.Since(p.at) < every || p.running != nil) {
		err := p.last
		p.mu.Unlock()
		return err
	}
	if wait := p.running; wait != nil { // the first Check is running
		p.mu.Unlock()
		<-wait
		p.mu.Lock()
		err := p.last
		p.mu.Unlock()
		return err
	}
	done := make(chan struct{})
	p.running = done
	p.mu.Unlock()

	t := p.Timeout
	if t == 0 {
		t = time.Second
	}
	cctx, cancel := context.WithTimeout(context.Background(), t)
	err := p.Check(cctx)
	cancel()

	p.mu.Lock()
	changed := p.at.IsZero() || (err == nil) != (p.last == nil)
	p.at, p.last, p.running = time.Now(), err, nil
	p.mu.Unlock()
	close(done)
	if changed && p.Public && p.Log != nil {
		if err != nil {
			p.Log.Warn("not ready", "err", err)
		} else {
			p.Log.Info("ready")
		}
	}
	return err
}
