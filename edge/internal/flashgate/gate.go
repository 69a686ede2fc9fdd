// Package flashgate is the edge's side of a flash sale: it answers sale state and the sold-out
// verdict from memory, refuses attempts outside the sale window without any backend call, reads
// attempt results for polling straight from the store's client-side cache, and forwards only the
// attempts that can still succeed to the order service.
//
// The Gate only orders the checks. The sales it holds are an invalidation-checked cache
// (package invcache, filled in sales.go); the limits and bans are package guard's; the
// dashboard's queries belong to the dashboard's data source.
//
// The cached sale state is kept coherent by the store's invalidation pushes (Invalidate, wired to
// rueidis' OnInvalidations). A push may arrive after a reply, so the cache only ever guides a
// refusal (sold out); the order service and the worker's Lua decrement decide every sale.
//
// Order of the checks on an attempt, cheapest refusal first: sale known, window, sold out,
// session, then the guard (bans, per-address and per-user limits), then forward. The sale's own
// answers come first because they cost nothing and protect nothing: no backend or store is
// touched by them and they tell no more than the public sale view. Everything that can reach the
// store or a backend is charged to the guard first: a sale id this edge does not hold (a store
// read), a replay (a store read, maybe a forward), a challenge, a poll, a checkout.
package flashgate

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
	"github.com/valyala/fasthttp"

	"flashedge/edge/internal/guard"
	"flashedge/edge/internal/invcache"
	"flashedge/edge/internal/session"
	"flashedge/shared/challenge"
	"flashedge/shared/httpapi"
	"flashedge/shared/keyspace"
	"flashedge/shared/product"
	publicsale "flashedge/shared/sale"
)

// Forwarder sends a request on to the order service (an *upstream.Pool).
type Forwarder interface {
	Forward(ctx *fasthttp.RequestCtx)
}

// FirstForwarder is a Forwarder that can send a request ahead of the others waiting for the
// order service (*upstream.Pool, gateway.WithRequestID's wrapper of one).
type FirstForwarder interface {
	ForwardFirst(ctx *fasthttp.RequestCtx)
}

// BatchForwarder is a Forwarder that can send a request together with others waiting for the
// order service, in one call (*upstream.Pool with Options.BatchPath, gateway.WithRequestID's
// wrapper of one). Attempts go that way when the forwarder can.
type BatchForwarder interface {
	ForwardBatched(ctx *fasthttp.RequestCtx)
}

// Sessions verifies a request's session and returns its user id.
type Sessions interface {
	FromRequest(ctx *fasthttp.RequestCtx) (string, error)
}

// Options configure a Gate. Zero values take the defaults named on each field.
type Options struct {
	// ClientTTL caps how long the store's values stay in the client-side cache without an
	// invalidation. Zero means 1h.
	ClientTTL time.Duration
	// StoreTimeout bounds a store read. Zero means 500ms.
	StoreTimeout time.Duration
	// MaxSales bounds the sales kept in memory (unknown ids included). Zero means 10,000.
	MaxSales int
	// MaxNoReplay bounds the remembered (sale, Idempotency-Key, token) triples without an
	// idempotency record. Zero means 100,000.
	MaxNoReplay int
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
	// Challenges mint the flash-sale challenges this edge answers itself: keys derived from
	// FLASHEDGE_SESSION_SECRET, the same the order service verifies them with. Required.
	Challenges *challenge.Keys
	// ChallengeTTL is how long a challenge can be answered. Zero means challenge.DefaultTTL.
	ChallengeTTL time.Duration
	// Pass, when set, checks an attempt that passed every other check, last before it is
	// forwarded (the waiting room's pass); false means it wrote the refusal itself. It is only
	// asked about sales that have a waiting room (their definition says so, and never changes).
	Pass func(ctx *fasthttp.RequestCtx, sale []byte, uid string) bool
}

// Reasons an attempt is refused by the sale itself (Stats and metrics labels); the guard's
// reasons are added to them.
const (
	ReasonSoldOut    = "sold_out"
	ReasonNotStarted = "not_started"
	ReasonEnded      = "ended"
	ReasonUnknown    = "unknown_sale"
)

type reason uint8

const (
	soldOut reason = iota
	notStarted
	ended
	unknown
	numReasons
)

var reasonNames = [numReasons]string{ReasonSoldOut, ReasonNotStarted, ReasonEnded, ReasonUnknown}

// Gate orders the flash-sale checks. It is safe for concurrent use.
type Gate struct {
	kv       rueidis.Client
	order    Forwarder
	batch    BatchForwarder // order, when it can batch
	sessions Sessions
	guard    *guard.Guard
	log      *slog.Logger
	o        Options

	sales *sales
	// noReplay remembers (sale, Idempotency-Key, token) triples the store has no idempotency
	// record for, so a refused retry costs no store read; it is cleared with every record
	// written (see Invalidate).
	noReplay *invcache.Cache[struct{}]

	rejected  [numReasons]atomic.Uint64
	forwarded atomic.Uint64
	clock     bool // Options.Now was given: the attempt path reads it instead of the request's time
}

// New builds a Gate. Every argument but o is required.
func New(kv rueidis.Client, order Forwarder, sessions Sessions, g *guard.Guard, log *slog.Logger, o Options) (*Gate, error) {
	if kv == nil || order == nil || sessions == nil || g == nil || log == nil {
		return nil, errors.New("flashgate: store client, order forwarder, sessions, guard and logger are required")
	}
	if o.Challenges == nil {
		return nil, errors.New("flashgate: Options.Challenges is required: challenge.NewKeys over the keys of FLASHEDGE_SESSION_SECRET")
	}
	if o.ChallengeTTL <= 0 {
		o.ChallengeTTL = challenge.DefaultTTL
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
	if o.MaxNoReplay == 0 {
		o.MaxNoReplay = 100_000
	}
	clock := o.Now != nil
	if o.Now == nil {
		o.Now = time.Now
	}
	batch, _ := order.(BatchForwarder)
	return &Gate{clock: clock,
		kv: kv, order: order, batch: batch, sessions: sessions, guard: g, log: log, o: o,
		sales:    &sales{kv: kv, cache: invcache.New[*sale](invcache.Options{MaxEntries: o.MaxSales}), clientTTL: o.ClientTTL, timeout: o.StoreTimeout},
		noReplay: invcache.New[struct{}](invcache.Options{MaxEntries: o.MaxNoReplay}),
	}, nil
}

// Stats are the gate's counters.
type Stats struct {
	// Rejected counts refusals by reason: the sale's own and the guard's.
	Rejected  map[string]uint64
	Forwarded uint64
}

// Stats returns the counters so far.
func (g *Gate) Stats() Stats {
	s := Stats{Rejected: make(map[string]uint64, int(numReasons)+len(guard.Reasons)), Forwarded: g.forwarded.Load()}
	for i, name := range reasonNames {
		s.Rejected[name] = g.rejected[i].Load()
	}
	for r, n := range g.guard.Stats() {
		s.Rejected[r.String()] = n
	}
	return s
}

// Invalidate drops cached sales whose keys changed; nil (a lost connection) drops all. It runs on
// rueidis' reader goroutine: fast, no store calls.
func (g *Gate) Invalidate(msgs []rueidis.RedisMessage) {
	if msgs == nil {
		g.sales.cache.Clear()
		g.noReplay.Clear()
		return
	}
	for _, m := range msgs {
		key, err := m.ToString()
		if err != nil || g.sales.invalidate(key) {
			continue
		}
		if keyspace.IsSaleIdempotency(key) {
			// An idempotency record was written: forget every "no record" (they are keyed by
			// token, not user), which only happens while attempts are admitted.
			g.noReplay.Clear()
		}
	}
}

// SaleState returns the state of sale id now, and whether it exists (for the dashboard).
func (g *Gate) SaleState(id string) (state string, exists bool, err error) {
	s, err := g.sales.lookup([]byte(id))
	if err != nil || !s.exists {
		return "", false, err
	}
	return s.state(g.o.Now().UnixMilli()), true, nil
}

var (
	soldOutBody    = publicsale.SoldOutBody
	notStartedBody = publicsale.NotStartedBody
	endedBody      = publicsale.EndedBody
	unknownBody    = publicsale.UnknownSaleBody
	unauthBody     = []byte(`{"error":{"code":"unauthorized","message":"log in first: a valid, unexpired session token is required"}}`)
)

var (
	salesPrefix    = []byte("/api/v1/flash-sales/")
	attemptsSuffix = []byte("/attempts")
)

// Fast handles POST /api/v1/flash-sales/{id}/attempts before the router (it is the path a rush
// hammers) and reports whether it did. Everything else is left to the routes of Register.
// idempotencyKey and authorization are the request's values of those headers, nil when absent
// (the gateway reads them in its single pass over the raw headers).
func (g *Gate) Fast(ctx *fasthttp.RequestCtx, idempotencyKey, authorization []byte) bool {
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
	g.attempt(ctx, id, idempotencyKey, authorization)
	return true
}

// AttemptsRoute is the route label of the requests Fast answers (the gateway counts them).
const AttemptsRoute = "/api/v1/flash-sales/{id}/attempts"

func (g *Gate) attempt(ctx *fasthttp.RequestCtx, id, idempotencyKey, authorization []byte) {
	// The sale's own refusals come first: they are the cheapest (no MAC to verify), reveal
	// nothing the public sale view does not, and are what a rush hammers once sold out.
	s := g.openSale(ctx, id)
	if s == nil {
		g.replay(ctx, id, idempotencyKey, authorization)
		return
	}
	uid, ok := g.user(ctx)
	if !ok || g.guard.Refused(ctx, uid) {
		return
	}
	if g.o.Pass != nil && s.room && !g.o.Pass(ctx, id, uid) {
		return
	}
	g.forward(ctx, uid)
}

// user verifies the session; without a valid one it answers 401 and returns false. (The
// gateway dropped any client-sent user header before anything ran.)
func (g *Gate) user(ctx *fasthttp.RequestCtx) (string, bool) {
	uid, err := g.sessions.FromRequest(ctx)
	if err != nil {
		httpapi.WriteRawJSON(ctx, fasthttp.StatusUnauthorized, unauthBody)
		return "", false
	}
	return uid, true
}

// forward sends an attempt to the order service, batched with the others waiting when the
// forwarder can batch.
func (g *Gate) forward(ctx *fasthttp.RequestCtx, uid string) {
	httpapi.SetUser(ctx, uid)
	g.forwarded.Add(1)
	if g.batch != nil {
		g.batch.ForwardBatched(ctx)
		return
	}
	g.order.Forward(ctx)
}

// forwardFirst is forward for a checkout: it waits for the order service ahead of the attempts
// when the edge's limit on calls to it is reached (a winner's payment must not be refused
// behind the crowd still trying), when the forwarder can (an *upstream.Pool).
func (g *Gate) forwardFirst(ctx *fasthttp.RequestCtx, uid string) {
	ff, ok := g.order.(FirstForwarder)
	if !ok {
		g.forward(ctx, uid)
		return
	}
	httpapi.SetUser(ctx, uid)
	g.forwarded.Add(1)
	ff.ForwardFirst(ctx)
}

func (g *Gate) reject(r reason) { g.rejected[r].Add(1) }

// nowMs is the time of an attempt for the window checks: when the server began handling it
// (fasthttp reads the clock for every request anyway), or Options.Now when one was given.
func (g *Gate) nowMs(ctx *fasthttp.RequestCtx) int64 {
	if g.clock {
		return g.o.Now().UnixMilli()
	}
	return ctx.Time().UnixMilli()
}

// held returns the sale when this edge holds it; otherwise it charges the client's address (a
// lookup costs a store read: guessed ids must not hammer the store) and reads it. On a refusal
// or a store error it answers itself and returns nil.
func (g *Gate) saleFor(ctx *fasthttp.RequestCtx, id []byte) *sale {
	if !product.ValidID(id) {
		g.reject(unknown)
		httpapi.WriteRawJSON(ctx, fasthttp.StatusNotFound, unknownBody)
		return nil
	}
	if s := g.sales.held(id); s != nil {
		return s
	}
	if g.guard.Refused(ctx, "") {
		return nil
	}
	s, err := g.sales.lookup(id)
	if err != nil {
		g.storeDown(ctx, err)
		return nil
	}
	return s
}

// openSale returns sale id when it is known, inside its window and not sold out; otherwise it
// answers the request itself and returns nil: the refusals that need no backend, cheapest first.
func (g *Gate) openSale(ctx *fasthttp.RequestCtx, id []byte) *sale {
	s := g.saleFor(ctx, id)
	if s == nil {
		return nil
	}
	now := g.nowMs(ctx)
	switch {
	case !s.exists:
		g.reject(unknown)
		httpapi.WriteRawJSON(ctx, fasthttp.StatusNotFound, unknownBody)
		return nil
	case now < s.startMs:
		g.reject(notStarted)
		httpapi.SetRetryAfter(ctx, time.Duration(s.startMs-now)*time.Millisecond)
		httpapi.WriteRawJSON(ctx, statusTooEarly, notStartedBody)
		return nil
	case now >= s.endMs:
		g.reject(ended)
		httpapi.WriteRawJSON(ctx, fasthttp.StatusGone, endedBody)
		return nil
	case s.soldOut:
		g.reject(soldOut)
		httpapi.WriteRawJSON(ctx, fasthttp.StatusGone, soldOutBody)
		return nil
	}
	return s
}

// replay forwards, instead of the edge's refusal already written to ctx, a retried attempt whose
// Idempotency-Key the order service has answered before: a client whose 202 was lost, and whose
// own win then sold the sale out, must get its ticket back, not "sold out". Only a sold-out or
// ended refusal is replayed, and only for a verified session whose key has a record (read
// through the client-side cache). The store read and the forward are charged to the guard like
// an attempt: a replay is no way around the bans and limits.
func (g *Gate) replay(ctx *fasthttp.RequestCtx, id, key, authorization []byte) {
	if ctx.Response.StatusCode() != fasthttp.StatusGone {
		return
	}
	if !httpapi.ValidIdempotencyKey(key) {
		return
	}
	// A (sale, key, token) found without a record before is answered from memory, without
	// verifying the token again or asking the store: a rush retrying after the sell-out costs
	// the edge almost nothing. Skipping the verification is safe because only a record the
	// store has, read for a verified user, ever forwards.
	var buf [512]byte
	nk := append(append(append(append(append(buf[:0], id...), 0), key...), 0), session.TokenFrom(ctx, authorization)...)
	fits := len(nk) < len(buf)
	if fits {
		if _, ok := g.noReplay.Get(nk); ok {
			return
		}
	}
	uid, err := g.sessions.FromRequest(ctx)
	if err != nil {
		return
	}
	// Over its limits (or banned) the client keeps the sale's own answer, which is true and
	// costs nothing; the refusal still counts and spends from its abuse budget.
	if g.guard.Check(ctx, uid).Refused {
		return
	}
	gen := g.noReplay.Gen(nk)
	sctx, cancel := context.WithTimeout(context.Background(), g.o.StoreTimeout)
	defer cancel()
	// The record is the order service's hash with the first answer's outcome, read through the
	// client-side cache so that its creation reaches this edge as an invalidation.
	_, err = g.kv.DoCache(sctx, g.kv.B().Hget().Key(keyspace.SaleIdempotency(string(id), uid, string(key))).
		Field("outcome").Cache(), g.o.ClientTTL).ToString()
	if err != nil {
		if rueidis.IsRedisNil(err) && fits {
			g.noReplay.Put(string(nk), struct{}{}, gen)
		}
		return
	}
	ctx.Response.Reset()
	g.forward(ctx, uid)
}

func (g *Gate) storeDown(ctx *fasthttp.RequestCtx, err error) {
	g.log.Error("flash sale store read", "err", err)
	ctx.Response.Header.Set(fasthttp.HeaderRetryAfter, "2")
	httpapi.WriteError(ctx, fasthttp.StatusServiceUnavailable, "store_unavailable",
		"The flash sale is under maintenance, please come back in a moment. / Flash sale đang bảo trì, vui lòng quay lại sau ít phút.")
}
