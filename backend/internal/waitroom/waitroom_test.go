package waitroom_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"flashedge/backend/internal/waitroom"
	"flashedge/shared/keyspace"
	"flashedge/shared/kv/kvtest"
	shared "flashedge/shared/waitroom"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

func do(t *testing.T, c rueidis.Client, cmd rueidis.Completed) rueidis.RedisResult {
	t.Helper()
	r := c.Do(context.Background(), cmd)
	if err := r.Error(); err != nil && !rueidis.IsRedisNil(err) {
		t.Fatal(err)
	}
	return r
}

func serving(t *testing.T, c rueidis.Client, sale string) int64 {
	t.Helper()
	n, _ := do(t, c, c.B().Hget().Key(keyspace.WaitRoom(sale)).Field("serving").Build()).AsInt64()
	return n
}

// TestAdmitter drives two admitters with one controlled clock through a sale: the shuffle at the
// start (checked against the seed and its commitment), one batch a second whoever steps, a pause
// while sold out without a catch-up burst, and unused admissions made up.
func TestAdmitter(t *testing.T) {
	c := kvtest.Start(t).Client(t)
	ctx := context.Background()
	start := time.UnixMilli(1_900_000_000_000)
	const sale, admit, hold, pass = "s1", 10, 10, 5
	cfg := shared.Config{OpensAt: start.Add(-time.Hour), AdmitPerSecond: admit, PassSeconds: pass, HoldSeconds: hold}
	fields := append([]string{"id", sale, "starts_at_ms", fmt.Sprint(start.UnixMilli()),
		"ends_at_ms", fmt.Sprint(start.Add(time.Hour).UnixMilli())}, cfg.HashFields()...)
	do(t, c, c.B().Hset().Key(keyspace.Sale(sale)).FieldValue().FieldValue(fields[0], fields[1]).
		FieldValue(fields[2], fields[3]).FieldValue(fields[4], fields[5]).FieldValue(fields[6], fields[7]).
		FieldValue(fields[8], fields[9]).FieldValue(fields[10], fields[11]).FieldValue(fields[12], fields[13]).Build())
	commit, err := waitroom.Prepare(ctx, c, sale, start.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := waitroom.Prepare(ctx, c, sale, start.Add(time.Hour)); again != commit {
		t.Fatalf("a repeated Prepare changed the commitment: %s then %s", commit, again)
	}
	var users []string
	for i := range 95 {
		u := fmt.Sprintf("u%02d", i)
		users = append(users, u)
		do(t, c, c.B().Hset().Key(keyspace.WaitRoomPre(sale)).FieldValue().FieldValue(u, "1").Build())
	}

	clk := &clock{t: start.Add(-time.Second)}
	var adms []*waitroom.Admitter
	for range 2 {
		a, err := waitroom.NewAdmitter(c, waitroom.Options{Now: clk.now})
		if err != nil {
			t.Fatal(err)
		}
		adms = append(adms, a)
	}
	step := func(at time.Duration) int64 {
		t.Helper()
		clk.set(start.Add(at))
		for _, a := range adms {
			if err := a.Step(ctx); err != nil {
				t.Fatalf("step at %v: %v", at, err)
			}
		}
		return serving(t, c, sale)
	}
	if s := step(-time.Second); s != 0 {
		t.Fatalf("serving %d before the start", s)
	}
	if s := step(0); s != admit {
		t.Fatalf("serving %d after the shuffle, want the first batch %d", s, admit)
	}
	// The shuffle: the revealed seed matches the commitment; places follow Order(seed, users).
	st, _ := do(t, c, c.B().Hgetall().Key(keyspace.WaitRoom(sale)).Build()).AsStrMap()
	seed, err := hex.DecodeString(st["seed"])
	if err != nil || shared.Commitment(seed) != commit || st["commitment"] != commit {
		t.Fatalf("revealed seed %q does not match the commitment %s (state %v)", st["seed"], commit, st)
	}
	places, _ := do(t, c, c.B().Hgetall().Key(keyspace.WaitRoomPlace(sale)).Build()).AsStrMap()
	order := shared.Order(seed, users)
	for i, u := range order {
		if places[u] != fmt.Sprint(i+1) {
			t.Fatalf("user %s has place %q, want %d", u, places[u], i+1)
		}
	}
	stored, _ := do(t, c, c.B().Get().Key(keyspace.WaitRoomOrder(sale)).Build()).ToString()
	if stored != strings.Join(order, "\n") {
		t.Fatal("the stored order differs from Order(seed, users)")
	}

	// One batch a second, however many admitters step.
	for _, tc := range []struct {
		at   time.Duration
		want int64
	}{{500 * time.Millisecond, 10}, {time.Second, 20}, {1500 * time.Millisecond, 20}, {2 * time.Second, 30}} {
		if s := step(tc.at); s != tc.want {
			t.Fatalf("serving %d at %v, want %d", s, tc.at, tc.want)
		}
	}
	// Sold out: no batch; stock back: one batch, not the missed ones.
	do(t, c, c.B().Set().Key(keyspace.SoldOut(sale)).Value("1").Build())
	for _, at := range []time.Duration{3 * time.Second, 5 * time.Second, 8 * time.Second} {
		if s := step(at); s != 30 {
			t.Fatalf("serving %d at %v while sold out, want 30", s, at)
		}
	}
	do(t, c, c.B().Del().Key(keyspace.SoldOut(sale)).Build())
	if s := step(9 * time.Second); s != 40 {
		t.Fatalf("serving %d after stock returned, want one batch to 40", s)
	}
	// Make-up: of the first batch (positions 1-10, at 0s) holders 1-4 used their passes. Once
	// hold+pass (15 s) passed since that batch, the 6 unused are admitted on top of the batch.
	for i := 1; i <= 4; i++ {
		do(t, c, c.B().Zadd().Key(keyspace.WaitRoomUsed(sale)).ScoreMember().ScoreMember(float64(i), order[i-1]).Build())
	}
	if s := step(10 * time.Second); s != 50 {
		t.Fatalf("serving %d at 10s, want 50", s)
	}
	if s := step(15 * time.Second); s != 50+admit+6 {
		t.Fatalf("serving %d at 15s, want %d (a batch and 6 made up)", s, 50+admit+6)
	}
	// A second later the second batch (11-20, all unused) is made up too; the counter stops at
	// the queue's length, 95.
	if s := step(16 * time.Second); s != 66+admit+10 {
		t.Fatalf("serving %d at 16s, want %d", s, 66+admit+10)
	}
	if s := step(17 * time.Second); s != 95 {
		t.Fatalf("serving %d at 17s, want the whole queue 95", s)
	}
}
