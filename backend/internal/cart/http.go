package cart

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/fasthttp/router"
	"github.com/valyala/fasthttp"

	"flashedge/shared/httpapi"
	"flashedge/shared/obs"
	"flashedge/shared/product"
)

// Options configure New. Zero values take the defaults named on each field.
type Options struct {
	// Timeout bounds the work of one request, store and catalog calls together (fasthttp's
	// context has no deadline). Zero means 5s.
	Timeout time.Duration
	// Log receives one line per request that fails with 5xx. Nil discards.
	Log *slog.Logger
}

// Service answers the cart routes. It is safe for concurrent use.
type Service struct {
	store   *Store
	prices  Prices
	timeout time.Duration
	log     *slog.Logger
	scratch sync.Pool // *scratch
}

// scratch is one request's working memory, reused through Service.scratch so that an add
// allocates nothing of its own: the cart's lines, their products, the lookups and the body.
type scratch struct {
	lines []Line
	prods []Product // prods[i] is the product of lines[i]
	ids   []string  // looked up before a write
	found []Product // their products
	miss  []string  // looked up while rendering
	missP []Product
	at    []int // where each of miss goes in prods
	body  []byte
}

func (s *Service) getScratch() *scratch {
	if sc, ok := s.scratch.Get().(*scratch); ok {
		return sc
	}
	return &scratch{}
}

// putScratch returns sc to the pool, dropping what it refers to (the store's answers) so the
// pool does not keep it alive; an outsized body buffer is dropped with it.
func (s *Service) putScratch(sc *scratch) {
	clear(sc.lines)
	clear(sc.prods)
	clear(sc.ids)
	clear(sc.found)
	clear(sc.miss)
	clear(sc.missP)
	if cap(sc.body) > 64<<10 {
		sc.body = nil
	}
	s.scratch.Put(sc)
}

// sized returns s with length n, reusing its array when it is large enough.
func sized[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n, max(n, 2*cap(s)))
	}
	return s[:n]
}

// New returns the cart service over store, reading product names and prices through prices
// (StorePrices, or CatalogPrices for the catalog service's replicas).
func New(store *Store, prices Prices, o Options) *Service {
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Service{store: store, prices: prices, timeout: o.Timeout, log: o.Log}
}

// View is the cart as shoppers see it. Price is the catalog's current unit price; Total is the
// sum of price x quantity. Lines whose product the catalog no longer knows are left out.
type View struct {
	Items []ViewItem `json:"items"`
	Total int64      `json:"total"`
}

// ViewItem is one line of a View.
type ViewItem struct {
	ProductID string `json:"product_id"`
	Name      string `json:"name"`
	Quantity  int    `json:"quantity"`
	Price     int64  `json:"price"`
}

// Register adds the cart routes to r. Every route acts on the cart of the user named by the
// header httpapi.HeaderUserID (401 without it):
//
//	GET    /api/v1/cart                       200 View
//	PUT    /api/v1/cart/items/{product_id}    body {"quantity":n}, 0..MaxQuantity (0 removes): 200 View
//	DELETE /api/v1/cart/items/{product_id}    200 View
//	GET    /internal/v1/cart                  200 {"items":[{"product_id","quantity"}]}, no catalog calls
//	DELETE /internal/v1/cart                  204; no body clears the cart, a body
//	                                          {"order_id"?,"items":[{"product_id","quantity"}]} subtracts
//	                                          ordered lines, once per order_id when one is given
//
// The /internal routes serve the order service; the edge must not route them.
func (s *Service) Register(r *router.Router) {
	r.GET("/api/v1/cart", s.withUser(s.get))
	r.PUT("/api/v1/cart/items/{product_id}", s.withUser(s.put))
	r.DELETE("/api/v1/cart/items/{product_id}", s.withUser(s.remove))
	r.GET("/internal/v1/cart", s.withUser(s.lines))
	r.DELETE("/internal/v1/cart", s.withUser(s.clear))
}

type userHandler func(c context.Context, ctx *fasthttp.RequestCtx, user string)

// withUser reads the user id from the edge's header, answering 401 itself when it is missing
// or not a user id, and bounds the request's work with the Timeout.
func (s *Service) withUser(h userHandler) fasthttp.RequestHandler {
	return httpapi.RequireUser(func(ctx *fasthttp.RequestCtx, user string) {
		c, cancel := context.WithTimeout(context.Background(), s.timeout)
		defer cancel()
		h(c, ctx, user)
	})
}

func (s *Service) get(c context.Context, ctx *fasthttp.RequestCtx, user string) {
	s.writeView(c, ctx, user)
}

type putRequest struct {
	Quantity *int `json:"quantity"`
}

// quantity reads a PUT body: the usual {"quantity":N} without a decoder, anything else through
// httpapi.DecodeJSON, which refuses unknown fields (a price, a user id: prices only ever come
// from the catalog and the user only from the edge) and answers 400 itself.
func quantity(ctx *fasthttp.RequestCtx) (int, bool) {
	q, ok := quickQuantity(ctx.PostBody())
	if !ok {
		var in putRequest
		if !httpapi.DecodeJSON(ctx, &in) {
			return 0, false
		}
		if in.Quantity == nil {
			q = -1
		} else {
			q = *in.Quantity
		}
	}
	if q < 0 || q > MaxQuantity {
		httpapi.WriteError(ctx, fasthttp.StatusUnprocessableEntity, "invalid_quantity",
			fmt.Sprintf("quantity must be a whole number from 0 (remove) to %d", MaxQuantity))
		return 0, false
	}
	return q, true
}

func (s *Service) put(c context.Context, ctx *fasthttp.RequestCtx, user string) {
	id, ok := productID(ctx)
	if !ok {
		return
	}
	q, ok := quantity(ctx)
	if !ok {
		return
	}
	if q == 0 {
		if err := s.store.Remove(c, user, id); err != nil {
			s.fail(ctx, err)
			return
		}
		s.writeView(c, ctx, user)
		return
	}
	sc := s.getScratch()
	defer s.putScratch(sc)
	if s.prices.Local() {
		// The product must exist before it is added: a lookup in memory. The set answers the
		// whole cart as it is then, priced from memory too: one store round trip in all.
		sc.ids, sc.found = append(sc.ids[:0], id), sized(sc.found, 1)
	} else {
		// One catalog call prices the product added and every line already in the cart; only a
		// line another request added meanwhile is looked up again.
		lines, err := s.store.Lines(c, user, sc.lines[:0])
		if err != nil {
			s.fail(ctx, err)
			return
		}
		sc.lines = lines
		sc.ids = append(sc.ids[:0], id)
		for _, l := range lines {
			if l.ProductID != id {
				sc.ids = append(sc.ids, l.ProductID)
			}
		}
		sc.found = sized(sc.found, len(sc.ids))
	}
	err := s.prices.Products(c, requestID(ctx), sc.ids, sc.found)
	if err == nil && sc.found[0].ID == "" {
		err = fmt.Errorf("%w: %s", ErrProductNotFound, id)
	}
	if err == nil {
		sc.lines, err = s.store.Set(c, user, id, q, sc.lines[:0])
	}
	if err != nil {
		s.fail(ctx, err)
		return
	}
	s.renderLines(c, ctx, sc, sc.ids, sc.found)
}

func (s *Service) remove(c context.Context, ctx *fasthttp.RequestCtx, user string) {
	id, ok := productID(ctx)
	if !ok {
		return
	}
	if err := s.store.Remove(c, user, id); err != nil {
		s.fail(ctx, err)
		return
	}
	s.writeView(c, ctx, user)
}

type linesBody struct {
	Items []Line `json:"items"`
}

type subtractBody struct {
	OrderID string `json:"order_id"`
	Items   []Line `json:"items"`
}

func (s *Service) lines(c context.Context, ctx *fasthttp.RequestCtx, user string) {
	lines, err := s.store.Lines(c, user, nil)
	if err != nil {
		s.fail(ctx, err)
		return
	}
	if lines == nil {
		lines = []Line{}
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, linesBody{Items: lines})
}

func (s *Service) clear(c context.Context, ctx *fasthttp.RequestCtx, user string) {
	var err error
	if len(ctx.PostBody()) == 0 {
		err = s.store.Clear(c, user)
	} else {
		var in subtractBody
		if !httpapi.DecodeJSON(ctx, &in) {
			return
		}
		if in.OrderID != "" && !product.ValidID([]byte(in.OrderID)) {
			httpapi.WriteError(ctx, fasthttp.StatusBadRequest, "invalid_order_id", "order_id must be 1 to 64 of A-Z a-z 0-9 _ -")
			return
		}
		for _, l := range in.Items {
			if !product.ValidID([]byte(l.ProductID)) || l.Quantity < 1 || l.Quantity > MaxQuantity {
				httpapi.WriteError(ctx, fasthttp.StatusBadRequest, "invalid_line",
					fmt.Sprintf("each item needs a product_id and a quantity from 1 to %d", MaxQuantity))
				return
			}
		}
		err = s.store.Subtract(c, user, in.OrderID, in.Items)
	}
	if err != nil {
		s.fail(ctx, err)
		return
	}
	ctx.SetStatusCode(fasthttp.StatusNoContent)
}

// writeView renders the user's cart as the store holds it now, with the catalog's names and
// prices, looked up in one call.
func (s *Service) writeView(c context.Context, ctx *fasthttp.RequestCtx, user string) {
	sc := s.getScratch()
	defer s.putScratch(sc)
	lines, err := s.store.Lines(c, user, sc.lines[:0])
	if err != nil {
		s.fail(ctx, err)
		return
	}
	sc.lines = lines
	s.renderLines(c, ctx, sc, nil, nil)
}

// renderLines answers the View of sc.lines. The products of ids are in known (known[i] that of
// ids[i], an empty ID for none); those of the lines they lack (a line another request of the
// same user added meanwhile, or every line) are looked up in one call.
func (s *Service) renderLines(c context.Context, ctx *fasthttp.RequestCtx, sc *scratch, ids []string, known []Product) {
	lines := sc.lines
	sc.prods = sized(sc.prods, len(lines))
	sc.miss, sc.at = sc.miss[:0], sc.at[:0]
	for i, l := range lines {
		k := slices.Index(ids, l.ProductID)
		if k >= 0 {
			sc.prods[i] = known[k]
			continue
		}
		sc.miss = append(sc.miss, l.ProductID)
		sc.at = append(sc.at, i)
	}
	if len(sc.miss) > 0 {
		sc.missP = sized(sc.missP, len(sc.miss))
		if err := s.prices.Products(c, requestID(ctx), sc.miss, sc.missP); err != nil {
			s.fail(ctx, err)
			return
		}
		for k, i := range sc.at {
			sc.prods[i] = sc.missP[k]
		}
	}
	sc.body = appendView(sc.body[:0], lines, sc.prods)
	// A cart is one shopper's: no shared cache may keep it, no browser cache either.
	ctx.Response.Header.Set(fasthttp.HeaderCacheControl, "no-store")
	httpapi.WriteRawJSON(ctx, fasthttp.StatusOK, sc.body)
}

// productID returns the {product_id} path parameter. An id that cannot name a product cannot be
// in the catalog either: 404, answered here.
func productID(ctx *fasthttp.RequestCtx) (string, bool) {
	id, _ := ctx.UserValue("product_id").(string)
	if !product.ValidID([]byte(id)) {
		httpapi.WriteError(ctx, fasthttp.StatusNotFound, "product_not_found", "no product has this id")
		return "", false
	}
	return id, true
}

func requestID(ctx *fasthttp.RequestCtx) []byte { return ctx.Request.Header.Peek(obs.HeaderRequestID) }

// fail maps a domain error to its answer; failures of dependencies are logged here, where they end.
func (s *Service) fail(ctx *fasthttp.RequestCtx, err error) {
	switch {
	case errors.Is(err, ErrProductNotFound):
		httpapi.WriteError(ctx, fasthttp.StatusNotFound, "product_not_found", "no product has this id")
	case errors.Is(err, ErrCartFull):
		httpapi.WriteError(ctx, fasthttp.StatusUnprocessableEntity, "cart_full",
			fmt.Sprintf("a cart holds at most %d different products; remove one first", MaxLines))
	case errors.Is(err, ErrCatalogUnavailable):
		s.logFailure(ctx, err)
		ctx.Response.Header.Set(fasthttp.HeaderRetryAfter, "1")
		httpapi.WriteError(ctx, fasthttp.StatusServiceUnavailable, "catalog_unavailable", "product data is unavailable right now; retry shortly")
	case errors.Is(err, ErrStoreUnavailable):
		s.logFailure(ctx, err)
		ctx.Response.Header.Set(fasthttp.HeaderRetryAfter, "1")
		httpapi.WriteError(ctx, fasthttp.StatusServiceUnavailable, "store_unavailable", "the cart store did not answer; retry shortly")
	default:
		s.logFailure(ctx, err)
		httpapi.WriteError(ctx, fasthttp.StatusInternalServerError, "internal", "internal error; it has been logged")
	}
}

func (s *Service) logFailure(ctx *fasthttp.RequestCtx, err error) {
	s.log.Error("cart request failed", "err", err, "method", string(ctx.Method()), "path", string(ctx.Path()),
		"request_id", string(requestID(ctx)), "user_id", string(ctx.Request.Header.Peek(httpapi.HeaderUserID)))
}
