package flashsale

import (
	"context"
	"strings"
	"testing"
	"time"

	"flashedge/shared/keyspace"
)

func TestCreateSale(t *testing.T) {
	e := newEnv(t, Options{})
	e.putProduct("p1")
	now := e.clock.Now()
	start, end := now.Add(-time.Minute).UTC().Format(time.RFC3339), now.Add(time.Hour).UTC().Format(time.RFC3339)
	good := func(edit func(m map[string]any)) map[string]any {
		m := map[string]any{"product_id": "p1", "price": 5000, "stock": 10, "shards": 4,
			"starts_at": start, "ends_at": end, "per_user_limit": 2}
		if edit != nil {
			edit(m)
		}
		return m
	}
	bad := []struct {
		name string
		body any
		code int
	}{
		{"malformed", []byte(`{"product_id":`), 400},
		{"unknown field", good(func(m map[string]any) { m["colour"] = "red" }), 400},
		{"no product", good(func(m map[string]any) { delete(m, "product_id") }), 400},
		{"bad id", good(func(m map[string]any) { m["id"] = "a b" }), 400},
		{"no price", good(func(m map[string]any) { delete(m, "price") }), 400},
		{"zero price", good(func(m map[string]any) { m["price"] = 0 }), 400},
		{"no stock", good(func(m map[string]any) { delete(m, "stock") }), 400},
		{"negative stock", good(func(m map[string]any) { m["stock"] = -1 }), 400},
		{"huge stock", good(func(m map[string]any) { m["stock"] = MaxStock + 1 }), 400},
		{"zero shards", good(func(m map[string]any) { m["shards"] = 0 }), 400},
		{"too many shards", good(func(m map[string]any) { m["shards"] = 65 }), 400},
		{"bad start", good(func(m map[string]any) { m["starts_at"] = "tomorrow" }), 400},
		{"end before start", good(func(m map[string]any) { m["ends_at"] = start; m["starts_at"] = end }), 400},
		{"end at start", good(func(m map[string]any) { m["ends_at"] = start }), 400},
		{"zero limit", good(func(m map[string]any) { m["per_user_limit"] = 0 }), 400},
		{"bad difficulty", good(func(m map[string]any) { m["difficulty"] = 40 }), 400},
		{"unknown product", good(func(m map[string]any) { m["product_id"] = "nope" }), 422},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do("POST", "/api/v1/admin/flash-sales", "", testAdmin, "", tt.body)
			if r.status != tt.code || !strings.Contains(string(r.body), `"error":{"code":`) {
				t.Errorf("create with %s = %s, want %d with an error body", tt.name, r, tt.code)
			}
		})
	}

	t.Run("admin token", func(t *testing.T) {
		for _, tok := range []string{"", "wrong", testAdmin + "x"} {
			if r := e.do("POST", "/api/v1/admin/flash-sales", "", tok, "", good(nil)); r.status != 401 {
				t.Errorf("create with admin token %q = %s, want 401", tok, r)
			}
			if r := e.do("GET", "/api/v1/admin/flash-sales/x/ledger", "", tok, "", nil); r.status != 401 {
				t.Errorf("ledger with admin token %q = %s, want 401", tok, r)
			}
		}
	})

	t.Run("split and preheat", func(t *testing.T) {
		body := good(func(m map[string]any) { m["id"] = "s10"; m["stock"] = 10; m["shards"] = 4 })
		r := e.do("POST", "/api/v1/admin/flash-sales", "", testAdmin, "", body)
		if r.status != 201 {
			t.Fatalf("create: %s", r)
		}
		var got saleJSON
		r.decode(t, &got)
		if got.ID != "s10" || got.State != StateLive || got.Stock != 10 || got.Shards != 4 || got.PerUserLimit != 2 ||
			got.ProductName != "Phone p1" || got.Difficulty != DefaultDifficulty {
			t.Errorf("created sale = %+v", got)
		}
		ctx := context.Background()
		for i, want := range []string{"3", "3", "2", "2"} {
			if v, _ := e.c.Do(ctx, e.c.B().Get().Key(keyspace.StockShard("s10", i)).Build()).ToString(); v != want {
				t.Errorf("shard %d = %q, want %s", i, v, want)
			}
		}
		list, _ := e.c.Do(ctx, e.c.B().Lrange().Key(keyspace.SaleShards("s10")).Start(0).Stop(-1).Build()).AsStrSlice()
		if len(list) != 4 || list[3] != keyspace.StockShard("s10", 3) {
			t.Errorf("shard list = %q", list)
		}
		m, _ := e.c.Do(ctx, e.c.B().Hgetall().Key(keyspace.Sale("s10")).Build()).AsStrMap()
		for _, f := range []string{"id", "product_id", "product_name", "price", "stock", "shards", "starts_at", "ends_at",
			"starts_at_ms", "ends_at_ms", "per_user_limit", "difficulty", "created_at"} {
			if m[f] == "" {
				t.Errorf("sale hash lacks %s: %v", f, m)
			}
		}
		if score, err := e.c.Do(ctx, e.c.B().Zscore().Key(keyspace.Sales()).Member("s10").Build()).AsFloat64(); err != nil ||
			int64(score) != got.startMs(t) {
			t.Errorf("index score = %v (%v), want the start in ms", score, err)
		}
		e.checkAtRest("after create", "s10")

		// The same body again is a no-op answered 200; another body for the id is a conflict.
		if r := e.do("POST", "/api/v1/admin/flash-sales", "", testAdmin, "", body); r.status != 200 {
			t.Errorf("repeat create = %s, want 200", r)
		}
		body["stock"] = 11
		if r := e.do("POST", "/api/v1/admin/flash-sales", "", testAdmin, "", body); r.status != 409 {
			t.Errorf("create of a taken id = %s, want 409", r)
		}
	})

	t.Run("zero stock is sold out at once", func(t *testing.T) {
		sl := e.createSale(saleSpec{id: "s0", stock: 0, shards: 3})
		if sl.State != StateSoldOut {
			t.Errorf("state = %s, want sold_out", sl.State)
		}
		if n, _ := e.c.Do(context.Background(), e.c.B().Exists().Key(keyspace.SoldOut("s0")).Build()).AsInt64(); n != 1 {
			t.Error("sold-out flag not set for a sale of 0 units")
		}
	})

	t.Run("states and reads", func(t *testing.T) {
		e.createSale(saleSpec{id: "later", stock: 5, shards: 2, startsIn: time.Hour})
		e.createSale(saleSpec{id: "past", stock: 5, shards: 2, startsIn: -2 * time.Hour, lasts: time.Hour})
		want := map[string]string{"later": StateUpcoming, "past": StateEnded, "s0": StateSoldOut, "s10": StateLive}
		for id, st := range want {
			r := e.do("GET", "/api/v1/flash-sales/"+id, "", "", "", nil)
			var v saleJSON
			r.decode(t, &v)
			if r.status != 200 || v.State != st {
				t.Errorf("GET sale %s = %s, want state %s", id, r, st)
			}
		}
		r := e.do("GET", "/api/v1/flash-sales", "", "", "", nil)
		var list struct{ Items []saleJSON }
		r.decode(t, &list)
		if r.status != 200 || len(list.Items) != 4 {
			t.Fatalf("list = %s", r)
		}
		for i := 1; i < len(list.Items); i++ {
			if list.Items[i-1].startMs(t) > list.Items[i].startMs(t) {
				t.Errorf("list not ordered by start: %s", r)
			}
		}
		for _, id := range []string{"nope", "a%20b"} {
			if r := e.do("GET", "/api/v1/flash-sales/"+id, "", "", "", nil); r.status != 404 {
				t.Errorf("GET sale %s = %s, want 404", id, r)
			}
		}
	})
}

func (s saleJSON) startMs(t testing.TB) int64 {
	t.Helper()
	ts, err := time.Parse(time.RFC3339Nano, s.StartsAt)
	if err != nil {
		t.Fatalf("starts_at %q: %v", s.StartsAt, err)
	}
	return ts.UnixMilli()
}

// TestCreateSaleConcurrent: racing creates of one id with the same body make one sale; with
// different bodies exactly one wins and the shards hold the winner's split.
func TestCreateSaleConcurrent(t *testing.T) {
	e := newEnv(t, Options{})
	e.putProduct("p1")
	start := e.clock.Now().UTC()
	body := func(stock int) map[string]any {
		return map[string]any{"id": "race", "product_id": "p1", "price": 5000, "stock": stock, "shards": 4,
			"starts_at": start.Format(time.RFC3339), "ends_at": start.Add(time.Hour).Format(time.RFC3339)}
	}
	const n = 16
	codes := make(chan int, n)
	for i := range n {
		go func() { codes <- e.do("POST", "/api/v1/admin/flash-sales", "", testAdmin, "", body(10+i%2)).status }()
	}
	count := map[int]int{}
	for range n {
		count[<-codes]++
	}
	if count[201] != 1 || count[201]+count[200]+count[409] != n {
		t.Fatalf("answers = %v, want exactly one 201 and the rest 200 or 409", count)
	}
	l := e.checkAtRest("after racing creates", "race")
	if l.Initial != 10 && l.Initial != 11 || l.Remaining != l.Initial {
		t.Errorf("ledger after racing creates = %+v", l)
	}
}
