package flashgate

import (
	"context"
	"time"

	"github.com/fasthttp/router"
	"github.com/redis/rueidis"
	"github.com/valyala/fasthttp"

	"flashedge/shared/challenge"
	"flashedge/shared/httpapi"
	"flashedge/shared/keyspace"
	"flashedge/shared/product"
	publicsale "flashedge/shared/sale"
)

// statusTooEarly is 425, the contract's answer to an attempt before the start.
const statusTooEarly = 425

// cacheSaleState is the Cache-Control of sale views: a sale's state changes at its start, its
// end and its sell-out, so any cache must revalidate before reuse.
const cacheSaleState = "no-cache"

// MaxListed is how many sales the list answers: the latest by start time.
const MaxListed = 100

// Register adds the flash-sale routes to r. admin wraps the admin routes (the edge's admin token
// check). The attempt route itself is served by Fast, before the router; it is registered here
// too so that it answers when Fast is not wired.
func (g *Gate) Register(r *router.Router, admin func(fasthttp.RequestHandler) fasthttp.RequestHandler) {
	r.GET("/api/v1/flash-sales", g.list)
	r.GET("/api/v1/flash-sales/{id}", g.get)
	r.POST("/api/v1/flash-sales/{id}/challenge", g.challenge)
	r.POST("/api/v1/flash-sales/{id}/attempts", func(ctx *fasthttp.RequestCtx) {
		id, _ := ctx.UserValue("id").(string)
		g.attempt(ctx, []byte(id), ctx.Request.Header.Peek(httpapi.HeaderIdempotencyKey), ctx.Request.Header.Peek(fasthttp.HeaderAuthorization))
	})
	r.GET("/api/v1/flash-sales/{id}/attempts/{ticket}", g.poll)
	r.POST("/api/v1/flash-sales/{id}/checkout", g.checkout)
	r.POST("/api/v1/admin/flash-sales", admin(g.order.Forward))
	r.GET("/api/v1/admin/flash-sales/{id}/ledger", admin(g.order.Forward))
}

// challenge answers a challenge request at the edge, without a store call or a call to the order
// service: a sale that cannot sell (unknown, outside its window, sold out) is refused as for an
// attempt; otherwise the request is charged to the guard like an attempt, then a challenge for
// this user and sale, with the sale's difficulty, is minted (shared/challenge: the id carries its
// own MAC, which the order service checks when an attempt spends it).
func (g *Gate) challenge(ctx *fasthttp.RequestCtx) {
	id, _ := ctx.UserValue("id").(string)
	s := g.openSale(ctx, []byte(id))
	if s == nil {
		return
	}
	uid, ok := g.user(ctx)
	if !ok || g.guard.Refused(ctx, uid) {
		return
	}
	ch, err := g.o.Challenges.Issue(s.id, uid, s.difficulty, g.o.Now().Add(g.o.ChallengeTTL))
	if err != nil { // a difficulty the order service would not have stored
		g.log.Error("flash sale challenge", "sale", s.id, "err", err)
		httpapi.SetRetryAfter(ctx, time.Second)
		httpapi.WriteError(ctx, fasthttp.StatusServiceUnavailable, "challenge_unavailable", "no challenge can be issued for this sale now")
		return
	}
	ctx.Response.Header.Set(fasthttp.HeaderCacheControl, "no-store")
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("application/json")
	var buf [320]byte
	ctx.SetBody(challenge.AppendJSON(buf[:0], ch))
}

// checkout is charged to the client's address (it reaches the order service and the store);
// not to the user's budget, which a winner has spent on the challenge and the attempt, nor is
// a banned user kept from paying for what they won before the ban. It waits for the order
// service ahead of the attempts (forwardFirst).
func (g *Gate) checkout(ctx *fasthttp.RequestCtx) {
	uid, ok := g.user(ctx)
	if !ok || g.guard.Refused(ctx, "") {
		return
	}
	g.forwardFirst(ctx, uid)
}

func (g *Gate) get(ctx *fasthttp.RequestCtx) {
	id, _ := ctx.UserValue("id").(string)
	s := g.saleFor(ctx, []byte(id))
	if s == nil {
		return
	}
	if !s.exists {
		httpapi.WriteRawJSON(ctx, fasthttp.StatusNotFound, unknownBody)
		return
	}
	ctx.Response.Header.Set(fasthttp.HeaderCacheControl, cacheSaleState)
	ctx.SetContentType("application/json")
	ctx.SetBody(s.appendJSON(make([]byte, 0, 512), g.o.Now().UnixMilli()))
}

// list is charged to the client's address: the index and the sales it names may be store reads.
func (g *Gate) list(ctx *fasthttp.RequestCtx) {
	if g.guard.Refused(ctx, "") {
		return
	}
	sctx, cancel := context.WithTimeout(context.Background(), g.o.StoreTimeout)
	defer cancel()
	ids, err := g.kv.DoCache(sctx, g.kv.B().Zrange().Key(keyspace.Sales()).Min("+inf").Max("-inf").
		Byscore().Rev().Limit(0, MaxListed).Cache(), g.o.ClientTTL).AsStrSlice()
	if err != nil {
		g.storeDown(ctx, err)
		return
	}
	now := g.o.Now().UnixMilli()
	body := append(make([]byte, 0, 512*len(ids)+16), publicsale.ListOpen...)
	n := 0
	for i := len(ids) - 1; i >= 0; i-- { // oldest start first, like the order service
		s, err := g.sales.lookup([]byte(ids[i]))
		if err != nil {
			g.storeDown(ctx, err)
			return
		}
		if !s.exists {
			continue
		}
		if n > 0 {
			body = append(body, ',')
		}
		body = s.appendJSON(body, now)
		n++
	}
	ctx.Response.Header.Set(fasthttp.HeaderCacheControl, cacheSaleState)
	ctx.SetContentType("application/json")
	ctx.SetBody(append(body, publicsale.ListClose...))
}

// poll answers a ticket's result from the store through the client-side cache: repeated polls
// of an undecided ticket cost no round trip, and the worker's write reaches the edge by
// invalidation. A ticket of another user answers 404, like an unknown one. A poll that passes
// the syntax checks is charged to the client's address (a made-up ticket id is a store read);
// not to the user's budget, which the attempts need.
func (g *Gate) poll(ctx *fasthttp.RequestCtx) {
	uid, ok := g.user(ctx)
	if !ok {
		return
	}
	id, _ := ctx.UserValue("id").(string)
	ticket, _ := ctx.UserValue("ticket").(string)
	if !product.ValidID([]byte(id)) || !publicsale.ValidTicketID(ticket) {
		ticketNotFound(ctx)
		return
	}
	if g.guard.Refused(ctx, "") {
		return
	}
	sctx, cancel := context.WithTimeout(context.Background(), g.o.StoreTimeout)
	defer cancel()
	m, err := g.kv.DoCache(sctx, g.kv.B().Hgetall().Key(keyspace.SaleResult(id, ticket)).Cache(), 10*time.Second).AsStrMap()
	if err != nil && !rueidis.IsRedisNil(err) {
		g.storeDown(ctx, err)
		return
	}
	t, ok := publicsale.TicketFromHash(m, uid)
	if !ok {
		ticketNotFound(ctx)
		return
	}
	// A decided ticket's answer carries the seckill token: no cache may keep it.
	ctx.Response.Header.Set("Cache-Control", "no-store")
	httpapi.WriteRawJSON(ctx, fasthttp.StatusOK, t.AppendJSON(make([]byte, 0, 160)))
}

func ticketNotFound(ctx *fasthttp.RequestCtx) {
	httpapi.WriteRawJSON(ctx, fasthttp.StatusNotFound, publicsale.UnknownTicketBody)
}
