package load

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// Histogram layout: log-linear buckets in nanoseconds, in the manner of HdrHistogram. Values
// below subCount get one bucket each; above, every power of two is split into half linear
// buckets, so a bucket is at most 1/half (0.8 %) of its value wide and a quantile is reported
// within ±0.4 % (the bucket's middle).
const (
	subBits  = 8
	subCount = 1 << subBits // 256
	half     = subCount / 2 // 128
	// maxValue caps recorded values (about 4.9 hours); longer ones count as maxValue.
	maxValue   = 1<<44 - 1
	maxExp     = 44 - subBits
	numBuckets = subCount + maxExp*half
)

// Histogram records durations for latency percentiles. The zero value is not usable; use
// NewHistogram. Record, Merge and the readers are safe for concurrent use (atomic counters, no
// lock), so one Histogram can take the samples of every worker of a run.
type Histogram struct {
	counts [numBuckets]atomic.Uint64
	n      atomic.Uint64
	sum    atomic.Uint64 // nanoseconds
	min    atomic.Int64  // nanoseconds; math.MaxInt64 while empty
	max    atomic.Int64
}

// NewHistogram returns an empty histogram.
func NewHistogram() *Histogram {
	h := &Histogram{}
	h.min.Store(math.MaxInt64)
	return h
}

func bucketOf(v int64) int {
	if v < subCount {
		return int(v)
	}
	e := bits.Len64(uint64(v)) - subBits // >= 1
	top := v >> e                        // in [half, subCount)
	return subCount + (e-1)*half + int(top-half)
}

// bucketBounds returns the lowest value of bucket i and its width.
func bucketBounds(i int) (lo, width int64) {
	if i < subCount {
		return int64(i), 1
	}
	e := (i-subCount)/half + 1
	top := int64((i-subCount)%half + half)
	return top << e, 1 << e
}

// Record adds one sample. Negative durations count as 0.
func (h *Histogram) Record(d time.Duration) {
	v := int64(d)
	if v < 0 {
		v = 0
	}
	if v > maxValue {
		v = maxValue
	}
	h.counts[bucketOf(v)].Add(1)
	h.n.Add(1)
	h.sum.Add(uint64(v))
	for {
		m := h.min.Load()
		if v >= m || h.min.CompareAndSwap(m, v) {
			break
		}
	}
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			break
		}
	}
}

// Merge adds every sample of o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.n.Load() == 0 {
		return
	}
	for i := range o.counts {
		if c := o.counts[i].Load(); c != 0 {
			h.counts[i].Add(c)
		}
	}
	h.n.Add(o.n.Load())
	h.sum.Add(o.sum.Load())
	for m := o.min.Load(); ; {
		cur := h.min.Load()
		if m >= cur || h.min.CompareAndSwap(cur, m) {
			break
		}
	}
	for m := o.max.Load(); ; {
		cur := h.max.Load()
		if m <= cur || h.max.CompareAndSwap(cur, m) {
			break
		}
	}
}

// Count is the number of samples.
func (h *Histogram) Count() uint64 { return h.n.Load() }

// Mean is the exact mean of the samples (0 when empty).
func (h *Histogram) Mean() time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	return time.Duration(h.sum.Load() / n)
}

// Min and Max are the exact extremes (0 when empty).
func (h *Histogram) Min() time.Duration {
	if h.n.Load() == 0 {
		return 0
	}
	return time.Duration(h.min.Load())
}

// Max is the largest sample (0 when empty).
func (h *Histogram) Max() time.Duration { return time.Duration(h.max.Load()) }

// Quantile returns the value at quantile q (0 to 1): the middle of the bucket holding the
// ceil(q x n)-th smallest sample, clamped to the exact minimum and maximum. Empty: 0.
// Concurrent Records during the call may or may not be included.
func (h *Histogram) Quantile(q float64) time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	q = min(max(q, 0), 1)
	rank := uint64(math.Ceil(q * float64(n)))
	rank = max(rank, 1)
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			lo, w := bucketBounds(i)
			v := lo + (w-1)/2
			v = max(v, h.min.Load())
			v = min(v, h.max.Load())
			return time.Duration(v)
		}
	}
	return h.Max()
}
