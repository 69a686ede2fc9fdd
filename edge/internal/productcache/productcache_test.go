package productcache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"flashedge/edge/internal/httpcache"
	"flashedge/shared/keyspace"
	"flashedge/shared/kv/kvtest"
	"flashedge/shared/product"
)

// testHook forwards a client's invalidations to a cache made after the client, as the edge's
// run does (the client must exist before the cache).
type testHook struct{ c atomic.Pointer[Cache] }

func (h *testHook) invalidate(msgs []rueidis.RedisMessage) {
	if c := h.c.Load(); c != nil {
		c.Invalidate(msgs)
	}
}

type fixture struct {
	srv    *kvtest.Server
	writer rueidis.Client // a second client, as the catalog service would be
	edge   rueidis.Client
	cache  *Cache
	now    atomic.Int64
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{srv: kvtest.Start(t)}
	f.now.Store(time.Now().UnixNano())
	f.writer = f.srv.Client(t)
	var hook testHook
	o := f.srv.Options()
	o.OnInvalidations = hook.invalidate
	o.ConnWriteTimeout = 500 * time.Millisecond
	f.edge = f.srv.ClientWith(t, o)
	c, err := New(f.edge, Options{Now: func() time.Time { return time.Unix(0, f.now.Load()) }, StoreTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	hook.c.Store(c)
	f.cache = c
	return f
}

func (f *fixture) put(t *testing.T, id, name string, stock int64) {
	t.Helper()
	ctx := context.Background()
	doc := product.Marshal(product.Doc{ID: id, Name: name, Price: 100000, Currency: "VND"})
	cmds := rueidis.Commands{
		f.writer.B().Set().Key(keyspace.Product(id)).Value(string(doc)).Build(),
		f.writer.B().Set().Key(keyspace.ProductStock(id)).Value(fmt.Sprint(stock)).Build(),
		f.writer.B().Zadd().Key(keyspace.ProductIndex()).ScoreMember().ScoreMember(0, id).Build(),
	}
	for _, cmd := range cmds {
		if err := f.writer.Do(ctx, cmd).Error(); err != nil {
			t.Fatalf("seed %s: %v", id, err)
		}
	}
}

func (f *fixture) read(t *testing.T, id string) map[string]any {
	t.Helper()
	rep, err := f.cache.Product(context.Background(), []byte(id))
	if err != nil {
		t.Fatalf("AppendProduct(%s): %v", id, err)
	}
	b := rep.Body
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("AppendProduct(%s) = %s: not JSON: %v", id, b, err)
	}
	return m
}

func TestHitMakesNoStoreRoundTrip(t *testing.T) {
	f := newFixture(t)
	f.put(t, "00000001", "Nón lá", 50)
	f.read(t, "00000001")
	before := f.srv.CommandCalls(t, f.writer, "get")
	for range 200 {
		if got := f.read(t, "00000001"); got["name"] != "Nón lá" || got["stock_state"] != "in_stock" {
			t.Fatalf("read = %v", got)
		}
	}
	if after := f.srv.CommandCalls(t, f.writer, "get"); after != before {
		t.Fatalf("200 cached reads made %d GET calls on the store, want 0", after-before)
	}
	if s := f.cache.Stats(); s.Hits < 199 {
		t.Fatalf("stats %+v: want >= 199 cache hits", s)
	}
}

func TestUpdateVisibleThroughInvalidation(t *testing.T) {
	f := newFixture(t)
	f.put(t, "00000002", "old", 50)
	f.read(t, "00000002")
	for i, tc := range []struct {
		name  string
		stock int64
		state string
	}{{"new name", 50, "in_stock"}, {"new name", 3, "low"}, {"new name", 0, "out_of_stock"}} {
		start := time.Now()
		f.put(t, "00000002", tc.name, tc.stock)
		deadline := start.Add(50 * time.Millisecond)
		for {
			got := f.read(t, "00000002")
			if got["name"] == tc.name && got["stock_state"] == tc.state {
				t.Logf("step %d visible after %v", i, time.Since(start))
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("step %d: update not visible within 50ms: still %v", i, got)
			}
			time.Sleep(200 * time.Microsecond)
		}
	}
	if f.cache.Stats().Invalidations == 0 {
		t.Fatal("no invalidation counted")
	}
}

func TestNotFound(t *testing.T) {
	f := newFixture(t)
	if _, err := f.cache.Product(context.Background(), []byte("nope")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
	f.put(t, "nope", "now here", 1)
	deadline := time.Now().Add(time.Second)
	for {
		_, err := f.cache.Product(context.Background(), []byte("nope"))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("created product still not found: %v", err)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestStaleIfErrorWhenStoreIsDown(t *testing.T) {
	f := newFixture(t)
	f.put(t, "00000003", "cached", 20)
	f.read(t, "00000003")
	f.srv.Stop()
	// rueidis notices the dead connection and calls the hook with nil; poll until it has.
	deadline := time.Now().Add(5 * time.Second)
	for f.cache.epoch.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("connection loss never reported to the hook")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := f.read(t, "00000003"); got["name"] != "cached" {
		t.Fatalf("stale read = %v", got)
	}
	if f.cache.Stats().Stale == 0 {
		t.Fatal("stale serve not counted")
	}
	if _, err := f.cache.Product(context.Background(), []byte("never-cached")); !errors.Is(err, ErrStore) {
		t.Fatalf("uncached read with store down: err = %v, want ErrStore", err)
	}
	f.now.Add(int64(2 * time.Minute)) // past StaleIfError and the down backoff
	if _, err := f.cache.Product(context.Background(), []byte("00000003")); !errors.Is(err, ErrStore) {
		t.Fatalf("read after the stale bound: err = %v, want ErrStore", err)
	}
}

func TestPages(t *testing.T) {
	f := newFixture(t)
	const n = 45
	for i := 1; i <= n; i++ {
		f.put(t, fmt.Sprintf("%08d", i), fmt.Sprintf("p%d", i), int64(i))
	}
	var seen []string
	cursor := ""
	for page := 0; ; page++ {
		if page > 10 {
			t.Fatal("pagination does not end")
		}
		limit, after, err := product.ParsePage([]byte("20"), []byte(cursor))
		if err != nil {
			t.Fatal(err)
		}
		rep, err := f.cache.Page(context.Background(), limit, after)
		if err != nil {
			t.Fatal(err)
		}
		b := rep.Body
		var p struct {
			Items []struct {
				ID string `json:"id"`
			} `json:"items"`
			Next string `json:"next_cursor"`
		}
		if err := json.Unmarshal(b, &p); err != nil {
			t.Fatalf("page %s: %v", b, err)
		}
		for _, it := range p.Items {
			seen = append(seen, it.ID)
		}
		if p.Next == "" {
			break
		}
		cursor = p.Next
	}
	if len(seen) != n || seen[0] != "00000001" || seen[n-1] != fmt.Sprintf("%08d", n) {
		t.Fatalf("walked %d ids (%v...), want %d in order", len(seen), seen[:min(3, len(seen))], n)
	}
	// A new product shows up on the first page through invalidation of the index.
	f.put(t, "00000000", "first", 1)
	deadline := time.Now().Add(time.Second)
	for {
		b := bodyOf(f.cache.Page(context.Background(), 5, ""))
		if strings.Contains(string(b), `"id":"00000000"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("new product not on first page: %s", b)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestHitAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under -race")
	}
	f := newFixture(t)
	f.put(t, "00000004", "x", 5)
	f.read(t, "00000004")
	id := []byte("00000004")
	ctx := context.Background()
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := f.cache.Product(ctx, id); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("cache hit allocates %v times, want 0", allocs)
	}
}

func BenchmarkProductHit(b *testing.B) {
	srv := kvtest.Start(b)
	var hook testHook
	o := srv.Options()
	o.OnInvalidations = hook.invalidate
	cl := srv.ClientWith(b, o)
	c, err := New(cl, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	hook.c.Store(c)
	doc := product.Marshal(product.Doc{ID: "00000001", Name: "Tai nghe không dây", Description: "Pin 30 giờ", Price: 450000, Currency: "VND"})
	ctx := context.Background()
	cl.Do(ctx, cl.B().Set().Key(keyspace.Product("00000001")).Value(string(doc)).Build())
	id := []byte("00000001")
	if _, err := c.Product(ctx, id); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_, _ = c.Product(ctx, id)
		}
	})
}

// TestStaleNotAcrossAReconnect: a body filled before an earlier loss is not served stale in a
// later outage: while the store was back, nothing tracked it for this client, so it may have
// changed unseen.
func TestStaleNotAcrossAReconnect(t *testing.T) {
	f := newFixture(t)
	f.put(t, "00000005", "old body", 20)
	f.put(t, "00000006", "other", 20)
	f.read(t, "00000005")
	waitLoss := func(after uint64) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for f.cache.epoch.Load() <= after {
			if time.Now().After(deadline) {
				t.Fatal("connection loss never reported to the hook")
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	f.srv.Stop()
	waitLoss(0)
	if got := f.read(t, "00000005"); got["name"] != "old body" {
		t.Fatalf("first outage: %v, want the stale body", got)
	}
	epoch := f.cache.epoch.Load()
	f.srv.Restart()
	f.now.Add(int64(2 * time.Second)) // past the down backoff
	deadline := time.Now().Add(5 * time.Second)
	for { // the store is back (empty: no persistence): a read answers and starts a new up period
		if _, err := f.cache.Product(context.Background(), []byte("00000006")); !errors.Is(err, ErrStore) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("store never answered after the restart")
		}
		f.now.Add(int64(2 * time.Second))
		time.Sleep(10 * time.Millisecond)
	}
	f.now.Add(int64(time.Second))
	f.srv.Stop()
	waitLoss(epoch)
	f.now.Add(int64(2 * time.Second))
	if _, err := f.cache.Product(context.Background(), []byte("00000005")); !errors.Is(err, ErrStore) {
		t.Fatalf("second outage: err %v, want ErrStore (the body predates the last up period)", err)
	}
}

// bodyOf is the body of a representation, nil after an error.
func bodyOf(r *httpcache.Rep, err error) []byte {
	if err != nil {
		return nil
	}
	return r.Body
}

// TestInvalidationRefreshesAtOnce: a change to a cached product is re-read in the background as
// soon as its invalidation arrives, so the first read after it is a hit on the new body with no
// store round trip of its own; a product nobody read is not re-read.
func TestInvalidationRefreshesAtOnce(t *testing.T) {
	f := newFixture(t)
	f.put(t, "00000007", "before", 50)
	f.put(t, "00000008", "never read", 50)
	f.read(t, "00000007")
	f.put(t, "00000007", "after", 2)
	f.put(t, "00000008", "still never read", 50)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if e, ok := f.cache.products.Get([]byte("00000007")); ok && strings.Contains(string(e.rep.Body), `"after"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the changed product was not re-read in the background within 5s: stats %+v", f.cache.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
	before := f.srv.CommandCalls(t, f.writer, "get")
	if got := f.read(t, "00000007"); got["name"] != "after" || got["stock_state"] != "low" {
		t.Fatalf("read after the refresh = %v, want name after, stock_state low", got)
	}
	if after := f.srv.CommandCalls(t, f.writer, "get"); after != before {
		t.Fatalf("the first read after the refresh made %d GET calls on the store, want 0", after-before)
	}
	if _, ok := f.cache.products.Get([]byte("00000008")); ok {
		t.Fatal("a product nobody read was filled by the background re-read")
	}
	if s := f.cache.Stats(); s.Refreshes == 0 {
		t.Fatalf("stats %+v: want Refreshes > 0", s)
	}
}
