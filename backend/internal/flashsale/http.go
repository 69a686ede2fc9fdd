package flashsale

import (
	"errors"
	"log/slog"
	"strconv"
	"time"

	"github.com/fasthttp/router"
	"github.com/valyala/fasthttp"

	"flashedge/shared/httpapi"
	"flashedge/shared/obs"
	"flashedge/shared/sale"
)

// statusTooEarly is 425, which fasthttp does not name.
const statusTooEarly = 425

// HandlerOptions configure a Handler.
type HandlerOptions struct {
	// AdminToken is the bearer token of the admin routes (FLASHEDGE_ADMIN_TOKEN). Required.
	AdminToken string
	// Log receives errors the handlers answer with 503. Nil means the Service's logger.
	Log *slog.Logger
}

// Handler serves the flash-sale routes of the order service. It is safe for concurrent use.
type Handler struct {
	s         *Service
	adminOnly func(fasthttp.RequestHandler) fasthttp.RequestHandler
	log       *slog.Logger
}

// NewHandler returns the HTTP layer over s.
func NewHandler(s *Service, o HandlerOptions) (*Handler, error) {
	if s == nil {
		return nil, errors.New("flashsale: NewHandler needs a Service")
	}
	if o.AdminToken == "" {
		return nil, errors.New("flashsale: HandlerOptions.AdminToken is required: set FLASHEDGE_ADMIN_TOKEN")
	}
	log := o.Log
	if log == nil {
		log = s.o.Log
	}
	return &Handler{s: s, adminOnly: httpapi.Admin(o.AdminToken), log: log}, nil
}

// Register adds the flash-sale routes to r:
//
//	POST /api/v1/admin/flash-sales                    create + preheat (admin bearer token)
//	GET  /api/v1/admin/flash-sales/{id}/ledger        the ledger and its audit (admin)
//	GET  /api/v1/flash-sales                          list
//	GET  /api/v1/flash-sales/{id}                     one sale with its state
//	POST /api/v1/flash-sales/{id}/attempts            an attempt (user, Idempotency-Key)
//	GET  /api/v1/flash-sales/{id}/attempts/{ticket}   a ticket's result (user)
//	POST /api/v1/flash-sales/{id}/checkout            buy with a seckill token (user)
//
// User routes take the user id from httpapi.HeaderUserID, which the edge sets after verifying the
// session; a request without it gets 401.
func (h *Handler) Register(r *router.Router) {
	r.POST("/api/v1/admin/flash-sales", h.adminOnly(h.create))
	r.GET("/api/v1/admin/flash-sales/{id}/ledger", h.adminOnly(h.ledger))
	r.GET("/api/v1/flash-sales", h.list)
	r.GET("/api/v1/flash-sales/{id}", h.get)
	r.POST("/api/v1/flash-sales/{id}/attempts", httpapi.RequireUser(h.attempt))
	r.GET("/api/v1/flash-sales/{id}/attempts/{ticket}", httpapi.RequireUser(h.poll))
	r.POST("/api/v1/flash-sales/{id}/checkout", httpapi.RequireUser(h.checkout))
}

func param(ctx *fasthttp.RequestCtx, name string) string {
	v, _ := ctx.UserValue(name).(string)
	return v
}

// storeFailed answers a store error: 503 with Retry-After, logged with the request id.
func (h *Handler) storeFailed(ctx *fasthttp.RequestCtx, err error) {
	h.log.Error("flash-sale store call failed", "err", err, "path", string(ctx.Path()),
		"request_id", string(ctx.Request.Header.Peek(obs.HeaderRequestID)))
	ctx.Response.Header.Set("Retry-After", "1")
	httpapi.WriteError(ctx, fasthttp.StatusServiceUnavailable, "store_unavailable", "the store did not answer; please retry shortly")
}

// fail maps domain errors to the contract's answers; anything else is a store failure.
func (h *Handler) fail(ctx *fasthttp.RequestCtx, err error) {
	switch {
	case errors.Is(err, ErrInvalid):
		httpapi.WriteError(ctx, fasthttp.StatusBadRequest, "invalid_request", err.Error())
	case errors.Is(err, ErrNotFound):
		httpapi.WriteRawJSON(ctx, fasthttp.StatusNotFound, sale.UnknownSaleBody)
	case errors.Is(err, ErrConflict):
		httpapi.WriteError(ctx, fasthttp.StatusConflict, "sale_exists", "a different flash sale with this id exists")
	case errors.Is(err, ErrNoProduct):
		httpapi.WriteError(ctx, fasthttp.StatusUnprocessableEntity, "unknown_product", "product_id names no product")
	case errors.Is(err, ErrNotStarted):
		httpapi.WriteRawJSON(ctx, statusTooEarly, sale.NotStartedBody)
	case errors.Is(err, ErrEnded):
		httpapi.WriteRawJSON(ctx, fasthttp.StatusGone, sale.EndedBody)
	case errors.Is(err, ErrBadChallenge):
		httpapi.WriteError(ctx, fasthttp.StatusForbidden, "bad_challenge", "the challenge is missing, expired, already used, not yours or wrongly answered; fetch a new one")
	case errors.Is(err, ErrReusedKey):
		httpapi.WriteError(ctx, fasthttp.StatusUnprocessableEntity, "idempotency_key_reused", "this Idempotency-Key was used for another attempt")
	case errors.Is(err, ErrTicketUnknown):
		httpapi.WriteRawJSON(ctx, fasthttp.StatusNotFound, sale.UnknownTicketBody)
	case errors.Is(err, ErrTokenNotFound):
		httpapi.WriteError(ctx, fasthttp.StatusNotFound, "token_not_found", "no such seckill token")
	case errors.Is(err, ErrTokenUsed):
		httpapi.WriteError(ctx, fasthttp.StatusConflict, "token_used", "this seckill token was already used")
	case errors.Is(err, ErrTokenExpired):
		httpapi.WriteError(ctx, fasthttp.StatusGone, "token_expired", "this seckill token has expired")
	default:
		h.storeFailed(ctx, err)
	}
}

// writeSales answers the public views of vs: one object, or {"items":[...]} when list.
func (h *Handler) writeSales(ctx *fasthttp.RequestCtx, status int, vs []SaleView, list bool) {
	body := make([]byte, 0, 320*len(vs)+16)
	if list {
		body = append(body, sale.ListOpen...)
	}
	for i, v := range vs {
		if i > 0 {
			body = append(body, ',')
		}
		body = sale.Render(v.Sale).AppendJSON(body, v.State)
	}
	if list {
		body = append(body, sale.ListClose...)
	}
	httpapi.WriteRawJSON(ctx, status, body)
}

func (h *Handler) create(ctx *fasthttp.RequestCtx) {
	var in SaleInput
	if !httpapi.DecodeJSON(ctx, &in) {
		return
	}
	sctx, cancel := h.s.storeCtx()
	defer cancel()
	sl, created, err := h.s.CreateSale(sctx, in)
	if err != nil {
		h.fail(ctx, err)
		return
	}
	status := fasthttp.StatusOK
	if created {
		status = fasthttp.StatusCreated
	}
	h.writeSales(ctx, status, []SaleView{{sl, sl.State(h.s.now(), sl.Stock == 0)}}, false)
}

// ledgerJSON is the ledger route's answer: the counters (the fields it always had) and the
// audit recomputed from the primary records, which names every counter the records disagree with.
type ledgerJSON struct {
	Ledger
	Audit *Audit `json:"audit,omitempty"`
}

// ledger answers the counters and the audit. Query parameters: settled=true when the caller
// knows the sale is at rest (see AuditOptions.Settled), final_within=<duration> the bound on
// deciding a ticket (default (MaxRequeues+2) x RequeueAfter; negative disables the check),
// audit=false for the counters alone (a cheap read for frequent sampling during a rush: the
// audit reads every record of the sale).
func (h *Handler) ledger(ctx *fasthttp.RequestCtx) {
	var o AuditOptions
	args := ctx.QueryArgs()
	withAudit := true
	if v := args.Peek("audit"); v != nil {
		b, err := strconv.ParseBool(string(v))
		if err != nil {
			httpapi.WriteError(ctx, fasthttp.StatusBadRequest, "invalid_request", "audit must be true or false")
			return
		}
		withAudit = b
	}
	if v := args.Peek("settled"); v != nil {
		b, err := strconv.ParseBool(string(v))
		if err != nil {
			httpapi.WriteError(ctx, fasthttp.StatusBadRequest, "invalid_request", "settled must be true or false")
			return
		}
		o.Settled = b
	}
	if v := args.Peek("final_within"); v != nil {
		d, err := time.ParseDuration(string(v))
		if err != nil || d == 0 {
			httpapi.WriteError(ctx, fasthttp.StatusBadRequest, "invalid_request", "final_within must be a non-zero duration such as 3m (negative: no bound)")
			return
		}
		o.FinalWithin = d
	}
	sctx, cancel := h.s.storeCtx()
	defer cancel()
	l, err := h.s.Ledger(sctx, param(ctx, "id"))
	if err != nil {
		h.fail(ctx, err)
		return
	}
	if !withAudit {
		httpapi.WriteJSON(ctx, fasthttp.StatusOK, ledgerJSON{Ledger: l})
		return
	}
	a, err := h.s.Audit(sctx, param(ctx, "id"), o)
	if errors.Is(err, ErrAuditTooLarge) {
		httpapi.WriteError(ctx, fasthttp.StatusUnprocessableEntity, "audit_too_large", err.Error())
		return
	}
	if err != nil {
		h.fail(ctx, err)
		return
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, ledgerJSON{l, &a})
}

func (h *Handler) list(ctx *fasthttp.RequestCtx) {
	sctx, cancel := h.s.storeCtx()
	defer cancel()
	views, err := h.s.ListSales(sctx)
	if err != nil {
		h.fail(ctx, err)
		return
	}
	h.writeSales(ctx, fasthttp.StatusOK, views, true)
}

func (h *Handler) get(ctx *fasthttp.RequestCtx) {
	sctx, cancel := h.s.storeCtx()
	defer cancel()
	v, err := h.s.GetSale(sctx, param(ctx, "id"))
	if err != nil {
		h.fail(ctx, err)
		return
	}
	h.writeSales(ctx, fasthttp.StatusOK, []SaleView{v}, false)
}

// attemptBody is the body of an attempt. parseAttemptBody reads the usual form; anything else
// goes through httpapi.DecodeJSON, which decides what is acceptable.
type attemptBody struct {
	ChallengeID string `json:"challenge_id"`
	Answer      string `json:"answer"`
	// Pass is the waiting room's admission pass, checked by the edge before it forwards.
	Pass string `json:"pass"`
}

func (h *Handler) attempt(ctx *fasthttp.RequestCtx, user string) {
	body, ok := parseAttemptBody(ctx.PostBody())
	if !ok && !httpapi.DecodeJSON(ctx, &body) {
		return
	}
	sctx, cancel := h.s.storeCtx()
	defer cancel()
	ans, err := h.s.Attempt(sctx, AttemptInput{
		User: user, SaleID: param(ctx, "id"), ChallengeID: body.ChallengeID, Answer: body.Answer,
		IdempotencyKey: string(ctx.Request.Header.Peek(httpapi.HeaderIdempotencyKey)),
	})
	if err != nil {
		h.fail(ctx, err)
		return
	}
	if ans.Replay {
		ctx.Response.Header.Set("Idempotent-Replayed", "true")
	}
	h.writeAttempt(ctx, ans)
}

// writeAttempt renders an attempt answer; it depends on the stored answer only, so a replay gets
// the same status and body as the first answer.
func (h *Handler) writeAttempt(ctx *fasthttp.RequestCtx, ans AttemptAnswer) {
	switch ans.Outcome {
	case OutcomeAdmitted:
		// {"ticket","status":"queued","poll_after_ms"}, rendered without reflection; a ticket is hex.
		ctx.SetStatusCode(fasthttp.StatusAccepted)
		ctx.SetContentType("application/json")
		var buf [160]byte
		b := append(buf[:0], `{"ticket":"`...)
		b = append(b, ans.Ticket...)
		b = append(b, `","status":"`+StatusQueued+`","poll_after_ms":`...)
		b = strconv.AppendInt(b, h.s.o.PollAfter.Milliseconds(), 10)
		ctx.SetBody(append(b, "}\n"...))
	case OutcomeSoldOut:
		httpapi.WriteRawJSON(ctx, fasthttp.StatusGone, sale.SoldOutBody)
	case OutcomeLimitReached:
		httpapi.WriteError(ctx, fasthttp.StatusConflict, "limit_reached", "you already hold as many units of this sale as one shopper may")
	case OutcomeAttemptPending:
		httpapi.WriteError(ctx, fasthttp.StatusConflict, "attempt_pending", "your earlier attempt is still being decided; poll its ticket")
	case OutcomeBusyBacklog, OutcomeBusyAdmission:
		httpapi.SetRetryAfter(ctx, time.Duration(ans.RetryAfter)*time.Second)
		httpapi.WriteError(ctx, fasthttp.StatusTooManyRequests, "busy", "too many attempts are being decided; try again with a new challenge after Retry-After seconds")
	default:
		h.storeFailed(ctx, errors.New("unknown attempt outcome "+ans.Outcome))
	}
}

func (h *Handler) poll(ctx *fasthttp.RequestCtx, user string) {
	sctx, cancel := h.s.storeCtx()
	defer cancel()
	r, err := h.s.GetResult(sctx, user, param(ctx, "id"), param(ctx, "ticket"))
	if err != nil {
		h.fail(ctx, err)
		return
	}
	ctx.Response.Header.Set(fasthttp.HeaderCacheControl, "no-store")
	httpapi.WriteRawJSON(ctx, fasthttp.StatusOK, r.AppendJSON(nil))
}

type checkoutBody struct {
	Token string `json:"token"`
}

func (h *Handler) checkout(ctx *fasthttp.RequestCtx, user string) {
	var body checkoutBody
	if !httpapi.DecodeJSON(ctx, &body) {
		return
	}
	sctx, cancel := h.s.storeCtx()
	defer cancel()
	order, err := h.s.Checkout(sctx, user, param(ctx, "id"), body.Token)
	if err != nil {
		h.fail(ctx, err)
		return
	}
	httpapi.WriteRawJSON(ctx, fasthttp.StatusCreated, order)
}

// parseAttemptBody reads the body every client sends, {"challenge_id":"...","answer":"..."}
// (with "pass" too in a waiting room), without reflection or a decoder: an object of those keys,
// each at most once, spelled exactly so, with string values of printable ASCII without escapes,
// white space allowed where JSON allows it and nothing after the object. It reports false for
// anything else, which httpapi.DecodeJSON then decides, so both accept and refuse the same bodies
// with the same answers (FuzzAttemptBody compares them).
func parseAttemptBody(b []byte) (attemptBody, bool) {
	var out attemptBody
	var seen [3]bool
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return out, false
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return out, skipSpace(b, i+1) == len(b)
	}
	for {
		key, j, ok := plainString(b, i)
		if !ok {
			return out, false
		}
		i = skipSpace(b, j)
		if i >= len(b) || b[i] != ':' {
			return out, false
		}
		val, j, ok := plainString(b, skipSpace(b, i+1))
		if !ok {
			return out, false
		}
		var field int
		switch string(key) {
		case "challenge_id":
			field, out.ChallengeID = 0, string(val)
		case "answer":
			field, out.Answer = 1, string(val)
		case "pass":
			field, out.Pass = 2, string(val)
		default:
			return out, false
		}
		if seen[field] {
			return out, false
		}
		seen[field] = true
		i = skipSpace(b, j)
		if i >= len(b) {
			return out, false
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return out, skipSpace(b, i+1) == len(b)
		default:
			return out, false
		}
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// plainString reads a JSON string at b[i] made of printable ASCII without escapes and returns its
// content and the index after its closing quote.
func plainString(b []byte, i int) ([]byte, int, bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, i, false
	}
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return b[i+1 : j], j + 1, true
		case c < 0x20 || c >= 0x7f || c == '\\':
			return nil, j, false
		}
	}
	return nil, len(b), false
}
