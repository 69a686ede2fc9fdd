// Package flashgate is the edge's side of a flash sale: it answers sale state and the sold-out
// verdict from memory, refuses attempts outside the sale window, from blacklisted clients or
// over the rate limits without any backend call, reads attempt results for polling straight from
// the store's client-side cache, and forwards only the attempts that can still succeed to the
// order service.
//
// The cached sale state is kept coherent by the store's invalidation pushes (Invalidate, wired to
// rueidis' OnInvalidations). A push may arrive after a reply, so the cache only ever guides a
// refusal (sold out); the order service and the worker's Lua decrement decide every sale.
//
// Order of the checks on an attempt, cheapest refusal first: sale known, window, sold out,
// session, blacklist, per-IP and per-user rate limits, then forward. The sale's own answers come
// first because they cost nothing and protect nothing: no backend is touched by them (which is
// what the session, blacklist and rate limits guard) and they tell no more than the public sale
// view.
package flashgate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
	"github.com/valyala/fasthttp"

	"flashedge/edge/internal/ratelimit"
	"flashedge/edge/internal/session"
	"flashedge/shared/httpapi"
	"flashedge/shared/keyspace"
	"flashedge/shared/metrics"
	"flashedge/shared/product"
)

// Forwarder sends a request on to the order service (an *upstream.Pool).
type Forwarder interface {
	Forward(ctx *fasthttp.RequestCtx)
}

// Sessions verifies a request's session and returns its user id.
type Sessions interface {
	FromRequest(ctx *fasthttp.RequestCtx) (string, error)
}

// Options configure a Gate. Zero values take the defaults named on each field.
type Options struct {
	// IPRate and IPBurst limit challenges and attempts per client IP at this edge (requests/s).
	// Zero means 50/s and a burst of twice the rate; a negative rate disables the limit.
	IPRate, IPBurst float64
	// UserRate and UserBurst limit challenges and attempts per user at this edge.
	// Zero means 2/s and a burst of three times the rate; a negative rate disables the limit.
	UserRate, UserBurst float64
	// AbuseBurst is how many rate-limit refusals a client may collect (refilled at one per
	// 10 s) before it is blacklisted. Zero means 30.
	AbuseBurst float64
	// BlacklistTTL is how long a blacklisted client is refused. Zero means 10 minutes.
	BlacklistTTL time.Duration
	// ClientTTL caps how long the store's values stay in the client-side cache without an
	// invalidation. Zero means 1h.
	ClientTTL time.Duration
	// StoreTimeout bounds a store read. Zero means 500ms.
	StoreTimeout time.Duration
	// MaxSales bounds the sales kept in memory (unknown ids included). Zero means 10,000.
	MaxSales int
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
}

// Reasons an attempt is refused at the edge (Stats and metrics labels).
const (
	ReasonSoldOut    = "sold_out"
	ReasonNotStarted = "not_started"
	ReasonEnded      = "ended"
	ReasonBlacklist  = "blacklist"
	ReasonRateIP     = "rate_limit_ip"
	ReasonRateUser   = "rate_limit_user"
	ReasonUnknown    = "unknown_sale"
)

var reasons = []string{ReasonSoldOut, ReasonNotStarted, ReasonEnded, ReasonBlacklist, ReasonRateIP, ReasonRateUser, ReasonUnknown}

// Gate holds the edge's view of the sales. It is safe for concurrent use.
type Gate struct {
	kv       rueidis.Client
	order    Forwarder
	sessions Sessions
	log      *slog.Logger
	o        Options

	mu    sync.RWMutex
	sales map[string]*sale
	gen   atomic.Uint64 // moves on with every invalidation of any sale

	ipLimit, userLimit, abuse *ratelimit.Limiter

	// noReplay remembers (sale, Idempotency-Key, token) triples the store has no idempotency
	// record for, so a refused retry costs no store read; idemGen moves on with every record
	// written (see Invalidate).
	idemMu   sync.RWMutex
	noReplay map[string]struct{}
	idemGen  atomic.Uint64

	// localBlack holds subjects blacklisted at this edge: "ip:<address bytes>" or "user:<id>"
	// -> unix nanos until which they are refused.
	localBlack sync.Map

	rejected  [7]atomic.Uint64 // by reasons index
	forwarded atomic.Uint64
}

// sale is one sale as the edge sees it; immutable once built.
type sale struct {
	exists         bool
	id             string
	startMs, endMs int64
	soldOut        bool
	// head and tail of the public JSON around the state, so rendering is two appends.
	head, tail []byte
}

// States of a sale.
const (
	StateUpcoming = "upcoming"
	StateLive     = "live"
	StateSoldOut  = "sold_out"
	StateEnded    = "ended"
)

func (s *sale) state(nowMs int64) string {
	switch {
	case nowMs >= s.endMs:
		return StateEnded
	case nowMs < s.startMs:
		return StateUpcoming
	case s.soldOut:
		return StateSoldOut
	default:
		return StateLive
	}
}

// New builds a Gate. order and sessions are required.
func New(kv rueidis.Client, order Forwarder, sessions Sessions, log *slog.Logger, o Options) (*Gate, error) {
	if kv == nil || order == nil || sessions == nil || log == nil {
		return nil, errors.New("flashgate: store client, order forwarder, sessions and logger are required")
	}
	if o.IPRate == 0 {
		o.IPRate = 50
	}
	if o.IPBurst == 0 {
		o.IPBurst = 2 * o.IPRate
	}
	if o.UserRate == 0 {
		o.UserRate = 2
	}
	if o.UserBurst == 0 {
		o.UserBurst = 3 * o.UserRate
	}
	if o.AbuseBurst == 0 {
		o.AbuseBurst = 30
	}
	if o.BlacklistTTL == 0 {
		o.BlacklistTTL = 10 * time.Minute
	}
	if o.ClientTTL == 0 {
		o.ClientTTL = time.Hour
	}
	if o.StoreTimeout == 0 {
		o.StoreTimeout = 500 * time.Millisecond
	}
	if o.MaxSales == 0 {
		o.MaxSales = 10_000
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	g := &Gate{kv: kv, order: order, sessions: sessions, log: log, o: o, sales: map[string]*sale{}, noReplay: map[string]struct{}{}}
	var err error
	if o.IPRate > 0 {
		if g.ipLimit, err = ratelimit.New(ratelimit.Options{Rate: o.IPRate, Burst: o.IPBurst, Now: o.Now}); err != nil {
			return nil, err
		}
	}
	if o.UserRate > 0 {
		if g.userLimit, err = ratelimit.New(ratelimit.Options{Rate: o.UserRate, Burst: o.UserBurst, Now: o.Now}); err != nil {
			return nil, err
		}
	}
	if g.abuse, err = ratelimit.New(ratelimit.Options{Rate: 0.1, Burst: o.AbuseBurst, Now: o.Now}); err != nil {
		return nil, err
	}
	return g, nil
}

// Stats are the gate's counters.
type Stats struct {
	Rejected  map[string]uint64
	Forwarded uint64
}

// Stats returns the counters so far.
func (g *Gate) Stats() Stats {
	s := Stats{Rejected: make(map[string]uint64, len(reasons)), Forwarded: g.forwarded.Load()}
	for i, r := range reasons {
		s.Rejected[r] = g.rejected[i].Load()
	}
	return s
}

func (g *Gate) reject(reason string) {
	for i, r := range reasons {
		if r == reason {
			g.rejected[i].Add(1)
			return
		}
	}
}

// Sweep forgets idle rate-limit buckets; the edge calls it every few seconds.
func (g *Gate) Sweep() {
	for _, l := range []*ratelimit.Limiter{g.ipLimit, g.userLimit, g.abuse} {
		if l != nil {
			l.Sweep()
		}
	}
}

// Invalidate drops cached sales whose keys changed; nil (a lost connection) drops all. It runs on
// rueidis' reader goroutine: fast, no store calls.
func (g *Gate) Invalidate(msgs []rueidis.RedisMessage) {
	if msgs == nil {
		g.mu.Lock()
		g.gen.Add(1)
		clear(g.sales)
		g.mu.Unlock()
		g.idemMu.Lock()
		g.idemGen.Add(1)
		clear(g.noReplay)
		g.idemMu.Unlock()
		return
	}
	for _, m := range msgs {
		key, err := m.ToString()
		if err != nil {
			continue
		}
		if id, ok := saleIDOfKey(key); ok {
			g.mu.Lock()
			g.gen.Add(1)
			delete(g.sales, id)
			g.mu.Unlock()
		} else if strings.HasPrefix(key, "fe:sale:{s:") && strings.Contains(key, "}:idem:") {
			// An idempotency record was written: forget every "no record" (they are keyed by
			// token, not user), which only happens while attempts are admitted.
			g.idemMu.Lock()
			g.idemGen.Add(1)
			clear(g.noReplay)
			g.idemMu.Unlock()
		}
	}
}

// saleIDOfKey extracts the id from keyspace.Sale(id) and keyspace.SoldOut(id).
func saleIDOfKey(key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, "fe:sale:{s:")
	if !ok {
		return "", false
	}
	i := strings.IndexByte(rest, '}')
	if i <= 0 || (rest[i+1:] != "" && rest[i+1:] != ":soldout") {
		return "", false
	}
	return rest[:i], true
}

// held returns the sale (known, or known to be unknown) when it is in memory, else nil.
func (g *Gate) held(id []byte) *sale {
	g.mu.RLock()
	s := g.sales[string(id)]
	g.mu.RUnlock()
	return s
}

// lookup returns the sale with id (exists false when there is none). id is not retained.
func (g *Gate) lookup(id []byte) (*sale, error) {
	g.mu.RLock()
	s := g.sales[string(id)]
	g.mu.RUnlock()
	if s != nil {
		return s, nil
	}
	gen := g.gen.Load()
	s, err := g.fetch(string(id))
	if err != nil {
		return nil, err
	}
	// The generation is checked under the lock Invalidate deletes under: an invalidation that
	// landed while this fill read the store either moved gen already (the fill is dropped) or
	// comes after the insert (and deletes it).
	g.mu.Lock()
	if g.gen.Load() == gen && (len(g.sales) < g.o.MaxSales || s.exists) {
		g.sales[s.id] = s
	}
	g.mu.Unlock()
	return s, nil
}

func (g *Gate) fetch(id string) (*sale, error) {
	ctx, cancel := context.WithTimeout(context.Background(), g.o.StoreTimeout)
	defer cancel()
	res := g.kv.DoMultiCache(ctx,
		rueidis.CT(g.kv.B().Hgetall().Key(keyspace.Sale(id)).Cache(), g.o.ClientTTL),
		rueidis.CT(g.kv.B().Get().Key(keyspace.SoldOut(id)).Cache(), g.o.ClientTTL),
	)
	m, err := res[0].AsStrMap()
	if err != nil {
		return nil, fmt.Errorf("flashgate: read sale %s: %w", id, err)
	}
	_, ferr := res[1].ToString()
	if ferr != nil && !rueidis.IsRedisNil(ferr) {
		return nil, fmt.Errorf("flashgate: read sold-out flag of %s: %w", id, ferr)
	}
	s := &sale{id: id, soldOut: ferr == nil}
	if m["id"] == "" {
		return s, nil
	}
	num := func(k string) int64 { n, _ := strconv.ParseInt(m[k], 10, 64); return n }
	s.exists = true
	s.startMs, s.endMs = num("starts_at_ms"), num("ends_at_ms")
	// The public shape is the order service's: the same fields, in the same order.
	var head bytes.Buffer
	enc := json.NewEncoder(&head)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(struct {
		ID           string `json:"id"`
		ProductID    string `json:"product_id"`
		ProductName  string `json:"product_name"`
		Price        int64  `json:"price"`
		Stock        int64  `json:"stock"`
		StartsAt     string `json:"starts_at"`
		EndsAt       string `json:"ends_at"`
		PerUserLimit int64  `json:"per_user_limit"`
	}{m["id"], m["product_id"], m["product_name"], num("price"), num("stock"),
		time.UnixMilli(s.startMs).UTC().Format(time.RFC3339), time.UnixMilli(s.endMs).UTC().Format(time.RFC3339), num("per_user_limit")})
	b := bytes.TrimRight(head.Bytes(), "\n")
	s.head = append(append([]byte{}, b[:len(b)-1]...), `,"state":"`...)
	s.tail = []byte(fmt.Sprintf(`","shards":%d,"difficulty":%d}`, num("shards"), num("difficulty")))
	return s, nil
}

func (s *sale) appendJSON(dst []byte, nowMs int64) []byte {
	dst = append(dst, s.head...)
	dst = append(dst, s.state(nowMs)...)
	return append(dst, s.tail...)
}

var (
	soldOutBody    = []byte(`{"status":"sold_out","error":{"code":"sold_out","message":"the flash sale is sold out"}}`)
	notStartedBody = []byte(`{"error":{"code":"not_started","message":"the flash sale has not started yet"}}`)
	endedBody      = []byte(`{"status":"ended","error":{"code":"ended","message":"the flash sale has ended"}}`)
	unknownBody    = []byte(`{"error":{"code":"not_found","message":"no flash sale has this id"}}`)
	unauthBody     = []byte(`{"error":{"code":"unauthorized","message":"log in first: a valid, unexpired session token is required"}}`)
)

var (
	salesPrefix    = []byte("/api/v1/flash-sales/")
	attemptsSuffix = []byte("/attempts")
)

// Fast handles POST /api/v1/flash-sales/{id}/attempts before the router (it is the path a rush
// hammers) and reports whether it did. Everything else is left to the routes of Register.
func (g *Gate) Fast(ctx *fasthttp.RequestCtx) bool {
	if !ctx.IsPost() {
		return false
	}
	rest, ok := bytes.CutPrefix(ctx.Path(), salesPrefix)
	if !ok {
		return false
	}
	id, ok := bytes.CutSuffix(rest, attemptsSuffix)
	if !ok || bytes.IndexByte(id, '/') >= 0 {
		return false
	}
	metrics.SetRoute(ctx, &attemptsRoute)
	g.attempt(ctx, id)
	return true
}

var attemptsRoute = "/api/v1/flash-sales/{id}/attempts"

func (g *Gate) attempt(ctx *fasthttp.RequestCtx, id []byte) {
	// The sale's own refusals come first: they are the cheapest (no MAC to verify), reveal
	// nothing the public sale view does not, and are what a rush hammers once sold out.
	if !g.open(ctx, id) {
		g.replay(ctx, id)
		return
	}
	ctx.Request.Header.Del(httpapi.HeaderUserID)
	uid, err := g.sessions.FromRequest(ctx)
	if err != nil {
		httpapi.WriteRawJSON(ctx, fasthttp.StatusUnauthorized, unauthBody)
		return
	}
	if g.refused(ctx, uid) {
		return
	}
	ctx.Request.Header.Set(httpapi.HeaderUserID, uid)
	g.forwarded.Add(1)
	g.order.Forward(ctx)
}

// open answers the request itself, and returns false, unless sale id is known, inside its
// window and not sold out: the refusals that need no backend, cheapest first.
func (g *Gate) open(ctx *fasthttp.RequestCtx, id []byte) bool {
	if !product.ValidID(id) {
		g.reject(ReasonUnknown)
		httpapi.WriteRawJSON(ctx, fasthttp.StatusNotFound, unknownBody)
		return false
	}
	// A sale this edge does not hold costs a store read: unknown ids (guessed or random) spend
	// the client's address budget first, so they cannot be used to hammer the store.
	s := g.held(id)
	if s == nil {
		if g.ipLimit != nil {
			if ok, wait := g.ipLimit.Allow(clientIP(ctx)); !ok {
				g.reject(ReasonRateIP)
				ctx.Response.Header.Set("Retry-After", strconv.Itoa(max(1, int((wait+time.Second-1)/time.Second))))
				httpapi.WriteError(ctx, fasthttp.StatusTooManyRequests, "rate_limited", "too many requests; slow down and retry after Retry-After seconds")
				return false
			}
		}
		var err error
		if s, err = g.lookup(id); err != nil {
			g.storeDown(ctx, err)
			return false
		}
	}
	now := g.o.Now().UnixMilli()
	switch {
	case !s.exists:
		g.reject(ReasonUnknown)
		httpapi.WriteRawJSON(ctx, fasthttp.StatusNotFound, unknownBody)
		return false
	case now < s.startMs:
		g.reject(ReasonNotStarted)
		ctx.Response.Header.Set("Retry-After", strconv.FormatInt((s.startMs-now+999)/1000, 10))
		httpapi.WriteRawJSON(ctx, statusTooEarly, notStartedBody)
		return false
	case now >= s.endMs:
		g.reject(ReasonEnded)
		httpapi.WriteRawJSON(ctx, fasthttp.StatusGone, endedBody)
		return false
	case s.soldOut:
		g.reject(ReasonSoldOut)
		httpapi.WriteRawJSON(ctx, fasthttp.StatusGone, soldOutBody)
		return false
	}
	return true
}

// replay forwards, instead of the edge's refusal already written to ctx, a retried attempt whose
// Idempotency-Key the order service has answered before: a client whose 202 was lost, and whose
// own win then sold the sale out, must get its ticket back, not "sold out". It reports whether
// it forwarded. Only a sold-out or ended refusal is replayed, and only for a verified session
// whose key has a record (read through the client-side cache).
func (g *Gate) replay(ctx *fasthttp.RequestCtx, id []byte) bool {
	if ctx.Response.StatusCode() != fasthttp.StatusGone {
		return false
	}
	key := ctx.Request.Header.Peek(httpapi.HeaderIdempotencyKey)
	if len(key) == 0 || len(key) > 128 {
		return false
	}
	// A (sale, key, token) found without a record before is answered from memory, without
	// verifying the token again or asking the store: a rush retrying after the sell-out costs
	// the edge almost nothing. Skipping the verification is safe because only a record the
	// store has, read for a verified user, ever forwards.
	var buf [512]byte
	nk := append(append(append(append(append(buf[:0], id...), 0), key...), 0), session.Token(ctx)...)
	if len(nk) < len(buf) && g.knownNoReplay(nk) {
		return false
	}
	ctx.Request.Header.Del(httpapi.HeaderUserID)
	uid, err := g.sessions.FromRequest(ctx)
	if err != nil {
		return false
	}
	gen := g.idemGen.Load()
	sctx, cancel := context.WithTimeout(context.Background(), g.o.StoreTimeout)
	defer cancel()
	// The record is the order service's hash with the first answer's outcome, read through the
	// client-side cache so that its creation reaches this edge as an invalidation.
	_, err = g.kv.DoCache(sctx, g.kv.B().Hget().Key(keyspace.SaleIdempotency(string(id), uid, string(key))).
		Field("outcome").Cache(), g.o.ClientTTL).ToString()
	if err != nil {
		if rueidis.IsRedisNil(err) && len(nk) < len(buf) {
			g.rememberNoReplay(nk, gen)
		}
		return false
	}
	ctx.Response.Reset()
	ctx.Request.Header.Set(httpapi.HeaderUserID, uid)
	g.forwarded.Add(1)
	g.order.Forward(ctx)
	return true
}

// maxNoReplay bounds the remembered (sale, key, token) triples without a record.
const maxNoReplay = 100_000

func (g *Gate) knownNoReplay(k []byte) bool {
	g.idemMu.RLock()
	_, ok := g.noReplay[string(k)]
	g.idemMu.RUnlock()
	return ok
}

// rememberNoReplay keeps k unless an idempotency record was written since gen was read (it may
// be this one's), checked under the lock Invalidate clears under.
func (g *Gate) rememberNoReplay(k []byte, gen uint64) {
	g.idemMu.Lock()
	defer g.idemMu.Unlock()
	if g.idemGen.Load() != gen {
		return
	}
	if len(g.noReplay) >= maxNoReplay {
		clear(g.noReplay)
	}
	g.noReplay[string(k)] = struct{}{}
}

// refused applies the blacklist and the rate limits, answering the refusal itself.
func (g *Gate) refused(ctx *fasthttp.RequestCtx, uid string) bool {
	ip := clientIP(ctx)
	black, err := g.blacklisted(ip, uid)
	if err != nil {
		g.storeDown(ctx, err)
		return true
	}
	if black {
		g.reject(ReasonBlacklist)
		httpapi.WriteError(ctx, fasthttp.StatusForbidden, "blacklisted", "too many refused requests from this client; try again later")
		return true
	}
	if g.ipLimit != nil {
		if ok, wait := g.ipLimit.Allow(ip); !ok {
			g.limited(ctx, ReasonRateIP, "ip", ip, wait)
			return true
		}
	}
	if g.userLimit != nil {
		if ok, wait := g.userLimit.Allow([]byte(uid)); !ok {
			g.limited(ctx, ReasonRateUser, "user", []byte(uid), wait)
			return true
		}
	}
	return false
}

func (g *Gate) limited(ctx *fasthttp.RequestCtx, reason, kind string, subject []byte, wait time.Duration) {
	g.reject(reason)
	// Every refusal spends from the client's abuse budget; an empty budget blacklists it.
	// A user is blacklisted in the store, for every edge. An address only at this edge: many
	// shoppers can share one (carrier NAT, a balancer that does not keep client addresses), and
	// a store-wide ban would shut them all out.
	abuseKey := append([]byte(kind+":"), subject...)
	if ok, _ := g.abuse.Allow(abuseKey); !ok {
		g.blacklistLocal(string(abuseKey))
		if kind == "user" {
			g.blacklist(kind, string(subject))
		}
	}
	ctx.Response.Header.Set("Retry-After", strconv.Itoa(max(1, int((wait+time.Second-1)/time.Second))))
	httpapi.WriteError(ctx, fasthttp.StatusTooManyRequests, "rate_limited", "too many requests; slow down and retry after Retry-After seconds")
}

// blacklistLocal refuses a subject ("ip:<bytes>" or "user:<id>") at this edge until the
// blacklist TTL passes; it takes effect at once, before any invalidation could.
func (g *Gate) blacklistLocal(subject string) {
	g.localBlack.Store(subject, g.o.Now().Add(g.o.BlacklistTTL).UnixNano())
}

func (g *Gate) blacklistedLocally(kind string, subject []byte) bool {
	v, ok := g.localBlack.Load(kind + ":" + string(subject))
	if !ok {
		return false
	}
	if g.o.Now().UnixNano() < v.(int64) {
		return true
	}
	g.localBlack.Delete(kind + ":" + string(subject))
	return false
}

func (g *Gate) blacklist(kind, subject string) {
	ctx, cancel := context.WithTimeout(context.Background(), g.o.StoreTimeout)
	defer cancel()
	err := g.kv.Do(ctx, g.kv.B().Set().Key(keyspace.Blacklist(kind, subject)).Value("1").
		Ex(g.o.BlacklistTTL).Build()).Error()
	if err != nil {
		g.log.Warn("blacklist write failed", "kind", kind, "subject", subject, "err", err)
		return
	}
	g.log.Warn("client blacklisted", "kind", kind, "subject", subject, "ttl", g.o.BlacklistTTL.String())
}

// blacklisted reads both blacklist keys through the client-side cache: a hit costs no round
// trip, and a blacklisting at any edge reaches every edge by invalidation.
func (g *Gate) blacklisted(ip []byte, uid string) (bool, error) {
	if g.blacklistedLocally("ip", ip) || g.blacklistedLocally("user", []byte(uid)) {
		return true, nil
	}
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

// clientIP is the peer's address (the edge is the first hop; put it behind a balancer that
// keeps the client address, e.g. with PROXY protocol, before trusting anything else).
// IPv6 clients are keyed by their /64, the smallest block one subscriber usually gets.
func clientIP(ctx *fasthttp.RequestCtx) []byte {
	ip := ctx.RemoteIP()
	if v4 := ip.To4(); v4 != nil {
		return v4
	}
	if len(ip) == net.IPv6len {
		return ip[:8]
	}
	return ip
}

func (g *Gate) storeDown(ctx *fasthttp.RequestCtx, err error) {
	g.log.Error("flash sale store read", "err", err)
	ctx.Response.Header.Set("Retry-After", "2")
	httpapi.WriteError(ctx, fasthttp.StatusServiceUnavailable, "store_unavailable",
		"The flash sale is under maintenance, please come back in a moment. / Flash sale đang bảo trì, vui lòng quay lại sau ít phút.")
}

// RecentSales returns up to n sale ids, latest start first, with their current states, read
// through the client-side cache (for the dashboard).
func (g *Gate) RecentSales(ctx context.Context, n int) (ids, states []string, err error) {
	all, err := g.kv.DoCache(ctx, g.kv.B().Zrange().Key(keyspace.Sales()).Min("+inf").Max("-inf").
		Byscore().Rev().Limit(0, int64(n)).Cache(), g.o.ClientTTL).AsStrSlice()
	if err != nil {
		return nil, nil, err
	}
	now := g.o.Now().UnixMilli()
	for _, id := range all {
		s, err := g.lookup([]byte(id))
		if err != nil {
			return nil, nil, err
		}
		if s.exists {
			ids, states = append(ids, id), append(states, s.state(now))
		}
	}
	return ids, states, nil
}
