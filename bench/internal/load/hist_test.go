package load

import (
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"
)

// exactQuantile is the ceil(q n)-th smallest of sorted.
func exactQuantile(sorted []time.Duration, q float64) time.Duration {
	rank := max(int(math.Ceil(q*float64(len(sorted)))), 1)
	return sorted[rank-1]
}

func TestHistogramQuantiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	cases := []struct {
		name string
		gen  func(i int) time.Duration
		n    int
	}{
		{"uniform 1us..100ms", func(int) time.Duration { return time.Duration(1+rng.IntN(100_000)) * time.Microsecond }, 100_000},
		{"sequence 1..10000 us", func(i int) time.Duration { return time.Duration(i+1) * time.Microsecond }, 10_000},
		{"exponential mean 2ms", func(int) time.Duration { return time.Duration(rng.ExpFloat64() * float64(2*time.Millisecond)) }, 50_000},
		{"bimodal 300us and 40ms", func(i int) time.Duration {
			if i%100 == 0 {
				return 40*time.Millisecond + time.Duration(rng.IntN(1000))*time.Microsecond
			}
			return 300*time.Microsecond + time.Duration(rng.IntN(50))*time.Microsecond
		}, 20_000},
		{"small exact values (ns)", func(i int) time.Duration { return time.Duration(i % 200) }, 1000},
		{"long tail up to 30s", func(int) time.Duration { return time.Duration(math.Pow(10, 3+rng.Float64()*7.5)) }, 30_000},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := NewHistogram()
			vals := make([]time.Duration, c.n)
			var sum time.Duration
			for i := range vals {
				vals[i] = c.gen(i)
				sum += vals[i]
				h.Record(vals[i])
			}
			slices.Sort(vals)
			if got := h.Count(); got != uint64(c.n) {
				t.Fatalf("Count = %d, want %d", got, c.n)
			}
			if h.Min() != vals[0] || h.Max() != vals[len(vals)-1] {
				t.Errorf("Min, Max = %v, %v; want %v, %v", h.Min(), h.Max(), vals[0], vals[len(vals)-1])
			}
			if want := sum / time.Duration(c.n); h.Mean() != want {
				t.Errorf("Mean = %v, want %v", h.Mean(), want)
			}
			for _, q := range []float64{0, 0.1, 0.5, 0.9, 0.99, 0.999, 0.9999, 1} {
				want := exactQuantile(vals, q)
				got := h.Quantile(q)
				// Buckets are at most 1/128 of their value wide and report their middle.
				tol := float64(want)/256 + 1
				if math.Abs(float64(got-want)) > tol {
					t.Errorf("Quantile(%v) = %v, want %v ± %.0fns", q, got, want, tol)
				}
			}
		})
	}
}

func TestHistogramEmptyAndClamp(t *testing.T) {
	h := NewHistogram()
	if h.Quantile(0.5) != 0 || h.Mean() != 0 || h.Min() != 0 || h.Max() != 0 {
		t.Fatalf("empty histogram: q50 %v mean %v min %v max %v, want all 0", h.Quantile(0.5), h.Mean(), h.Min(), h.Max())
	}
	h.Record(-5)
	h.Record(100 * time.Hour)
	if h.Min() != 0 {
		t.Errorf("negative sample recorded as %v, want 0", h.Min())
	}
	if h.Max() != maxValue {
		t.Errorf("huge sample recorded as %v, want the cap %v", h.Max(), time.Duration(maxValue))
	}
}

func TestHistogramBucketsCoverEveryValue(t *testing.T) {
	// Every bucket's lower bound maps back to it, and consecutive buckets tile the range.
	next := int64(0)
	for i := range numBuckets {
		lo, w := bucketBounds(i)
		if lo != next {
			t.Fatalf("bucket %d starts at %d, want %d", i, lo, next)
		}
		if bucketOf(lo) != i || bucketOf(lo+w-1) != i {
			t.Fatalf("bucket %d [%d, %d) maps to %d and %d", i, lo, lo+w, bucketOf(lo), bucketOf(lo+w-1))
		}
		if lo >= subCount && float64(w)/float64(lo) > 1.0/half+1e-12 {
			t.Fatalf("bucket %d is %d wide at %d: more than 1/%d", i, w, lo, half)
		}
		next = lo + w
	}
	if next != maxValue+1 {
		t.Fatalf("buckets end at %d, want %d", next, int64(maxValue)+1)
	}
}

func TestHistogramMergeAndConcurrency(t *testing.T) {
	all, a, b := NewHistogram(), NewHistogram(), NewHistogram()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 5000 {
				d := time.Duration(w*5000+i+1) * time.Microsecond
				all.Record(d)
				if w%2 == 0 {
					a.Record(d)
				} else {
					b.Record(d)
				}
			}
		}()
	}
	wg.Wait()
	a.Merge(b)
	if a.Count() != 40_000 || all.Count() != 40_000 {
		t.Fatalf("counts %d and %d, want 40000", a.Count(), all.Count())
	}
	for _, q := range []float64{0.5, 0.99, 0.999} {
		if a.Quantile(q) != all.Quantile(q) {
			t.Errorf("merged Quantile(%v) = %v, recorded together %v", q, a.Quantile(q), all.Quantile(q))
		}
	}
	if a.Min() != time.Microsecond || a.Max() != 40_000*time.Microsecond || a.Mean() != all.Mean() {
		t.Errorf("merged min %v max %v mean %v; want 1µs, 40ms, %v", a.Min(), a.Max(), a.Mean(), all.Mean())
	}
}
