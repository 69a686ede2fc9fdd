package order

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/fasthttp/router"
	"github.com/valyala/fasthttp"

	"flashedge/shared/httpapi"
	"flashedge/shared/obs"
	"flashedge/shared/product"
)

// Page sizes of GET /api/v1/orders.
const (
	DefaultLimit = 20
	MaxLimit     = 100
	// maxOffset bounds how deep a listing may page (cursor is an offset).
	maxOffset = 100_000
)

// HeaderReplayed marks an answer repeated from an earlier request with the same Idempotency-Key.
const HeaderReplayed = "Idempotent-Replayed"

// Register adds the order routes to r. Every route acts for the user named by the header
// httpapi.HeaderUserID (401 without it):
//
//	POST /api/v1/orders        header Idempotency-Key, optional body {"expected_total":n}:
//	                           201 Order; 409 out_of_stock / product_unavailable / total_changed /
//	                           idempotency_in_progress; 422 empty_cart / idempotency_key_reused;
//	                           400 without a key or with an unknown body field
//	GET  /api/v1/orders        ?limit=1..100 (20) &cursor=: 200 {"items":[Order...],"next_cursor":""}, newest first
//	GET  /api/v1/orders/{id}   200 Order; 404 when the user has no such order
func (s *Service) Register(r *router.Router) {
	r.POST("/api/v1/orders", httpapi.RequireUser(s.create))
	r.GET("/api/v1/orders", httpapi.RequireUser(s.list))
	r.GET("/api/v1/orders/{id}", httpapi.RequireUser(s.get))
}

// createRequest is the optional body of a checkout. Anything else (prices, user ids, statuses)
// is refused: the order is built from the cart and the catalog only.
type createRequest struct {
	// ExpectedTotal, when set, makes the checkout fail with 409 total_changed instead of
	// charging a total the shopper did not see.
	ExpectedTotal *int64 `json:"expected_total"`
}

func (s *Service) create(ctx *fasthttp.RequestCtx, user string) {
	key := ctx.Request.Header.Peek(httpapi.HeaderIdempotencyKey)
	if len(key) == 0 {
		httpapi.WriteError(ctx, fasthttp.StatusBadRequest, "idempotency_key_required",
			"send an Idempotency-Key header (for example a fresh UUID) with every checkout")
		return
	}
	if !httpapi.ValidIdempotencyKey(key) {
		httpapi.WriteError(ctx, fasthttp.StatusBadRequest, "invalid_idempotency_key",
			httpapi.IdempotencyKeyRule)
		return
	}
	var in createRequest
	if len(ctx.PostBody()) > 0 && !httpapi.DecodeJSON(ctx, &in) {
		return
	}
	sum := sha256.Sum256(ctx.PostBody())
	fingerprint := hex.EncodeToString(sum[:])
	keyStr := string(key)
	rid := ctx.Request.Header.Peek(obs.HeaderRequestID)

	c, cancel := context.WithTimeout(context.Background(), s.o.CheckoutTimeout)
	defer cancel()
	claim, err := s.store.Claim(c, user, keyStr, fingerprint, s.o.PendingTTL)
	if err != nil {
		s.logFailure(ctx, user, err)
		ctx.Response.Header.Set(fasthttp.HeaderRetryAfter, "1")
		httpapi.WriteError(ctx, fasthttp.StatusServiceUnavailable, "store_unavailable", "orders cannot be placed right now; retry shortly with the same Idempotency-Key")
		return
	}
	switch claim.State {
	case Replay:
		ctx.Response.Header.Set(HeaderReplayed, "true")
		httpapi.WriteRawJSON(ctx, claim.Status, claim.Body)
		return
	case InProgress:
		ctx.Response.Header.Set(fasthttp.HeaderRetryAfter, "1")
		httpapi.WriteError(ctx, fasthttp.StatusConflict, "idempotency_in_progress",
			"a checkout with this Idempotency-Key is still running; retry in a moment to get its answer")
		return
	case Mismatch:
		httpapi.WriteError(ctx, fasthttp.StatusUnprocessableEntity, "idempotency_key_reused",
			"this Idempotency-Key was already used with a different body; use a new key for a new request")
		return
	}

	_, doc, err := s.checkout(c, rid, user, keyStr, claim.Marker, in.ExpectedTotal)
	if err == nil {
		httpapi.WriteRawJSON(ctx, fasthttp.StatusCreated, doc)
		return
	}
	status, code, msg := s.classify(err)
	body := errorBody(code, msg)
	if errors.Is(err, ErrReleaseFailed) || status >= 500 {
		s.logFailure(ctx, user, err)
	}
	if !errors.Is(err, ErrKeyLost) {
		// Business answers become the key's final answer; failures of dependencies free the key
		// so the same request can be sent again.
		keep := 0
		if status < 500 {
			keep = status
		}
		fctx, fcancel := context.WithTimeout(context.WithoutCancel(c), 3*time.Second)
		if ferr := s.store.Finish(fctx, user, keyStr, claim.Marker, keep, body, s.o.AnswerTTL); ferr != nil {
			s.logFailure(ctx, user, fmt.Errorf("end idempotency key: %w", ferr))
		}
		fcancel()
	}
	if status == fasthttp.StatusServiceUnavailable {
		ctx.Response.Header.Set(fasthttp.HeaderRetryAfter, "1")
	}
	httpapi.WriteRawJSON(ctx, status, body)
}

// classify maps a checkout error to its answer.
func (s *Service) classify(err error) (status int, code, msg string) {
	var oos *OutOfStockError
	var gone *ProductUnavailableError
	var changed *TotalChangedError
	switch {
	case errors.As(err, &oos):
		return fasthttp.StatusConflict, "out_of_stock", oos.Error() + "; lower the quantity or remove it from the cart"
	case errors.As(err, &gone):
		return fasthttp.StatusConflict, "product_unavailable", gone.Error() + "; remove it from the cart"
	case errors.As(err, &changed):
		return fasthttp.StatusConflict, "total_changed", changed.Error() + "; review the cart and check out again with a new Idempotency-Key"
	case errors.Is(err, ErrEmptyCart):
		return fasthttp.StatusUnprocessableEntity, "empty_cart", "the cart is empty: add products before checking out"
	case errors.Is(err, ErrKeyLost):
		return fasthttp.StatusConflict, "idempotency_conflict", "this checkout took too long and another request took over its Idempotency-Key; nothing was ordered by this one"
	case errors.Is(err, ErrCartUnavailable):
		return fasthttp.StatusServiceUnavailable, "cart_unavailable", "the cart cannot be read right now; retry shortly with the same Idempotency-Key"
	case errors.Is(err, ErrCatalogUnavailable):
		return fasthttp.StatusServiceUnavailable, "catalog_unavailable", "product data is unavailable right now; retry shortly with the same Idempotency-Key"
	case errors.Is(err, ErrStoreUnavailable), errors.Is(err, context.DeadlineExceeded):
		return fasthttp.StatusServiceUnavailable, "store_unavailable", "orders cannot be placed right now; retry shortly with the same Idempotency-Key"
	default:
		return fasthttp.StatusInternalServerError, "internal", "internal error; it has been logged"
	}
}

func errorBody(code, msg string) []byte {
	b, _ := json.Marshal(httpapi.ErrorBody{Error: httpapi.ErrorDetail{Code: code, Message: msg}})
	return b
}

func (s *Service) list(ctx *fasthttp.RequestCtx, user string) {
	args := ctx.QueryArgs()
	limit := DefaultLimit
	if v := args.Peek("limit"); len(v) > 0 {
		n, err := strconv.Atoi(string(v))
		if err != nil || n < 1 || n > MaxLimit {
			httpapi.WriteError(ctx, fasthttp.StatusBadRequest, "invalid_limit", fmt.Sprintf("limit must be a whole number from 1 to %d", MaxLimit))
			return
		}
		limit = n
	}
	offset := 0
	if v := args.Peek("cursor"); len(v) > 0 {
		n, err := strconv.Atoi(string(v))
		if err != nil || n < 0 || n > maxOffset {
			httpapi.WriteError(ctx, fasthttp.StatusBadRequest, "invalid_cursor", "cursor is not one this service handed out; start again without it")
			return
		}
		offset = n
	}
	c, cancel := context.WithTimeout(context.Background(), s.o.Timeout)
	defer cancel()
	docs, more, err := s.store.List(c, user, offset, limit)
	if err != nil {
		s.readFailed(ctx, user, err)
		return
	}
	b := append(make([]byte, 0, 64+512*len(docs)), `{"items":[`...)
	for i, d := range docs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, d...)
	}
	b = append(b, `],"next_cursor":"`...)
	if more {
		b = strconv.AppendInt(b, int64(offset+limit), 10)
	}
	b = append(b, `"}`...)
	httpapi.WriteRawJSON(ctx, fasthttp.StatusOK, b)
}

func (s *Service) get(ctx *fasthttp.RequestCtx, user string) {
	id, _ := ctx.UserValue("id").(string)
	if !product.ValidID([]byte(id)) { // order ids share the product id alphabet
		httpapi.WriteError(ctx, fasthttp.StatusNotFound, "order_not_found", "you have no order with this id")
		return
	}
	c, cancel := context.WithTimeout(context.Background(), s.o.Timeout)
	defer cancel()
	doc, err := s.store.Get(c, user, id)
	if errors.Is(err, ErrNotFound) {
		httpapi.WriteError(ctx, fasthttp.StatusNotFound, "order_not_found", "you have no order with this id")
		return
	}
	if err != nil {
		s.readFailed(ctx, user, err)
		return
	}
	httpapi.WriteRawJSON(ctx, fasthttp.StatusOK, doc)
}

func (s *Service) readFailed(ctx *fasthttp.RequestCtx, user string, err error) {
	s.logFailure(ctx, user, err)
	ctx.Response.Header.Set(fasthttp.HeaderRetryAfter, "1")
	httpapi.WriteError(ctx, fasthttp.StatusServiceUnavailable, "store_unavailable", "orders cannot be read right now; retry shortly")
}

func (s *Service) logFailure(ctx *fasthttp.RequestCtx, user string, err error) {
	s.o.Log.Error("order request failed", "err", err, "method", string(ctx.Method()), "path", string(ctx.Path()),
		"request_id", string(ctx.Request.Header.Peek(obs.HeaderRequestID)), "user_id", user)
}
