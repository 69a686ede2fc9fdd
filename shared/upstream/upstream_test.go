package upstream_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"flashedge/shared/httpapi"
	"flashedge/shared/netfault"
	"flashedge/shared/upstream"
)

func TestNewValidatesOptions(t *testing.T) {
	ok := []string{"127.0.0.1:5001"}
	tests := []struct {
		name string
		o    upstream.Options
		want string // substring of the error; empty means valid
	}{
		{"valid", upstream.Options{Name: "catalog", Addrs: ok}, ""},
		{"valid several", upstream.Options{Name: "cart", Addrs: []string{"10.0.0.1:5002", "cart-2:5002", "[::1]:5002"}}, ""},
		{"no name", upstream.Options{Addrs: ok}, "Name is empty"},
		{"no addrs", upstream.Options{Name: "catalog"}, "at least one replica"},
		{"scheme", upstream.Options{Name: "catalog", Addrs: []string{"http://127.0.0.1:5001"}}, "host:port only"},
		{"no port", upstream.Options{Name: "catalog", Addrs: []string{"127.0.0.1"}}, "not host:port"},
		{"bad port", upstream.Options{Name: "catalog", Addrs: []string{"127.0.0.1:99999"}}, "port must be"},
		{"duplicate", upstream.Options{Name: "catalog", Addrs: []string{"a:1", "a:1"}}, "listed twice"},
		{"negative timeout", upstream.Options{Name: "catalog", Addrs: ok, Timeout: -time.Second}, "Timeout is negative"},
		{"ratio above 1", upstream.Options{Name: "catalog", Addrs: ok, FailureRatio: 1.5}, "FailureRatio"},
		{"health path", upstream.Options{Name: "catalog", Addrs: ok, HealthPath: "health"}, "must start with '/'"},
		{"negative min requests", upstream.Options{Name: "catalog", Addrs: ok, MinRequests: -1}, "must not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := upstream.New(tt.o, nil)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("New(%+v) = %v; want no error", tt.o, err)
				}
				p.Close()
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New(%+v) error = %v; want one containing %q", tt.o, err, tt.want)
			}
		})
	}
}

func TestRoundRobinOverThreeReplicas(t *testing.T) {
	bs := []*backend{startBackend(t), startBackend(t), startBackend(t)}
	p := newPool(t, upstream.Options{Addrs: addrs(bs...)})
	const n = 30
	for i := range n {
		if status, _, err := get(p); err != nil || status != 200 {
			t.Fatalf("request %d: status %d, err %v", i, status, err)
		}
	}
	for i, b := range bs {
		if got := b.hits.Load(); got != n/3 {
			t.Errorf("replica %d got %d of %d requests; want exactly %d", i, got, n, n/3)
		}
	}
}

func TestUnhealthyReplicaIsSkippedAndComesBack(t *testing.T) {
	const interval = 50 * time.Millisecond
	tests := []struct {
		name   string
		break_ func(b *backend)
		heal   func(b *backend)
	}{
		{"health answers 500", func(b *backend) { b.health.Store(500) }, func(b *backend) { b.health.Store(200) }},
		{"health times out", func(b *backend) { b.healthDelay.Store(int64(300 * time.Millisecond)) },
			func(b *backend) { b.healthDelay.Store(0) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bs := []*backend{startBackend(t), startBackend(t), startBackend(t)}
			var changes atomic.Int32
			p := newPool(t, upstream.Options{Addrs: addrs(bs...), HealthInterval: interval,
				HealthTimeout:  100 * time.Millisecond,
				OnHealthChange: func(string, string, bool) { changes.Add(1) }})
			runPool(t, p)
			sick := bs[1]

			tt.break_(sick)
			took := waitFor(t, 2*time.Second, "the pool to mark the replica unhealthy", func() bool {
				return !state(p, sick.addr).Healthy
			})
			t.Logf("replica taken out %s after its health failed (probe interval %s)", took, interval)
			if s := state(p, sick.addr); !strings.Contains(s.LastError, "health") {
				t.Errorf("LastError = %q; want the probe failure", s.LastError)
			}
			before := sick.hits.Load()
			for i := range 30 {
				if status, _, err := get(p); err != nil || status != 200 {
					t.Fatalf("request %d with one replica out: status %d, err %v", i, status, err)
				}
			}
			if got := sick.hits.Load() - before; got != 0 {
				t.Fatalf("unhealthy replica got %d requests; want 0", got)
			}

			tt.heal(sick)
			waitFor(t, 2*time.Second, "the replica to be healthy again", func() bool { return state(p, sick.addr).Healthy })
			for range 30 {
				if _, _, err := get(p); err != nil {
					t.Fatal(err)
				}
			}
			if got := sick.hits.Load() - before; got != 10 {
				t.Fatalf("healed replica got %d of 30 requests; want 10", got)
			}
			if got := changes.Load(); got != 2 {
				t.Errorf("OnHealthChange called %d times; want 2 (down, up)", got)
			}
		})
	}
}

func TestKillReplicaUnderLoad(t *testing.T) {
	bs := []*backend{startBackend(t), startBackend(t), startBackend(t)}
	p := newPool(t, upstream.Options{Addrs: addrs(bs...), HealthInterval: 50 * time.Millisecond,
		HealthTimeout: 100 * time.Millisecond, Timeout: time.Second})
	runPool(t, p)
	victim := bs[2]

	const (
		workers     = 4
		killAt      = 300  // requests done before the kill
		afterNotice = 1000 // requests to run once the pool has noticed
		maxTotal    = 20000
		deadline    = 15 * time.Second
	)
	var (
		started, done             atomic.Int64
		noticed                   atomic.Bool
		ranAfter                  atomic.Int64
		failedBefore, failedAfter atomic.Int64
		firstErr                  atomic.Value
		wg                        sync.WaitGroup
		stop                      = time.Now().Add(deadline)
		killOnce                  sync.Once
		killedAt, sawDown         time.Time
	)
	more := func() bool {
		return ranAfter.Load() < afterNotice && started.Add(1) <= maxTotal && time.Now().Before(stop)
	}
	for range workers {
		wg.Go(func() {
			for more() {
				after := noticed.Load()
				status, _, err := get(p)
				if after {
					ranAfter.Add(1)
				}
				if err != nil || status != 200 {
					if after {
						failedAfter.Add(1)
					} else {
						failedBefore.Add(1)
					}
					firstErr.CompareAndSwap(nil, fmt.Sprintf("status %d err %v", status, err))
				}
				if done.Add(1) == killAt {
					killOnce.Do(func() {
						killedAt = time.Now()
						wg.Go(func() {
							victim.kill()
							waitFor(t, 5*time.Second, "the pool to notice the killed replica", func() bool {
								return !state(p, victim.addr).Healthy
							})
							sawDown = time.Now()
							noticed.Store(true)
						})
					})
				}
			}
		})
	}
	wg.Wait()
	if !noticed.Load() {
		t.Fatalf("the pool never noticed the killed replica (%d requests done)", done.Load())
	}
	t.Logf("%d requests; replica killed after %d; noticed %s later; failed before noticing: %d; after: %d of %d",
		done.Load(), killAt, sawDown.Sub(killedAt), failedBefore.Load(), failedAfter.Load(), ranAfter.Load())
	if n := failedAfter.Load(); n != 0 {
		t.Fatalf("%d requests failed after the pool noticed the dead replica (first: %v); want 0", n, firstErr.Load())
	}
	if ranAfter.Load() < afterNotice {
		t.Fatalf("only %d requests ran after the pool noticed; want %d", ranAfter.Load(), afterNotice)
	}
}

func TestRetryPolicy(t *testing.T) {
	tests := []struct {
		name       string
		method     string
		header     map[string]string
		retries    int
		wantHits   int64
		wantSpread bool // each replica saw one attempt
	}{
		{"POST without Idempotency-Key is not retried", fasthttp.MethodPost, nil, 0, 1, false},
		{"POST with Idempotency-Key is retried", fasthttp.MethodPost, map[string]string{httpapi.HeaderIdempotencyKey: "k-1"}, 0, 2, true},
		{"PATCH is not retried", fasthttp.MethodPatch, nil, 0, 1, false},
		{"GET is retried once on another replica", fasthttp.MethodGet, nil, 0, 2, true},
		{"PUT is retried", fasthttp.MethodPut, nil, 0, 2, true},
		{"DELETE is retried", fasthttp.MethodDelete, nil, 0, 2, true},
		{"GET with retries off", fasthttp.MethodGet, nil, -1, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bs := []*backend{startBackend(t), startBackend(t)}
			for _, b := range bs {
				b.status.Store(503)
			}
			p := newPool(t, upstream.Options{Addrs: addrs(bs...), Retries: tt.retries, MinRequests: 1000})
			status, _, err := call(p, context.Background(), tt.method, "/x", tt.header)
			if err != nil || status != 503 {
				t.Fatalf("%s: status %d, err %v; want the replica's 503 passed back", tt.method, status, err)
			}
			hits := bs[0].hits.Load() + bs[1].hits.Load()
			if hits != tt.wantHits {
				t.Fatalf("%s reached the replicas %d times; want %d", tt.method, hits, tt.wantHits)
			}
			if tt.wantSpread && (bs[0].hits.Load() != 1 || bs[1].hits.Load() != 1) {
				t.Fatalf("retry went to the same replica: hits %d and %d", bs[0].hits.Load(), bs[1].hits.Load())
			}
		})
	}

	t.Run("GET that gets 503 then 200 succeeds", func(t *testing.T) {
		bad, good := startBackend(t), startBackend(t)
		bad.status.Store(503)
		p := newPool(t, upstream.Options{Addrs: addrs(bad, good), MinRequests: 1000})
		for i := range 6 {
			if status, _, err := get(p); err != nil || status != 200 {
				t.Fatalf("request %d: status %d, err %v; want 200 from the retry", i, status, err)
			}
		}
	})

	t.Run("500 is not retried", func(t *testing.T) {
		bs := []*backend{startBackend(t), startBackend(t)}
		bs[0].status.Store(500)
		bs[1].status.Store(500)
		p := newPool(t, upstream.Options{Addrs: addrs(bs...), MinRequests: 1000})
		if status, _, _ := get(p); status != 500 {
			t.Fatalf("status %d; want 500", status)
		}
		if hits := bs[0].hits.Load() + bs[1].hits.Load(); hits != 1 {
			t.Fatalf("a 500 was retried: %d attempts", hits)
		}
	})

	t.Run("POST to a refused replica goes to another", func(t *testing.T) {
		live := startBackend(t)
		p := newPool(t, upstream.Options{Addrs: []string{deadAddr(t), live.addr}, MinRequests: 1000})
		for i := range 4 {
			status, _, err := call(p, context.Background(), fasthttp.MethodPost, "/x", nil)
			if err != nil || status != 200 {
				t.Fatalf("POST %d: status %d, err %v; a refused connect never reached the replica, so it may go elsewhere", i, status, err)
			}
		}
		if got := live.hits.Load(); got != 4 {
			t.Fatalf("live replica saw %d POSTs; want 4 (each exactly once)", got)
		}
	})
}

// TestFourHundredsAndUnavailableDoNotTripTheBreaker: a 4xx is the request's fault and a 503 is
// the replica saying it cannot serve now (a dependency of its own is down, e.g. the catalog
// behind the cart): neither may open the breaker, or one service's outage would take down the
// routes of every service that calls it.
func TestFourHundredsAndUnavailableDoNotTripTheBreaker(t *testing.T) {
	for _, status := range []int{404, 409, 503} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			b := startBackend(t)
			b.status.Store(int32(status))
			var transitions atomic.Int32
			p := newPool(t, upstream.Options{Addrs: addrs(b), MinRequests: 20, Retries: -1,
				OnStateChange: func(string, string, string, string) { transitions.Add(1) }})
			for i := range 200 {
				if got, _, err := get(p); err != nil || got != status {
					t.Fatalf("request %d: status %d, err %v; want %d passed back", i, got, err, status)
				}
			}
			s := state(p, b.addr)
			if s.Breaker != "closed" || s.Failures != 0 || transitions.Load() != 0 {
				t.Fatalf("after 200 x %d: breaker %s, failures %d, transitions %d; want closed, 0, 0",
					status, s.Breaker, s.Failures, transitions.Load())
			}
			if !p.Available() {
				t.Fatalf("Available() = false after %ds", status)
			}
		})
	}
}

// transitions records OnStateChange calls as "from>to".
type transitions struct {
	mu  sync.Mutex
	got []string
}

func (tr *transitions) hook(_, _ string, from, to string) {
	tr.mu.Lock()
	tr.got = append(tr.got, from+">"+to)
	tr.mu.Unlock()
}

func (tr *transitions) list() []string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return slices.Clone(tr.got)
}

func TestServerErrorsTripFailFastAndRecover(t *testing.T) {
	b := startBackend(t)
	b.failEvery.Store(5) // 3 of every 5 requests answer 500: 60%, above the 50% ratio
	b.failFirst.Store(3)
	const timeout = time.Second
	var tr transitions
	p := newPool(t, upstream.Options{Addrs: addrs(b), Timeout: timeout, Retries: -1,
		MinRequests: 10, FailureRatio: 0.5, BreakerTimeout: 300 * time.Millisecond,
		OnStateChange: tr.hook})

	sent := 0
	for state(p, b.addr).Breaker != "open" {
		if sent++; sent > 100 {
			t.Fatal("breaker still closed after 100 requests at a 60% failure rate")
		}
		if _, _, err := get(p); err != nil {
			t.Fatalf("request %d: %v", sent, err)
		}
	}
	if sent < 10 {
		t.Fatalf("breaker opened after %d requests; want at least the minimum volume of 10", sent)
	}
	t.Logf("breaker opened after %d requests", sent)
	if p.Available() {
		t.Fatal("Available() = true with the only breaker open")
	}

	hits := b.hits.Load()
	start := time.Now()
	_, _, err := get(p)
	took := time.Since(start)
	if !errors.Is(err, upstream.ErrUnavailable) {
		t.Fatalf("call with the breaker open: err = %v; want ErrUnavailable", err)
	}
	if took > timeout/2 {
		t.Fatalf("call with the breaker open took %s; want well under the %s timeout", took, timeout)
	}
	if b.hits.Load() != hits {
		t.Fatal("a call reached the replica while its breaker was open")
	}
	t.Logf("fail-fast call took %s", took)

	b.failEvery.Store(0) // the fault ends
	waitFor(t, 3*time.Second, "a call to succeed after the fault ended", func() bool {
		status, _, err := get(p)
		return err == nil && status == 200
	})
	if s := state(p, b.addr); s.Breaker != "closed" {
		t.Fatalf("breaker %s after a half-open success; want closed", s.Breaker)
	}
	want := []string{"closed>open", "open>half-open", "half-open>closed"}
	if got := tr.list(); !slices.Equal(got, want) {
		t.Fatalf("transitions %v; want %v", got, want)
	}
}

func TestSlowReplicaTimesOutAndCounts(t *testing.T) {
	b := startBackend(t)
	b.delay.Store(int64(400 * time.Millisecond))
	const timeout = 100 * time.Millisecond
	p := newPool(t, upstream.Options{Addrs: addrs(b), Timeout: timeout, Retries: -1,
		MinRequests: 3, BreakerTimeout: time.Minute})
	for i := range 3 {
		start := time.Now()
		_, _, err := get(p)
		took := time.Since(start)
		if !errors.Is(err, fasthttp.ErrTimeout) {
			t.Fatalf("call %d to a replica slower than the timeout: err = %v; want fasthttp.ErrTimeout", i, err)
		}
		if took > 3*timeout {
			t.Fatalf("call %d took %s; want about the %s timeout", i, took, timeout)
		}
	}
	s := state(p, b.addr)
	if s.Failures != 3 || s.Breaker != "open" {
		t.Fatalf("after 3 timeouts: failures %d, breaker %s; want 3, open", s.Failures, s.Breaker)
	}

	t.Run("caller deadline shorter than timeout wins and is not counted", func(t *testing.T) {
		b2 := startBackend(t)
		b2.delay.Store(int64(1500 * time.Millisecond))
		p2 := newPool(t, upstream.Options{Addrs: addrs(b2), Timeout: 2 * time.Second, Retries: -1,
			MinRequests: 1, FailureRatio: 0.01})
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, _, err := call(p2, ctx, fasthttp.MethodGet, "/x", nil)
		if err == nil || time.Since(start) > time.Second { // well under the backend's 1.5 s
			t.Fatalf("err %v after %s; want a timeout near the caller's 50ms", err, time.Since(start))
		}
		if s := state(p2, b2.addr); s.Failures != 0 || s.Breaker != "closed" {
			t.Fatalf("a call cut by the caller's deadline was counted: failures %d, breaker %s", s.Failures, s.Breaker)
		}
	})
}

func TestCallerCancellationIsNotCounted(t *testing.T) {
	b := startBackend(t)
	b.delay.Store(int64(150 * time.Millisecond))
	p := newPool(t, upstream.Options{Addrs: addrs(b), Timeout: 50 * time.Millisecond, Retries: -1,
		MinRequests: 1, FailureRatio: 0.01})

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := call(p, ctx, fasthttp.MethodGet, "/x", nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("call with a cancelled context: err = %v; want context.Canceled", err)
	}
	if b.hits.Load() != 0 {
		t.Fatal("a call with a cancelled context reached the replica")
	}

	for i := range 3 {
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Go(func() {
			waitFor(t, time.Second, "the call to reach the replica", func() bool { return b.hits.Load() > int64(i) })
			cancel()
		})
		_, _, err := call(p, ctx, fasthttp.MethodGet, "/x", nil)
		wg.Wait()
		if err == nil {
			t.Fatalf("call %d: no error; want the timeout of a cancelled call", i)
		}
	}
	if s := state(p, b.addr); s.Breaker != "closed" || s.Failures != 0 {
		t.Fatalf("after 3 calls whose caller went away: breaker %s, failures %d; want closed, 0", s.Breaker, s.Failures)
	}
}

func TestNetworkFaultsTripAndClearTheBreaker(t *testing.T) {
	b := startBackend(t)
	px := netfault.Start(t, b.addr)
	const timeout = 150 * time.Millisecond
	var tr transitions
	p := newPool(t, upstream.Options{Addrs: []string{px.Addr()}, Timeout: timeout, Retries: -1,
		MinRequests: 6, FailureRatio: 0.5, BreakerTimeout: 300 * time.Millisecond, OnStateChange: tr.hook})

	for i := range 5 {
		if status, _, err := get(p); err != nil || status != 200 {
			t.Fatalf("warm-up %d through the proxy: status %d, err %v", i, status, err)
		}
	}

	// The fault: latency above the timeout, and every open connection reset every 250ms.
	px.SetLatency(2 * timeout)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var resets atomic.Int64
	wg.Go(func() {
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				resets.Add(int64(px.ResetConnections()))
			}
		}
	})
	var timeouts, others int
	start := time.Now()
	for state(p, px.Addr()).Breaker != "open" {
		if timeouts+others > 60 {
			t.Fatal("breaker still closed after 60 calls through a faulty network")
		}
		_, _, err := get(p)
		switch {
		case errors.Is(err, fasthttp.ErrTimeout):
			timeouts++
		case err != nil:
			others++
		}
	}
	close(stop)
	wg.Wait()
	t.Logf("breaker opened after %s: %d timeouts, %d reset/closed errors, %d connections reset",
		time.Since(start), timeouts, others, resets.Load())

	t0 := time.Now()
	if _, _, err := get(p); !errors.Is(err, upstream.ErrUnavailable) || time.Since(t0) > timeout/2 {
		t.Fatalf("call with the breaker open: err %v after %s; want ErrUnavailable at once", err, time.Since(t0))
	}

	px.SetLatency(0)
	healed := waitFor(t, 3*time.Second, "calls to succeed once the network is healthy", func() bool {
		status, _, err := get(p)
		return err == nil && status == 200
	})
	t.Logf("first success %s after the fault was cleared", healed)
	if s := state(p, px.Addr()); s.Breaker != "closed" {
		t.Fatalf("breaker %s after recovery; want closed", s.Breaker)
	}
	if got := tr.list(); len(got) < 3 || got[0] != "closed>open" || got[len(got)-1] != "half-open>closed" {
		t.Fatalf("transitions %v; want closed>open ... half-open>closed", got)
	}
}

func TestRunStopsAndCloseRefuses(t *testing.T) {
	b := startBackend(t)
	p, err := upstream.New(upstream.Options{Name: "t", Addrs: addrs(b), HealthInterval: 10 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.Run(ctx)
	}()
	waitFor(t, 2*time.Second, "a first probe", func() bool { return !state(p, b.addr).LastProbe.IsZero() })
	cancel()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("Run did not return after its context was cancelled")
	}
	p.Close()
	p.Close()
	if _, _, err := get(p); !errors.Is(err, upstream.ErrClosed) {
		t.Fatalf("Do after Close: %v; want ErrClosed", err)
	}
}

func BenchmarkDo(b *testing.B) {
	b.ReportAllocs()
	be := startBackend(b)
	p, err := upstream.New(upstream.Options{Name: "bench", Addrs: addrs(be)}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	b.RunParallel(func(pb *testing.PB) {
		req := fasthttp.AcquireRequest()
		resp := fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		for pb.Next() {
			req.SetRequestURI("http://bench/x")
			if err := p.Do(context.Background(), req, resp); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestProbeSurvivesAResetConnection: the probe keeps its connection alive between rounds; when
// that connection is reset meanwhile (a network blip), the next probe must try a fresh one
// rather than take a working replica out of rotation for a whole interval.
func TestProbeSurvivesAResetConnection(t *testing.T) {
	b := startBackend(t)
	px := netfault.Start(t, b.addr)
	const interval = 50 * time.Millisecond
	var changes atomic.Int32
	p := newPool(t, upstream.Options{Addrs: []string{px.Addr()}, HealthInterval: interval,
		OnHealthChange: func(string, string, bool) { changes.Add(1) }})
	runPool(t, p)
	for round := range 5 {
		first := state(p, px.Addr()).LastProbe
		waitFor(t, 2*time.Second, "a probe", func() bool { return state(p, px.Addr()).LastProbe.After(first) })
		if n := px.ResetConnections(); n == 0 && round > 0 {
			t.Fatalf("round %d: no connection to reset: the probe does not keep its connection", round)
		}
	}
	last := state(p, px.Addr()).LastProbe
	waitFor(t, 2*time.Second, "a probe after the last reset", func() bool { return state(p, px.Addr()).LastProbe.After(last) })
	if s := state(p, px.Addr()); !s.Healthy || changes.Load() != 0 {
		t.Fatalf("after probes on reset connections: healthy %v, %d health changes, last error %q; want healthy throughout",
			s.Healthy, changes.Load(), s.LastError)
	}
}
