// Package invcache holds values derived from store keys at the edge, kept coherent by the
// store's invalidation pushes instead of a TTL.
//
// The race it settles: a fill reads the store, and an invalidation of what it read can land
// while the read is in flight (or before the reply is parsed). Each fill takes the generation
// before it reads; Put keeps the value only if no invalidation moved the generation since, and
// the check is made under the lock invalidations take, so an invalidation either moved the
// generation first (the fill is dropped) or comes after the insert (and deletes it). One
// generation covers the whole cache: any invalidation drops the fills in flight, which costs at
// most a re-read and keeps the rule simple.
//
// The number of entries is bounded: when full, a Put clears the cache first. Keys often come
// from client input (guessed ids), so a burst of new keys must cost re-reads, never memory.
package invcache

import (
	"sync"
	"sync/atomic"
)

// Options configure a Cache. Zero values take the defaults named on each field.
type Options struct {
	// MaxEntries bounds the entries kept; a Put into a full cache clears it first.
	// Zero means 10,000.
	MaxEntries int
}

// Cache maps string keys to values of type V. Safe for concurrent use. Values are shared
// between readers: store immutable values (or pointers to immutable values).
type Cache[V any] struct {
	mu  sync.RWMutex
	m   map[string]V
	gen atomic.Uint64
	max int
}

// New returns an empty Cache.
func New[V any](o Options) *Cache[V] {
	if o.MaxEntries <= 0 {
		o.MaxEntries = 10_000
	}
	return &Cache[V]{m: make(map[string]V), max: o.MaxEntries}
}

// Get returns the value held for key. key is not retained; a hit makes no allocation.
func (c *Cache[V]) Get(key []byte) (V, bool) {
	c.mu.RLock()
	v, ok := c.m[string(key)]
	c.mu.RUnlock()
	return v, ok
}

// Gen returns the current generation. Read it before reading the store for a fill and pass it
// to Put.
func (c *Cache[V]) Gen() uint64 { return c.gen.Load() }

// Put keeps v under key unless an invalidation happened since gen was read, and reports
// whether it did.
func (c *Cache[V]) Put(key string, v V, gen uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen.Load() != gen {
		return false
	}
	if _, ok := c.m[key]; !ok && len(c.m) >= c.max {
		clear(c.m)
	}
	c.m[key] = v
	return true
}

// Delete drops key (the store changed what it derives from) and moves the generation on.
// It is fast and makes no store call: it runs on the store client's reader goroutine.
func (c *Cache[V]) Delete(key string) {
	c.mu.Lock()
	c.gen.Add(1)
	delete(c.m, key)
	c.mu.Unlock()
}

// Clear drops everything (a lost connection, or a change that touches every entry) and moves
// the generation on.
func (c *Cache[V]) Clear() {
	c.mu.Lock()
	c.gen.Add(1)
	clear(c.m)
	c.mu.Unlock()
}

// Len returns the number of entries held.
func (c *Cache[V]) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}

// Load returns the value held for key, or fills it with fill (which reads the store) and keeps
// the result under the generation rule. fill's errors are returned and nothing is kept.
func (c *Cache[V]) Load(key []byte, fill func(key string) (V, error)) (V, error) {
	if v, ok := c.Get(key); ok {
		return v, nil
	}
	gen := c.Gen()
	k := string(key)
	v, err := fill(k)
	if err != nil {
		return v, err
	}
	c.Put(k, v, gen)
	return v, nil
}
