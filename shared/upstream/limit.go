package upstream

import (
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

// limiter bounds the calls in flight to one service. A fixed limiter refuses beyond max; an
// adaptive one keeps a limit between min and max that follows the latency the replicas answer
// with: while a window's average latency stays near the lowest seen lately, a limit that was
// reached grows by its square root; when it rises above limitTolerance x that + limitSlack
// (calls are queueing inside the service), the limit shrinks by the ratio, at most by half per
// window. Calls beyond the limit are refused at once, so an overload is answered at the caller
// in microseconds while the service keeps serving near its capacity with short queues, instead
// of every call queueing until its timeout. Safe for concurrent use.
type limiter struct {
	adaptive bool
	min, max int64
	limit    atomic.Int64
	inFlight atomic.Int64
	shed     atomic.Uint64
	winPeak  atomic.Int64 // the most calls in flight since the window began

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
func newLimiter(max, min int64, adaptive bool) *limiter {
	l := &limiter{adaptive: adaptive && max > 0, min: min, max: max}
	if l.min < 1 {
		l.min = 1
	}
	if l.min > max {
		l.min = max
	}
	l.limit.Store(max)
	return l
}

// acquire takes a slot, or reports false (and counts a shed call) when the limit is reached.
func (l *limiter) acquire() bool {
	if l.max <= 0 {
		l.inFlight.Add(1)
		return true
	}
	n := l.inFlight.Add(1)
	if n > l.limit.Load() {
		l.inFlight.Add(-1)
		l.shed.Add(1)
		return false
	}
	if l.adaptive {
		for p := l.winPeak.Load(); n > p && !l.winPeak.CompareAndSwap(p, n); p = l.winPeak.Load() {
		}
	}
	return true
}

// release gives a slot back.
func (l *limiter) release() { l.inFlight.Add(-1) }

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
	l.limit.Store(limit)
}

// state returns the current limit and calls in flight.
func (l *limiter) state() (limit, inFlight int64) { return l.limit.Load(), l.inFlight.Load() }
