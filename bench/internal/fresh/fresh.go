// Package fresh measures how long after a product update each server answers with the new value:
// the edge (invalidation pushed by the store) against the nginx + lrucache peer (TTL).
package fresh

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Target is a URL that serves the product being updated.
type Target struct {
	Name string
	URL  string
}

// Options configures Measure.
type Options struct {
	// Updates is how many updates to time. Required (> 0).
	Updates int
	// Update makes update number i so that the new answer contains marker (which no earlier
	// answer did). It returns when the write was acknowledged.
	Update func(ctx context.Context, i int, marker string) error
	// Targets are polled continuously while updates are made, as steady traffic would; that
	// keeps TTL caches warm, so their staleness is what it is under load.
	Targets []Target
	// Deadline bounds the wait for one update at every target. Zero means 3s.
	Deadline time.Duration
	// Spread is the upper bound of a random pause before each update, so updates fall at every
	// phase of a TTL. Zero means 1s.
	Spread time.Duration
	// PollInterval is the pause between two reads of one poller (kept to the microsecond on
	// Linux; elsewhere the runtime's timers round it up to about a millisecond). Zero means 200µs.
	PollInterval time.Duration
}

// Result is one target's staleness after an update: the time from the write's acknowledgement
// until the first read that showed it (zero when the first read after it already did).
type Result struct {
	Name     string          `json:"name"`
	Samples  []time.Duration `json:"-"`
	Timeouts int             `json:"timeouts"`
	P50MS    float64         `json:"p50_ms"`
	P99MS    float64         `json:"p99_ms"`
	MaxMS    float64         `json:"max_ms"`
	Count    int             `json:"count"`
	// PollMS is the mean time between two reads of the target (request, answer and pause): the
	// probe's resolution, an upper bound of what it adds to each sample.
	PollMS float64 `json:"poll_ms"`
}

type round struct {
	marker []byte
	ack    atomic.Int64 // unix ns of the write's acknowledgement; 0 until then
	seen   []atomic.Int64
}

// Measure makes o.Updates updates and times every target. It returns an error only when an
// update fails or ctx ends; a target that misses the deadline counts as a timeout.
func Measure(ctx context.Context, o Options) ([]Result, error) {
	if o.Updates <= 0 || o.Update == nil || len(o.Targets) == 0 {
		return nil, errors.New("fresh: Updates, Update and Targets are required")
	}
	if o.Deadline == 0 {
		o.Deadline = 3 * time.Second
	}
	if o.Spread == 0 {
		o.Spread = time.Second
	}
	if o.PollInterval == 0 {
		o.PollInterval = 200 * time.Microsecond
	}
	results := make([]Result, len(o.Targets))
	for i, t := range o.Targets {
		results[i].Name = t.Name
	}
	var cur atomic.Pointer[round]
	pctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { stop(); wg.Wait() }()
	polls := make([]atomic.Int64, len(o.Targets))
	began := time.Now()
	for ti, t := range o.Targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			poll(pctx, t.URL, o.PollInterval, func(body []byte, at time.Time) {
				polls[ti].Add(1)
				r := cur.Load()
				if r == nil || r.seen[ti].Load() != 0 || !bytes.Contains(body, r.marker) {
					return
				}
				r.seen[ti].CompareAndSwap(0, at.UnixNano())
			})
		}()
	}

	for i := range o.Updates {
		if err := sleep(ctx, rand.N(o.Spread)); err != nil {
			return nil, err
		}
		marker := fmt.Sprintf("fresh-%d-%08x", i, rand.Uint32())
		r := &round{marker: []byte(marker), seen: make([]atomic.Int64, len(o.Targets))}
		// The round is published before the write so a poller that sees the new value before
		// the acknowledgement counts it as fresh at once.
		cur.Store(r)
		err := o.Update(ctx, i, marker)
		ackAt := time.Now()
		if err != nil {
			return nil, fmt.Errorf("fresh: update %d: %w", i, err)
		}
		r.ack.Store(ackAt.UnixNano())
		deadline := ackAt.Add(o.Deadline)
		for {
			all := true
			for ti := range o.Targets {
				if r.seen[ti].Load() == 0 {
					all = false
				}
			}
			if all || time.Now().After(deadline) {
				break
			}
			if err := sleep(ctx, time.Millisecond); err != nil {
				return nil, err
			}
		}
		cur.Store(nil)
		for ti := range o.Targets {
			seen := r.seen[ti].Load()
			if seen == 0 {
				results[ti].Timeouts++
				continue
			}
			d := time.Duration(max(0, seen-r.ack.Load()))
			results[ti].Samples = append(results[ti].Samples, d)
		}
	}
	elapsed := time.Since(began)
	for i := range results {
		r := Summarize(results[i].Name, results[i].Samples)
		r.Timeouts = results[i].Timeouts
		if n := polls[i].Load(); n > 0 {
			r.PollMS = ms(elapsed / time.Duration(n))
		}
		results[i] = r
	}
	return results, nil
}

// Summarize sorts samples (which may be negative: an event before the reference) and makes a
// Result of them.
func Summarize(name string, samples []time.Duration) Result {
	slices.Sort(samples)
	r := Result{Name: name, Samples: samples, Count: len(samples),
		P50MS: ms(Percentile(samples, 50)), P99MS: ms(Percentile(samples, 99))}
	if len(samples) > 0 {
		r.MaxMS = ms(samples[len(samples)-1])
	}
	return r
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// Percentile returns the nearest-rank p-th percentile of sorted samples (0 when empty).
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	k := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[min(max(k, 0), len(sorted)-1)]
}

// poll reads url until ctx ends and hands each 200 body with its arrival time to seen.
func poll(ctx context.Context, url string, every time.Duration, seen func(body []byte, at time.Time)) {
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	defer client.CloseIdleConnections()
	var buf bytes.Buffer
	for ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err == nil {
			buf.Reset()
			_, _ = io.Copy(&buf, io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				seen(buf.Bytes(), time.Now())
			}
		}
		pause(every)
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
