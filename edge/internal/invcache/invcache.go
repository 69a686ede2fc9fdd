// Package invcache holds values derived from store keys at the edge, kept coherent by the
// store's invalidation pushes instead of a TTL. The edge's product bodies, catalog pages, sales
// and "no idempotency record" answers all live in one.
//
// The race it settles: a fill reads the store, and an invalidation of what it read can land
// while the read is in flight (or before the reply is parsed). Each fill takes the generation of
// its key's shard before it reads; Put keeps the value only if no invalidation moved it since,
// and the check is made under the lock the invalidation of that key takes, so an invalidation
// either moved the generation first (the fill is dropped) or comes after the insert (and deletes
// it). One generation covers a whole shard: an invalidation drops the fills in flight in its
// shard, which costs at most a re-read and keeps the rule simple.
//
// A hit is a read-locked map lookup: no allocation, no bookkeeping goroutine, no admission
// policy. Large caches are split into shards by a hash of the key, each with its own lock, so
// readers on different cores do not share one lock word.
//
// The size is bounded by a number of entries and optionally by a summed cost (bytes, say): a Put
// into a full shard first evicts about an eighth of it, picked by Go's randomised map iteration.
// Keys often come from client input (guessed ids), so a burst of new keys must cost re-reads,
// never memory.
package invcache

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
)

// Options configure a Cache. Zero values take the defaults named on each field.
type Options struct {
	// MaxEntries bounds the entries kept. Zero means 10,000.
	MaxEntries int
	// MaxCost bounds the sum of the costs given to PutCost. Zero means no bound but MaxEntries.
	MaxCost int64
}

// Cache maps string keys to values of type V. Safe for concurrent use. Values are shared
// between readers: store immutable values (or pointers to immutable values).
type Cache[V any] struct {
	shards []shard[V]
	mask   uint64
	seed   maphash.Seed
}

type shard[V any] struct {
	mu      sync.RWMutex
	gen     atomic.Uint64
	m       map[string]item[V]
	cost    int64
	max     int
	maxCost int64
	_       [64]byte // keeps neighbouring shards' locks off one cache line
}

type item[V any] struct {
	v    V
	cost int64
}

// shardedFrom is the smallest MaxEntries that gets several shards; below it one lock is cheaper
// than hashing the key twice.
const (
	shardedFrom = 1024
	numShards   = 16
)

// New returns an empty Cache.
func New[V any](o Options) *Cache[V] {
	if o.MaxEntries <= 0 {
		o.MaxEntries = 10_000
	}
	n := 1
	if o.MaxEntries >= shardedFrom {
		n = numShards
	}
	c := &Cache[V]{shards: make([]shard[V], n), mask: uint64(n - 1), seed: maphash.MakeSeed()}
	for i := range c.shards {
		c.shards[i] = shard[V]{m: make(map[string]item[V]), max: o.MaxEntries / n, maxCost: o.MaxCost / int64(n)}
	}
	return c
}

func (c *Cache[V]) shard(key []byte) *shard[V] {
	if c.mask == 0 {
		return &c.shards[0]
	}
	return &c.shards[maphash.Bytes(c.seed, key)&c.mask]
}

func (c *Cache[V]) shardOf(key string) *shard[V] {
	if c.mask == 0 {
		return &c.shards[0]
	}
	return &c.shards[maphash.String(c.seed, key)&c.mask]
}

// Get returns the value held for key. key is not retained; a hit makes no allocation.
func (c *Cache[V]) Get(key []byte) (V, bool) {
	s := c.shard(key)
	s.mu.RLock()
	it, ok := s.m[string(key)]
	s.mu.RUnlock()
	return it.v, ok
}

// Gen returns the current generation of key's shard. Read it before reading the store for a
// fill of key and pass it to Put.
func (c *Cache[V]) Gen(key []byte) uint64 { return c.shard(key).gen.Load() }

// Put keeps v under key unless an invalidation happened since gen was read, and reports
// whether it did.
func (c *Cache[V]) Put(key string, v V, gen uint64) bool { return c.PutCost(key, v, 0, gen) }

// PutCost is Put for a value that counts cost towards Options.MaxCost.
func (c *Cache[V]) PutCost(key string, v V, cost int64, gen uint64) bool {
	s := c.shardOf(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gen.Load() != gen {
		return false
	}
	old, held := s.m[key]
	if held {
		s.cost -= old.cost
	} else if len(s.m) >= s.max || (s.maxCost > 0 && s.cost+cost > s.maxCost) {
		s.evict(cost)
	}
	s.m[key] = item[V]{v: v, cost: cost}
	s.cost += cost
	return true
}

// evict drops entries until the shard holds at most seven eighths of its bounds with room for
// an entry of the given cost.
func (s *shard[V]) evict(cost int64) {
	maxN := s.max - s.max/8 - 1
	maxCost := s.maxCost - s.maxCost/8 - cost
	for k, it := range s.m {
		if len(s.m) <= maxN && (s.maxCost == 0 || s.cost <= maxCost) {
			return
		}
		delete(s.m, k)
		s.cost -= it.cost
	}
}

// Delete drops key (the store changed what it derives from) and moves the generation on.
// It is fast and makes no store call: it runs on the store client's reader goroutine.
func (c *Cache[V]) Delete(key string) {
	s := c.shardOf(key)
	s.mu.Lock()
	s.gen.Add(1)
	if it, ok := s.m[key]; ok {
		s.cost -= it.cost
		delete(s.m, key)
	}
	s.mu.Unlock()
}

// Clear drops everything (a lost connection, or a change that touches every entry) and moves
// the generation on.
func (c *Cache[V]) Clear() {
	for i := range c.shards {
		c.shards[i].mu.Lock()
	}
	for i := range c.shards {
		s := &c.shards[i]
		s.gen.Add(1)
		clear(s.m)
		s.cost = 0
		s.mu.Unlock()
	}
}

// Len returns the number of entries held.
func (c *Cache[V]) Len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}

// Cost returns the summed cost of the entries held.
func (c *Cache[V]) Cost() int64 {
	var n int64
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += s.cost
		s.mu.RUnlock()
	}
	return n
}

// Load returns the value held for key, or fills it with fill (which reads the store) and keeps
// the result under the generation rule. fill's errors are returned and nothing is kept.
func (c *Cache[V]) Load(key []byte, fill func(key string) (V, error)) (V, error) {
	if v, ok := c.Get(key); ok {
		return v, nil
	}
	gen := c.Gen(key)
	k := string(key)
	v, err := fill(k)
	if err != nil {
		return v, err
	}
	c.Put(k, v, gen)
	return v, nil
}
