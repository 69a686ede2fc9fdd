package upstream

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// feed runs windows of calls through l on a synthetic clock: each window holds the limit's worth
// of calls (or inFlight, when smaller) and completes limitMinSamples calls of latency rtt.
func feed(l *limiter, now *time.Time, windows, inFlight int, rtt time.Duration) {
	for range windows {
		limit, _ := l.state()
		n := int(limit)
		if inFlight > 0 {
			n = min(inFlight, n)
		}
		for range n {
			l.acquire(context.Background(), false)
		}
		for i := range limitMinSamples {
			if i == limitMinSamples-1 {
				for range n {
					l.release(rtt)
				}
			}
			*now = now.Add(limitWindow / limitMinSamples)
			l.observe(rtt, *now)
		}
	}
}

// TestAdaptiveLimit: the limit holds while latency stays near its no-load level, shrinks (not
// below the floor) while calls queue, and grows back to the ceiling once they stop queueing;
// calls beyond it are refused and counted.
func TestAdaptiveLimit(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newLimiter(512, 8, true, 0, time.Second)
	l.winStart, l.periodStart = now, now // windows aligned with feed's
	feed(l, &now, 20, 0, time.Millisecond)
	if limit, _ := l.state(); limit != 512 {
		t.Fatalf("at no-load latency the limit moved to %d, want the ceiling 512", limit)
	}
	feed(l, &now, 10, 0, 80*time.Millisecond)
	limit, _ := l.state()
	if limit >= 64 || limit < 8 {
		t.Fatalf("after 10 windows at 80ms (no-load 1ms) the limit is %d, want it cut below 64 and not under the floor 8", limit)
	}
	feed(l, &now, 50, 0, 80*time.Millisecond)
	if limit, _ := l.state(); limit != 8 {
		t.Fatalf("a long overload left the limit at %d, want the floor 8", limit)
	}

	// At the limit, one more call is refused at once.
	for range 8 {
		if l.acquire(context.Background(), false) != nil {
			t.Fatal("a call under the limit was refused")
		}
	}
	if err := l.acquire(context.Background(), false); !errors.Is(err, ErrOverloaded) {
		t.Fatalf("a call over the limit without a queue: %v, want ErrOverloaded at once", err)
	}
	if got := l.shed.Load(); got != 1 {
		t.Fatalf("shed = %d, want 1", got)
	}
	for range 8 {
		l.release(time.Millisecond)
	}

	// Latency back to normal and the limit reached each window: it climbs back to the ceiling.
	feed(l, &now, 200, 0, time.Millisecond)
	if limit, _ := l.state(); limit != 512 {
		t.Fatalf("after the overload the limit climbed back to %d only, want 512", limit)
	}
	// High latency with few calls in flight is not our load: the limit stays.
	feed(l, &now, 10, 4, 80*time.Millisecond)
	if limit, _ := l.state(); limit != 512 {
		t.Fatalf("a slow service with 4 calls in flight moved the limit to %d, want 512", limit)
	}
}

// TestFixedLimit: without AdaptiveInFlight the bound never moves.
func TestFixedLimit(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newLimiter(16, 8, false, 0, time.Second)
	feed(l, &now, 10, 0, 80*time.Millisecond)
	if limit, _ := l.state(); limit != 16 {
		t.Fatalf("a fixed limit moved to %d", limit)
	}
}

// holdAll takes every slot of l's limit.
func holdAll(t *testing.T, l *limiter) {
	t.Helper()
	limit, _ := l.state()
	for range limit {
		if err := l.acquire(context.Background(), false); err != nil {
			t.Fatalf("a call under the limit: %v", err)
		}
	}
}

// queueTo starts a waiter on l and polls until l holds n waiters; the waiter's outcome goes to out.
func queueTo(t *testing.T, l *limiter, ctx context.Context, n int64, id int, out chan<- [2]any) {
	t.Helper()
	queueAs(t, l, ctx, n, id, false, out)
}

// queueAs is queueTo for a first (first set) or an ordinary waiter.
func queueAs(t *testing.T, l *limiter, ctx context.Context, n int64, id int, first bool, out chan<- [2]any) {
	t.Helper()
	go func() { out <- [2]any{id, l.acquire(ctx, first)} }()
	deadline := time.Now().Add(10 * time.Second)
	for l.queued.Load() != n {
		if time.Now().After(deadline) {
			t.Fatalf("waiter %d: %d queued, want %d", id, l.queued.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestLimitQueue: calls over the limit wait in FIFO order for freed slots; a full queue refuses
// at once; a wait that runs out is refused as overloaded; the caller's context ends a wait; no
// waiter or slot is left behind.
func TestLimitQueue(t *testing.T) {
	t.Run("fifo and full", func(t *testing.T) {
		l := newLimiter(2, 1, false, 3, time.Minute)
		holdAll(t, l)
		got := make(chan [2]any, 3)
		for i := range 3 {
			queueTo(t, l, context.Background(), int64(i+1), i, got)
		}
		if _, inFlight := l.state(); inFlight != 2 {
			t.Fatalf("waiters counted in flight: %d, want 2", inFlight)
		}
		// Full: refused at once (a wait would take the minute and fail the test's deadline).
		if err := l.acquire(context.Background(), false); !errors.Is(err, ErrOverloaded) {
			t.Fatalf("a call finding the queue full: %v, want ErrOverloaded", err)
		}
		for i := range 3 {
			l.release(time.Millisecond)
			r := <-got
			if r[0] != i || r[1] != nil {
				t.Fatalf("release %d served waiter %v (%v), want waiter %d with a slot", i, r[0], r[1], i)
			}
		}
		for range 2 {
			l.release(time.Millisecond)
		}
		if _, inFlight := l.state(); inFlight != 0 || l.queued.Load() != 0 || l.shed.Load() != 1 {
			t.Fatalf("after all: in flight %d, queued %d, shed %d; want 0, 0, 1", inFlight, l.queued.Load(), l.shed.Load())
		}
	})
	t.Run("wait runs out", func(t *testing.T) {
		// The held slot is never given back: the waiter gives up after stallFactor x the
		// target, refused as overloaded and counted as expired (refused after a wait).
		l := newLimiter(1, 1, false, 8, 20*time.Millisecond)
		holdAll(t, l)
		if err := l.acquire(context.Background(), false); !errors.Is(err, ErrOverloaded) {
			t.Fatalf("a wait that ran out: %v, want ErrOverloaded", err)
		}
		if _, inFlight := l.state(); inFlight != 1 || l.queued.Load() != 0 || l.shed.Load() != 1 || l.expired.Load() != 1 {
			t.Fatalf("after the timeout: in flight %d, queued %d, shed %d, expired %d; want 1, 0, 1, 1",
				inFlight, l.queued.Load(), l.shed.Load(), l.expired.Load())
		}
	})
	t.Run("caller cancels", func(t *testing.T) {
		l := newLimiter(1, 1, false, 8, time.Minute)
		holdAll(t, l)
		ctx, cancel := context.WithCancel(context.Background())
		got := make(chan [2]any, 1)
		queueTo(t, l, ctx, 1, 0, got)
		cancel()
		if r := <-got; !errors.Is(r[1].(error), context.Canceled) {
			t.Fatalf("a cancelled waiter: %v, want context.Canceled", r[1])
		}
		l.release(time.Millisecond)
		if _, inFlight := l.state(); inFlight != 0 || l.queued.Load() != 0 || l.shed.Load() != 0 {
			t.Fatalf("after the cancel: in flight %d, queued %d, shed %d; want 0, 0, 0", inFlight, l.queued.Load(), l.shed.Load())
		}
	})
	t.Run("stalled queue refuses newcomers", func(t *testing.T) {
		l := newLimiter(1, 1, false, 8, time.Minute)
		holdAll(t, l)
		got := make(chan [2]any, 1)
		queueTo(t, l, context.Background(), 1, 0, got)
		l.qmu.Lock()
		l.head.since = l.head.since.Add(-time.Minute) // the oldest waiter waited the whole bound
		l.qmu.Unlock()
		if err := l.acquire(context.Background(), false); !errors.Is(err, ErrOverloaded) {
			t.Fatalf("a newcomer behind a stalled queue: %v, want ErrOverloaded at once", err)
		}
		l.release(time.Millisecond)
		if r := <-got; r[1] != nil {
			t.Fatalf("the queued waiter: %v, want a slot", r[1])
		}
		l.release(time.Millisecond)
	})
	t.Run("stalled queue keeps one round", func(t *testing.T) {
		// Limit 3: behind a stalled oldest waiter, newcomers still queue until three (one
		// round of the limit's calls) wait, so the service has work when slots free up.
		l := newLimiter(3, 1, false, 8, time.Minute)
		holdAll(t, l)
		got := make(chan [2]any, 3)
		queueTo(t, l, context.Background(), 1, 0, got)
		l.qmu.Lock()
		l.head.since = l.head.since.Add(-time.Minute)
		l.qmu.Unlock()
		queueTo(t, l, context.Background(), 2, 1, got)
		queueTo(t, l, context.Background(), 3, 2, got)
		if err := l.acquire(context.Background(), false); !errors.Is(err, ErrOverloaded) {
			t.Fatalf("a newcomer behind a stalled queue of one round: %v, want ErrOverloaded at once", err)
		}
		for i := range 3 {
			l.release(time.Millisecond)
			if r := <-got; r[0] != i || r[1] != nil {
				t.Fatalf("release %d served waiter %v (%v), want waiter %d with a slot", i, r[0], r[1], i)
			}
		}
		for range 3 {
			l.release(time.Millisecond)
		}
		if _, inFlight := l.state(); inFlight != 0 || l.queued.Load() != 0 || l.shed.Load() != 1 || l.expired.Load() != 0 {
			t.Fatalf("after all: in flight %d, queued %d, shed %d, expired %d; want 0, 0, 1, 0", inFlight, l.queued.Load(), l.shed.Load(), l.expired.Load())
		}
	})
}

// TestLimitQueueExpectedWait: a call over the limit is queued only while the waiters ahead of it
// are expected to drain within the target, at the rate slots free up (limit / mean hold time);
// beyond that it is refused at once, a faster service lets more wait, and a slower one refuses
// newcomers while the waiters already queued are all served.
func TestLimitQueueExpectedWait(t *testing.T) {
	// Limit 4, calls holding their slot 100ms: a slot frees every 25ms, so with a 60ms target
	// the first two waiters (25ms, 50ms) are queued and the third (75ms) is refused.
	l := newLimiter(4, 1, false, 100, 60*time.Millisecond)
	holdAll(t, l)
	for range 4 {
		l.release(100 * time.Millisecond)
	}
	if got := time.Duration(l.holdNs.Load()); got != 100*time.Millisecond {
		t.Fatalf("mean hold after four 100ms calls: %s, want 100ms", got)
	}
	holdAll(t, l)
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan [2]any, 8)
	queueTo(t, l, ctx, 1, 0, got)
	l.qmu.Lock()
	l.head.since = time.Now() // not stalled, however slow this machine is
	l.qmu.Unlock()
	queueTo(t, l, ctx, 2, 1, got)
	if err := l.acquire(ctx, false); !errors.Is(err, ErrOverloaded) {
		t.Fatalf("a third waiter expected to wait 75ms (target 60ms): %v, want ErrOverloaded at once", err)
	}
	if l.queued.Load() != 2 || l.shed.Load() != 1 {
		t.Fatalf("after the refusal: queued %d, shed %d; want 2, 1", l.queued.Load(), l.shed.Load())
	}

	// The service got faster: calls hold their slot 10ms, so the mean drops, a slot frees every
	// few ms, and the third waiter fits.
	for range 64 {
		l.noteHold(10 * time.Millisecond)
	}
	if w := l.expectedWait(3); w > 60*time.Millisecond {
		t.Fatalf("after 64 calls of 10ms the third waiter's expected wait is %s, want under the 60ms target", w)
	}
	l.qmu.Lock()
	l.head.since = time.Now() // however slow this machine was so far, the queue is not stalled
	l.qmu.Unlock()
	queueTo(t, l, ctx, 3, 2, got)

	// The service slows down (calls now hold their slot ~400ms): the waiters already queued
	// keep their place and are served in order as slots free up, never refused because the
	// estimate grew; a newcomer, expected to wait far beyond the target now, is refused at once.
	for range 64 {
		l.noteHold(400 * time.Millisecond)
	}
	if err := l.acquire(ctx, false); !errors.Is(err, ErrOverloaded) {
		t.Fatalf("a newcomer behind three waiters after the slowdown: %v, want ErrOverloaded at once", err)
	}
	for i := range 3 {
		l.release(400 * time.Millisecond)
		if r := <-got; r[0] != i || r[1] != nil {
			t.Fatalf("release %d after the slowdown served waiter %v (%v), want waiter %d with a slot", i, r[0], r[1], i)
		}
	}
	if l.queued.Load() != 0 || l.shed.Load() != 2 || l.expired.Load() != 0 {
		t.Fatalf("after the slowdown: queued %d, shed %d, expired %d; want 0, 2 (both at arrival), 0",
			l.queued.Load(), l.shed.Load(), l.expired.Load())
	}
	cancel()
	for range 4 {
		l.release(10 * time.Millisecond)
	}
	if _, inFlight := l.state(); inFlight != 0 || l.queued.Load() != 0 {
		t.Fatalf("after all: in flight %d, queued %d; want 0, 0", inFlight, l.queued.Load())
	}
}

// TestLimitHoldMean: the mean hold time starts at the first call's and moves 1/16 of the way to
// each later call's.
func TestLimitHoldMean(t *testing.T) {
	l := newLimiter(8, 1, false, 8, time.Second)
	for _, tt := range []struct {
		hold, want time.Duration
	}{
		{160 * time.Millisecond, 160 * time.Millisecond},
		{320 * time.Millisecond, 170 * time.Millisecond},
		{10 * time.Millisecond, 160 * time.Millisecond},
	} {
		if err := l.acquire(context.Background(), false); err != nil {
			t.Fatal(err)
		}
		l.release(tt.hold)
		if got := time.Duration(l.holdNs.Load()); got != tt.want {
			t.Fatalf("after a call of %s the mean hold is %s, want %s", tt.hold, got, tt.want)
		}
	}
}

// TestLimitFastPathAllocs: a call under the limit allocates nothing.
func TestLimitFastPathAllocs(t *testing.T) {
	l := newLimiter(8, 1, true, 16, time.Second)
	ctx := context.Background()
	if n := testing.AllocsPerRun(1000, func() {
		if l.acquire(ctx, false) == nil {
			l.release(time.Millisecond)
		}
	}); n != 0 {
		t.Fatalf("acquire+release under the limit: %.1f allocations, want 0", n)
	}
}

// TestLimitFirstCalls: a first call (a checkout) waits ahead of the ordinary waiters, behind
// earlier first calls, in FIFO order among them; it is queued where an ordinary call is refused
// for its expected wait, and refused only by a full queue; ending a first waiter's wait leaves
// the queue consistent.
func TestLimitFirstCalls(t *testing.T) {
	l := newLimiter(2, 1, false, 16, time.Minute)
	holdAll(t, l)
	got := make(chan [2]any, 16)
	queueAs(t, l, context.Background(), 1, 0, false, got) // ordinary 0
	queueAs(t, l, context.Background(), 2, 1, false, got) // ordinary 1
	queueAs(t, l, context.Background(), 3, 10, true, got) // first 10
	gone, cancel := context.WithCancel(context.Background())
	queueAs(t, l, gone, 4, 11, true, got) // first 11, leaves
	cancel()
	if r := <-got; r[0] != 11 || !errors.Is(r[1].(error), context.Canceled) {
		t.Fatalf("the cancelled first waiter got %v", r)
	}
	queueAs(t, l, context.Background(), 4, 12, true, got) // first 12, in 11's place
	// An ordinary call now expected to wait beyond the target is refused; a first call is not.
	l.noteHold(time.Hour)
	if err := l.acquire(context.Background(), false); !errors.Is(err, ErrOverloaded) {
		t.Fatalf("an ordinary call expected to wait hours: %v, want ErrOverloaded", err)
	}
	var order []any
	for range 4 {
		l.release(time.Millisecond)
		r := <-got
		if r[1] != nil {
			t.Fatalf("waiter %v: %v", r[0], r[1])
		}
		order = append(order, r[0])
	}
	if fmt.Sprint(order) != "[10 12 0 1]" {
		t.Errorf("slots handed over in the order %v, want the first calls 10 and 12, then 0 and 1", order)
	}
	if q := l.queued.Load(); q != 0 || l.firstQueued != 0 || l.head != nil || l.tail != nil || l.firstTail != nil {
		t.Errorf("queue left: queued %d, first %d, head %p tail %p firstTail %p", q, l.firstQueued, l.head, l.tail, l.firstTail)
	}
	if _, inFlight := l.state(); inFlight != 2 {
		t.Errorf("in flight %d after four hand-overs of two held slots, want 2", inFlight)
	}

	// A full queue refuses a first call too.
	full := newLimiter(1, 1, false, 2, time.Minute)
	holdAll(t, full)
	queueTo(t, full, context.Background(), 1, 0, got)
	queueTo(t, full, context.Background(), 2, 1, got)
	if err := full.acquire(context.Background(), true); !errors.Is(err, ErrOverloaded) {
		t.Errorf("a first call finding the queue full: %v, want ErrOverloaded", err)
	}
	for range 2 {
		full.release(time.Millisecond)
		<-got
	}
}
