package load

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestDriveBounds(t *testing.T) {
	cases := []struct {
		name    string
		b       Bounds
		opTime  time.Duration
		wantOps func(n int64) bool
		maxTime time.Duration
	}{
		{"closed loop, count first", Bounds{Requests: 500, Duration: time.Minute, Concurrency: 8}, 0,
			func(n int64) bool { return n == 500 }, 5 * time.Second},
		{"closed loop, time first", Bounds{Requests: 1 << 40, Duration: 300 * time.Millisecond, Concurrency: 4}, time.Millisecond,
			func(n int64) bool { return n > 10 && n < 4*300 }, 2 * time.Second},
		{"open loop, count first", Bounds{Requests: 50, Duration: time.Minute, Rate: 1000, Concurrency: 8}, 0,
			func(n int64) bool { return n == 50 }, 2 * time.Second},
		{"open loop, time first", Bounds{Duration: 500 * time.Millisecond, Rate: 200, Concurrency: 8}, 0,
			func(n int64) bool { return n >= 90 && n <= 101 }, 2 * time.Second},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var done atomic.Int64
			var mu sync.Mutex
			seen := map[int64]bool{}
			el, n := Drive(context.Background(), c.b, &done, func(w int, i int64, due time.Time) {
				if w < 0 || w >= c.b.Concurrency {
					t.Errorf("worker %d outside 0..%d", w, c.b.Concurrency-1)
				}
				if (c.b.Rate > 0) == due.IsZero() {
					t.Errorf("op %d: due %v in a loop with rate %v", i, due, c.b.Rate)
				}
				mu.Lock()
				if seen[i] {
					t.Errorf("op %d ran twice", i)
				}
				seen[i] = true
				mu.Unlock()
				time.Sleep(c.opTime)
			})
			if !c.wantOps(n) || done.Load() != n || int64(len(seen)) != n {
				t.Fatalf("%d ops (done counter %d, distinct %d) in %v: not what this case wants", n, done.Load(), len(seen), el)
			}
			if el > c.maxTime {
				t.Fatalf("took %v, want under %v", el, c.maxTime)
			}
		})
	}
}

func TestDriveOpenLoopSchedule(t *testing.T) {
	// Due times follow the schedule even when the ops are slower than the rate: the lateness is
	// the latency the client must report.
	var mu sync.Mutex
	var dues []time.Time
	start := time.Now()
	Drive(context.Background(), Bounds{Requests: 20, Rate: 100, Concurrency: 1}, nil, func(_ int, _ int64, due time.Time) {
		mu.Lock()
		dues = append(dues, due)
		mu.Unlock()
		time.Sleep(20 * time.Millisecond) // twice the interval
	})
	if len(dues) != 20 {
		t.Fatalf("%d ops, want 20", len(dues))
	}
	for i := 1; i < len(dues); i++ {
		if gap := dues[i].Sub(dues[i-1]); gap < 9*time.Millisecond || gap > 11*time.Millisecond {
			t.Fatalf("due gap %d = %v, want the 10ms schedule", i, gap)
		}
	}
	if late := time.Since(start) - dues[19].Sub(start); late < 150*time.Millisecond {
		t.Fatalf("the last op ended %v after its due time; a single slow worker should be ~200ms behind", late)
	}
}

// TestDriveSkip: with Skip set, at most Concurrency operations are outstanding; one due while
// every worker is busy is skipped, not queued, and every due operation is either run or skipped.
func TestDriveSkip(t *testing.T) {
	const conc, n = 2, 10
	release := make(chan struct{})
	var skipped []int64
	var running atomic.Int64
	b := Bounds{Requests: n, Rate: 100_000, Concurrency: conc, Skip: func(i int64, due time.Time) {
		if due.IsZero() {
			t.Errorf("skipped op %d without a due time", i)
		}
		skipped = append(skipped, i) // Skip runs on the generator's goroutine
		if len(skipped) == n-conc {
			close(release)
		}
	}}
	_, ran := Drive(context.Background(), b, nil, func(_ int, i int64, _ time.Time) {
		if r := running.Add(1); r > conc {
			t.Errorf("%d operations outstanding, want at most %d", r, conc)
		}
		<-release
		running.Add(-1)
	})
	if ran != conc || len(skipped) != n-conc {
		t.Fatalf("ran %d, skipped %d (%v); want %d run (the workers were held) and %d skipped", ran, len(skipped), skipped, conc, n-conc)
	}
}

func TestDriveStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	for _, rate := range []float64{0, 50} {
		start := time.Now()
		Drive(ctx, Bounds{Duration: time.Minute, Rate: rate, Concurrency: 4}, nil, func(int, int64, time.Time) { time.Sleep(time.Millisecond) })
		if el := time.Since(start); el > 2*time.Second {
			t.Fatalf("rate %v: Drive ran %v after the context ended", rate, el)
		}
	}
}

func TestLedgerProblems(t *testing.T) {
	cases := []struct {
		name string
		l    ledger
		want int
	}{
		{"balanced", ledger{Initial: 10, Remaining: 3, Shards: []int64{1, 2}, Reserved: 2, Ordered: 5}, 0},
		{"sold out", ledger{Initial: 10, Remaining: 0, Shards: []int64{0, 0}, Ordered: 10}, 0},
		{"negative shard", ledger{Initial: 10, Remaining: 0, Shards: []int64{-1, 1}, Ordered: 10}, 1},
		{"shards disagree", ledger{Initial: 10, Remaining: 1, Shards: []int64{0, 0}, Ordered: 9}, 1},
		{"oversold", ledger{Initial: 10, Remaining: 0, Shards: []int64{0}, Reserved: 2, Ordered: 9}, 2},
		{"unit lost", ledger{Initial: 10, Remaining: 0, Shards: []int64{0}, Ordered: 9}, 1},
	}
	for _, c := range cases {
		if got := c.l.problems(); len(got) != c.want {
			t.Errorf("%s: problems %q, want %d", c.name, got, c.want)
		}
	}
}
