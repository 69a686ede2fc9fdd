package flashgate

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"flashedge/edge/internal/guard"
	"flashedge/shared/keyspace"
)

// storeReads counts, from the store's own statistics, the commands the edge's paths use.
func (f *fixture) storeReads(t *testing.T) int64 {
	var n int64
	for _, c := range []string{"get", "hget", "hgetall", "zrange", "set"} {
		n += f.srv.CommandCalls(t, f.writer, c)
	}
	return n
}

// doFrom sends one request from addr, with an optional token and Idempotency-Key.
func (f *fixture) doFrom(addr net.IP, method, uri, token, key string) int {
	var ctx fasthttp.RequestCtx
	ctx.Init(&fasthttp.Request{}, &net.TCPAddr{IP: addr, Port: 1}, nil)
	ctx.Request.Header.SetMethod(method)
	ctx.Request.SetRequestURI(uri)
	if token != "" {
		ctx.Request.Header.Set("Authorization", "Bearer "+token)
	}
	if key != "" {
		ctx.Request.Header.Set("Idempotency-Key", key)
	}
	ctx.Request.SetBodyString(`{"challenge_id":"c","answer":"0"}`)
	f.h(&ctx)
	return ctx.Response.StatusCode()
}

// TestReplaysAreLimited: once the sale is sold out, retries whose Idempotency-Key has a record
// are forwarded (the client gets its ticket back), but only within the limits: a user over its
// budget, then blacklisted, sends 1,000 replays and the order service sees only the budget;
// the rest keep the sale's own answer (sold out).
func TestReplaysAreLimited(t *testing.T) {
	f := newFixture(t, guard.Options{AddrRate: -1, UserRate: 1, UserBurst: 3, AbuseBurst: 5, BlacklistTTL: time.Minute})
	now := f.clock()
	f.putSale(t, "r1", now.Add(-time.Minute), now.Add(time.Hour), true)
	f.writer.Do(t.Context(), f.writer.B().Hset().Key(keyspace.SaleIdempotency("r1", "u-mallory", "k1")).
		FieldValue().FieldValue("outcome", "queued").Build())
	tok := f.token("u-mallory")
	codes := map[int]int{}
	for range 1000 {
		codes[f.doFrom(net.IPv4(127, 0, 0, 9), "POST", "/api/v1/flash-sales/r1/attempts", tok, "k1")]++
	}
	if got := f.order.n.Load(); got != 3 {
		t.Fatalf("replays forwarded %d times (answers %v), want 3: the user's burst, nothing after", got, codes)
	}
	if codes[202] != 3 || codes[410] != 997 {
		t.Fatalf("answers %v, want 3x202 then the sale's own 410", codes)
	}
	if s := f.gate.Stats(); s.Rejected["rate_limit_user"] != 6 || s.Rejected["blacklist"] != 991 {
		t.Fatalf("refusals %v, want 6 over the user's budget (abuse burst 5, then the ban) and 991 blacklisted", s.Rejected)
	}
	// Someone else's retry of a key without a record still gets the sale's own answer.
	if c := f.doFrom(net.IPv4(127, 0, 0, 10), "POST", "/api/v1/flash-sales/r1/attempts", f.token("u-honest"), "k2"); c != 410 {
		t.Fatalf("honest retry after sell-out: %d, want 410", c)
	}
}

// TestNothingOverTheLimitReachesTheStore: unknown sale ids (attempts, challenges, sale views),
// ticket polls and the sale list all spend the address budget before any store read; once it
// is spent, the store sees nothing more from that address, while a sale already held is still
// answered from memory.
func TestNothingOverTheLimitReachesTheStore(t *testing.T) {
	const burst = 4
	f := newFixture(t, guard.Options{AddrRate: 0.001, AddrBurst: burst, UserRate: -1, AbuseBurst: 1000})
	now := f.clock()
	f.putSale(t, "held", now.Add(-time.Minute), now.Add(time.Hour), true)
	tok := f.token("u-probe")
	if c := f.doFrom(net.IPv4(10, 0, 0, 1), "GET", "/api/v1/flash-sales/held", "", ""); c != 200 {
		t.Fatalf("warm-up view: %d", c) // held from now on
	}
	paths := []struct {
		name, method, uri, token string
	}{
		{"sale view, unknown id", "GET", "/api/v1/flash-sales/guess%d", ""},
		{"attempt, unknown id", "POST", "/api/v1/flash-sales/guess%d/attempts", tok},
		{"challenge, unknown id", "POST", "/api/v1/flash-sales/guess%d/challenge", tok},
		{"ticket poll, made-up ticket", "GET", "/api/v1/flash-sales/held/attempts/%032x", tok},
		{"sale list", "GET", "/api/v1/flash-sales?n=%d", ""},
	}
	for i, p := range paths {
		t.Run(p.name, func(t *testing.T) {
			addr := net.IPv4(10, 0, 1, byte(i))
			for j := range burst {
				f.doFrom(addr, p.method, fmt.Sprintf(p.uri, 10000*i+j), p.token, "")
			}
			before, forwarded := f.storeReads(t), f.order.n.Load()
			for j := range 200 {
				if c := f.doFrom(addr, p.method, fmt.Sprintf(p.uri, 10000*i+1000+j), p.token, ""); c != 429 {
					t.Fatalf("request %d over the budget: %d, want 429", j, c)
				}
			}
			if got := f.storeReads(t) - before; got != 0 {
				t.Fatalf("200 requests over the limit made %d store commands, want 0", got)
			}
			if f.order.n.Load() != forwarded {
				t.Fatal("a request over the limit reached the order service")
			}
			if c := f.doFrom(addr, "POST", "/api/v1/flash-sales/held/attempts", tok, ""); c != 410 {
				t.Fatalf("held sale after the budget is spent: %d, want 410 from memory", c)
			}
		})
	}
}

// TestIPv6ByPrefix: addresses in one /64 share a budget; another /64 has its own.
func TestIPv6ByPrefix(t *testing.T) {
	f := newFixture(t, guard.Options{AddrRate: 0.001, AddrBurst: 2, UserRate: -1})
	var got []int
	for i := range 4 {
		got = append(got, f.doFrom(net.ParseIP(fmt.Sprintf("2001:db8:1:2::%x", i+1)), "GET", fmt.Sprintf("/api/v1/flash-sales/x%d", i), "", ""))
	}
	if fmt.Sprint(got) != "[404 404 429 429]" {
		t.Fatalf("one /64: %v, want [404 404 429 429]", got)
	}
	if c := f.doFrom(net.ParseIP("2001:db8:1:3::1"), "GET", "/api/v1/flash-sales/y", "", ""); c != 404 {
		t.Fatalf("another /64: %d, want 404", c)
	}
}
