// Package gateway is the edge's HTTP surface: it answers product reads from the edge cache,
// verifies sessions, and forwards the writes that can still succeed to the backend services.
package gateway

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/fasthttp/router"
	"github.com/valyala/fasthttp"

	"flashedge/edge/internal/httpcache"
	"flashedge/edge/internal/productcache"
	"flashedge/shared/httpapi"
	"flashedge/shared/metrics"
	"flashedge/shared/obs"
	"flashedge/shared/openapi"
	"flashedge/shared/product"
)

// Forwarder sends the incoming request to a backend service and writes its answer (or a
// friendly 503 when the service is down) into ctx. *upstream.Pool implements it.
type Forwarder interface {
	Forward(ctx *fasthttp.RequestCtx)
}

// Sessions verifies session tokens. *session.Signer implements it.
type Sessions interface {
	// FromRequest returns the verified user id of the request's bearer token or cookie.
	FromRequest(ctx *fasthttp.RequestCtx) (string, error)
}

// Config wires a Gateway. Every field is required unless its comment says otherwise.
type Config struct {
	Products *productcache.Cache
	Catalog  Forwarder
	// Cart and Order may be nil: their routes then answer 503.
	Cart  Forwarder
	Order Forwarder
	// Sessions may be nil only when Cart and Order are nil.
	Sessions Sessions
	// Login answers POST /api/v1/session. Nil leaves the route out.
	Login      fasthttp.RequestHandler
	AdminToken string
	Log        *slog.Logger
	IDs        *obs.IDs
	// Ready reports whether the edge's own dependencies answer (for /ready). Nil means ready.
	Ready func(ctx context.Context) error
	// Draining reports shutdown in progress (for /ready). Nil means never.
	Draining func() bool
	// AccessLogSample logs one request in this many (errors always). Zero means 1000.
	AccessLogSample uint64
	// Extra registers more routes (flash sales, dashboard) on the router; admin wraps a handler
	// in the edge's admin-token check. Nil means none.
	Extra func(r *router.Router, admin func(fasthttp.RequestHandler) fasthttp.RequestHandler)
	// Fast, when set, sees every request before the router and reports whether it answered it
	// (the flash-sale attempt path). Nil means none.
	Fast func(ctx *fasthttp.RequestCtx) bool
}

// Gateway is the edge's request handler. It is safe for concurrent use.
type Gateway struct {
	cfg     Config
	handler fasthttp.RequestHandler
}

var (
	productsPrefix = []byte("/api/v1/products/")
	productRoute   = "/api/v1/products/{id}"
)

// New validates cfg and builds the routes.
func New(cfg Config) (*Gateway, error) {
	switch {
	case cfg.Products == nil:
		return nil, errors.New("gateway: Products cache is required")
	case cfg.Catalog == nil:
		return nil, errors.New("gateway: Catalog forwarder is required")
	case len(cfg.AdminToken) < 16:
		return nil, errors.New("gateway: AdminToken must be at least 16 characters (set FLASHEDGE_ADMIN_TOKEN)")
	case cfg.Log == nil || cfg.IDs == nil:
		return nil, errors.New("gateway: Log and IDs are required")
	case cfg.Sessions == nil && (cfg.Cart != nil || cfg.Order != nil):
		return nil, errors.New("gateway: Sessions are required to route cart and order calls")
	}
	if cfg.AccessLogSample == 0 {
		cfg.AccessLogSample = 1000
	}
	g := &Gateway{cfg: cfg}
	r := httpapi.NewRouter()
	probe := httpapi.Probe{Check: cfg.Ready, Draining: cfg.Draining}
	r.GET("/health", probe.Health)
	r.GET("/ready", probe.Ready)
	r.GET("/api/v1/openapi.json", func(ctx *fasthttp.RequestCtx) {
		httpapi.WriteRawJSON(ctx, fasthttp.StatusOK, openapi.JSON())
	})

	r.GET("/api/v1/products", g.listProducts)
	r.GET("/api/v1/products/{id}", g.getProductRouted)

	// The catalog does not honour Idempotency-Key: without the header the upstream pool never
	// retries a product create, which could otherwise create it twice.
	// The admin bearer token is checked at the edge before forwarding, so a bad token never
	// reaches a backend; the backend checks it again.
	adminOnly := httpapi.Admin(cfg.AdminToken)
	admin := adminOnly(func(ctx *fasthttp.RequestCtx) {
		ctx.Request.Header.Del(httpapi.HeaderIdempotencyKey)
		cfg.Catalog.Forward(ctx)
	})
	r.POST("/api/v1/admin/products", admin)
	r.PUT("/api/v1/admin/products/{id}", admin)
	r.DELETE("/api/v1/admin/products/{id}", admin)

	if cfg.Login != nil {
		r.POST("/api/v1/session", cfg.Login)
	}
	cart := g.user(forwardOrUnavailable(cfg.Cart))
	r.GET("/api/v1/cart", cart)
	r.PUT("/api/v1/cart/items/{product_id}", cart)
	r.DELETE("/api/v1/cart/items/{product_id}", cart)
	order := g.user(forwardOrUnavailable(cfg.Order))
	r.POST("/api/v1/orders", order)
	r.GET("/api/v1/orders", order)
	r.GET("/api/v1/orders/{id}", order)
	if cfg.Extra != nil {
		cfg.Extra(r, adminOnly)
	}

	routed := r.Handler
	lowerUser := strings.ToLower(httpapi.HeaderUserID)
	// The product read is the hot path: it is matched before the router so that a hit makes no
	// allocation (the router would copy the id into a string).
	hot := func(ctx *fasthttp.RequestCtx) {
		// Only the edge sets the user header, after verifying a session; a client's copy is
		// dropped before anything (the access log included) can read it. Del normalises its key
		// on every call, so it runs only when the raw headers hold the name.
		if httpapi.HasRawHeader(&ctx.Request.Header, lowerUser) {
			httpapi.DropUser(ctx)
		}
		if ctx.IsGet() {
			if id, ok := bytes.CutPrefix(ctx.Path(), productsPrefix); ok && bytes.IndexByte(id, '/') < 0 {
				metrics.SetRoute(ctx, &productRoute)
				g.serveProduct(ctx, id)
				return
			}
		}
		if cfg.Fast != nil && cfg.Fast(ctx) {
			return
		}
		routed(ctx)
	}
	g.handler = httpapi.RequestIDs(httpapi.AccessLog(hot, cfg.Log, cfg.AccessLogSample, httpapi.HeaderUserID), cfg.IDs)
	return g, nil
}

// Handler returns the request handler to give to httpapi.NewServer.
func (g *Gateway) Handler() fasthttp.RequestHandler { return g.handler }

func (g *Gateway) getProductRouted(ctx *fasthttp.RequestCtx) {
	id, _ := ctx.UserValue("id").(string)
	g.serveProduct(ctx, []byte(id))
}

func (g *Gateway) serveProduct(ctx *fasthttp.RequestCtx, id []byte) {
	if !product.ValidID(id) {
		httpapi.WriteError(ctx, fasthttp.StatusBadRequest, "invalid_id", "a product id is 1 to 64 letters, digits, '_' or '-'")
		return
	}
	rep, err := g.cfg.Products.Product(context.Background(), id)
	if err != nil {
		g.readError(ctx, err)
		return
	}
	httpcache.Serve(ctx, rep, "application/json", cacheProducts)
}

// CacheProducts is the Cache-Control of product and catalog-page answers: any cache (a CDN
// included) may keep them for a few seconds and serve them stale for a while longer while it
// revalidates with the ETag; the edge itself is kept fresh by invalidation, not by this.
const CacheProducts = "public, max-age=5, stale-while-revalidate=30"

var cacheProducts = []byte(CacheProducts)

func (g *Gateway) listProducts(ctx *fasthttp.RequestCtx) {
	args := ctx.QueryArgs()
	limit, after, err := productcache.ParsePage(args.Peek("limit"), args.Peek("cursor"))
	if err != nil {
		g.readError(ctx, err)
		return
	}
	rep, err := g.cfg.Products.Page(context.Background(), limit, after)
	if err != nil {
		g.readError(ctx, err)
		return
	}
	httpcache.Serve(ctx, rep, "application/json", cacheProducts)
}

func (g *Gateway) readError(ctx *fasthttp.RequestCtx, err error) {
	switch {
	case errors.Is(err, productcache.ErrNotFound):
		httpapi.WriteError(ctx, fasthttp.StatusNotFound, "not_found", "no product has this id")
	case errors.Is(err, productcache.ErrBadLimit):
		httpapi.WriteError(ctx, fasthttp.StatusBadRequest, "invalid_limit", "limit must be a whole number from 1 to 100")
	case errors.Is(err, productcache.ErrBadCursor):
		httpapi.WriteError(ctx, fasthttp.StatusBadRequest, "invalid_cursor", "cursor is not one this server handed out")
	default:
		g.cfg.Log.Error("product read", "err", err, "request_id", string(ctx.Response.Header.Peek(obs.HeaderRequestID)))
		ctx.Response.Header.Set("Retry-After", "5")
		httpapi.WriteError(ctx, fasthttp.StatusServiceUnavailable, "store_unavailable",
			"The shop is under maintenance, please come back later. / Cửa hàng đang bảo trì, vui lòng quay lại sau.")
	}
}

// user verifies the session and passes the user id to the backend in a header the edge sets
// itself (the hot path dropped a client-sent copy before routing).
func (g *Gateway) user(next fasthttp.RequestHandler) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		uid, err := g.cfg.Sessions.FromRequest(ctx)
		if err != nil {
			httpapi.WriteError(ctx, fasthttp.StatusUnauthorized, "unauthorized", "log in first: a valid, unexpired session token is required")
			return
		}
		httpapi.SetUser(ctx, uid)
		next(ctx)
	}
}

func forwardOrUnavailable(f Forwarder) fasthttp.RequestHandler {
	if f == nil {
		return func(ctx *fasthttp.RequestCtx) {
			ctx.Response.Header.Set("Retry-After", "30")
			httpapi.WriteError(ctx, fasthttp.StatusServiceUnavailable, "service_unavailable", "this service is not configured at this edge")
		}
	}
	return f.Forward
}

// Timeouts the edge server uses; a backend call's budget (upstream Timeout) must stay below
// the write timeout so an answer is always written.
const (
	ReadTimeout  = 5 * time.Second
	WriteTimeout = 10 * time.Second
)
