package guard

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"flashedge/shared/kv/kvtest"
)

type clock struct{ ns atomic.Int64 }

func (c *clock) now() time.Time { return time.Unix(0, c.ns.Load()) }

func newGuard(t *testing.T, o Options) (*Guard, *clock) {
	t.Helper()
	srv := kvtest.Start(t)
	c := &clock{}
	c.ns.Store(time.Date(2026, 11, 11, 12, 0, 0, 0, time.UTC).UnixNano())
	o.Now = c.now
	g, err := New(srv.Client(t), slog.New(slog.NewTextHandler(io.Discard, nil)), o)
	if err != nil {
		t.Fatal(err)
	}
	return g, c
}

func refusedFrom(g *Guard, ip string, uid string) int {
	var ctx fasthttp.RequestCtx
	ctx.Init(&fasthttp.Request{}, &net.TCPAddr{IP: net.ParseIP(ip), Port: 1}, nil)
	if !g.Refused(&ctx, uid) {
		return 0
	}
	return ctx.Response.StatusCode()
}

// TestBansAreBoundedAndSwept: many misbehaving addresses fill the local ban list only up to
// its bound, and the bans (and the idle buckets) are forgotten once they expire.
func TestBansAreBoundedAndSwept(t *testing.T) {
	g, c := newGuard(t, Options{AddrRate: 0.001, AddrBurst: 1, AbuseBurst: 1, BlacklistTTL: time.Minute, MaxBans: 50, MaxKeys: 64 * 100})
	for i := range 200 {
		ip := fmt.Sprintf("10.0.%d.%d", i/256, i%256)
		for range 3 {
			refusedFrom(g, ip, "")
		}
	}
	if n := g.addrBans.len(); n != 50 {
		t.Fatalf("%d addresses banned locally, want the bound 50", n)
	}
	if code := refusedFrom(g, "10.0.0.0", ""); code != 403 {
		t.Fatalf("banned address: %d, want 403", code)
	}
	c.ns.Add(int64(2 * time.Hour)) // bans expired, buckets refilled
	g.Sweep()
	if n := g.Tracked(); n != 0 {
		t.Fatalf("%d keys still tracked after every ban expired and every bucket refilled, want 0", n)
	}
	if code := refusedFrom(g, "10.0.0.0", ""); code != 0 {
		t.Fatalf("address after its ban expired: %d, want allowed", code)
	}
}

func TestRefusals(t *testing.T) {
	g, _ := newGuard(t, Options{AddrRate: 0.001, AddrBurst: 100, UserRate: 0.001, UserBurst: 1, AbuseBurst: 2, BlacklistTTL: time.Minute})
	var got []int
	for range 6 {
		got = append(got, refusedFrom(g, "192.0.2.1", "u-a"))
	}
	// 1 in the user's burst, then 429 twice (abuse burst 2), the third refusal bans: 403.
	if want := "[0 429 429 429 403 403]"; fmt.Sprint(got) != want {
		t.Fatalf("answers %v, want %s", got, want)
	}
	// The user's ban is in the store: it holds from another address and survives local sweeps.
	if code := refusedFrom(g, "192.0.2.99", "u-a"); code != 403 {
		t.Fatalf("banned user from another address: %d, want 403", code)
	}
	if s := g.Stats(); s[RateUser] != 3 || s[Blacklisted] != 3 {
		t.Fatalf("stats %v", s)
	}
}

func shopFrom(g *Guard, ip, uid string) (int, string) {
	var ctx fasthttp.RequestCtx
	ctx.Init(&fasthttp.Request{}, &net.TCPAddr{IP: net.ParseIP(ip), Port: 1}, nil)
	if !g.Shop(&ctx, uid) {
		return 0, ""
	}
	return ctx.Response.StatusCode(), string(ctx.Response.Header.Peek("Retry-After"))
}

// TestShopBudget: the shopping budget refuses with 429 and Retry-After while it is empty and
// never bans (however many refusals), keys IPv6 by /64, keeps users and addresses apart, and
// its buckets are swept once refilled.
func TestShopBudget(t *testing.T) {
	g, c := newGuard(t, Options{ShopAddrRate: 1, ShopAddrBurst: 2, ShopUserRate: 1, ShopUserBurst: 2, AbuseBurst: 1})
	var user, addr []int
	for range 50 {
		code, _ := shopFrom(g, "192.0.2.1", "u-a")
		user = append(user, code)
		code, _ = shopFrom(g, "2001:db8:1:1::1", "")
		addr = append(addr, code)
	}
	for _, got := range [][]int{user, addr} {
		if got[0] != 0 || got[1] != 0 || got[2] != 429 || got[49] != 429 {
			t.Fatalf("answers %v: want 2 allowed then 429 (never 403)", got)
		}
	}
	if code, ra := shopFrom(g, "2001:db8:1:1::2", ""); code != 429 || ra != "1" {
		t.Fatalf("same /64: %d Retry-After %q, want 429 with Retry-After 1", code, ra)
	}
	if code, _ := shopFrom(g, "2001:db8:1:2::1", ""); code != 0 {
		t.Fatalf("another /64: %d, want allowed", code)
	}
	// The calls u-a's budget let through spent its address's budget too: another name logged
	// in from that address gets no budget of its own there; from another address it does.
	if code, _ := shopFrom(g, "192.0.2.1", "u-b"); code != 429 {
		t.Fatalf("another user from the same address: %d, want 429 (the address's budget is spent)", code)
	}
	if code, _ := shopFrom(g, "192.0.2.9", "u-b"); code != 0 {
		t.Fatalf("another user from another address: %d, want allowed", code)
	}
	// No ban anywhere: the flash-sale guard still lets the same user and address through.
	if code := refusedFrom(g, "2001:db8:1:1::1", "u-a"); code != 0 {
		t.Fatalf("flash-sale guard after shopping refusals: %d, want allowed", code)
	}
	if s := g.Stats(); s[ShopUser] != 48 || s[ShopAddr] != 50 || s[Blacklisted] != 0 {
		t.Fatalf("stats %v", s)
	}
	c.ns.Add(int64(time.Minute))
	if code, _ := shopFrom(g, "192.0.2.1", "u-a"); code != 0 {
		t.Fatalf("user after the budget refilled: %d, want allowed", code)
	}
	c.ns.Add(int64(time.Minute))
	g.Sweep()
	if n := g.Tracked(); n != 0 {
		t.Fatalf("%d keys tracked after every bucket refilled, want 0", n)
	}
}
