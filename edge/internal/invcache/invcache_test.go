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
			c := New[int](Options{})
			gen := c.Gen()
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
		c.Put(fmt.Sprint(i), i, c.Gen())
		if c.Len() > 10 {
			t.Fatalf("after %d puts the cache holds %d entries, want <= 10", i+1, c.Len())
		}
	}
	c.Put("999", 0, c.Gen()) // replacing a held key never clears
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
	c.Put("key", 1, c.Gen())
	k := []byte("key")
	if n := testing.AllocsPerRun(100, func() { c.Get(k) }); n != 0 {
		t.Fatalf("Get allocates %v times, want 0", n)
	}
}
