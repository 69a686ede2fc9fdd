package load

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Bounds say how much load one phase generates: at most Requests operations and for at most
// Duration, whichever ends first; closed loop (Concurrency workers, each starting its next
// operation when the last one ends) or, with Rate > 0, open loop (operations due at a fixed
// rate whatever the answers, served by up to Concurrency workers; an operation that waits for
// a free worker has the wait counted in its latency).
type Bounds struct {
	// Requests caps the operations. Zero means no cap (Duration must be set).
	Requests int64
	// Duration caps the time. Zero means no cap (Requests must be set).
	Duration time.Duration
	// Concurrency is the number of workers. Zero means 64.
	Concurrency int
	// Rate, when above zero, is the open-loop arrival rate in operations per second.
	Rate float64
	// Skip, when set (open loop only), bounds the operations outstanding to Concurrency: an
	// operation due while every worker is busy is not run but handed to Skip (to count it as
	// unanswered), so the schedule never slips behind a slow server and the generator's backlog
	// never shows up as latency. Nil means it waits for a free worker.
	Skip func(i int64, due time.Time)
}

// Op is one operation: worker is the worker's index (0 to Concurrency-1), i the operation's
// sequence number, due when it was scheduled (open loop; zero in closed loop: start now).
type Op func(worker int, i int64, due time.Time)

// Drive runs op within b until a bound is reached or ctx ends, and returns the elapsed time and
// the number of operations run. Operations in flight when the time is up are finished, not cut
// (their requests have their own timeout). done, when not nil, counts finished operations for a
// progress display.
func Drive(ctx context.Context, b Bounds, done *atomic.Int64, op Op) (time.Duration, int64) {
	if b.Concurrency <= 0 {
		b.Concurrency = 64
	}
	if b.Requests <= 0 && b.Duration <= 0 {
		b.Requests = 1
	}
	start := time.Now()
	var stopAt time.Time
	if b.Duration > 0 {
		stopAt = start.Add(b.Duration)
	}
	expired := func() bool {
		if ctx.Err() != nil {
			return true
		}
		return !stopAt.IsZero() && !time.Now().Before(stopAt)
	}
	var ran atomic.Int64
	var wg sync.WaitGroup
	if b.Rate <= 0 {
		var next atomic.Int64
		for w := range b.Concurrency {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := next.Add(1) - 1
					if b.Requests > 0 && i >= b.Requests || expired() {
						return
					}
					op(w, i, time.Time{})
					ran.Add(1)
					if done != nil {
						done.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		return time.Since(start), ran.Load()
	}

	type job struct {
		i   int64
		due time.Time
	}
	jobs := make(chan job, b.Concurrency)
	var busy atomic.Int64 // operations handed to the workers and not finished
	for w := range b.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				op(w, j.i, j.due)
				busy.Add(-1)
				ran.Add(1)
				if done != nil {
					done.Add(1)
				}
			}
		}()
	}
	interval := float64(time.Second) / b.Rate
	timer := time.NewTimer(0)
	<-timer.C
gen:
	for i := int64(0); b.Requests <= 0 || i < b.Requests; i++ {
		due := start.Add(time.Duration(float64(i) * interval))
		if !stopAt.IsZero() && !due.Before(stopAt) {
			break
		}
		if wait := time.Until(due); wait > 200*time.Microsecond {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-ctx.Done():
				break gen
			}
		}
		if b.Skip != nil {
			if busy.Load() >= int64(b.Concurrency) {
				b.Skip(i, due)
				continue
			}
			busy.Add(1) // the channel has room: at most Concurrency jobs are ever busy
		}
		select {
		case jobs <- job{i, due}:
		case <-ctx.Done():
			break gen
		}
	}
	timer.Stop()
	close(jobs)
	wg.Wait()
	return time.Since(start), ran.Load()
}
