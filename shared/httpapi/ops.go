package httpapi

import (
	"context"
	"time"

	"github.com/valyala/fasthttp"
)

// HeaderUserID carries the verified user id from the edge to the backends. The edge deletes any
// client-sent copy and sets it itself; backends trust it only because they are not public.
const HeaderUserID = "X-Flashedge-User"

// HeaderIdempotencyKey is the client's idempotency key for writes that must happen once.
const HeaderIdempotencyKey = "Idempotency-Key"

// Probe answers /health (alive: 200 until shutdown begins) and /ready (200 when Check returns nil within
// Timeout, 503 with the reason otherwise). Draining, when it returns true, makes /ready answer
// 503 so load balancers stop sending new work during shutdown.
type Probe struct {
	// Check reports whether the service's dependencies answer. Nil means always ready.
	Check func(ctx context.Context) error
	// Timeout bounds Check. Zero means 1s.
	Timeout time.Duration
	// Draining reports that the service is shutting down. Nil means never.
	Draining func() bool
}

// Health answers 200 {"status":"ok"} while the process serves, and 503 draining once it is
// shutting down, so the edge's health probes stop sending it new work during the drain.
func (p Probe) Health(ctx *fasthttp.RequestCtx) {
	if p.Draining != nil && p.Draining() {
		WriteError(ctx, fasthttp.StatusServiceUnavailable, "draining", "the service is shutting down")
		return
	}
	WriteRawJSON(ctx, fasthttp.StatusOK, []byte(`{"status":"ok"}`))
}

// Ready answers 200 {"status":"ready"} or 503 with a JSON error naming the failed dependency.
func (p Probe) Ready(ctx *fasthttp.RequestCtx) {
	if p.Draining != nil && p.Draining() {
		WriteError(ctx, fasthttp.StatusServiceUnavailable, "draining", "the service is shutting down")
		return
	}
	if p.Check != nil {
		t := p.Timeout
		if t == 0 {
			t = time.Second
		}
		cctx, cancel := context.WithTimeout(context.Background(), t)
		defer cancel()
		if err := p.Check(cctx); err != nil {
			WriteError(ctx, fasthttp.StatusServiceUnavailable, "not_ready", err.Error())
			return
		}
	}
	WriteRawJSON(ctx, fasthttp.StatusOK, []byte(`{"status":"ready"}`))
}
