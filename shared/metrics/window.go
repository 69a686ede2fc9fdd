package metrics

import (
	"math/bits"
	"sync"
	"sync/atomic"
	"time"
)

// window estimates latency percentiles over the last minute without locks on the record path.
//
// Durations go into log-linear buckets of microsecond units: exact below 16µs, then 16 buckets
// per power of two, so a reported percentile (the bucket's midpoint) is within about 3% of the
// true value. Time is cut into slots of slotLen; a percentile reads the slots of the last
// windowSlots*slotLen. The first recorder to reach a stale slot clears it under a mutex (once
// per slot period), so observations racing with that clear may be lost or land in the new slot:
// the figure is for people and dashboards, the exact counts are in the Prometheus series.
type window struct {
	mu    sync.Mutex // held only to recycle a slot
	slots [windowSlots]windowSlot
}

const (
	windowSlots   = 6
	slotLen       = 10 * time.Second
	windowSub     = 16 // buckets per power of two
	windowBuckets = windowSub + 34*windowSub
)

type windowSlot struct {
	epoch  atomic.Int64 // unix time / slotLen of the data held; 0 means never used
	counts [windowBuckets]atomic.Uint64
}

// windowIndex maps a duration to its bucket.
func windowIndex(d time.Duration) int {
	if d < 0 {
		d = 0
	}
	v := uint64(d) / 1000 // microseconds
	if v < windowSub {
		return int(v)
	}
	shift := bits.Len64(v) - 5 // keep the top 5 bits: 1xxxx
	i := windowSub + shift*windowSub + int(v>>uint(shift)) - windowSub
	if i >= windowBuckets {
		return windowBuckets - 1
	}
	return i
}

// windowMid returns the midpoint of bucket i, in milliseconds.
func windowMid(i int) float64 {
	if i < windowSub {
		return (float64(i) + 0.5) / 1000
	}
	shift := (i - windowSub) / windowSub
	sub := (i - windowSub) % windowSub
	lo := float64(uint64(windowSub+sub) << uint(shift))
	hi := float64(uint64(windowSub+sub+1) << uint(shift))
	return (lo + hi) / 2 / 1000
}

func (w *window) record(d time.Duration, now time.Time) {
	epoch := now.UnixNano() / int64(slotLen)
	s := &w.slots[epoch%windowSlots]
	if s.epoch.Load() != epoch {
		w.recycle(s, epoch)
	}
	s.counts[windowIndex(d)].Add(1)
}

func (w *window) recycle(s *windowSlot, epoch int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if s.epoch.Load() >= epoch {
		return
	}
	for i := range s.counts {
		s.counts[i].Store(0)
	}
	s.epoch.Store(epoch)
}

// quantiles returns, for each q in qs (ascending, in [0,1]), the latency in milliseconds at or
// below which that fraction of the window's requests completed, plus the number of samples.
func (w *window) quantiles(now time.Time, qs []float64) ([]float64, uint64) {
	cur := now.UnixNano() / int64(slotLen)
	var sum [windowBuckets]uint64
	var n uint64
	for si := range w.slots {
		s := &w.slots[si]
		if e := s.epoch.Load(); e <= cur-windowSlots || e > cur {
			continue
		}
		for i := range s.counts {
			c := s.counts[i].Load()
			sum[i] += c
			n += c
		}
	}
	out := make([]float64, len(qs))
	if n == 0 {
		return out, 0
	}
	var seen uint64
	qi := 0
	for i := 0; i < windowBuckets && qi < len(qs); i++ {
		seen += sum[i]
		for qi < len(qs) && float64(seen) >= qs[qi]*float64(n) && seen > 0 {
			out[qi] = windowMid(i)
			qi++
		}
	}
	return out, n
}
