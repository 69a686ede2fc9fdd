package invcache

import (
	"errors"
	"fmt"
	"testing"
)

func TestFillRacesAnInvalidation(t *testing.T) {
	tests := []struct {
		name     string
		between  func(c *Cache[int])
		wantKept bool
	}{
		{"nothing changed", func(*Cache[int]) {}, true},
		{"the key changed during the fill", func(c *Cache[int]) { c.Delete("a") }, false},
		{"another key changed during the fill", func(c *Cache[int]) { c.Delete("b") }, false},
		{"connection lost during the fill", func(c *Cache[int]) { c.Clear() }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := New[int](Options{MaxEntries: 100}) // one shard: every key shares the generation
			gen := c.Gen([]byte("a"))
			tt.between(c)
			if kept := c.Put("a", 1, gen); kept != tt.wantKept {
				t.Fatalf("Put kept=%v, want %v", kept, tt.wantKept)
			}
			if _, ok := c.Get([]byte("a")); ok != tt.wantKept {
				t.Fatalf("Get found=%v, want %v", ok, tt.wantKept)
			}
		})
	}
}

func TestBounded(t *testing.T) {
	c := New[int](Options{MaxEntries: 10})
	for i := range 1000 {
		k := fmt.Sprint(i)
		c.Put(k, i, c.Gen([]byte(k)))
		if c.Len() > 10 {
			t.Fatalf("after %d puts the cache holds %d entries, want <= 10", i+1, c.Len())
		}
	}
	c.Put("999", 0, c.Gen([]byte("999"))) // replacing a held key never clears
	if c.Len() == 1 {
		t.Fatal("replacing a held key cleared the cache")
	}
}

func TestLoad(t *testing.T) {
	c := New[string](Options{})
	fills := 0
	fill := func(k string) (string, error) { fills++; return "v-" + k, nil }
	for range 3 {
		if v, err := c.Load([]byte("x"), fill); err != nil || v != "v-x" {
			t.Fatalf("Load = %q, %v", v, err)
		}
	}
	if fills != 1 {
		t.Fatalf("%d fills for three loads of one key, want 1", fills)
	}
	boom := errors.New("store down")
	if _, err := c.Load([]byte("y"), func(string) (string, error) { return "", boom }); !errors.Is(err, boom) {
		t.Fatalf("Load error %v, want %v", err, boom)
	}
	if _, ok := c.Get([]byte("y")); ok {
		t.Fatal("a failed fill was kept")
	}
}

func TestGetAllocs(t *testing.T) {
	c := New[int](Options{})
	c.Put("key", 1, c.Gen([]byte("key")))
	k := []byte("key")
	if n := testing.AllocsPerRun(100, func() { c.Get(k) }); n != 0 {
		t.Fatalf("Get allocates %v times, want 0", n)
	}
}

func TestBoundedSharded(t *testing.T) {
	c := New[int](Options{MaxEntries: 4096})
	for i := range 20_000 {
		k := fmt.Sprint(i)
		c.Put(k, i, c.Gen([]byte(k)))
	}
	if n := c.Len(); n > 4096 || n < 4096/2 {
		t.Fatalf("after 20,000 puts the cache holds %d entries, want between 2,048 and 4,096", n)
	}
}

func TestBoundedByCost(t *testing.T) {
	c := New[int](Options{MaxEntries: 1000, MaxCost: 10_000})
	for i := range 500 {
		k := fmt.Sprint(i)
		c.PutCost(k, i, 100, c.Gen([]byte(k)))
		if got := c.Cost(); got > 10_000 {
			t.Fatalf("after %d puts of cost 100 the cost held is %d, want <= 10,000", i+1, got)
		}
	}
	if n := c.Len(); n < 50 || n > 100 {
		t.Fatalf("%d entries of cost 100 held under a bound of 10,000, want 50-100", n)
	}
	c.PutCost("1", 1, 300, c.Gen([]byte("1"))) // replacing an entry counts its new cost only
	c.Delete("1")
	sum := int64(0)
	for i := range 500 {
		if _, ok := c.Get([]byte(fmt.Sprint(i))); ok {
			sum += 100
		}
	}
	if got := c.Cost(); got != sum {
		t.Fatalf("cost held %d, want %d (100 per entry left)", got, sum)
	}
}

func TestShardedGetAllocs(t *testing.T) {
	c := New[int](Options{MaxEntries: 100_000})
	c.Put("00000001", 1, c.Gen([]byte("00000001")))
	k := []byte("00000001")
	if n := testing.AllocsPerRun(100, func() {
		if _, ok := c.Get(k); !ok {
			t.Fatal("miss")
		}
	}); n != 0 {
		t.Fatalf("Get allocates %v times, want 0", n)
	}
}
