package flashgate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fasthttp/router"
	"github.com/redis/rueidis"
	"github.com/valyala/fasthttp"

	"flashedge/edge/internal/guard"
	"flashedge/edge/internal/session"
	"flashedge/shared/challenge"
	"flashedge/shared/keyspace"
	"flashedge/shared/kv/kvtest"
	"flashedge/shared/waitroom"
)

// countingOrder stands in for the order service's pool: it counts what the edge forwards and
// answers 202, so a test tells a forwarded attempt from one answered at the edge.
// first counts the requests sent with ForwardFirst (ahead of the others), counted in n too.
type countingOrder struct{ n, first atomic.Int64 }

func (o *countingOrder) Forward(ctx *fasthttp.RequestCtx) {
	o.n.Add(1)
	ctx.SetStatusCode(202)
	ctx.SetBodyString(`{"ticket":"00","status":"queued","poll_after_ms":1000}`)
}

func (o *countingOrder) ForwardFirst(ctx *fasthttp.RequestCtx) {
	o.first.Add(1)
	o.Forward(ctx)
}

type fixture struct {
	srv    *kvtest.Server
	writer rueidis.Client
	gate   *Gate
	guard  *guard.Guard
	order  *countingOrder
	signer *session.Signer
	keys   *challenge.Keys
	h      fasthttp.RequestHandler
	now    atomic.Int64
}

func newFixture(t testing.TB, lo guard.Options) *fixture {
	t.Helper()
	f := &fixture{srv: kvtest.Start(t), order: &countingOrder{}}
	f.now.Store(time.Date(2026, 11, 11, 12, 0, 0, 0, time.UTC).UnixNano())
	f.writer = f.srv.Client(t)
	var gp atomic.Pointer[Gate]
	opts := f.srv.Options()
	opts.OnInvalidations = func(m []rueidis.RedisMessage) {
		if g := gp.Load(); g != nil {
			g.Invalidate(m)
		}
	}
	edgeKV := f.srv.ClientWith(t, opts)
	var err error
	f.signer, err = session.NewSigner(map[string][]byte{"k1": []byte(strings.Repeat("s", 32))}, "k1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	clock := func() time.Time { return time.Unix(0, f.now.Load()) }
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	lo.Now = clock
	if f.guard, err = guard.New(edgeKV, log, lo); err != nil {
		t.Fatal(err)
	}
	f.keys, err = challenge.NewKeys(map[string][]byte{"k1": []byte(strings.Repeat("c", 32))}, "k1")
	if err != nil {
		t.Fatal(err)
	}
	f.gate, err = New(edgeKV, f.order, f.signer, f.guard, log, Options{Now: clock, Challenges: f.keys})
	if err != nil {
		t.Fatal(err)
	}
	gp.Store(f.gate)
	r := router.New()
	f.gate.Register(r, func(h fasthttp.RequestHandler) fasthttp.RequestHandler { return h })
	f.h = func(ctx *fasthttp.RequestCtx) {
		if !f.gate.Fast(ctx, ctx.Request.Header.Peek("Idempotency-Key"), ctx.Request.Header.Peek("Authorization")) {
			r.Handler(ctx)
		}
	}
	return f
}

// putSale writes a sale the way the order service's preheat does (fields documented in
// backend/internal/flashsale): the edge reads these keys directly.
func (f *fixture) putSale(t testing.TB, id string, start, end time.Time, soldOut bool) {
	t.Helper()
	ctx := context.Background()
	cmds := rueidis.Commands{
		f.writer.B().Hset().Key(keyspace.Sale(id)).FieldValue().
			FieldValue("id", id).FieldValue("product_id", "00000001").FieldValue("product_name", "Tai nghe").
			FieldValue("price", "99000").FieldValue("stock", "100").FieldValue("shards", "8").
			FieldValue("starts_at_ms", fmt.Sprint(start.UnixMilli())).FieldValue("ends_at_ms", fmt.Sprint(end.UnixMilli())).
			FieldValue("per_user_limit", "1").FieldValue("difficulty", "0").Build(),
		f.writer.B().Zadd().Key(keyspace.Sales()).ScoreMember().ScoreMember(float64(start.UnixMilli()), id).Build(),
	}
	if soldOut {
		cmds = append(cmds, f.writer.B().Set().Key(keyspace.SoldOut(id)).Value("1").Build())
	}
	for _, r := range f.writer.DoMulti(ctx, cmds...) {
		if err := r.Error(); err != nil {
			t.Fatal(err)
		}
	}
}

func (f *fixture) clock() time.Time { return time.Unix(0, f.now.Load()) }

func (f *fixture) token(user string) string {
	tok, _ := f.signer.Issue(user, time.Now()) // FromRequest verifies at the real time
	return tok
}

func (f *fixture) do(method, uri, token string) *fasthttp.Response {
	var ctx fasthttp.RequestCtx
	ctx.Init(&fasthttp.Request{}, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 9), Port: 1}, nil)
	ctx.Request.Header.SetMethod(method)
	ctx.Request.SetRequestURI(uri)
	if token != "" {
		ctx.Request.Header.Set("Authorization", "Bearer "+token)
	}
	ctx.Request.SetBodyString(`{"challenge_id":"c","answer":"0"}`)
	f.h(&ctx)
	var resp fasthttp.Response
	ctx.Response.CopyTo(&resp)
	return &resp
}

func TestAttemptAnsweredAtTheEdge(t *testing.T) {
	f := newFixture(t, guard.Options{AddrRate: -1, UserRate: -1})
	now := f.clock()
	f.putSale(t, "live", now.Add(-time.Minute), now.Add(time.Hour), false)
	f.putSale(t, "gone", now.Add(-time.Minute), now.Add(time.Hour), true)
	f.putSale(t, "later", now.Add(90*time.Second), now.Add(time.Hour), false)
	f.putSale(t, "over", now.Add(-2*time.Hour), now.Add(-time.Hour), false)
	tok := f.token("u-alice")
	tests := []struct {
		name       string
		sale       string
		token      string
		wantStatus int
		forwarded  bool
	}{
		{"live is forwarded", "live", tok, 202, true},
		{"sold out at the edge", "gone", tok, 410, false},
		{"not started at the edge", "later", tok, 425, false},
		{"ended at the edge", "over", tok, 410, false},
		{"unknown sale", "nope", tok, 404, false},
		{"malformed sale id", "a%20b", tok, 404, false},
		{"no session", "live", "", 401, false},
		{"forged session", "live", tok + "x", 401, false},
		{"sold out needs no session", "gone", "", 410, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := f.order.n.Load()
			resp := f.do("POST", "/api/v1/flash-sales/"+tt.sale+"/attempts", tt.token)
			if resp.StatusCode() != tt.wantStatus {
				t.Fatalf("attempt on %s: %d %s, want %d", tt.sale, resp.StatusCode(), resp.Body(), tt.wantStatus)
			}
			if got := f.order.n.Load() - before; (got == 1) != tt.forwarded {
				t.Fatalf("attempt on %s: forwarded %d times, want forwarded=%v", tt.sale, got, tt.forwarded)
			}
			if !json.Valid(resp.Body()) {
				t.Fatalf("body %q is not JSON", resp.Body())
			}
		})
	}
	// Challenges are answered at the edge: refused for a sale that cannot sell, minted for a
	// live one, never forwarded.
	for sale, want := range map[string]int{"gone": 410, "later": 425, "over": 410, "nope": 404, "live": 200} {
		before := f.order.n.Load()
		if r := f.do("POST", "/api/v1/flash-sales/"+sale+"/challenge", tok); r.StatusCode() != want {
			t.Errorf("challenge on %s: %d, want %d", sale, r.StatusCode(), want)
		}
		if got := f.order.n.Load() - before; got != 0 {
			t.Errorf("challenge on %s forwarded %d times", sale, got)
		}
	}
	if r := f.do("POST", "/api/v1/flash-sales/later/attempts", tok); string(r.Header.Peek("Retry-After")) != "90" {
		t.Fatalf("not-started Retry-After %q, want 90", r.Header.Peek("Retry-After"))
	}
	s := f.gate.Stats()
	if s.Rejected[ReasonSoldOut] != 3 || s.Rejected[ReasonNotStarted] != 3 || s.Rejected[ReasonEnded] != 2 {
		t.Fatalf("stats %+v", s)
	}
}

// TestSoldOutFlagByInvalidation: the flag set by a worker (another client) reaches the edge by
// invalidation, and clearing it (an expired reservation returned) lets attempts through again.
func TestSoldOutFlagByInvalidation(t *testing.T) {
	f := newFixture(t, guard.Options{AddrRate: -1, UserRate: -1})
	now := f.clock()
	f.putSale(t, "s1", now.Add(-time.Minute), now.Add(time.Hour), false)
	tok := f.token("u-bob")
	if r := f.do("POST", "/api/v1/flash-sales/s1/attempts", tok); r.StatusCode() != 202 {
		t.Fatalf("live sale: %d", r.StatusCode())
	}
	ctx := context.Background()
	start := time.Now()
	f.writer.Do(ctx, f.writer.B().Set().Key(keyspace.SoldOut("s1")).Value("1").Build())
	waitStatus(t, f, "s1", tok, 410, 50*time.Millisecond)
	t.Logf("sold-out flag answered at the edge %v after it was set", time.Since(start))
	forwarded := f.order.n.Load()
	for range 100 {
		f.do("POST", "/api/v1/flash-sales/s1/attempts", tok)
	}
	if f.order.n.Load() != forwarded {
		t.Fatalf("attempts after sell-out reached the order service %d times", f.order.n.Load()-forwarded)
	}
	var sale map[string]any
	if err := json.Unmarshal(f.do("GET", "/api/v1/flash-sales/s1", "").Body(), &sale); err != nil || sale["state"] != "sold_out" {
		t.Fatalf("sale view %v (%v): want state sold_out", sale, err)
	}
	f.writer.Do(ctx, f.writer.B().Del().Key(keyspace.SoldOut("s1")).Build())
	waitStatus(t, f, "s1", tok, 202, 50*time.Millisecond)
}

func waitStatus(t *testing.T, f *fixture, sale, tok string, want int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		r := f.do("POST", "/api/v1/flash-sales/"+sale+"/attempts", tok)
		if r.StatusCode() == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("attempt on %s: still %d after %v, want %d", sale, r.StatusCode(), within, want)
		}
		time.Sleep(500 * time.Microsecond)
	}
}

func TestRateLimitsAndBlacklist(t *testing.T) {
	f := newFixture(t, guard.Options{AddrRate: 1000, AddrBurst: 1000, UserRate: 1, UserBurst: 2, AbuseBurst: 3, BlacklistTTL: time.Minute})
	now := f.clock()
	f.putSale(t, "s2", now.Add(-time.Minute), now.Add(time.Hour), false)
	tok := f.token("u-eve")
	var got []int
	for range 8 {
		got = append(got, f.do("POST", "/api/v1/flash-sales/s2/attempts", tok).StatusCode())
	}
	// 2 in the burst, then 429s until the abuse budget of 3 is spent, then blacklisted.
	want := []int{202, 202, 429, 429, 429, 429, 403, 403}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("statuses %v, want %v", got, want)
	}
	ttl, err := f.writer.Do(context.Background(), f.writer.B().Ttl().Key(keyspace.Blacklist("user", "u-eve")).Build()).AsInt64()
	if err != nil || ttl <= 0 || ttl > 60 {
		t.Fatalf("blacklist key TTL %d (%v), want (0, 60]", ttl, err)
	}
	// Another user is unaffected.
	if r := f.do("POST", "/api/v1/flash-sales/s2/attempts", f.token("u-frank")); r.StatusCode() != 202 {
		t.Fatalf("other user: %d", r.StatusCode())
	}
	// Challenges are limited too.
	if r := f.do("POST", "/api/v1/flash-sales/s2/challenge", tok); r.StatusCode() != 403 {
		t.Fatalf("blacklisted user's challenge: %d", r.StatusCode())
	}
}

func TestPollReadsTheStore(t *testing.T) {
	f := newFixture(t, guard.Options{})
	now := f.clock()
	f.putSale(t, "s3", now.Add(-time.Minute), now.Add(time.Hour), false)
	ctx := context.Background()
	ticket := "0123456789abcdef0123456789abcdef"
	f.writer.Do(ctx, f.writer.B().Hset().Key(keyspace.SaleResult("s3", ticket)).FieldValue().
		FieldValue("status", "queued").FieldValue("user", "u-gina").Build())
	url := "/api/v1/flash-sales/s3/attempts/" + ticket
	if r := f.do("GET", url, f.token("u-gina")); r.StatusCode() != 200 || !strings.Contains(string(r.Body()), `"queued"`) {
		t.Fatalf("own queued ticket: %d %s", r.StatusCode(), r.Body())
	}
	for name, tok := range map[string]string{"other user": f.token("u-hank"), "no session": ""} {
		if r := f.do("GET", url, tok); r.StatusCode() != 404 && r.StatusCode() != 401 {
			t.Fatalf("%s: %d, want 404/401", name, r.StatusCode())
		}
	}
	if r := f.do("GET", "/api/v1/flash-sales/s3/attempts/nothex", f.token("u-gina")); r.StatusCode() != 404 {
		t.Fatalf("malformed ticket: %d", r.StatusCode())
	}
	exp := now.Add(5 * time.Minute).UnixMilli()
	f.writer.Do(ctx, f.writer.B().Hset().Key(keyspace.SaleResult("s3", ticket)).FieldValue().
		FieldValue("status", "won").FieldValue("token", "tok1").FieldValue("expires_at", fmt.Sprint(exp)).Build())
	deadline := time.Now().Add(time.Second)
	for {
		r := f.do("GET", url, f.token("u-gina"))
		var res struct {
			Status, Token string
			ExpiresAt     string `json:"expires_at"`
		}
		_ = json.Unmarshal(r.Body(), &res)
		if res.Status == "won" {
			if res.Token != "tok1" || res.ExpiresAt == "" {
				t.Fatalf("won ticket: %s", r.Body())
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("decision not visible: %s", r.Body())
		}
		time.Sleep(time.Millisecond)
	}
}

func TestSaleViews(t *testing.T) {
	f := newFixture(t, guard.Options{})
	now := f.clock()
	f.putSale(t, "a", now.Add(-time.Minute), now.Add(time.Hour), false)
	f.putSale(t, "b", now.Add(time.Minute), now.Add(time.Hour), false)
	var list struct {
		Items []map[string]any `json:"items"`
	}
	r := f.do("GET", "/api/v1/flash-sales", "")
	if err := json.Unmarshal(r.Body(), &list); err != nil || len(list.Items) != 2 {
		t.Fatalf("list %s: %v", r.Body(), err)
	}
	if list.Items[0]["id"] != "a" || list.Items[0]["state"] != "live" || list.Items[1]["state"] != "upcoming" {
		t.Fatalf("list items %v", list.Items)
	}
	for _, k := range []string{"id", "product_id", "price", "stock", "starts_at", "ends_at", "per_user_limit", "state"} {
		if _, ok := list.Items[0][k]; !ok {
			t.Fatalf("sale view lacks %q: %v", k, list.Items[0])
		}
	}
	if r := f.do("GET", "/api/v1/flash-sales/zzz", ""); r.StatusCode() != 404 {
		t.Fatalf("unknown sale: %d", r.StatusCode())
	}
	f.now.Add(int64(2 * time.Minute)) // b starts: state comes from the clock, not the cache
	var b map[string]any
	_ = json.Unmarshal(f.do("GET", "/api/v1/flash-sales/b", "").Body(), &b)
	if b["state"] != "live" {
		t.Fatalf("sale b after its start: %v", b)
	}
}

func TestSoldOutAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under -race")
	}
	f := newFixture(t, guard.Options{})
	now := f.clock()
	f.putSale(t, "so", now.Add(-time.Minute), now.Add(time.Hour), true)
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod("POST")
	ctx.Request.SetRequestURI("/api/v1/flash-sales/so/attempts")
	ctx.Request.Header.Set("Authorization", "Bearer "+f.token("u-ivy"))
	f.h(&ctx)
	if ctx.Response.StatusCode() != 410 {
		t.Fatalf("status %d", ctx.Response.StatusCode())
	}
	allocs := 1e9
	for range 3 { // best of three: background goroutines of rueidis count too
		allocs = min(allocs, testing.AllocsPerRun(300, func() {
			ctx.Response.Reset()
			f.h(&ctx)
		}))
	}
	if allocs > 0 {
		t.Fatalf("sold-out answer allocates %v times, want 0", allocs)
	}
}

func BenchmarkSoldOutWithKey(b *testing.B) { benchSoldOut(b, "bench-key") }

func BenchmarkSoldOut(b *testing.B) { benchSoldOut(b, "") }

func benchSoldOut(b *testing.B, key string) {
	f := newFixture(b, guard.Options{})
	now := f.clock()
	f.putSale(b, "so", now.Add(-time.Minute), now.Add(time.Hour), true)
	tok := f.token("u-bench")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetMethod("POST")
		ctx.Request.SetRequestURI("/api/v1/flash-sales/so/attempts")
		ctx.Request.Header.Set("Authorization", "Bearer "+tok)
		if key != "" {
			ctx.Request.Header.Set("Idempotency-Key", key)
		}
		for pb.Next() {
			ctx.Response.Reset()
			f.h(&ctx)
		}
	})
}

// TestUnknownSalesSpendTheAddressBudget: ids the edge does not hold cost a store read each, so
// they spend the client's address budget; a known sale does not.
func TestUnknownSalesSpendTheAddressBudget(t *testing.T) {
	f := newFixture(t, guard.Options{AddrRate: 0.001, AddrBurst: 5, UserRate: -1})
	now := f.clock()
	f.putSale(t, "known", now.Add(-time.Minute), now.Add(time.Hour), true)
	f.do("POST", "/api/v1/flash-sales/known/attempts", "") // now held in memory (one token spent)
	var got []int
	for i := range 6 {
		got = append(got, f.do("POST", fmt.Sprintf("/api/v1/flash-sales/guess%d/attempts", i), "").StatusCode())
	}
	if want := "[404 404 404 404 429 429]"; fmt.Sprint(got) != want {
		t.Fatalf("guessed sale ids: %v, want %s", got, want)
	}
	for range 20 {
		if r := f.do("POST", "/api/v1/flash-sales/known/attempts", ""); r.StatusCode() != 410 {
			t.Fatalf("known sold-out sale after the budget is spent: %d, want 410", r.StatusCode())
		}
	}
}

// TestChallengeMintedAtTheEdge: a live sale's challenge is minted by the edge with the sale's
// difficulty, for the session's user, verifiable by whoever holds the same keys (the order
// service), without any store command or call to the order service.
func TestChallengeMintedAtTheEdge(t *testing.T) {
	f := newFixture(t, guard.Options{AddrRate: -1, UserRate: -1})
	now := f.clock()
	f.putSale(t, "hard", now.Add(-time.Minute), now.Add(time.Hour), false)
	if err := f.writer.Do(context.Background(), f.writer.B().Hset().Key(keyspace.Sale("hard")).FieldValue().
		FieldValue("difficulty", "6").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	tok := f.token("u-alice")
	// The first challenge brings the sale and the user's ban record into the edge's memory.
	if r := f.do("POST", "/api/v1/flash-sales/hard/challenge", tok); r.StatusCode() != 200 {
		t.Fatalf("first challenge: %d", r.StatusCode())
	}
	before := f.storeReads(t)
	r := f.do("POST", "/api/v1/flash-sales/hard/challenge", tok)
	var got challenge.Body
	if err := json.Unmarshal(r.Body(), &got); err != nil || r.StatusCode() != 200 {
		t.Fatalf("challenge: %d %s (%v)", r.StatusCode(), r.Body(), err)
	}
	if got.Kind != challenge.Kind || got.Payload.Prefix != got.ChallengeID || got.Payload.Difficulty != 6 ||
		!got.ExpiresAt.Equal(now.Add(challenge.DefaultTTL)) || string(r.Header.Peek("Cache-Control")) != "no-store" {
		t.Fatalf("challenge = %s (Cache-Control %q)", r.Body(), r.Header.Peek("Cache-Control"))
	}
	if n := f.storeReads(t) - before; n != 0 || f.order.n.Load() != 0 {
		t.Fatalf("minting a challenge made %d store commands and %d forwards, want none", n, f.order.n.Load())
	}
	ch, err := f.keys.Verify(got.ChallengeID, "hard", "u-alice", now)
	if err != nil || ch.Difficulty != 6 {
		t.Fatalf("Verify(edge's challenge) = %+v, %v", ch, err)
	}
	for _, other := range []struct{ sale, user string }{{"hard", "u-bob"}, {"live", "u-alice"}} {
		if _, err := f.keys.Verify(got.ChallengeID, other.sale, other.user, now); !errors.Is(err, challenge.ErrBadMAC) {
			t.Errorf("Verify for sale %s, user %s: %v, want ErrBadMAC", other.sale, other.user, err)
		}
	}
}

// TestPassOnlyForWaitingRooms: the waiting room's check (Options.Pass) is asked about attempts on
// sales whose definition has a waiting room, and only those: the others are forwarded without
// it (it would read the sale again for nothing on every attempt).
func TestPassOnlyForWaitingRooms(t *testing.T) {
	f := newFixture(t, guard.Options{AddrRate: -1, UserRate: -1})
	asked := map[string]int{}
	f.gate.o.Pass = func(_ *fasthttp.RequestCtx, sale []byte, _ string) bool { asked[string(sale)]++; return true }
	now := f.clock()
	f.putSale(t, "plain", now.Add(-time.Minute), now.Add(time.Hour), false)
	f.putSale(t, "roomy", now.Add(-time.Minute), now.Add(time.Hour), false)
	room := waitroom.Config{OpensAt: now.Add(-2 * time.Minute), AdmitPerSecond: 5, PassSeconds: 60, HoldSeconds: 30}
	hset := f.writer.B().Hset().Key(keyspace.Sale("roomy")).FieldValue()
	for kv := room.HashFields(); len(kv) >= 2; kv = kv[2:] {
		hset = hset.FieldValue(kv[0], kv[1])
	}
	if err := f.writer.Do(context.Background(), hset.Build()).Error(); err != nil {
		t.Fatal(err)
	}
	tok := f.token("u-alice")
	for _, sale := range []string{"plain", "roomy", "plain", "roomy"} {
		if resp := f.do("POST", "/api/v1/flash-sales/"+sale+"/attempts", tok); resp.StatusCode() != 202 {
			t.Fatalf("attempt on %s: %d %s, want 202", sale, resp.StatusCode(), resp.Body())
		}
	}
	if asked["plain"] != 0 || asked["roomy"] != 2 {
		t.Errorf("Pass asked %v; want roomy twice and plain never", asked)
	}
}

// TestCheckoutGoesFirst: a flash-sale checkout is forwarded ahead of the attempts waiting for
// the order service (ForwardFirst); an attempt is not.
func TestCheckoutGoesFirst(t *testing.T) {
	f := newFixture(t, guard.Options{AddrRate: -1, UserRate: -1})
	now := f.clock()
	f.putSale(t, "fs-1", now.Add(-time.Minute), now.Add(time.Hour), false)
	tok := f.token("u1")
	f.do("POST", "/api/v1/flash-sales/fs-1/checkout", tok)
	if n, first := f.order.n.Load(), f.order.first.Load(); n != 1 || first != 1 {
		t.Fatalf("checkout: %d forwarded, %d first; want 1 and 1", n, first)
	}
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod("POST")
	ctx.Request.SetRequestURI("/api/v1/flash-sales/fs-1/attempts")
	ctx.Request.Header.Set("Authorization", "Bearer "+tok)
	ctx.Request.Header.Set("Idempotency-Key", "k-1")
	ctx.Request.SetBodyString(`{"challenge_id":"c","answer":"0"}`)
	f.h(&ctx)
	if first := f.order.first.Load(); first != 1 {
		t.Errorf("an attempt went first (%d first calls)", first)
	}
}
