// Package ratelimit is the edge's in-memory rate limiter: a token bucket per key (client IP or
// user id), kept per edge process like OpenResty's limit_req shared dict, so a check costs a map
// lookup and no store round trip. With E edges behind a balancer the cluster-wide rate is at most
// E times the per-edge rate; that is the trade made for answering at memory speed.
//
// Keys are []byte and looked up without allocation; an entry is created on a key's first
// request. Idle buckets are swept so memory stays bounded by the number of active clients.
package ratelimit

import (
	"hash/maphash"
	"sync"
	"time"
)

// Options configure a Limiter. Zero values take the defaults named on each field.
type Options struct {
	// Rate is the sustained number of requests per second a key may make. Required (> 0).
	Rate float64
	// Burst is how many requests a key may make at once. Zero means max(1, Rate).
	Burst float64
	// MaxKeys bounds the tracked keys; when full, the oldest idle buckets are dropped first and
	// a new key is allowed without tracking (fail open) rather than growing without bound.
	// Zero means 1,000,000.
	MaxKeys int
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
}

const shards = 64

// Limiter decides whether a key may make one more request. Safe for concurrent use.
type Limiter struct {
	o Options
	// seed makes the shard of a key unpredictable: with a fixed hash a client choosing its keys
	// (user names are free) could fill one shard to its share of MaxKeys, and every new key of
	// that shard would then go unlimited (fail open).
	seed   maphash.Seed
	shards [shards]shard
}

type shard struct {
	mu      sync.Mutex
	buckets map[string]*bucket
	_       [40]byte // keep shards on separate cache lines
}

type bucket struct {
	tokens float64
	last   int64 // unix nanos of the last refill
}

// New returns a Limiter; it fails when Rate is not positive.
func New(o Options) (*Limiter, error) {
	if o.Rate <= 0 {
		return nil, errRate
	}
	if o.Burst == 0 {
		o.Burst = max(1, o.Rate)
	}
	if o.MaxKeys == 0 {
		o.MaxKeys = 1_000_000
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	l := &Limiter{o: o, seed: maphash.MakeSeed()}
	for i := range l.shards {
		l.shards[i].buckets = make(map[string]*bucket)
	}
	return l, nil
}

type rateError struct{}

func (rateError) Error() string { return "ratelimit: Rate must be > 0 requests per second" }

var errRate = rateError{}

func (l *Limiter) shardOf(key []byte) int { return int(maphash.Bytes(l.seed, key) % shards) }

// Allow takes one token from key's bucket and reports whether there was one. When not, it also
// returns how long until the next token, for Retry-After. key is not retained.
func (l *Limiter) Allow(key []byte) (ok bool, retryAfter time.Duration) {
	now := l.o.Now().UnixNano()
	s := &l.shards[l.shardOf(key)]
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.buckets[string(key)] // no allocation: the compiler keeps the conversion in the lookup
	if b == nil {
		if len(s.buckets) >= l.o.MaxKeys/shards {
			l.sweepLocked(s, now)
			if len(s.buckets) >= l.o.MaxKeys/shards {
				return true, 0
			}
		}
		b = &bucket{tokens: l.o.Burst, last: now}
		s.buckets[string(key)] = b
	}
	if elapsed := now - b.last; elapsed > 0 {
		b.tokens = min(l.o.Burst, b.tokens+float64(elapsed)/1e9*l.o.Rate)
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	wait := time.Duration((1 - b.tokens) / l.o.Rate * 1e9)
	return false, wait
}

// sweepLocked drops buckets that have refilled completely: forgetting them changes nothing.
func (l *Limiter) sweepLocked(s *shard, now int64) {
	full := int64((l.o.Burst / l.o.Rate) * 1e9)
	for k, b := range s.buckets {
		if now-b.last >= full {
			delete(s.buckets, k)
		}
	}
}

// Sweep drops every idle bucket; call it periodically (the edge does every few seconds).
func (l *Limiter) Sweep() {
	now := l.o.Now().UnixNano()
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		l.sweepLocked(s, now)
		s.mu.Unlock()
	}
}

// Len returns the number of tracked keys.
func (l *Limiter) Len() int {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		n += len(s.buckets)
		s.mu.Unlock()
	}
	return n
}
