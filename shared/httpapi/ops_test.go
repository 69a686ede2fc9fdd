package httpapi_test

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"flashedge/shared/httpapi"
)

// TestReadyChecksAtMostOncePerInterval: /ready is public on the edge and its Check is a store
// round trip, so a flood of probes, concurrent or one after another, runs the Check once per
// CheckEvery, and every caller gets its result.
func TestReadyChecksAtMostOncePerInterval(t *testing.T) {
	var calls atomic.Int64
	release := make(chan struct{})
	p := &httpapi.Probe{CheckEvery: time.Hour, Check: func(context.Context) error {
		calls.Add(1)
		<-release
		return nil
	}}
	const callers = 200
	var wg sync.WaitGroup
	codes := make([]int, callers)
	for i := range callers {
		wg.Go(func() {
			var ctx fasthttp.RequestCtx
			p.Ready(&ctx)
			codes[i] = ctx.Response.StatusCode()
		})
	}
	// The callers that arrive while the Check runs wait for it: none answers before it ends.
	for calls.Load() == 0 {
		runtime.Gosched()
	}
	close(release)
	wg.Wait()
	for i, c := range codes {
		if c != 200 {
			t.Fatalf("caller %d: status %d, want 200 from the one Check", i, c)
		}
	}
	for range callers {
		var ctx fasthttp.RequestCtx
		p.Ready(&ctx)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d /ready calls ran the Check %d times, want once per CheckEvery", 2*callers, n)
	}
}

// TestReadyRechecksAndHidesReasonWhenPublic: after CheckEvery a new Check runs (a store back up
// is seen); a Public probe's 503 names no dependency, an internal one's does.
func TestReadyRechecksAndHidesReasonWhenPublic(t *testing.T) {
	var down atomic.Bool
	down.Store(true)
	check := func(context.Context) error {
		if down.Load() {
			return errors.New("store: dial tcp 10.1.2.3:6379: connection refused")
		}
		return nil
	}
	for _, public := range []bool{false, true} {
		p := &httpapi.Probe{Check: check, CheckEvery: time.Millisecond, Public: public}
		down.Store(true)
		var ctx fasthttp.RequestCtx
		p.Ready(&ctx)
		body := string(ctx.Response.Body())
		if ctx.Response.StatusCode() != 503 || !strings.Contains(body, `"not_ready"`) || string(ctx.Response.Header.Peek("Retry-After")) == "" {
			t.Fatalf("public=%v, store down: %d %s, want 503 not_ready with Retry-After", public, ctx.Response.StatusCode(), body)
		}
		if leaked := strings.Contains(body, "10.1.2.3"); leaked != !public {
			t.Fatalf("public=%v: answer %s; the reason must be shown only on an internal probe", public, body)
		}
		down.Store(false)
		deadline := time.Now().Add(5 * time.Second)
		for {
			var ctx fasthttp.RequestCtx
			p.Ready(&ctx)
			if ctx.Response.StatusCode() == 200 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("public=%v: still %d after the store came back", public, ctx.Response.StatusCode())
			}
			time.Sleep(time.Millisecond)
		}
	}
}
