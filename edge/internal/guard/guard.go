// Package guard holds the edge's abuse guards: a request budget per client address and per
// user, a looser shopping budget (cart and order calls per user, cache misses of product reads
// per address) that only slows down, an abuse budget that every refusal spends from, and the blacklist an empty abuse budget
// leads to. Everything a request can make the edge do that reaches a backend or the store is
// charged here first (see flashgate and the edge's run for where each route is charged).
//
// Addresses come from a clientaddr.Resolver and are keyed by clientaddr's rule (IPv4 whole,
// IPv6 by /64). Every map keyed by client input is bounded and swept: the limiters' buckets
// (ratelimit.Options.MaxKeys, Sweep) and the local bans (Options.MaxBans, Sweep).
//
// A user is blacklisted in the store, for every edge, and read back through the client-side
// cache, so a ban at one edge reaches every edge by invalidation. An address is banned only at
// the edge that saw it misbehave: many shoppers can share one (carrier NAT, a balancer that does
// not keep client addresses), and a store-wide ban would shut them all out.
package guard

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
	"github.com/valyala/fasthttp"

	"flashedge/edge/internal/clientaddr"
	"flashedge/edge/internal/ratelimit"
	"flashedge/shared/httpapi"
	"flashedge/shared/keyspace"
)

// Options configure a Guard. Zero values take the defaults named on each field.
type Options struct {
	// AddrRate and AddrBurst are the requests per second (and burst) one client address may
	// make at this edge on the guarded routes. Zero means 50/s and a burst of twice the rate;
	// a negative rate disables the limit.
	AddrRate, AddrBurst float64
	// UserRate and UserBurst limit one user's guarded requests at this edge. Zero means 2/s and
	// a burst of three times the rate; a negative rate disables the limit.
	UserRate, UserBurst float64
	// ShopAddrRate and ShopAddrBurst are the shopping budget of one client address: product
	// reads and catalog pages that miss the edge's cache (they reach the store or the catalog),
	// and every cart and order call, whoever the user (logins are free: a budget per user alone
	// would give one address as many budgets as names it logs in with). Zero means 1,000/s and
	// a burst of twice the rate; negative disables it.
	ShopAddrRate, ShopAddrBurst float64
	// ShopUserRate and ShopUserBurst are the shopping budget of one user: every cart and order
	// call (each reaches a backend). Zero means 300/s and a burst of twice the rate; negative
	// disables it. The shopping budgets only refuse (429) while empty: they spend nothing from
	// the abuse budget and never lead to a ban.
	ShopUserRate, ShopUserBurst float64
	// AbuseBurst is how many rate-limit refusals a client (address or user) may collect,
	// refilled at one per 10 s, before it is blacklisted. Zero means 30.
	AbuseBurst float64
	// BlacklistTTL is how long a blacklisted client is refused. Zero means 10 minutes.
	BlacklistTTL time.Duration
	// MaxKeys bounds the buckets of each limiter (see ratelimit.Options.MaxKeys). Zero means
	// 1,000,000.
	MaxKeys int
	// MaxBans bounds the local bans of each kind (addresses, users); expired bans are swept
	// first, and a ban that still finds no room is not recorded locally (a user's ban is still
	// written to the store). Zero means 100,000.
	MaxBans int
	// Resolver finds a request's client address. Nil means the peer's address.
	Resolver *clientaddr.Resolver
	// ClientTTL caps how long a blacklist entry read through the client-side cache is kept
	// without an invalidation. Zero means 1h.
	ClientTTL time.Duration
	// StoreTimeout bounds a store call. Zero means 500ms.
	StoreTimeout time.Duration
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
}

// Reason is why a Guard refused a request.
type Reason uint8

// Reasons, as counted by Stats and named in metrics.
const (
	Blacklisted Reason = iota
	RateAddr
	RateUser
	ShopAddr
	ShopUser
	numReasons
)

// String returns the metrics label of r.
func (r Reason) String() string {
	switch r {
	case Blacklisted:
		return "blacklist"
	case RateAddr:
		return "rate_limit_ip"
	case RateUser:
		return "rate_limit_user"
	case ShopAddr:
		return "shop_limit_ip"
	case ShopUser:
		return "shop_limit_user"
	}
	return "unknown"
}

// Reasons lists every Reason, for metrics.
var Reasons = [...]Reason{Blacklisted, RateAddr, RateUser, ShopAddr, ShopUser}

// Guard applies the limits and bans. Safe for concurrent use.
type Guard struct {
	kv  rueidis.Client
	log *slog.Logger
	o   Options

	addrLimit, userLimit, abuse *ratelimit.Limiter
	shopAddr, shopUser          *ratelimit.Limiter // nil when off
	addrBans, userBans          bans

	refused [numReasons]atomic.Uint64
}

// New builds a Guard. kv is the store client (for the users' blacklist); log is required.
func New(kv rueidis.Client, log *slog.Logger, o Options) (*Guard, error) {
	if kv == nil || log == nil {
		return nil, errors.New("guard: store client and logger are required")
	}
	if o.AddrRate == 0 {
		o.AddrRate = 50
	}
	if o.AddrBurst == 0 {
		o.AddrBurst = 2 * o.AddrRate
	}
	if o.UserRate == 0 {
		o.UserRate = 2
	}
	if o.UserBurst == 0 {
		o.UserBurst = 3 * o.UserRate
	}
	if o.ShopAddrRate == 0 {
		o.ShopAddrRate = 1000
	}
	if o.ShopAddrBurst == 0 {
		o.ShopAddrBurst = 2 * o.ShopAddrRate
	}
	if o.ShopUserRate == 0 {
		o.ShopUserRate = 300
	}
	if o.ShopUserBurst == 0 {
		o.ShopUserBurst = 2 * o.ShopUserRate
	}
	if o.AbuseBurst == 0 {
		o.AbuseBurst = 30
	}
	if o.BlacklistTTL == 0 {
		o.BlacklistTTL = 10 * time.Minute
	}
	if o.MaxKeys == 0 {
		o.MaxKeys = 1_000_000
	}
	if o.MaxBans == 0 {
		o.MaxBans = 100_000
	}
	if o.ClientTTL == 0 {
		o.ClientTTL = time.Hour
	}
	if o.StoreTimeout == 0 {
		o.StoreTimeout = 500 * time.Millisecond
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	g := &Guard{kv: kv, log: log, o: o}
	g.addrBans.init(o.MaxBans)
	g.userBans.init(o.MaxBans)
	var err error
	if o.AddrRate > 0 {
		if g.addrLimit, err = ratelimit.New(ratelimit.Options{Rate: o.AddrRate, Burst: o.AddrBurst, MaxKeys: o.MaxKeys, Now: o.Now}); err != nil {
			return nil, err
		}
	}
	if o.UserRate > 0 {
		if g.userLimit, err = ratelimit.New(ratelimit.Options{Rate: o.UserRate, Burst: o.UserBurst, MaxKeys: o.MaxKeys, Now: o.Now}); err != nil {
			return nil, err
		}
	}
	if o.ShopAddrRate > 0 {
		if g.shopAddr, err = ratelimit.New(ratelimit.Options{Rate: o.ShopAddrRate, Burst: o.ShopAddrBurst, MaxKeys: o.MaxKeys, Now: o.Now}); err != nil {
			return nil, err
		}
	}
	if o.ShopUserRate > 0 {
		if g.shopUser, err = ratelimit.New(ratelimit.Options{Rate: o.ShopUserRate, Burst: o.ShopUserBurst, MaxKeys: o.MaxKeys, Now: o.Now}); err != nil {
			return nil, err
		}
	}
	if g.abuse, err = ratelimit.New(ratelimit.Options{Rate: 0.1, Burst: o.AbuseBurst, MaxKeys: o.MaxKeys, Now: o.Now}); err != nil {
		return nil, err
	}
	return g, nil
}

// Stats returns how many requests were refused, by reason.
func (g *Guard) Stats() map[Reason]uint64 {
	out := make(map[Reason]uint64, numReasons)
	for _, r := range Reasons {
		out[r] = g.refused[r].Load()
	}
	return out
}

// AppendAddrKey appends the limit key of ctx's client address to dst.
func (g *Guard) AppendAddrKey(dst []byte, ctx *fasthttp.RequestCtx) []byte {
	return g.o.Resolver.AppendKey(dst, ctx)
}

// Verdict is a Guard's decision on one request.
type Verdict struct {
	// Refused tells the request may not go on; Reason says why.
	Refused bool
	Reason  Reason
	// Wait is how long until the budget has room again (rate limits only).
	Wait time.Duration
	// Err is set when the store's blacklist could not be read (the request is refused).
	Err error
}

// Refused charges ctx to its client address and, when uid is not empty, to that (verified)
// user, checking their bans first. When the request may not go on it writes the refusal (403
// blacklisted, 429 rate_limited with Retry-After, or 503 when the store's blacklist cannot be
// read) and returns true. A request with no budget left does not reach the store.
func (g *Guard) Refused(ctx *fasthttp.RequestCtx, uid string) bool {
	v := g.Check(ctx, uid)
	if v.Refused {
		g.Write(ctx, v)
	}
	return v.Refused
}

// Check is Refused without writing the answer, for a caller that has a better one already
// (a replay refused by the guard keeps the sale's own answer). Its accounting is the same:
// the refusal is counted and spends from the abuse budget.
func (g *Guard) Check(ctx *fasthttp.RequestCtx, uid string) Verdict {
	var kb [clientaddr.KeyLen]byte
	addr := g.AppendAddrKey(kb[:0], ctx)
	now := g.o.Now().UnixNano()
	if g.addrBans.has(addr, now) || uid != "" && g.userBans.has([]byte(uid), now) {
		return g.refuse(Verdict{Reason: Blacklisted})
	}
	if g.addrLimit != nil {
		if ok, wait := g.addrLimit.Allow(addr); !ok {
			g.spendAbuse("ip", addr)
			return g.refuse(Verdict{Reason: RateAddr, Wait: wait})
		}
	}
	if uid == "" {
		return Verdict{}
	}
	black, err := g.userBlacklisted(uid)
	if err != nil {
		return Verdict{Refused: true, Err: err}
	}
	if black {
		return g.refuse(Verdict{Reason: Blacklisted})
	}
	if g.userLimit != nil {
		if ok, wait := g.userLimit.Allow([]byte(uid)); !ok {
			g.spendAbuse("user", []byte(uid))
			return g.refuse(Verdict{Reason: RateUser, Wait: wait})
		}
	}
	return Verdict{}
}

func (g *Guard) refuse(v Verdict) Verdict {
	g.refused[v.Reason].Add(1)
	v.Refused = true
	return v
}

// Write answers a refused request with v's refusal.
func (g *Guard) Write(ctx *fasthttp.RequestCtx, v Verdict) {
	switch {
	case v.Err != nil:
		g.log.Error("blacklist read", "err", v.Err)
		ctx.Response.Header.Set(fasthttp.HeaderRetryAfter, "2")
		httpapi.WriteError(ctx, fasthttp.StatusServiceUnavailable, "store_unavailable",
			"The flash sale is under maintenance, please come back in a moment. / Flash sale đang bảo trì, vui lòng quay lại sau ít phút.")
	case v.Reason == Blacklisted:
		httpapi.WriteError(ctx, fasthttp.StatusForbidden, "blacklisted", "too many refused requests from this client; try again later")
	default:
		httpapi.SetRetryAfter(ctx, v.Wait)
		httpapi.WriteError(ctx, fasthttp.StatusTooManyRequests, "rate_limited", "too many requests; slow down and retry after Retry-After seconds")
	}
}

// Limit wraps next so that every request is first charged to its client address.
func (g *Guard) Limit(next fasthttp.RequestHandler) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		if !g.Refused(ctx, "") {
			next(ctx)
		}
	}
}

// Shop charges a shopping request to its budgets before it goes on to a backend or the store:
// to the user uid when it is not empty (cart and order calls, after the session was verified),
// then to the client address (product reads and catalog pages that missed the cache, and the
// cart and order calls the user's budget let through: logins are free, so without the address
// budget one address would have a budget per name it logs in with; the user's budget comes
// first so one busy user behind a shared address spends the others' share only with the calls
// that go on). Over a budget it answers 429 rate_limited with Retry-After and returns true.
// Unlike Refused it reads no ban and spends nothing from the abuse budget: a busy shopper is
// slowed down, never banned.
func (g *Guard) Shop(ctx *fasthttp.RequestCtx, uid string) bool {
	var v Verdict
	ok := true
	if uid != "" && g.shopUser != nil {
		ok, v.Wait = g.shopUser.Allow([]byte(uid))
		v.Reason = ShopUser
	}
	if ok && g.shopAddr != nil {
		var kb [clientaddr.KeyLen]byte
		ok, v.Wait = g.shopAddr.Allow(g.AppendAddrKey(kb[:0], ctx))
		v.Reason = ShopAddr
	}
	if ok {
		return false
	}
	g.Write(ctx, g.refuse(v))
	return true
}

// spendAbuse takes one refusal from the subject's abuse budget; an empty budget bans it.
func (g *Guard) spendAbuse(kind string, subject []byte) {
	abuseKey := append([]byte(kind+":"), subject...)
	if ok, _ := g.abuse.Allow(abuseKey); ok {
		return
	}
	now := g.o.Now()
	until := now.Add(g.o.BlacklistTTL).UnixNano()
	if kind == "user" {
		if !g.userBans.add(subject, until, now.UnixNano()) {
			g.log.Warn("local ban list full; user ban kept in the store only")
		}
		g.storeBan(string(subject))
		return
	}
	if !g.addrBans.add(subject, until, now.UnixNano()) {
		g.log.Warn("local ban list full; address not banned", "key", subject)
		return
	}
	g.log.Warn("client address blacklisted at this edge", "key", subject, "ttl", g.o.BlacklistTTL.String())
}

func (g *Guard) storeBan(uid string) {
	ctx, cancel := context.WithTimeout(context.Background(), g.o.StoreTimeout)
	defer cancel()
	err := g.kv.Do(ctx, g.kv.B().Set().Key(keyspace.Blacklist("user", uid)).Value("1").Ex(g.o.BlacklistTTL).Build()).Error()
	if err != nil {
		g.log.Warn("blacklist write failed", "user", uid, "err", err)
		return
	}
	g.log.Warn("user blacklisted", "user", uid, "ttl", g.o.BlacklistTTL.String())
}

// userBlacklisted reads the user's blacklist key through the client-side cache: a hit costs no
// round trip, and a ban written by any edge reaches this one by invalidation.
func (g *Guard) userBlacklisted(uid string) (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), g.o.StoreTimeout)
	defer cancel()
	_, err := g.kv.DoCache(ctx, g.kv.B().Get().Key(keyspace.Blacklist("user", uid)).Cache(), g.o.ClientTTL).ToString()
	switch {
	case err == nil:
		return true, nil
	case rueidis.IsRedisNil(err):
		return false, nil
	default:
		return false, err
	}
}

// Sweep forgets idle buckets and expired bans; the edge calls it every few seconds.
func (g *Guard) Sweep() {
	for _, l := range []*ratelimit.Limiter{g.addrLimit, g.userLimit, g.shopAddr, g.shopUser, g.abuse} {
		if l != nil {
			l.Sweep()
		}
	}
	now := g.o.Now().UnixNano()
	g.addrBans.sweep(now)
	g.userBans.sweep(now)
}

// Tracked returns how many keys the guard holds in memory (buckets and bans), for tests and
// metrics of the bounds.
func (g *Guard) Tracked() int {
	n := g.abuse.Len() + g.addrBans.len() + g.userBans.len()
	for _, l := range []*ratelimit.Limiter{g.addrLimit, g.userLimit, g.shopAddr, g.shopUser} {
		if l != nil {
			n += l.Len()
		}
	}
	return n
}

// bans maps a subject to the unix nanos its ban ends at; bounded by max.
type bans struct {
	mu  sync.RWMutex
	m   map[string]int64
	max int
}

func (b *bans) init(max int) { b.m, b.max = make(map[string]int64), max }

func (b *bans) has(k []byte, now int64) bool {
	b.mu.RLock()
	until, ok := b.m[string(k)]
	b.mu.RUnlock()
	return ok && now < until
}

func (b *bans) add(k []byte, until, now int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.m[string(k)]; !ok && len(b.m) >= b.max {
		b.sweepLocked(now)
		if len(b.m) >= b.max {
			return false
		}
	}
	b.m[string(k)] = until
	return true
}

func (b *bans) sweep(now int64) {
	b.mu.Lock()
	b.sweepLocked(now)
	b.mu.Unlock()
}

func (b *bans) sweepLocked(now int64) {
	for k, until := range b.m {
		if now >= until {
			delete(b.m, k)
		}
	}
}

func (b *bans) len() int {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return len(b.m)
}
