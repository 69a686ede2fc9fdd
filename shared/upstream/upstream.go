// Package upstream sends HTTP requests to the replicas of one service. The edge uses it to
// forward requests to the backends; backend services use it to call each other (order -> cart,
// order -> catalog).
//
// A Pool balances round robin over the replicas that are healthy (their /health answers 2xx)
// and whose circuit breaker lets requests through. It bounds every attempt with a deadline,
// retries on another replica only what is safe to repeat, and Forward proxies a whole incoming
// request, answering a friendly JSON 503 at once when the service is down.
//
// Health before the first probe: every replica starts healthy. A replica is only taken out
// when a probe says so (or its breaker opens), so the first requests after start-up do not fail
// just because Run has not probed yet, and a Pool whose Run is never started still works, with
// the breakers alone guarding it.
//
// What the breakers count as a failure: transport errors (connect refused, reset, connection
// closed early), timeouts and 5xx responses other than 503. A 4xx answer is a success (the
// replica works; the request was wrong). Not counted at all: a 503 answer (the replica is up
// and says it cannot serve this request now, in this system because one of its own
// dependencies is down: counting it would let a catalog outage open the breakers of the cart
// and order services, and take down their routes that do not need the catalog), an attempt
// whose caller's context was cancelled (the client went away), one that hit the pool's own
// connection limit, and one that timed out on the caller's deadline before Options.Timeout (it
// proves nothing about the replica). So keep Timeout below the callers' budgets, or slow
// replicas are left to the health probes.
package upstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/bits"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"
	"github.com/valyala/fasthttp"

	"flashedge/shared/httpapi"
)

// ErrUnavailable is returned by Do when no replica may be called: every one is unhealthy or
// has its breaker open. Callers answer it at once (Forward answers 503 with Retry-After).
var ErrUnavailable = errors.New("upstream: no replica available")

// ErrOverloaded is returned by Do when the pool already has MaxInFlight calls in flight and the
// call was not let into the bounded wait queue (full, or too long to drain: see
// Options.QueueWait), or waited in it in vain (Forward answers 503 overloaded with Retry-After 1).
var ErrOverloaded = errors.New("upstream: too many calls in flight")

// ErrClosed is returned by Do after Close.
var ErrClosed = errors.New("upstream: pool closed")

// maxReplicas bounds len(Options.Addrs) so the replicas tried by one call fit in a bitmask.
const maxReplicas = 64

// Options configure a Pool. Zero values take the defaults named on each field.
type Options struct {
	// Name is the service name used in logs, errors and hooks, e.g. "catalog". Required.
	Name string
	// Addrs holds host:port of every replica, from configuration. At least one, at most 64,
	// no scheme, no duplicates.
	Addrs []string

	// Timeout bounds one attempt (connect, write, wait, read). The caller's context deadline
	// applies when it is earlier. Set it below the caller's own budget. Zero means 2s.
	Timeout time.Duration
	// DialTimeout bounds opening a connection. Zero means the smaller of Timeout and 1s.
	DialTimeout time.Duration
	// MaxConnsPerHost caps the connections to one replica; a call finding them all busy waits up
	// to Timeout/2 for one, then tries another replica (within Retries), and is not counted by
	// the breaker. Zero means 512.
	MaxConnsPerHost int
	// MaxIdleConnDuration closes keep-alive connections idle this long. Keep it below the
	// replicas' server idle timeout so the pool never writes into a connection the server has
	// already closed. Zero means 10s.
	MaxIdleConnDuration time.Duration
	// MaxConnDuration retires a connection older than this after its next request, so
	// connections get re-dialled now and then. Zero means 5m.
	MaxConnDuration time.Duration
	// MaxResponseBodySize refuses larger response bodies. Zero means 4 MiB.
	MaxResponseBodySize int
	// MaxInFlight bounds the calls in flight to the service, over all its replicas. A call
	// beyond it waits in a FIFO for a slot (see MaxQueued and QueueWait) or is refused with
	// ErrOverloaded, so an overload is shed at the caller in
	// microseconds while the replicas keep serving what they can, instead of every call queueing
	// until its timeout (goodput collapse). Zero means MaxConnsPerHost per replica (a call then
	// never waits for a connection); negative means no bound.
	MaxInFlight int
	// AdaptiveInFlight makes MaxInFlight a ceiling: the bound in force follows the latency the
	// replicas answer with, shrinking when calls queue inside the service (a window's average
	// latency above twice the lowest seen lately plus 2ms) and growing back while it does not,
	// never below 64 calls per replica. An overload is then refused at the caller while the
	// service runs near its capacity with short queues. The floor is high on purpose: the latency
	// measured includes the caller's own scheduling delays, so a caller whose CPU is saturated
	// (by the refusals themselves) sees slow answers from a service that is not queueing, and a
	// low floor would then cap the goodput at floor/latency; and the services batch their store
	// calls (pipelining), so fewer calls in flight cost them more CPU per call (the order
	// service on a fifth of a CPU: about 170us per admission at 64 in flight, 250us at 32, and
	// goodput at 5x fell with it). False means the fixed MaxInFlight.
	AdaptiveInFlight bool
	// MaxQueued bounds the calls waiting for a slot when MaxInFlight calls are in flight. Zero or
	// negative means no queue: every call over the bound is refused at once with ErrOverloaded.
	// DefaultMaxQueued (1024) holds a thousand closed-loop clients behind a limit of a few
	// hundred at ~100 bytes per waiter.
	MaxQueued int
	// QueueWait is the longest expected wait a call is queued for. Whether a call over the
	// bound waits is decided once, at arrival: it is refused at once with ErrOverloaded when the
	// queue is full, when the waiters ahead of it would take longer than QueueWait to drain at
	// the rate calls complete (the bound in force / the mean time a call holds its slot), or
	// when the oldest waiter has already waited QueueWait (the queue is not draining). A queued
	// call is served, even when the service slows down after it arrived; only one that waited
	// max(4 x QueueWait, 1s), or half its caller's remaining deadline, in vain is refused then
	// (counted by Expired). Zero means DefaultQueueWait (500ms).
	QueueWait time.Duration

	// Retries is the number of extra attempts, each on another replica when there is one, for
	// calls that are safe to repeat: idempotent methods (GET, HEAD, PUT, DELETE, OPTIONS) or a
	// request carrying an Idempotency-Key header, after a transport error, a timeout or a 502 or
	// 504, and after a 503 only on a replica not tried yet. A request that provably never left (the connection could not be opened) may
	// go to another replica whatever its method. Zero means 1; negative means no retries.
	Retries int

	// BatchPath, when set, is the replicas' route for batches of requests (httpapi.BatchPath;
	// the replicas serve it with httpapi.ServerOptions.Batch): ForwardBatched then sends the
	// requests waiting together, in one call (see batch.go). Empty means ForwardBatched is
	// Forward.
	BatchPath string
	// BatchMax bounds the requests in one batch (at most httpapi.MaxBatchFrames). Zero means
	// DefaultBatchMax (64).
	BatchMax int
	// BatchBytes closes a batch once its requests reach this many bytes; keep it under the
	// replicas' body limit. Zero means DefaultBatchBytes (48 KiB).
	BatchBytes int
	// BatchSenders is the number of batches in flight at once per replica. Fewer make larger
	// batches: on the 2-core build machine 2 per replica cost 179 us of CPU per admission where
	// 8 cost 205 (make bench's admit scenario). Zero means DefaultBatchSenders (2).
	BatchSenders int

	// HealthPath is probed on every replica. Zero means "/health".
	HealthPath string
	// HealthInterval is the time between two probes of the replicas. Zero means 1s.
	HealthInterval time.Duration
	// HealthTimeout bounds one probe; a probe that times out marks the replica unhealthy.
	// Zero means 300ms.
	HealthTimeout time.Duration

	// FailureRatio opens a replica's breaker when failures/(failures+successes) reaches it in
	// the rolling BreakerInterval, once MinRequests outcomes were counted. Zero means 0.5.
	FailureRatio float64
	// MinRequests is the volume below which the breaker never opens. Zero means 20.
	MinRequests int
	// BreakerInterval is the rolling window the breaker counts over (in 10 buckets).
	// Zero means 10s.
	BreakerInterval time.Duration
	// BreakerTimeout is how long a breaker stays open before letting a trial request through
	// (half-open). Forward's Retry-After is this rounded up to whole seconds. Zero means 5s.
	BreakerTimeout time.Duration
	// HalfOpenRequests is the number of trial requests let through in half-open; that many
	// successes in a row close the breaker, one failure opens it again. Zero means 1.
	HalfOpenRequests int

	// OnStateChange, when set, is called on every breaker transition with the states' names
	// ("closed", "half-open", "open"), e.g. to count them in metrics. It runs while the
	// breaker holds its lock: it must be quick and must not call the Pool.
	OnStateChange func(name, addr string, from, to string)
	// OnHealthChange, when set, is called when a probe changes a replica's health. It must be
	// quick.
	OnHealthChange func(name, addr string, healthy bool)
}

// Pool sends requests to the replicas of one service. Safe for concurrent use. Run drives the
// health probes; Close releases the connections.
type Pool struct {
	name        string
	replicas    []*replica
	rr          atomic.Uint64
	timeout     time.Duration
	retries     int
	healthPath  string
	healthEvery time.Duration
	healthWait  time.Duration
	retryAfter  string
	maintenance []byte
	log         *slog.Logger
	onHealth    func(name, addr string, healthy bool)
	running     atomic.Bool
	closed      atomic.Bool
	limit       *limiter
	batch       *batcher // nil without Options.BatchPath
	// errOverloaded and errUnavailable are ErrOverloaded and ErrUnavailable wrapped with the
	// service name, built once: refusing a call makes no allocation.
	errOverloaded, errUnavailable error
}

type replica struct {
	idx     int
	addr    string
	client  *fasthttp.HostClient
	probe   *fasthttp.HostClient
	breaker *gobreaker.TwoStepCircuitBreaker[struct{}]
	healthy atomic.Bool

	requests atomic.Uint64
	failures atomic.Uint64

	mu        sync.Mutex
	lastErr   string
	lastErrAt time.Time
	lastProbe time.Time
}

// ReplicaState is one replica as Snapshot sees it, for dashboards and metrics.
type ReplicaState struct {
	Addr string `json:"addr"`
	// Healthy is the last probe's verdict (true before the first probe).
	Healthy bool `json:"healthy"`
	// Breaker is "closed", "half-open" or "open".
	Breaker string `json:"breaker"`
	// Requests and Failures count attempts since New (failures as the breaker counts them).
	Requests uint64 `json:"requests"`
	Failures uint64 `json:"failures"`
	// LastError describes the last failed attempt or probe; empty when there was none.
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	// LastProbe is when the last health probe finished; zero before the first.
	LastProbe time.Time `json:"last_probe,omitzero"`
}

// New validates o and builds a Pool; it opens no connection. Start Run in a goroutine you own
// to probe the replicas' health, and Close the Pool when done. log may be nil.
func New(o Options, log *slog.Logger) (*Pool, error) {
	if err := o.fill(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("upstream", o.Name)
	p := &Pool{
		name:        o.Name,
		timeout:     o.Timeout,
		retries:     o.Retries,
		healthPath:  o.HealthPath,
		healthEvery: o.HealthInterval,
		healthWait:  o.HealthTimeout,
		retryAfter:  strconv.Itoa(int(math.Ceil(o.BreakerTimeout.Seconds()))),
		maintenance: maintenanceBody(),
		log:         log,
		onHealth:    o.OnHealthChange,
		limit:       newLimiter(int64(o.MaxInFlight), int64(adaptiveFloor*len(o.Addrs)), o.AdaptiveInFlight, o.MaxQueued, o.QueueWait),
		// Wrapped like the other errors of Do (errors.Is finds ErrOverloaded).
		errOverloaded:  fmt.Errorf("upstream %s: %w", o.Name, ErrOverloaded),
		errUnavailable: fmt.Errorf("upstream %s: %w", o.Name, ErrUnavailable),
	}
	for i, addr := range o.Addrs {
		r := &replica{idx: i, addr: addr}
		r.healthy.Store(true)
		dialTimeout := o.DialTimeout
		dial := func(addr string, timeout time.Duration) (net.Conn, error) {
			if timeout <= 0 || timeout > dialTimeout {
				timeout = dialTimeout
			}
			c, err := fasthttp.DialTimeout(addr, timeout)
			if err != nil {
				return nil, &dialError{err}
			}
			return c, nil
		}
		r.client = &fasthttp.HostClient{
			Addr:        addr,
			Name:        "flashedge-" + o.Name,
			DialTimeout: dial,
			MaxConns:    o.MaxConnsPerHost,
			// A burst above MaxConns waits briefly for a connection instead of being refused at
			// once: refusing turned 1,000 concurrent shoppers into instant 503s in the stress run.
			MaxConnWaitTimeout:        o.Timeout / 2,
			MaxConnDuration:           o.MaxConnDuration,
			MaxIdleConnDuration:       o.MaxIdleConnDuration,
			ReadTimeout:               o.Timeout,
			WriteTimeout:              o.Timeout,
			MaxResponseBodySize:       o.MaxResponseBodySize,
			MaxIdemponentCallAttempts: 1, // the Pool retries, on another replica, and counts it
			DisablePathNormalizing:    true,
		}
		r.probe = &fasthttp.HostClient{
			Addr:                addr,
			Name:                "flashedge-health",
			DialTimeout:         dial,
			MaxConns:            2,
			MaxIdleConnDuration: o.HealthInterval * 3,
			ReadTimeout:         o.HealthTimeout,
			WriteTimeout:        o.HealthTimeout,
			MaxResponseBodySize: 64 << 10,
			// A kept-alive probe connection that was reset or closed since the last probe (a
			// network blip, a proxy) gets one more try on a fresh connection, within the same
			// HealthTimeout, rather than taking a working replica out for a HealthInterval.
			MaxIdemponentCallAttempts: 2,
		}
		r.breaker = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
			Name:         o.Name + "@" + addr,
			MaxRequests:  uint32(o.HalfOpenRequests),
			Interval:     o.BreakerInterval,
			BucketPeriod: o.BreakerInterval / 10,
			Timeout:      o.BreakerTimeout,
			ReadyToTrip:  readyToTrip(o.FailureRatio, uint32(o.MinRequests)),
			IsSuccessful: func(err error) bool { return err == nil },
			IsExcluded:   func(err error) bool { return errors.Is(err, errNotCounted) },
			OnStateChange: func(_ string, from, to gobreaker.State) {
				r.mu.Lock()
				last := r.lastErr
				r.mu.Unlock()
				log.Warn("circuit breaker state changed", "replica", addr,
					"from", from.String(), "to", to.String(), "last_error", last)
				if o.OnStateChange != nil {
					o.OnStateChange(o.Name, addr, from.String(), to.String())
				}
			},
		})
		p.replicas = append(p.replicas, r)
	}
	if o.BatchPath != "" {
		p.batch = newBatcher(p, &o)
	}
	return p, nil
}

// fill validates o and replaces zero values with the defaults.
func (o *Options) fill() error {
	if strings.TrimSpace(o.Name) == "" {
		return errors.New("upstream: Options.Name is empty: name the service, e.g. \"catalog\"")
	}
	if len(o.Addrs) == 0 {
		return fmt.Errorf("upstream %s: Options.Addrs is empty: configure at least one replica as host:port", o.Name)
	}
	if len(o.Addrs) > maxReplicas {
		return fmt.Errorf("upstream %s: %d replicas configured; at most %d are supported", o.Name, len(o.Addrs), maxReplicas)
	}
	seen := make(map[string]bool, len(o.Addrs))
	for _, a := range o.Addrs {
		if strings.Contains(a, "://") {
			return fmt.Errorf("upstream %s: replica address %q has a scheme: give host:port only, e.g. \"127.0.0.1:5001\"", o.Name, a)
		}
		host, port, err := net.SplitHostPort(a)
		if err != nil || host == "" {
			return fmt.Errorf("upstream %s: replica address %q is not host:port, e.g. \"127.0.0.1:5001\"", o.Name, a)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("upstream %s: replica address %q: port must be a number from 1 to 65535", o.Name, a)
		}
		if seen[a] {
			return fmt.Errorf("upstream %s: replica address %q is listed twice: list every replica once", o.Name, a)
		}
		seen[a] = true
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"Timeout", o.Timeout}, {"DialTimeout", o.DialTimeout}, {"MaxIdleConnDuration", o.MaxIdleConnDuration},
		{"MaxConnDuration", o.MaxConnDuration}, {"HealthInterval", o.HealthInterval},
		{"HealthTimeout", o.HealthTimeout}, {"BreakerInterval", o.BreakerInterval}, {"BreakerTimeout", o.BreakerTimeout},
	} {
		if d.v < 0 {
			return fmt.Errorf("upstream %s: Options.%s is negative (%s): use a positive duration or zero for the default", o.Name, d.name, d.v)
		}
	}
	if o.MaxConnsPerHost < 0 || o.MaxResponseBodySize < 0 || o.MinRequests < 0 || o.HalfOpenRequests < 0 {
		return fmt.Errorf("upstream %s: MaxConnsPerHost, MaxResponseBodySize, MinRequests and HalfOpenRequests must not be negative (zero means the default)", o.Name)
	}
	if o.FailureRatio < 0 || o.FailureRatio > 1 {
		return fmt.Errorf("upstream %s: Options.FailureRatio is %v: use a ratio in (0, 1], e.g. 0.5, or zero for the default", o.Name, o.FailureRatio)
	}
	if o.HealthPath != "" && !strings.HasPrefix(o.HealthPath, "/") {
		return fmt.Errorf("upstream %s: Options.HealthPath %q must start with '/', e.g. \"/health\"", o.Name, o.HealthPath)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&o.Timeout, 2*time.Second)
	def(&o.DialTimeout, min(o.Timeout, time.Second))
	def(&o.MaxIdleConnDuration, 10*time.Second)
	def(&o.MaxConnDuration, 5*time.Minute)
	def(&o.HealthInterval, time.Second)
	def(&o.HealthTimeout, 300*time.Millisecond)
	def(&o.BreakerInterval, 10*time.Second)
	def(&o.BreakerTimeout, 5*time.Second)
	if o.HealthPath == "" {
		o.HealthPath = "/health"
	}
	if o.MaxConnsPerHost == 0 {
		o.MaxConnsPerHost = 512
	}
	if o.MaxResponseBodySize == 0 {
		o.MaxResponseBodySize = 4 << 20
	}
	if o.MaxInFlight == 0 {
		o.MaxInFlight = o.MaxConnsPerHost * len(o.Addrs)
	}
	if o.QueueWait <= 0 {
		o.QueueWait = DefaultQueueWait
	}
	switch {
	case o.Retries == 0:
		o.Retries = 1
	case o.Retries < 0:
		o.Retries = 0
	}
	if o.FailureRatio == 0 {
		o.FailureRatio = 0.5
	}
	if o.MinRequests == 0 {
		o.MinRequests = 20
	}
	if o.HalfOpenRequests == 0 {
		o.HalfOpenRequests = 1
	}
	if o.BatchMax < 0 || o.BatchBytes < 0 || o.BatchSenders < 0 || o.BatchMax > httpapi.MaxBatchFrames {
		return fmt.Errorf("upstream %s: BatchMax (at most %d), BatchBytes and BatchSenders must not be negative (zero means the default)", o.Name, httpapi.MaxBatchFrames)
	}
	if o.BatchMax == 0 {
		o.BatchMax = DefaultBatchMax
	}
	if o.BatchBytes == 0 {
		o.BatchBytes = DefaultBatchBytes
	}
	if o.BatchSenders == 0 {
		o.BatchSenders = DefaultBatchSenders
	}
	o.BatchSenders *= len(o.Addrs)
	return nil
}

// readyToTrip opens the breaker on a failure ratio once enough outcomes were counted, instead
// of gobreaker's default of a few consecutive failures.
func readyToTrip(ratio float64, minRequests uint32) func(gobreaker.Counts) bool {
	return func(c gobreaker.Counts) bool {
		n := c.TotalSuccesses + c.TotalFailures
		return n >= minRequests && float64(c.TotalFailures) >= ratio*float64(n)
	}
}

// errNotCounted marks an attempt outcome the breaker must ignore; errFailed one it counts as
// a failure. They never leave the package.
var (
	errNotCounted = errors.New("not counted")
	errFailed     = errors.New("failed")
)

// dialError marks an error from opening a connection: the request never left.
type dialError struct{ err error }

func (e *dialError) Error() string { return e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// Run probes every replica's health path each HealthInterval (the first round at once) until
// ctx is done, then returns after the probes in flight have finished (each is bounded by
// HealthTimeout). A replica whose probe fails or times out is taken out of rotation at once and
// put back at the first probe that succeeds. The caller owns the goroutine running Run; call it
// once per Pool.
func (p *Pool) Run(ctx context.Context) {
	if !p.running.CompareAndSwap(false, true) {
		p.log.Error("upstream: Run called twice; the second call returns at once")
		return
	}
	defer p.running.Store(false)
	t := time.NewTicker(p.healthEvery)
	defer t.Stop()
	var wg sync.WaitGroup
	for {
		for _, r := range p.replicas {
			wg.Go(func() { p.probeOne(r) })
		}
		wg.Wait()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (p *Pool) probeOne(r *replica) {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://" + r.addr + p.healthPath)
	req.Header.SetMethod(fasthttp.MethodGet)
	err := r.probe.DoTimeout(req, resp, p.healthWait)
	if err == nil && (resp.StatusCode() < 200 || resp.StatusCode() > 299) {
		err = fmt.Errorf("%s answered %d", p.healthPath, resp.StatusCode())
	}
	now := time.Now()
	r.mu.Lock()
	r.lastProbe = now
	if err != nil {
		r.lastErr, r.lastErrAt = "health probe: "+err.Error(), now
	}
	r.mu.Unlock()
	healthy := err == nil
	if r.healthy.Swap(healthy) == healthy {
		return
	}
	if healthy {
		p.log.Info("replica healthy again", "replica", r.addr)
	} else {
		p.log.Warn("replica unhealthy: taken out of rotation", "replica", r.addr, "error", err.Error())
	}
	if p.onHealth != nil {
		p.onHealth(p.name, r.addr, healthy)
	}
}

// Do sends req to one replica and fills resp. It picks the next healthy replica round robin
// whose breaker lets the call through, sets req's URI scheme and host (and so the Host header)
// to that replica, and waits until min(ctx deadline, now+Timeout) per attempt.
//
// It retries on another replica (see Options.Retries) only idempotent calls (GET, HEAD, PUT,
// DELETE, OPTIONS, or any request with an Idempotency-Key header), and only after a transport
// error, a timeout or a 502/503/504 answer; a call whose connection could not be opened is
// retried whatever its method, since the replica never saw it.
//
// The result: nil when a response arrived, whatever its status (a final 5xx is in resp);
// ErrUnavailable (wrapped) when no replica could be called; otherwise the last attempt's error,
// wrapped with the service and replica (errors.Is works, e.g. with fasthttp.ErrTimeout).
//
// The worst case is (1+Retries) attempts of Timeout each, cut by ctx's deadline. Cancelling ctx
// stops Do between attempts; an attempt in flight runs to its deadline, since fasthttp's client
// does not watch contexts. req and resp stay owned by the caller; Do keeps no
// reference to them after it returns.
func (p *Pool) Do(ctx context.Context, req *fasthttp.Request, resp *fasthttp.Response) error {
	if err := p.admit(ctx); err != nil {
		return err
	}
	return p.doAdmitted(ctx, req, resp)
}

// admit takes a slot of the in-flight limit for one call (see Do): nil with the slot taken, to
// be used by doAdmitted, which gives it back. A refusal (p.errOverloaded) makes no allocation, so
// that shedding a surge costs as little as possible.
func (p *Pool) admit(ctx context.Context) error {
	if p.closed.Load() {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	switch err := p.limit.acquire(ctx, ctx.Value(firstKey{}) != nil); {
	case err == ErrOverloaded:
		return p.errOverloaded
	case err != nil:
		return fmt.Errorf("upstream %s: %w", p.name, err)
	}
	return nil
}

// doAdmitted is Do after admit took a slot; it gives the slot back.
func (p *Pool) doAdmitted(ctx context.Context, req *fasthttp.Request, resp *fasthttp.Response) error {
	return p.doHolding(ctx, req, resp, 1, Repeatable(req))
}

// doHolding is doAdmitted for a call that holds slots slots (a batch holds one per request it
// carries) and may be sent again after a failure when repeatable; it gives the slots back.
func (p *Pool) doHolding(ctx context.Context, req *fasthttp.Request, resp *fasthttp.Response, slots int, repeatable bool) error {
	held := time.Now()
	defer func() {
		hold := time.Since(held)
		for range slots {
			p.limit.release(hold)
		}
	}()
	var tried uint64
	var lastErr error
	for attempt := 0; ; attempt++ {
		r, done := p.pick(tried)
		if r == nil {
			if attempt == 0 {
				return p.errUnavailable
			}
			return lastErr // the last attempt's outcome: its error, or nil with its 5xx in resp
		}
		tried |= 1 << uint(r.idx)
		neverSent, err := p.attempt(ctx, r, req, resp, done)
		if err == nil && !retryStatus(resp.StatusCode()) {
			return nil
		}
		lastErr = err
		if attempt >= p.retries || ctx.Err() != nil || !(repeatable || neverSent) ||
			errors.Is(err, fasthttp.ErrBodyTooLarge) {
			return lastErr
		}
		// A 503 is a replica saying it cannot serve now (a dependency behind it is down):
		// asking it again at once only doubles the wait, so only another replica is tried.
		if err == nil && resp.StatusCode() == fasthttp.StatusServiceUnavailable && bits.OnesCount64(tried) >= len(p.replicas) {
			return nil
		}
	}
}

// attempt makes one call to r and reports its outcome to the breaker through done. neverSent
// tells that the request did not reach the replica.
func (p *Pool) attempt(ctx context.Context, r *replica, req *fasthttp.Request, resp *fasthttp.Response, done func(error)) (neverSent bool, err error) {
	deadline := time.Now().Add(p.timeout)
	callerDeadline := false
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline, callerDeadline = d, true
	}
	uri := req.URI()
	uri.SetScheme("http")
	uri.SetHost(r.addr)
	r.requests.Add(1)
	start := time.Now()
	err = r.client.DoDeadline(req, resp, deadline)
	if end := time.Now(); err == nil || errors.Is(err, fasthttp.ErrTimeout) {
		// Answers and timeouts tell how long the service takes; failures to connect do not. The
		// service's own time, when it says it, leaves out this process's scheduling delays: a
		// caller saturated by refusals must not read that as the service queueing.
		rtt := end.Sub(start)
		if st, ok := httpapi.ServiceTime(resp); ok && err == nil && st < rtt {
			rtt = st
		}
		p.limit.observe(rtt, end)
	}

	var verdict error
	switch {
	case err == nil && resp.StatusCode() == fasthttp.StatusServiceUnavailable:
		// Alive and answering: unavailable for this request, usually because of a dependency
		// of the replica's (see the package comment). Not the replica's failure.
		verdict = errNotCounted
		r.noteFailure("answered 503")
	case err == nil && resp.StatusCode() >= 500:
		verdict = errFailed
		r.noteFailure("answered " + strconv.Itoa(resp.StatusCode()))
	case err == nil:
		// 2xx, 3xx and 4xx: the replica works.
	case errors.Is(ctx.Err(), context.Canceled):
		verdict = errNotCounted // the caller went away; says nothing about the replica
	case callerDeadline && errors.Is(err, fasthttp.ErrTimeout):
		// Cut short by the caller's budget before Timeout: no proof the replica is slow.
		verdict = errNotCounted
	case errors.Is(err, fasthttp.ErrNoFreeConns):
		verdict, neverSent = errNotCounted, true // our own connection cap, not the replica's fault
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		verdict = errNotCounted
		r.noteFailure(err.Error())
	default:
		var de *dialError
		neverSent = errors.As(err, &de)
		verdict = errFailed
		r.noteFailure(err.Error())
	}
	if verdict == errFailed {
		r.failures.Add(1)
	}
	done(verdict)
	if err != nil {
		err = fmt.Errorf("upstream %s %s: %w", p.name, r.addr, err)
	}
	return neverSent, err
}

func (r *replica) noteFailure(msg string) {
	now := time.Now()
	r.mu.Lock()
	r.lastErr, r.lastErrAt = msg, now
	r.mu.Unlock()
}

// pick returns the next replica round robin that is healthy and whose breaker admits a call,
// preferring those not in tried; done reports the call's outcome to that breaker. It returns
// nil when there is none.
func (p *Pool) pick(tried uint64) (*replica, func(error)) {
	n := len(p.replicas)
	start := int(p.rr.Add(1) - 1)
	for pass := 0; pass < 2; pass++ {
		for i := 0; i < n; i++ {
			r := p.replicas[(start+i)%n]
			if !r.healthy.Load() || (pass == 0) == (tried&(1<<uint(r.idx)) != 0) {
				continue
			}
			done, err := r.breaker.Allow()
			if err != nil {
				continue // open, or half-open with its trial calls already in flight
			}
			return r, done
		}
	}
	return nil, nil
}

// Repeatable reports whether req may be sent again after a failure: its method is idempotent
// (GET, HEAD, PUT, DELETE, OPTIONS) or it carries an Idempotency-Key header.
func Repeatable(req *fasthttp.Request) bool {
	h := &req.Header
	return h.IsGet() || h.IsHead() || h.IsPut() || h.IsDelete() || h.IsOptions() ||
		len(h.Peek(httpapi.HeaderIdempotencyKey)) > 0
}

func retryStatus(code int) bool {
	return code == fasthttp.StatusBadGateway || code == fasthttp.StatusServiceUnavailable ||
		code == fasthttp.StatusGatewayTimeout
}

// Available reports whether at least one replica is healthy with a breaker that is not open.
func (p *Pool) Available() bool {
	for _, r := range p.replicas {
		if r.healthy.Load() && r.breaker.State() != gobreaker.StateOpen {
			return true
		}
	}
	return false
}

// Snapshot returns the state of every replica, in the order of Options.Addrs.
func (p *Pool) Snapshot() []ReplicaState {
	out := make([]ReplicaState, 0, len(p.replicas))
	for _, r := range p.replicas {
		s := ReplicaState{
			Addr:     r.addr,
			Healthy:  r.healthy.Load(),
			Breaker:  r.breaker.State().String(),
			Requests: r.requests.Load(),
			Failures: r.failures.Load(),
		}
		r.mu.Lock()
		s.LastError, s.LastErrorAt, s.LastProbe = r.lastErr, r.lastErrAt, r.lastProbe
		r.mu.Unlock()
		out = append(out, s)
	}
	return out
}

// Shed returns how many calls were refused with ErrOverloaded since New.
func (p *Pool) Shed() uint64 { return p.limit.shed.Load() }

// Expired returns how many of the Shed calls were refused after waiting in the queue (the
// service stopped completing calls after they were queued) rather than at arrival; near zero
// while the queue's admission estimates hold.
func (p *Pool) Expired() uint64 { return p.limit.expired.Load() }

// InFlight returns the calls in flight now.
func (p *Pool) InFlight() int64 { return p.limit.inFlight.Load() }

// Queued returns the calls waiting for a slot now (see Options.MaxQueued); they are not in flight.
func (p *Pool) Queued() int64 { return p.limit.queued.Load() }

// Limit returns the bound on calls in flight in force now (with AdaptiveInFlight it moves
// between 64 per replica and MaxInFlight); zero or negative means none.
func (p *Pool) Limit() int64 { return p.limit.limit.Load() }

// Name returns the service name the Pool was built with.
func (p *Pool) Name() string { return p.name }

// Close makes Do return ErrClosed and closes the idle connections; a connection still in use
// goes back idle when its call ends and is closed within MaxIdleConnDuration. Stop Run (cancel
// its context) before or after Close; both are fine.
func (p *Pool) Close() {
	if !p.closed.CompareAndSwap(false, true) {
		return
	}
	if p.batch != nil {
		p.batch.close() // the batches queued are still sent
	}
	for _, r := range p.replicas {
		r.client.CloseIdleConnections()
		r.probe.CloseIdleConnections()
	}
}
