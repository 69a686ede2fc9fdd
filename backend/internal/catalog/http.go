package catalog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"flashedge/shared/httpapi"
	"flashedge/shared/metrics"
	"flashedge/shared/obs"
	"flashedge/shared/product"
)

// MaxLimit is the largest page of GET /api/v1/products (product.ParsePage holds the rule).
const MaxLimit = product.MaxPageLimit

// MaxBatch is the most ids one GET /internal/v1/products may ask for.
const MaxBatch = product.MaxBatch

// Options configures NewHandler.
type Options struct {
	// AdminToken is the bearer token the admin routes require. Required.
	AdminToken string
	// Timeout bounds the store calls of one request (fasthttp's context has no deadline).
	// Zero means 2s.
	Timeout time.Duration
	// Log receives one line per failed store call. Nil discards.
	Log *slog.Logger
	// Draining, when it returns true, makes /ready answer 503. Nil means never.
	Draining func() bool
	// Metrics, when set, adds GET /metrics and GET /metrics.json and makes the router save the
	// matched route pattern for Metrics.Instrument's route label (the caller wraps the handler
	// with it). Nil serves neither.
	Metrics *metrics.Registry
}

// NewHandler returns the catalog's routes over s:
//
//	GET    /health, /ready
//	GET    /api/v1/products?limit=&cursor=    public page  {"items":[...],"next_cursor":"..."}
//	GET    /api/v1/products/{id}              public product (with stock_state, without stock)
//	POST   /api/v1/admin/products             create: 201 admin product (with stock)
//	GET    /api/v1/admin/products/{id}        admin product
//	PUT    /api/v1/admin/products/{id}        partial update: 200 admin product
//	DELETE /api/v1/admin/products/{id}        204
//	GET    /internal/v1/products?ids=a,b,...  batch read for the cart and order services: 200
//	                                          {"items":[public product...]} in the order asked,
//	                                          unknown ids left out; 1 to MaxBatch distinct ids
//	GET    /metrics, /metrics.json            with Options.Metrics
//
// Admin routes need "Authorization: Bearer <AdminToken>". Every error is the contract's JSON
// error. Request ids and access logs are the caller's middlewares to add.
func NewHandler(s *Store, o Options) (fasthttp.RequestHandler, error) {
	if o.AdminToken == "" {
		return nil, errors.New("catalog: an admin token is required (set FLASHEDGE_ADMIN_TOKEN)")
	}
	if o.Timeout == 0 {
		o.Timeout = 2 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	a := &api{store: s, admin: httpapi.Admin(o.AdminToken), timeout: o.Timeout, log: o.Log}
	probe := &httpapi.Probe{Check: s.Ping, Draining: o.Draining}

	r := httpapi.NewRouter()
	r.SaveMatchedRoutePath = o.Metrics != nil
	r.GET("/health", probe.Health)
	r.GET("/ready", probe.Ready)
	if o.Metrics != nil {
		o.Metrics.Register(r)
	}
	r.GET("/api/v1/products", a.list)
	r.GET("/api/v1/products/{id}", a.get)
	r.POST("/api/v1/admin/products", a.admin(a.create))
	r.GET("/api/v1/admin/products/{id}", a.admin(a.adminGet))
	r.PUT("/api/v1/admin/products/{id}", a.admin(a.update))
	r.DELETE("/api/v1/admin/products/{id}", a.admin(a.delete))
	r.GET(product.BatchPath, a.batch)
	return r.Handler, nil
}

type api struct {
	store   *Store
	admin   func(fasthttp.RequestHandler) fasthttp.RequestHandler // httpapi.Admin
	timeout time.Duration
	log     *slog.Logger
}

func (a *api) list(ctx *fasthttp.RequestCtx) {
	args := ctx.QueryArgs()
	limit, after, err := product.ParsePage(args.Peek("limit"), args.Peek("cursor"))
	switch {
	case errors.Is(err, product.ErrBadLimit):
		httpapi.WriteError(ctx, fasthttp.StatusBadRequest, "invalid_limit", product.LimitRule)
		return
	case err != nil:
		httpapi.WriteError(ctx, fasthttp.StatusBadRequest, "invalid_cursor", product.CursorRule)
		return
	}
	sctx, cancel := a.storeContext()
	defer cancel()
	page, err := a.store.List(sctx, after, limit)
	if err != nil {
		a.fail(ctx, err)
		return
	}
	b := append(make([]byte, 0, 256*len(page.Items)+64), `{"items":[`...)
	for i, p := range page.Items {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendProduct(b, p, false)
	}
	b = append(b, `],"next_cursor":"`...)
	b = product.AppendCursor(b, page.Next)
	b = append(b, `"}`...)
	httpapi.WriteRawJSON(ctx, fasthttp.StatusOK, b)
}

func (a *api) get(ctx *fasthttp.RequestCtx)      { a.read(ctx, false) }
func (a *api) adminGet(ctx *fasthttp.RequestCtx) { a.read(ctx, true) }

func (a *api) read(ctx *fasthttp.RequestCtx, withStock bool) {
	id, ok := pathID(ctx)
	if !ok {
		return
	}
	sctx, cancel := a.storeContext()
	defer cancel()
	p, err := a.store.Get(sctx, id)
	if err != nil {
		a.fail(ctx, err)
		return
	}
	httpapi.WriteRawJSON(ctx, fasthttp.StatusOK, appendProduct(nil, p, withStock))
}

// batch answers GET /internal/v1/products?ids=a,b,c: every product a cart or an order needs, in
// one request and one round of store calls, instead of one request per line.
func (a *api) batch(ctx *fasthttp.RequestCtx) {
	ids, ok := product.ParseIDList(ctx.QueryArgs().Peek("ids"), MaxBatch)
	if !ok {
		httpapi.WriteError(ctx, fasthttp.StatusBadRequest, "invalid_ids",
			fmt.Sprintf("ids must be 1 to %d comma-separated product ids", MaxBatch))
		return
	}
	sctx, cancel := a.storeContext()
	defer cancel()
	body, err := a.store.AppendPublicMany(sctx, append(make([]byte, 0, 64+320*len(ids)), `{"items":[`...), ids)
	if err != nil {
		a.fail(ctx, err)
		return
	}
	httpapi.WriteRawJSON(ctx, fasthttp.StatusOK, append(body, "]}"...))
}

func (a *api) create(ctx *fasthttp.RequestCtx) {
	var in product.Input
	if !httpapi.DecodeJSON(ctx, &in) {
		return
	}
	sctx, cancel := a.storeContext()
	defer cancel()
	p, err := a.store.Create(sctx, in)
	if err != nil {
		a.fail(ctx, err)
		return
	}
	ctx.Response.Header.Set(fasthttp.HeaderLocation, "/api/v1/products/"+p.ID)
	httpapi.WriteRawJSON(ctx, fasthttp.StatusCreated, appendProduct(nil, p, true))
}

func (a *api) update(ctx *fasthttp.RequestCtx) {
	id, ok := pathID(ctx)
	if !ok {
		return
	}
	var in product.Input
	if !httpapi.DecodeJSON(ctx, &in) {
		return
	}
	sctx, cancel := a.storeContext()
	defer cancel()
	p, err := a.store.Update(sctx, id, in)
	if err != nil {
		a.fail(ctx, err)
		return
	}
	httpapi.WriteRawJSON(ctx, fasthttp.StatusOK, appendProduct(nil, p, true))
}

func (a *api) delete(ctx *fasthttp.RequestCtx) {
	id, ok := pathID(ctx)
	if !ok {
		return
	}
	sctx, cancel := a.storeContext()
	defer cancel()
	if err := a.store.Delete(sctx, id); err != nil {
		a.fail(ctx, err)
		return
	}
	ctx.SetStatusCode(fasthttp.StatusNoContent)
}

func (a *api) storeContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), a.timeout)
}

// pathID returns the {id} path parameter, answering 400 itself when it cannot name a product.
func pathID(ctx *fasthttp.RequestCtx) (string, bool) {
	id, _ := ctx.UserValue("id").(string)
	if !product.ValidID([]byte(id)) {
		httpapi.WriteError(ctx, fasthttp.StatusBadRequest, "invalid_id",
			"a product id is 1 to 64 of the characters A-Z a-z 0-9 _ -")
		return "", false
	}
	return id, true
}

// fail maps a domain error to its status; store failures are logged here, where they end.
func (a *api) fail(ctx *fasthttp.RequestCtx, err error) {
	switch {
	case errors.Is(err, ErrNotFound):
		httpapi.WriteError(ctx, fasthttp.StatusNotFound, "not_found", "no product has this id")
	case errors.Is(err, product.ErrInvalid):
		httpapi.WriteError(ctx, fasthttp.StatusUnprocessableEntity, "invalid_product", err.Error())
	case errors.Is(err, ErrConflict):
		httpapi.WriteError(ctx, fasthttp.StatusConflict, "conflict", err.Error())
	case errors.Is(err, ErrUnavailable):
		a.logFailure(ctx, err)
		ctx.Response.Header.Set(fasthttp.HeaderRetryAfter, "1")
		httpapi.WriteError(ctx, fasthttp.StatusServiceUnavailable, "store_unavailable", "the product store did not answer; retry shortly")
	default:
		a.logFailure(ctx, err)
		httpapi.WriteError(ctx, fasthttp.StatusInternalServerError, "internal", "internal error; it has been logged")
	}
}

func (a *api) logFailure(ctx *fasthttp.RequestCtx, err error) {
	a.log.Error("catalog request failed", "err", err, "method", string(ctx.Method()),
		"path", string(ctx.Path()), "request_id", string(ctx.Request.Header.Peek(obs.HeaderRequestID)))
}

// appendProduct appends the JSON of p: the public shape (the stored document plus stock_state,
// byte for byte what the edge renders) and, withStock, "stock" for admins.
func appendProduct(dst []byte, p Product, withStock bool) []byte {
	// A Doc always marshals to an object, so AppendPublic cannot fail here.
	dst, _ = product.AppendPublic(dst, product.Marshal(p.Doc), p.Stock)
	if withStock {
		dst = append(dst[:len(dst)-1], `,"stock":`...)
		dst = strconv.AppendInt(dst, p.Stock, 10)
		dst = append(dst, '}')
	}
	return dst
}
