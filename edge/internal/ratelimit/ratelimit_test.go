package ratelimit

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestAllow(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Unix(1000, 0).UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	l, err := New(Options{Rate: 2, Burst: 3, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name    string
		advance time.Duration
		key     string
		want    bool
	}{
		{"burst 1", 0, "a", true},
		{"burst 2", 0, "a", true},
		{"burst 3", 0, "a", true},
		{"burst spent", 0, "a", false},
		{"other key unaffected", 0, "b", true},
		{"half a second refills one", 500 * time.Millisecond, "a", true},
		{"and only one", 0, "a", false},
		{"long idle refills to burst only", time.Hour, "a", true},
	}
	for _, s := range steps {
		now.Add(int64(s.advance))
		ok, retry := l.Allow([]byte(s.key))
		if ok != s.want {
			t.Fatalf("%s: Allow(%s) = %v, want %v", s.name, s.key, ok, s.want)
		}
		if !ok && (retry <= 0 || retry > time.Second) {
			t.Fatalf("%s: retryAfter %v, want (0, 1s]", s.name, retry)
		}
	}
	l.Sweep()
	if n := l.Len(); n != 1 { // "b" refilled and was forgotten; "a" was just used
		t.Fatalf("after sweep %d keys, want 1", n)
	}
}

func TestBoundedKeys(t *testing.T) {
	l, _ := New(Options{Rate: 1, MaxKeys: shards * 2})
	for i := range 10_000 {
		l.Allow([]byte{byte(i), byte(i >> 8)})
	}
	if n := l.Len(); n > shards*2 {
		t.Fatalf("%d keys tracked, want at most %d", n, shards*2)
	}
}

func TestConcurrentExactness(t *testing.T) {
	l, _ := New(Options{Rate: 0.001, Burst: 100, Now: func() time.Time { return time.Unix(1, 0) }})
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				if ok, _ := l.Allow([]byte("hot")); ok {
					allowed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if allowed.Load() != 100 {
		t.Fatalf("allowed %d of 800 with burst 100 and a frozen clock, want exactly 100", allowed.Load())
	}
}

func TestAllowAllocs(t *testing.T) {
	l, _ := New(Options{Rate: 1e9})
	key := []byte("203.0.113.7")
	l.Allow(key)
	if n := testing.AllocsPerRun(1000, func() { l.Allow(key) }); n != 0 {
		t.Fatalf("Allow on a known key allocates %v times, want 0", n)
	}
}

func BenchmarkAllow(b *testing.B) {
	l, _ := New(Options{Rate: 1e12})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		key := []byte("203.0.113.7")
		for pb.Next() {
			l.Allow(key)
		}
	})
}

// fnvShard is the shard an unseeded FNV-1a hash would give key: what a client could compute to
// choose keys that all land in one shard.
func fnvShard(key []byte) int {
	h := uint32(2166136261)
	for _, b := range key {
		h ^= uint32(b)
		h *= 16777619
	}
	return int(h % shards)
}

// TestShardsCannotBeChosen: keys chosen to share a shard under a fixed hash, as many as one
// shard's share of MaxKeys, do not fill a shard of the limiter (its hash is seeded per process),
// so a new key chosen the same way is still limited instead of passing unlimited.
func TestShardsCannotBeChosen(t *testing.T) {
	const perShard = 10
	l, err := New(Options{Rate: 0.001, Burst: 1, MaxKeys: shards * perShard, Now: func() time.Time { return time.Unix(1, 0) }})
	if err != nil {
		t.Fatal(err)
	}
	var chosen [][]byte
	for i := 0; len(chosen) < perShard+1; i++ {
		if k := []byte(fmt.Sprintf("u-%d", i)); fnvShard(k) == 0 {
			chosen = append(chosen, k)
		}
	}
	for _, k := range chosen[:perShard] {
		l.Allow(k)
	}
	fresh := chosen[perShard]
	if ok, _ := l.Allow(fresh); !ok {
		t.Fatal("a new key's first request refused")
	}
	if ok, _ := l.Allow(fresh); ok {
		t.Fatalf("a new key over its burst allowed: %d keys chosen for one shard filled it (fail open)", perShard)
	}
}
