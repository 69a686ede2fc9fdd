package metrics

import (
	"io"
	"strconv"
	"sync/atomic"
	"time"
)

// DurationBuckets are the upper bounds, in seconds, of every Histogram this package makes. They
// start at 50µs because an edge cache hit answers in tens of microseconds, and end at 10s, past
// every timeout a service sets. Prometheus' histogram_quantile interpolates inside a bucket, so
// the p99 it shows is exact only to a bucket's width.
func DurationBuckets() []float64 {
	return []float64{0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}
}

// bucketSet is the shared, read-only description of the buckets.
type bucketSet struct {
	boundsNs []int64  // upper bounds in nanoseconds, ascending
	le       []string // the same bounds as "le" label values, plus "+Inf" last
}

func newBucketSet(bounds []float64) *bucketSet {
	b := &bucketSet{boundsNs: make([]int64, len(bounds)), le: make([]string, len(bounds)+1)}
	for i, s := range bounds {
		b.boundsNs[i] = int64(s * 1e9)
		b.le[i] = strconv.FormatFloat(s, 'g', -1, 64)
	}
	b.le[len(bounds)] = "+Inf"
	return b
}

// Histogram counts durations into the fixed DurationBuckets and is exposed in the Prometheus
// histogram format (cumulative `_bucket{le=...}`, `_sum` in seconds, `_count`), so that
// histogram_quantile works on it in any Prometheus. Observe is lock-free and does not allocate.
// Make one with Registry.Histogram; it is safe for concurrent use.
type Histogram struct {
	family string // metric family name, without suffixes
	labels string // `k="v",...` already escaped, or ""
	b      *bucketSet
	counts []atomic.Uint64 // len(b.boundsNs)+1, per bucket (not cumulative); the last is +Inf
	sumNs  atomic.Uint64
}

func newHistogram(family, labels string, b *bucketSet) *Histogram {
	return &Histogram{family: family, labels: labels, b: b, counts: make([]atomic.Uint64, len(b.boundsNs)+1)}
}

// Observe records one duration. Negative durations count as zero.
func (h *Histogram) Observe(d time.Duration) {
	ns := int64(d)
	if ns < 0 {
		ns = 0
	}
	// Most observations fall in the first buckets, so a linear scan beats a binary search.
	i := 0
	for i < len(h.b.boundsNs) && ns > h.b.boundsNs[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sumNs.Add(uint64(ns))
}

// Since records the time elapsed since start.
func (h *Histogram) Since(start time.Time) { h.Observe(time.Since(start)) }

// Count returns how many durations were observed.
func (h *Histogram) Count() uint64 {
	var n uint64
	for i := range h.counts {
		n += h.counts[i].Load()
	}
	return n
}

// writeTo writes the series of h (no TYPE line) in the Prometheus text format. _count is the
// sum of the buckets read, so the +Inf bucket and _count always agree within one scrape.
func (h *Histogram) writeTo(w io.Writer, buf []byte) []byte {
	var cum uint64
	for i := range h.counts {
		cum += h.counts[i].Load()
		buf = append(buf[:0], h.family...)
		buf = append(buf, "_bucket{"...)
		if h.labels != "" {
			buf = append(buf, h.labels...)
			buf = append(buf, ',')
		}
		buf = append(buf, `le="`...)
		buf = append(buf, h.b.le[i]...)
		buf = append(buf, `"} `...)
		buf = strconv.AppendUint(buf, cum, 10)
		buf = append(buf, '\n')
		w.Write(buf)
	}
	for _, suffix := range []string{"_sum", "_count"} {
		buf = append(buf[:0], h.family...)
		buf = append(buf, suffix...)
		if h.labels != "" {
			buf = append(buf, '{')
			buf = append(buf, h.labels...)
			buf = append(buf, '}')
		}
		buf = append(buf, ' ')
		if suffix == "_sum" {
			buf = strconv.AppendFloat(buf, float64(h.sumNs.Load())/1e9, 'g', -1, 64)
		} else {
			buf = strconv.AppendUint(buf, cum, 10)
		}
		buf = append(buf, '\n')
		w.Write(buf)
	}
	return buf
}
