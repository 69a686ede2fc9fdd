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
	adaptiveFloor = 32
)

// Queue sizes (see Options.MaxQueued and Options.QueueWait).
const (
	// DefaultMaxQueued is the queue length for a pool facing closed-loop shoppers: it holds a
	// thousand of them behind a limit of a few hundred, and each waiter costs ~100 bytes beside
	// the caller's goroutine that exists anyway, so memory stays bounded.
	DefaultMaxQueued = 1024
	// defaultQueueWait bounds a wait: a few service latencies under load, well below the edge's
	// budgets, so a waiter that is served still answers within its deadline.
	defaultQueueWait = time.Second
)

// limiter bounds the calls in flight to one service. A fixed limiter refuses beyond max; an
// adaptive one keeps a limit between min and max that follows the latency the replicas answer
// with: while a window's average latency stays near the lowest seen lately, a limit that was
// reached grows by its square root; when it rises above limitTolerance x that + limitSlack
// (calls are queueing inside the service), the limit shrinks by the ratio, at most by half per
// window. A call beyond the limit waits for a slot in a FIFO of at most maxQueued waiters, for at
// most wait; it is refused at once when the queue is full or when its oldest waiter has already
// waited 3/4 of wait (the queue is not draining: a newcomer would most likely time out after
// holding its client), and refused when its own wait runs out. A burst of closed-loop clients is
// so served with a short queueing delay, while a lasting open-loop overload is answered at the
// caller in microseconds and the service keeps serving near its capacity with short queues.
// Waiters are not in flight: the latency signal and the peak only see dispatched calls. Safe for
// concurrent use.
type limiter struct {
	adaptive bool
	min, max int64
	limit    atomic.Int64
	inFlight atomic.Int64
	shed     atomic.Uint64
	winPeak  atomic.Int64 // the most calls in flight since the window began

	maxQueued int           // bound on waiters; 0 means none (refuse at once)
	wait      time.Duration // bound on one wait
	queued    atomic.Int64  // waiters in the queue; read without qmu on the fast paths
	qmu       sync.Mutex    // guards head, tail; taken after mu, never before
	head      *waiter
	tail      *waiter

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
// maxQueued <= 0 means no queue: calls over the limit are refused at once.
func newLimiter(max, min int64, adaptive bool, maxQueued int, wait time.Duration) *limiter {
	l := &limiter{adaptive: adaptive && max > 0, min: min, max: max, maxQueued: maxQueued, wait: wait}
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

// waiter is one call queued for a slot. ch receives once when the slot is handed over.
type waiter struct {
	ch         chan struct{}
	since      time.Time
	prev, next *waiter
	queued     bool // still in the list; guarded by qmu
}

var waiterPool = sync.Pool{New: func() any { return &waiter{ch: make(chan struct{}, 1)} }}

// acquire takes a slot, waiting in the queue when the limit is reached. It returns nil with the
// slot taken (give it back with release), ErrOverloaded when refused (counted as shed), or ctx's
// error when ctx ended while waiting. The wait is bounded by l.wait and by half of ctx's
// remaining time, so a waiter that gets a slot still has time for the call.
func (l *limiter) acquire(ctx context.Context) error {
	if l.max <= 0 {
		l.inFlight.Add(1)
		return nil
	}
	if l.queued.Load() == 0 && l.tryTake() {
		return nil
	}
	return l.enqueue(ctx)
}

// tryTake takes a slot when one is free under the limit.
func (l *limiter) tryTake() bool {
	n := l.inFlight.Add(1)
	if n > l.limit.Load() {
		// Give it back as a release would: a waiter may have missed the slot while we held it.
		l.release()
		return false
	}
	if l.adaptive {
		for p := l.winPeak.Load(); n > p && !l.winPeak.CompareAndSwap(p, n); p = l.winPeak.Load() {
		}
	}
	return true
}

// enqueue is acquire's slow path.
func (l *limiter) enqueue(ctx context.Context) error {
	now := time.Now()
	wait := l.wait
	if d, ok := ctx.Deadline(); ok {
		wait = min(wait, d.Sub(now)/2)
	}
	l.qmu.Lock()
	if l.maxQueued == 0 || wait <= 0 || int(l.queued.Load()) >= l.maxQueued ||
		l.head != nil && now.Sub(l.head.since) > l.wait*3/4 {
		l.dispatchLocked() // a slot we held for a moment in tryTake may be due to a waiter
		l.qmu.Unlock()
		l.shed.Add(1)
		return ErrOverloaded
	}
	w := waiterPool.Get().(*waiter)
	w.since, w.queued, w.prev, w.next = now, true, l.tail, nil
	if l.tail != nil {
		l.tail.next = w
	} else {
		l.head = w
	}
	l.tail = w
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
	l.release()
	return err
}

// unlinkLocked removes w from the queue. qmu held.
func (l *limiter) unlinkLocked(w *waiter) {
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
	w.prev, w.next, w.queued = nil, nil, false
	l.queued.Add(-1)
}

// dispatchLocked hands free slots to the waiters in FIFO order. qmu held.
func (l *limiter) dispatchLocked() {
	for l.head != nil {
		n := l.inFlight.Add(1)
		if n > l.limit.Load() {
			l.inFlight.Add(-1)
			return
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

// release gives a slot back, to the oldest waiter when there is one.
func (l *limiter) release() {
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
