package upstream

import (
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
			l.acquire()
		}
		for i := range limitMinSamples {
			if i == limitMinSamples-1 {
				for range n {
					l.release()
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
	l := newLimiter(512, 8, true)
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
		if !l.acquire() {
			t.Fatal("a call under the limit was refused")
		}
	}
	if l.acquire() {
		t.Fatal("a call over the limit was admitted")
	}
	if got := l.shed.Load(); got != 1 {
		t.Fatalf("shed = %d, want 1", got)
	}
	for range 8 {
		l.release()
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
	l := newLimiter(16, 8, false)
	feed(l, &now, 10, 0, 80*time.Millisecond)
	if limit, _ := l.state(); limit != 16 {
		t.Fatalf("a fixed limit moved to %d", limit)
	}
}
