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
	// AccessLogSample logs one request in this many (5xx errors up to httpapi.ErrorLinesPerSecond a second). Zero means 1000.
	AccessLogSample uint64
	// Metrics counts and times every request per route (flashedge_edge_requests_total and
	// _request_duration_seconds). Nil means no per-request metrics.
	Metrics *metrics.Registry
	// Extra registers more routes (flash sales, dashboard) on the router; admin wraps a handler
	// in the edge's admin-token check. Nil means none.
	Extra func(r *router.Router, admin func(fasthttp.RequestHandler) fasthttp.RequestHandler)
	// Fast, when set, sees every request before the router and reports whether it answered it
	// (the flash-sale attempt path). It gets the Idempotency-Key and Authorization values the
	// gateway read anyway in its one pass over the raw headers (nil when absent, valid until the
	// handler returns). It must not rely on the request's X-Request-ID header: the id is set on
	// the answer only (wrap what it forwards with WithRequestID). Nil means none.
	Fast func(ctx *fasthttp.RequestCtx, idempotencyKey, authorization []byte) bool
	// FastRoute is the route label of the requests Fast answers. Required with Fast.
	FastRoute string
	// Shop charges a shopping request before it is forwarded or reaches the store: with the
	// verified user id for cart and order calls, with "" (the client address) for product reads
	// and catalog pages that miss the cache (hits are free). It reports whether it refused the
	// request, having written the answer. *guard.Guard's Shop implements it. Nil means none.
	Shop func(ctx *fasthttp.RequestCtx, uid string) bool
}

// Gateway is the edge's request handler. It is safe for concurrent use.
type Gateway struct {
	cfg     Config
	handler fasthttp.RequestHandler
	routed  fasthttp.RequestHandler // the router, instrumented when Metrics is set
	access  *httpapi.AccessLogger
	// Handles of the routes answered before the router (nil without Metrics).
	productStats, fastStats *metrics.RouteHandle
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
	case cfg.Fast != nil && cfg.FastRoute == "":
		return nil, errors.New("gateway: FastRoute is required with Fast")
	}
	if cfg.AccessLogSample == 0 {
		cfg.AccessLogSample = 1000
	}
	g := &Gateway{cfg: cfg}
	r := httpapi.NewRouter()
	// /ready is on the public port (the balancers probe it): its store check runs at most once
	// per CheckEvery however often it is asked, and the answer names no address or error.
	probe := &httpapi.Probe{Check: cfg.Ready, Draining: cfg.Draining, Public: true, Log: cfg.Log}
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
	// A checkout finishes a purchase: it waits for the order service ahead of other calls.
	r.POST("/api/v1/orders", g.user(forwardFirstOrUnavailable(cfg.Order)))
	r.GET("/api/v1/orders", order)
	r.GET("/api/v1/orders/{id}", order)
	if cfg.Extra != nil {
		cfg.Extra(r, adminOnly)
	}

	g.routed = r.Handler
	g.access = httpapi.NewAccessLogger(cfg.Log, cfg.AccessLogSample, httpapi.HeaderUserID)
	if cfg.Metrics != nil {
		g.routed = cfg.Metrics.Instrument(r.Handler, nil)
		g.productStats = cfg.Metrics.Handle(productRoute)
		if cfg.Fast != nil {
			g.fastStats = cfg.Metrics.Handle(cfg.FastRoute)
		}
	}
	g.handler = g.serve
	return g, nil
}

// The headers the edge reads on every request, found in one pass over the raw header bytes.
const (
	hdrUser = iota
	hdrRequestID
	hdrIfNoneMatch
	hdrAcceptEncoding
	hdrIdempotencyKey
	hdrAuthorization
	numHotHeaders
)

var hotHeaders = httpapi.NewHeaderSet(
	strings.ToLower(httpapi.HeaderUserID),
	strings.ToLower(obs.HeaderRequestID),
	"if-none-match",
	"accept-encoding",
	"idempotency-key",
	"authorization",
)

// singleHeaders are the hot headers a request may carry at most once.
const singleHeaders = 1<<hdrIdempotencyKey | 1<<hdrAuthorization

// requestIDKey is X-Request-ID as fasthttp stores parsed header names (X-Request-Id), so that
// SetCanonical replaces a client's copy instead of adding a second one.
var requestIDKey = fasthttp.AppendNormalizedHeaderKey(nil, obs.HeaderRequestID)

// serve is the edge's handler. Every request gets a request id (a valid client-sent one is
// kept) on its answer, loses any client-sent user header, is counted in the metrics and sampled
// into the access log. The product read and the Fast path (sold-out attempts) are answered
// before the router, from one pass over the raw request headers and with the metric handles
// taken at start-up, so that answering from memory costs little more than a bare fasthttp
// handler writing the same bytes and makes no allocation.
func (g *Gateway) serve(ctx *fasthttp.RequestCtx) {
	var hdr [numHotHeaders][]byte
	repeated := hotHeaders.Scan(&ctx.Request.Header, hdr[:])
	// Only the edge sets the user header, after verifying a session; a client's copy is dropped
	// before anything (the access log included) can read it.
	if hdr[hdrUser] != nil {
		httpapi.DropUser(ctx)
	}
	id := hdr[hdrRequestID]
	var buf [48]byte
	fresh := !obs.ValidRequestID(id)
	if fresh {
		id = g.cfg.IDs.AppendNext(buf[:0])
	}
	ctx.Response.Header.SetCanonical(requestIDKey, id)

	var stats *metrics.RouteHandle
	var route string
	switch {
	case repeated&singleHeaders != 0:
		// A proxy in front of the edge may act on the other copy than the edge and the backends
		// (which take the first): such a request means nothing certain.
		httpapi.WriteError(ctx, fasthttp.StatusBadRequest, "duplicate_header", "send Authorization and Idempotency-Key at most once each")
		route = "duplicate_header"
	case ctx.IsGet() && isProductPath(ctx.Path()):
		g.serveProduct(ctx, ctx.Path()[len(productsPrefix):], hdr[hdrIfNoneMatch], hdr[hdrAcceptEncoding])
		stats, route = g.productStats, productRoute
	case g.cfg.Fast != nil && g.cfg.Fast(ctx, hdr[hdrIdempotencyKey], hdr[hdrAuthorization]):
		stats, route = g.fastStats, g.cfg.FastRoute
	default:
		// Routed requests may be forwarded: the backend logs under the same id.
		if fresh {
			ctx.Request.Header.SetCanonical(requestIDKey, id)
		}
		g.routed(ctx)
		g.access.Done(ctx, "")
		return
	}
	if stats != nil {
		start := ctx.Time() // when the server handed the request over
		if start.IsZero() {
			start = time.Now() // a ctx that did not come from a server
		}
		stats.Observe(ctx.Response.StatusCode(), time.Since(start), start)
	}
	g.access.Done(ctx, route)
}

// isProductPath reports whether path is /api/v1/products/{id} (one segment after the prefix).
func isProductPath(path []byte) bool {
	id, ok := bytes.CutPrefix(path, productsPrefix)
	return ok && bytes.IndexByte(id, '/') < 0
}

// WithRequestID returns f with the answer's X-Request-ID copied to the request before it is
// forwarded, for forwarders called from Config.Fast (the gateway sets the id on the answer
// only, which is all an answer from memory needs).
func WithRequestID(f Forwarder) Forwarder { return idForwarder{f} }

type idForwarder struct{ next Forwarder }

func (f idForwarder) Forward(ctx *fasthttp.RequestCtx) {
	f.setID(ctx)
	f.next.Forward(ctx)
}

// ForwardFirst is the next forwarder's ForwardFirst when it has one, else its Forward.
func (f idForwarder) ForwardFirst(ctx *fasthttp.RequestCtx) {
	f.setID(ctx)
	if ff, ok := f.next.(FirstForwarder); ok {
		ff.ForwardFirst(ctx)
		return
	}
	f.next.Forward(ctx)
}

// ForwardBatched is the next forwarder's ForwardBatched when it has one, else its Forward.
func (f idForwarder) ForwardBatched(ctx *fasthttp.RequestCtx) {
	f.setID(ctx)
	if bf, ok := f.next.(BatchForwarder); ok {
		bf.ForwardBatched(ctx)
		return
	}
	f.next.Forward(ctx)
}

func (f idForwarder) setID(ctx *fasthttp.RequestCtx) {
	if id := ctx.Response.Header.PeekBytes(requestIDKey); len(id) > 0 {
		ctx.Request.Header.SetCanonical(requestIDKey, id)
	}
}

// Handler returns the request handler to give to httpapi.NewServer.
func (g *Gateway) Handler() fasthttp.RequestHandler { return g.handler }

func (g *Gateway) getProductRouted(ctx *fasthttp.RequestCtx) {
	id, _ := ctx.UserValue("id").(string)
	g.serveProduct(ctx, []byte(id), httpapi.RawHeaderValue(&ctx.Request.Header, "if-none-match"),
		httpapi.RawHeaderValue(&ctx.Request.Header, "accept-encoding"))
}

// serveProduct answers the product read of id; inm and ae are the request's If-None-Match and
// Accept-Encoding values (nil when absent).
func (g *Gateway) serveProduct(ctx *fasthttp.RequestCtx, id, inm, ae []byte) {
	if !product.ValidID(id) {
		httpapi.WriteError(ctx, fasthttp.StatusBadRequest, "invalid_id", "a product id is 1 to 64 letters, digits, '_' or '-'")
		return
	}
	rep, ok := g.cfg.Products.CachedProduct(id)
	if !ok {
		if g.cfg.Shop != nil && g.cfg.Shop(ctx, "") {
			return
		}
		var err error
		if rep, err = g.cfg.Products.Product(context.Background(), id); err != nil {
			g.readError(ctx, err)
			return
		}
	}
	httpcache.ServeWith(ctx, rep, "application/json", cacheProducts, inm, ae)
}

// CacheProducts is the Cache-Control of product and catalog-page answers: any cache (a CDN
// included) may keep them for a few seconds and serve them stale for a while longer while it
// revalidates with the ETag; the edge itself is kept fresh by invalidation, not by this.
const CacheProducts = "public, max-age=5, stale-while-revalidate=30"

var cacheProducts = []byte(CacheProducts)

func (g *Gateway) listProducts(ctx *fasthttp.RequestCtx) {
	args := ctx.QueryArgs()
	limit, after, err := product.ParsePage(args.Peek("limit"), args.Peek("cursor"))
	if err != nil {
		g.readError(ctx, err)
		return
	}
	rep, ok := g.cfg.Products.CachedPage(limit, after)
	if !ok {
		if g.cfg.Shop != nil && g.cfg.Shop(ctx, "") {
			return
		}
		if rep, err = g.cfg.Products.Page(context.Background(), limit, after); err != nil {
			g.readError(ctx, err)
			return
		}
	}
	httpcache.Serve(ctx, rep, "application/json", cacheProducts)
}

func (g *Gateway) readError(ctx *fasthttp.RequestCtx, err error) {
	switch {
	case errors.Is(err, productcache.ErrNotFound):
		httpapi.WriteError(ctx, fasthttp.StatusNotFound, "not_found", "no product has this id")
	case errors.Is(err, product.ErrBadLimit):
		httpapi.WriteError(ctx, fasthttp.StatusBadRequest, "invalid_limit", product.LimitRule)
	case errors.Is(err, product.ErrBadCursor):
		httpapi.WriteError(ctx, fasthttp.StatusBadRequest, "invalid_cursor", product.CursorRule)
	default:
		g.cfg.Log.Error("product read", "err", err, "request_id", string(ctx.Response.Header.Peek(obs.HeaderRequestID)))
		ctx.Response.Header.Set("Retry-After", "5")
		httpapi.WriteError(ctx, fasthttp.StatusServiceUnavailable, "store_unavailable",
			"The shop is under maintenance, please come back later. / Cửa hàng đang bảo trì, vui lòng quay lại sau.")
	}
}

// user verifies the session, charges the call to the user's shopping budget (Config.Shop) and
// passes the user id to the backend in a header the edge sets itself (the hot path dropped a
// client-sent copy before routing).
func (g *Gateway) user(next fasthttp.RequestHandler) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		uid, err := g.cfg.Sessions.FromRequest(ctx)
		if err != nil {
			httpapi.WriteError(ctx, fasthttp.StatusUnauthorized, "unauthorized", "log in first: a valid, unexpired session token is required")
			return
		}
		if g.cfg.Shop != nil && g.cfg.Shop(ctx, uid) {
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

// FirstForwarder is a Forwarder that can also send a request ahead of the others queued for
// the same backend (*upstream.Pool's ForwardFirst), for the requests that finish a purchase.
type FirstForwarder interface {
	ForwardFirst(ctx *fasthttp.RequestCtx)
}

// BatchForwarder is a Forwarder that can also send a request together with others waiting for
// the same backend (*upstream.Pool's ForwardBatched), for the requests a rush sends by the
// thousand (flash-sale attempts).
type BatchForwarder interface {
	ForwardBatched(ctx *fasthttp.RequestCtx)
}

// forwardFirstOrUnavailable is forwardOrUnavailable with ForwardFirst when f has it.
func forwardFirstOrUnavailable(f Forwarder) fasthttp.RequestHandler {
	if ff, ok := f.(FirstForwarder); ok {
		return ff.ForwardFirst
	}
	return forwardOrUnavailable(f)
}

// Timeouts the edge server uses; a backend call's budget (upstream Timeout) must stay below
// the write timeout so an answer is always written.
const (
	ReadTimeout  = 5 * time.Second
	WriteTimeout = 10 * time.Second
)
