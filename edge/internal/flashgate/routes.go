package flashgate

import (
	"context"
	"strconv"
	"time"

	"github.com/fasthttp/router"
	"github.com/redis/rueidis"
	"github.com/valyala/fasthttp"

	"flashedge/shared/httpapi"
	"flashedge/shared/keyspace"
	"flashedge/shared/product"
)

// statusTooEarly is 425, the contract's answer to an attempt before the start.
const statusTooEarly = 425

// MaxListed is how many sales the list answers: the latest by start time.
const MaxListed = 100

// Register adds the flash-sale routes to r. admin wraps the admin routes (the edge's admin token
// check). The attempt route itself is served by Fast, before the router; it is registered here
// too so that it answers when Fast is not wired.
func (g *Gate) Register(r *router.Router, admin func(fasthttp.RequestHandler) fasthttp.RequestHandler) {
	r.GET("/api/v1/flash-sales", g.list)
	r.GET("/api/v1/flash-sales/{id}", g.get)
	r.POST("/api/v1/flash-sales/{id}/challenge", g.user(g.limitedForward))
	r.POST("/api/v1/flash-sales/{id}/attempts", func(ctx *fasthttp.RequestCtx) {
		id, _ := ctx.UserValue("id").(string)
		g.attempt(ctx, []byte(id))
	})
	r.GET("/api/v1/flash-sales/{id}/attempts/{ticket}", g.user(g.poll))
	r.POST("/api/v1/flash-sales/{id}/checkout", g.user(func(ctx *fasthttp.RequestCtx, _ string) { g.order.Forward(ctx) }))
	r.POST("/api/v1/admin/flash-sales", admin(g.order.Forward))
	r.GET("/api/v1/admin/flash-sales/{id}/ledger", admin(g.order.Forward))
}

// user verifies the session, replaces any client-sent user header with the verified id and
// calls next with it.
func (g *Gate) user(next func(ctx *fasthttp.RequestCtx, uid string)) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		ctx.Request.Header.Del(httpapi.HeaderUserID)
		uid, err := g.sessions.FromRequest(ctx)
		if err != nil {
			httpapi.WriteRawJSON(ctx, fasthttp.StatusUnauthorized, unauthBody)
			return
		}
		ctx.Request.Header.Set(httpapi.HeaderUserID, uid)
		next(ctx, uid)
	}
}

// limitedForward answers a challenge request at the edge when the sale cannot sell (unknown,
// outside its window, sold out), applies the blacklist and rate limits (a challenge costs the
// store a write) and forwards the rest.
func (g *Gate) limitedForward(ctx *fasthttp.RequestCtx, uid string) {
	id, _ := ctx.UserValue("id").(string)
	if !g.open(ctx, []byte(id)) || g.refused(ctx, uid) {
		return
	}
	g.order.Forward(ctx)
}

func (g *Gate) get(ctx *fasthttp.RequestCtx) {
	id, _ := ctx.UserValue("id").(string)
	if !product.ValidID([]byte(id)) {
		httpapi.WriteRawJSON(ctx, fasthttp.StatusNotFound, unknownBody)
		return
	}
	s, err := g.lookup([]byte(id))
	if err != nil {
		g.storeDown(ctx, err)
		return
	}
	if !s.exists {
		httpapi.WriteRawJSON(ctx, fasthttp.StatusNotFound, unknownBody)
		return
	}
	ctx.SetContentType("application/json")
	ctx.SetBody(s.appendJSON(make([]byte, 0, 512), g.o.Now().UnixMilli()))
}

func (g *Gate) list(ctx *fasthttp.RequestCtx) {
	sctx, cancel := context.WithTimeout(context.Background(), g.o.StoreTimeout)
	defer cancel()
	ids, err := g.kv.DoCache(sctx, g.kv.B().Zrange().Key(keyspace.Sales()).Min("+inf").Max("-inf").
		Byscore().Rev().Limit(0, MaxListed).Cache(), g.o.ClientTTL).AsStrSlice()
	if err != nil {
		g.storeDown(ctx, err)
		return
	}
	now := g.o.Now().UnixMilli()
	body := append(make([]byte, 0, 512*len(ids)+16), `{"items":[`...)
	n := 0
	for i := len(ids) - 1; i >= 0; i-- { // oldest start first, like the order service
		s, err := g.lookup([]byte(ids[i]))
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
	ctx.SetContentType("application/json")
	ctx.SetBody(append(body, "]}"...))
}

// poll answers a ticket's result from the store through the client-side cache: repeated polls
// of an undecided ticket cost no round trip, and the worker's write reaches the edge by
// invalidation. A ticket of another user answers 404, like an unknown one.
func (g *Gate) poll(ctx *fasthttp.RequestCtx, uid string) {
	id, _ := ctx.UserValue("id").(string)
	ticket, _ := ctx.UserValue("ticket").(string)
	if !product.ValidID([]byte(id)) || !validTicket(ticket) {
		ticketNotFound(ctx)
		return
	}
	sctx, cancel := context.WithTimeout(context.Background(), g.o.StoreTimeout)
	defer cancel()
	m, err := g.kv.DoCache(sctx, g.kv.B().Hgetall().Key(keyspace.SaleResult(id, ticket)).Cache(), 10*time.Second).AsStrMap()
	if err != nil && !rueidis.IsRedisNil(err) {
		g.storeDown(ctx, err)
		return
	}
	if m["status"] == "" || m["user"] != uid {
		ticketNotFound(ctx)
		return
	}
	// A decided ticket's answer carries the seckill token: no cache may keep it.
	ctx.Response.Header.Set("Cache-Control", "no-store")
	switch m["status"] {
	case "won":
		exp, _ := strconv.ParseInt(m["expires_at"], 10, 64)
		httpapi.WriteJSON(ctx, fasthttp.StatusOK, struct {
			Status    string `json:"status"`
			Token     string `json:"token"`
			ExpiresAt string `json:"expires_at"`
		}{"won", m["token"], time.UnixMilli(exp).UTC().Format(time.RFC3339)})
	case "lost":
		httpapi.WriteJSON(ctx, fasthttp.StatusOK, struct {
			Status string `json:"status"`
			Reason string `json:"reason"`
		}{"lost", m["reason"]})
	default:
		httpapi.WriteJSON(ctx, fasthttp.StatusOK, struct {
			Status string `json:"status"`
		}{m["status"]})
	}
}

func ticketNotFound(ctx *fasthttp.RequestCtx) {
	httpapi.WriteError(ctx, fasthttp.StatusNotFound, "ticket_not_found", "no ticket of yours has this id")
}

// validTicket accepts the order service's tickets: 1 to 64 lower-case hex digits.
func validTicket(t string) bool {
	if len(t) == 0 || len(t) > 64 {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
