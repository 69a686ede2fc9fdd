package order

import (
	"context"
	"errors"
	"testing"
	"time"

	"flashedge/shared/keyspace"
	"flashedge/shared/kv/kvtest"
)

func TestClaimStates(t *testing.T) {
	srv := kvtest.Start(t)
	c := srv.Client(t)
	s := NewStore(c)
	ctx := context.Background()
	const fp, other = "aaaa", "bbbb"

	first, err := s.Claim(ctx, "u-alice", "k", fp, time.Minute)
	if err != nil || first.State != Acquired || first.Marker == "" {
		t.Fatalf("first claim: %+v, %v", first, err)
	}
	tests := []struct {
		name string
		user string
		fp   string
		want ClaimState
	}{
		{"same body while pending", "u-alice", fp, InProgress},
		{"other body while pending", "u-alice", other, Mismatch},
		{"other user, same key", "u-bob", fp, Acquired},
	}
	for _, tt := range tests {
		got, err := s.Claim(ctx, tt.user, "k", tt.fp, time.Minute)
		if err != nil || got.State != tt.want {
			t.Fatalf("%s: %+v, %v; want state %v", tt.name, got, err, tt.want)
		}
	}

	if err := s.Finish(ctx, "u-alice", "k", first.Marker, 422, []byte(`{"x":"a:b"}`), time.Hour); err != nil {
		t.Fatal(err)
	}
	got, err := s.Claim(ctx, "u-alice", "k", fp, time.Minute)
	if err != nil || got.State != Replay || got.Status != 422 || string(got.Body) != `{"x":"a:b"}` {
		t.Fatalf("after finish: %+v, %v; want a replay of 422", got, err)
	}
	if got, _ := s.Claim(ctx, "u-alice", "k", other, time.Minute); got.State != Mismatch {
		t.Fatalf("other body after finish: %+v, want Mismatch", got)
	}
	if err := s.Finish(ctx, "u-alice", "k", first.Marker, 0, nil, time.Hour); !errors.Is(err, ErrKeyLost) {
		t.Fatalf("finishing twice: %v, want ErrKeyLost", err)
	}

	// Freeing a key (status 0) lets the same request run again.
	c2, _ := s.Claim(ctx, "u-carol", "k", fp, time.Minute)
	if err := s.Finish(ctx, "u-carol", "k", c2.Marker, 0, nil, time.Hour); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Claim(ctx, "u-carol", "k", fp, time.Minute); got.State != Acquired {
		t.Fatalf("after freeing: %+v, want Acquired", got)
	}

	if err := c.Do(ctx, c.B().Set().Key(keyspace.Idempotency("u-dave", "checkout", "k")).Value("garbage").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Claim(ctx, "u-dave", "k", fp, time.Minute); err == nil {
		t.Fatal("an unreadable record was accepted")
	}
}

// TestPlaceAfterKeyLost: a checkout whose pending marker expired and was taken over writes
// nothing.
func TestPlaceAfterKeyLost(t *testing.T) {
	srv := kvtest.Start(t)
	c := srv.Client(t)
	s := NewStore(c)
	ctx := context.Background()
	slow, _ := s.Claim(ctx, "u-alice", "k", "ff", time.Minute)
	// The marker expires (deleted here instead of waiting) and a retry takes the key.
	if err := c.Do(ctx, c.B().Del().Key(keyspace.Idempotency("u-alice", "checkout", "k")).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	if retry, _ := s.Claim(ctx, "u-alice", "k", "ff", time.Minute); retry.State != Acquired {
		t.Fatalf("retry after expiry: %+v", retry)
	}
	o := Order{ID: "0000000001", UserID: "u-alice", Status: StatusPlaced, CreatedAt: "2025-01-02T03:04:05.000Z"}
	if err := s.Place(ctx, o, []byte(`{}`), "k", slow.Marker, time.Hour); !errors.Is(err, ErrKeyLost) {
		t.Fatalf("Place with a lost key: %v, want ErrKeyLost", err)
	}
	if ok, err := s.Exists(ctx, "u-alice", o.ID); ok || err != nil {
		t.Fatalf("order written after a lost key (%v, %v)", ok, err)
	}
}

func TestReserveRelease(t *testing.T) {
	srv := kvtest.Start(t)
	c := srv.Client(t)
	s := NewStore(c)
	ctx := context.Background()
	set := func(k, v string) {
		if err := c.Do(ctx, c.B().Set().Key(k).Value(v).Build()).Error(); err != nil {
			t.Fatal(err)
		}
	}
	get := func(id string) string {
		v, _ := c.Do(ctx, c.B().Get().Key(keyspace.ProductStock(id)).Build()).ToString()
		return v
	}
	for id, stock := range map[string]string{"1": "5", "2": "1", "3": "0"} {
		set(keyspace.Product(id), `{"id":"`+id+`"}`)
		set(keyspace.ProductStock(id), stock)
	}

	tests := []struct {
		name    string
		rs      []Reservation
		want    error
		wantAll map[string]string
	}{
		{"short second product", []Reservation{{"1", "One", 2}, {"2", "Two", 2}}, ErrOutOfStock, map[string]string{"1": "5", "2": "1", "3": "0"}},
		{"zero stock", []Reservation{{"3", "Three", 1}}, ErrOutOfStock, map[string]string{"1": "5", "2": "1", "3": "0"}},
		{"unknown product", []Reservation{{"1", "One", 1}, {"9", "Nine", 1}}, ErrProductUnavailable, map[string]string{"1": "5", "2": "1", "3": "0"}},
		{"all there", []Reservation{{"1", "One", 5}, {"2", "Two", 1}}, nil, map[string]string{"1": "0", "2": "0", "3": "0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.Reserve(ctx, tt.rs)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Reserve(%v) = %v, want %v", tt.rs, err, tt.want)
			}
			for id, want := range tt.wantAll {
				if got := get(id); got != want {
					t.Errorf("stock of %s = %s, want %s", id, got, want)
				}
			}
		})
	}
	var oos *OutOfStockError
	if err := s.Reserve(ctx, []Reservation{{"2", "Two", 1}}); !errors.As(err, &oos) || oos.ProductID != "2" || oos.Name != "Two" {
		t.Fatalf("Reserve of a sold-out product: %v, want an OutOfStockError naming it", err)
	}

	// Giving back to a product deleted in the meantime does not bring its stock key back.
	if err := c.Do(ctx, c.B().Del().Key(keyspace.Product("1"), keyspace.ProductStock("1")).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	if err := s.Release(ctx, []Reservation{{"1", "One", 5}, {"2", "Two", 1}}); err != nil {
		t.Fatal(err)
	}
	if n, _ := c.Do(ctx, c.B().Exists().Key(keyspace.ProductStock("1")).Build()).AsInt64(); n != 0 || get("2") != "1" {
		t.Fatalf("after Release: deleted product's stock exists=%d, product 2 stock %s (want 0, 1)", n, get("2"))
	}
}
