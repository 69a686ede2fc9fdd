package upstream

import (
	"context"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Adaptive limit defaults. The window is long enough to average a few calls and short enough
// that a 5x surge is cut down within a few hundred milliseconds (the limit can halve per window).
const (
	limitWindow     = 50 * time.Millisecond
	limitMinSamples = 8
	// limitPeriod is how long a no-load latency estimate is kept: the estimate is the lowest
	// window average of the current and the previous period, so a replica that became slower for
	// good (a bigger data set, a slower machine) is re-learned within two periods.
	limitPeriod = 10 * time.Second
	// limitTolerance and limitSlack set the latency taken as "queueing": a window whose average
	// exceeds tolerance x the no-load latency + slack lowers the limit. The slack keeps loopback
	// round trips of a few hundred microseconds from reading scheduler noise as overload.
	limitTolerance = 2.0
	limitSlack     = 2 * time.Millisecond
	// adaptiveFloor is the lowest adaptive limit per replica (see Options.AdaptiveInFlight).
	adaptiveFloor = 64
)

// Queue sizes (see Options.MaxQueued and Options.QueueWait).
const (
	// DefaultMaxQueued is the queue length for a pool facing closed-loop shoppers: it holds a
	// thousand of them behind a limit of a few hundred, and each waiter costs ~100 bytes beside
	// the caller's goroutine that exists anyway, so memory stays bounded.
	DefaultMaxQueued = 1024
	// DefaultQueueWait is the longest expected wait a call is queued for. The queue keeps the
	// service busy between a completion and the next arrival (goodput), and holds a closed
	// loop of shoppers at capacity: 1,000 of them in front of a service completing ~10,000
	// calls a second wait ~100ms (Little's law), and refusing them gains nothing, since a closed
	// loop offers only what is served (a 100ms target refused half of them). 500ms is a
	// fraction of the edge's budgets; an open-loop surge above capacity is still refused at
	// arrival, in microseconds, once the queue holds that much work.
	DefaultQueueWait = 500 * time.Millisecond
	// A queued call waits at most max(stallFactor x the target, minStall), and half its
	// caller's remaining deadline: a safety net for a service that stopped completing calls
	// after the call was queued, far beyond any wait the admission lets in (it refuses
	// newcomers as soon as the oldest waiter has waited the target), and beyond the stalls of
	// a busy machine (a throttled cgroup, a descheduled process), which must not turn queued
	// calls into late refusals.
	stallFactor = 4
	minStall    = time.Second
	// holdShift sets the weight of one call in the running mean of slot hold times: 1/16, so
	// the mean follows a change in the service's latency within a few dozen calls.
	holdShift = 4
)

// limiter bounds the calls in flight to one service. A fixed limiter refuses beyond max; an
// adaptive one keeps a limit between min and max that follows the latency the replicas answer
// with: while a window's average latency stays near the lowest seen lately, a limit that was
// reached grows by its square root; when it rises above limitTolerance x that + limitSlack
// (calls are queueing inside the service), the limit shrinks by the ratio, at most by half per
// window.
//
// A call beyond the limit may wait for a slot in a FIFO of at most maxQueued waiters. Whether it
// may is decided once, at arrival: it is refused at once (ErrOverloaded, in microseconds) when
// the queue is full, when the waiters ahead of it are expected to take more than target to
// drain at the rate slots free up (Little's law: limit / the running mean of how long a call
// holds its slot), or when the oldest waiter has already waited target while a full round of
// the limit's calls is queued (the estimate is wrong: the queue is not draining as expected;
// CoDel's signal, read at arrival). A call that was queued is served: it is never refused
// later because the estimate grew, so every refusal is answered at arrival, and the queue's
// length adapts to what keeps the service busy between a completion and the next arrival.
// Only a waiter whose wait exceeds max(stallFactor x target, minStall) (the service stopped
// completing calls after it arrived) or half its caller's remaining deadline is refused after
// waiting; those are counted apart (expired), and should stay near zero. Waiters are not in
// flight: the latency signal and the peak only see dispatched calls. Safe for concurrent use.
type limiter struct {
	adaptive bool
	min, max int64
	limit    atomic.Int64
	inFlight atomic.Int64
	shed     atomic.Uint64 // every refusal, at arrival or after a wait
	expired  atomic.Uint64 // the refusals after a wait (counted in shed too)
	winPeak  atomic.Int64  // the most calls in flight since the window began

	maxQueued int           // bound on waiters; 0 means none (refuse at once)
	target    time.Duration // the longest expected wait a call is queued for
	holdNs    atomic.Int64  // running mean of the time a call holds its slot; 0 before the first
	queued    atomic.Int64  // waiters in the queue; read without qmu on the fast paths
	qmu       sync.Mutex    // guards head, tail, firstTail, firstQueued; taken after mu, never before
	head      *waiter
	tail      *waiter
	// The first waiters (acquire with first set) stand at the front of the queue, in FIFO
	// order among themselves: firstTail is the last of them (nil when none), firstQueued how
	// many there are.
	firstTail   *waiter
	firstQueued int

	mu          sync.Mutex
	winStart    time.Time
	winSum      time.Duration
	winN        int
	periodStart time.Time
	curMin      time.Duration // lowest window average of this period; 0 before the first
	prevMin     time.Duration // of the previous period; 0 when none
}

// newLimiter builds a limiter. max <= 0 means no bound. An adaptive limiter starts at max (it
// behaves like the fixed bound until latency says the service is queueing) and never goes
// below min.
// maxQueued <= 0 means no queue: calls over the limit are refused at once; target is the longest
// expected wait a call is queued for.
func newLimiter(max, min int64, adaptive bool, maxQueued int, target time.Duration) *limiter {
	l := &limiter{adaptive: adaptive && max > 0, min: min, max: max, maxQueued: maxQueued, target: target}
	if l.maxQueued < 0 {
		l.maxQueued = 0
	}
	if l.min < 1 {
		l.min = 1
	}
	if l.min > max {
		l.min = max
	}
	l.limit.Store(max)
	return l
}

// waiter is one call queued for a slot. ch receives once, when the slot is handed over.
type waiter struct {
	ch         chan struct{}
	since      time.Time
	prev, next *waiter
	queued     bool // still in the list; guarded by qmu
	first      bool // queued ahead of the others (acquire's first); guarded by qmu
}

var waiterPool = sync.Pool{New: func() any { return &waiter{ch: make(chan struct{}, 1)} }}

// acquire takes a slot, waiting in the queue when the limit is reached and the queue admits the
// call. It returns nil with the slot taken (give it back with release, saying how long it was
// held), ErrOverloaded when refused (counted as shed), or ctx's error when ctx ended while
// waiting. A queued call waits at most max(stallFactor x l.target, minStall) and half of
// ctx's remaining time, so a waiter that gets a slot still has time for the call.
//
// A first call (a checkout: the shopper's last step, worth more than a new attempt) waits ahead
// of every other waiter, behind earlier first calls only, and is refused at arrival only when
// the queue is full: the expected-wait and stalled-queue checks, which keep the others' wait
// near the target, are not applied to it, since it jumps the line they measure. (A rush's
// winners check out together: hundreds of first calls at once behind a limit of 64 must wait,
// not be refused; the edge's per-address limits bound how many a client can send.)
func (l *limiter) acquire(ctx context.Context, first bool) error {
	if l.max <= 0 {
		l.inFlight.Add(1)
		return nil
	}
	if l.queued.Load() == 0 && l.tryTake() {
		return nil
	}
	return l.enqueue(ctx, first)
}

// tryTake takes a slot when one is free under the limit.
func (l *limiter) tryTake() bool {
	n := l.inFlight.Add(1)
	if n > l.limit.Load() {
		// Give it back as a release would: a waiter may have missed the slot while we held it.
		l.giveBack()
		return false
	}
	if l.adaptive {
		for p := l.winPeak.Load(); n > p && !l.winPeak.CompareAndSwap(p, n); p = l.winPeak.Load() {
		}
	}
	return true
}

// enqueue is acquire's slow path.
func (l *limiter) enqueue(ctx context.Context, first bool) error {
	if ahead := l.queued.Load(); ahead >= int64(l.maxQueued) || !first && l.expectedWait(ahead+1) > l.target {
		// Refused as admitLocked would (the queue is full, or none, or too long to drain),
		// without the lock or the clock: in a surge most calls end here. Nothing to hand
		// over: tryTake gave back the slot it held for a moment.
		l.shed.Add(1)
		return ErrOverloaded
	}
	now := time.Now()
	wait := max(stallFactor*l.target, minStall)
	if d, ok := ctx.Deadline(); ok {
		wait = min(wait, d.Sub(now)/2)
	}
	l.qmu.Lock()
	admit := l.admitLocked(now, wait)
	if first {
		admit = l.admitFirstLocked(wait)
	}
	if !admit {
		l.dispatchLocked() // a slot we held for a moment in tryTake may be due to a waiter
		l.qmu.Unlock()
		l.shed.Add(1)
		return ErrOverloaded
	}
	w := waiterPool.Get().(*waiter)
	w.since, w.queued, w.first = now, true, first
	l.linkLocked(w)
	l.queued.Add(1) // before dispatching: a release from now on takes qmu and sees w
	l.dispatchLocked()
	l.qmu.Unlock()

	t := time.NewTimer(wait)
	defer t.Stop()
	var err error
	select {
	case <-w.ch:
		waiterPool.Put(w)
		return nil
	case <-t.C:
		err = ErrOverloaded
	case <-ctx.Done():
		err = ctx.Err()
	}
	l.qmu.Lock()
	if w.queued {
		l.unlinkLocked(w)
		l.qmu.Unlock()
		waiterPool.Put(w)
		if err == ErrOverloaded {
			l.shed.Add(1)
			l.expired.Add(1)
		}
		return err
	}
	l.qmu.Unlock()
	// Handed a slot just as the wait ended: take it unless the caller is gone.
	<-w.ch
	waiterPool.Put(w)
	if err == ErrOverloaded {
		return nil
	}
	l.giveBack()
	return err
}

// admitLocked says whether a call arriving at now may wait (for at most wait) rather than be
// refused at once. qmu held.
func (l *limiter) admitLocked(now time.Time, wait time.Duration) bool {
	ahead := l.queued.Load()
	switch {
	case l.maxQueued == 0 || wait <= 0 || ahead >= int64(l.maxQueued):
		return false
	case ahead >= l.limit.Load() && now.Sub(l.oldestLocked()) >= l.target:
		// The queue is not draining as estimated: refuse newcomers, but only while a full
		// round of the limit's calls is queued. Refusing them all until the queue is empty
		// would let the service idle before the next arrival (the waiters admitted just
		// before the oldest one ran late run late too); a backlog of one round keeps it
		// busy, and waits about one hold time.
		return false
	}
	return l.expectedWait(ahead+1) <= min(l.target, wait)
}

// oldestLocked is when the longest waiting call in the queue arrived: the head, or the first
// waiter behind the first waiters (which jumped the line). qmu held, queue not empty.
func (l *limiter) oldestLocked() time.Time {
	t := l.head.since
	if l.firstTail != nil && l.firstTail.next != nil && l.firstTail.next.since.Before(t) {
		t = l.firstTail.next.since
	}
	return t
}

// admitFirstLocked says whether a first call may wait (see acquire). qmu held.
func (l *limiter) admitFirstLocked(wait time.Duration) bool {
	return l.maxQueued > 0 && wait > 0 && l.queued.Load() < int64(l.maxQueued)
}

// linkLocked puts w in the queue: a first waiter behind the first waiters, any other at the
// tail. qmu held.
func (l *limiter) linkLocked(w *waiter) {
	if !w.first {
		w.prev, w.next = l.tail, nil
		if l.tail != nil {
			l.tail.next = w
		} else {
			l.head = w
		}
		l.tail = w
		return
	}
	w.prev = l.firstTail
	if w.prev != nil {
		w.next = w.prev.next
		w.prev.next = w
	} else {
		w.next = l.head
		l.head = w
	}
	if w.next != nil {
		w.next.prev = w
	} else {
		l.tail = w
	}
	l.firstTail = w
	l.firstQueued++
}

// expectedWait is how long the n-th waiter in line is expected to wait: slots free up at
// limit / mean hold time. Zero before any call completed (nothing is known yet: the bound on
// the queue's length and the stalled-queue check still apply).
func (l *limiter) expectedWait(n int64) time.Duration {
	hold, limit := l.holdNs.Load(), l.limit.Load()
	if hold <= 0 || limit <= 0 {
		return 0
	}
	return time.Duration(float64(n) * float64(hold) / float64(limit))
}

// unlinkLocked removes w from the queue. qmu held.
func (l *limiter) unlinkLocked(w *waiter) {
	if w.first {
		if l.firstTail == w {
			l.firstTail = w.prev // first waiters are contiguous from the head
		}
		l.firstQueued--
	}
	if w.prev != nil {
		w.prev.next = w.next
	} else {
		l.head = w.next
	}
	if w.next != nil {
		w.next.prev = w.prev
	} else {
		l.tail = w.prev
	}
	w.prev, w.next, w.queued, w.first = nil, nil, false, false
	l.queued.Add(-1)
}

// dispatchLocked hands free slots to the waiters in FIFO order. qmu held.
func (l *limiter) dispatchLocked() {
	for l.head != nil {
		n := l.inFlight.Add(1)
		if n > l.limit.Load() {
			l.inFlight.Add(-1)
			break
		}
		if l.adaptive {
			for p := l.winPeak.Load(); n > p && !l.winPeak.CompareAndSwap(p, n); p = l.winPeak.Load() {
			}
		}
		w := l.head
		l.unlinkLocked(w)
		w.ch <- struct{}{}
	}
}

// release gives a slot back after a call that held it for hold (counted in the mean hold time
// the queue's expected wait is computed from), to the oldest waiter when there is one.
func (l *limiter) release(hold time.Duration) {
	if l.max > 0 {
		l.noteHold(hold)
	}
	l.giveBack()
}

// noteHold counts one call's hold time in the running mean.
func (l *limiter) noteHold(hold time.Duration) {
	for {
		old := l.holdNs.Load()
		mean := int64(hold)
		if old > 0 {
			mean = old + (int64(hold)-old)>>holdShift
		}
		if l.holdNs.CompareAndSwap(old, mean) {
			return
		}
	}
}

// giveBack returns a slot that was not used for a call, to the oldest waiter when there is one.
func (l *limiter) giveBack() {
	l.inFlight.Add(-1)
	if l.queued.Load() > 0 {
		l.qmu.Lock()
		l.dispatchLocked()
		l.qmu.Unlock()
	}
}

// observe records the latency of one attempt that was answered (or timed out) at now.
func (l *limiter) observe(rtt time.Duration, now time.Time) {
	if !l.adaptive {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.winStart.IsZero() {
		l.winStart, l.periodStart = now, now
	}
	l.winSum += rtt
	l.winN++
	if l.winN < limitMinSamples || now.Sub(l.winStart) < limitWindow {
		return
	}
	avg := l.winSum / time.Duration(l.winN)
	peak := l.winPeak.Swap(l.inFlight.Load())
	l.winStart, l.winSum, l.winN = now, 0, 0

	if now.Sub(l.periodStart) >= limitPeriod {
		l.prevMin, l.curMin, l.periodStart = l.curMin, 0, now
	}
	if l.curMin == 0 || avg < l.curMin {
		l.curMin = avg
	}
	noLoad := l.curMin
	if l.prevMin > 0 && l.prevMin < noLoad {
		noLoad = l.prevMin
	}
	threshold := time.Duration(limitTolerance*float64(noLoad)) + limitSlack
	limit := l.limit.Load()
	switch {
	case avg > threshold && 2*peak >= limit:
		// Queueing, and our own calls are a good part of it: shrink in proportion.
		ratio := max(float64(threshold)/float64(avg), 0.5)
		limit = max(int64(float64(limit)*ratio), l.min)
	case avg <= threshold && peak >= limit:
		// The limit was what held calls back and the service is not queueing: grow.
		limit = min(limit+int64(math.Ceil(math.Sqrt(float64(limit)))), l.max)
	}
	grew := limit > l.limit.Load()
	l.limit.Store(limit)
	if grew && l.queued.Load() > 0 {
		l.qmu.Lock()
		l.dispatchLocked()
		l.qmu.Unlock()
	}
}

// state returns the current limit and calls in flight.
func (l *limiter) state() (limit, inFlight int64) { return l.limit.Load(), l.inFlight.Load() }
