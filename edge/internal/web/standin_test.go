//go:build linux

package web_test

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/bits"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fasthttp/router"
	"github.com/valyala/fasthttp"

	"flashedge/shared/httpapi"
	"flashedge/shared/upstream"
)

// standIn is a small in-test implementation of the JSON routes the storefront calls, so that the
// page has something to talk to in the browser test. It is NOT the edge or any backend: no
// store, no signed tokens, no concurrency limits, just enough behaviour, following
// the public contract (shared/openapi/openapi.json), for one shopper at a time. It records what the page sent (proof-of-work
// answers above all) and every request it could not answer, for the test to check.
type standIn struct {
	now        func() time.Time
	difficulty int

	// maintenance makes every API route answer the edge's maintenance 503.
	maintenance atomic.Bool

	mu         sync.Mutex
	products   []standInProduct
	sales      []map[string]any
	challenges map[string]*standInChallenge
	tickets    map[string]*standInTicket
	tokens     map[string]string // seckill token -> user, while unused
	carts      map[string]map[string]int
	orders     map[string][]map[string]any
	idem       map[string]standInReply // Idempotency-Key -> first answer
	seq        int
	answers    []powAnswer
	attempts   map[string][]string // user -> Idempotency-Keys of the attempts, in order
	busy       map[string]bool     // users already answered 429 once
	problems   []string
}

type standInProduct struct {
	ID, Name, Description, Image, StockState string
	Price                                    int64
}

type standInChallenge struct {
	user, prefix string
	difficulty   int
	used         bool
}

type standInTicket struct {
	user, sale string
	polls      int
}

type standInReply struct {
	status int
	body   any
}

// powAnswer is one proof-of-work answer the page sent.
type powAnswer struct {
	Prefix, Nonce string
	Difficulty    int
}

// leadingZeroBits counts the zero bits at the start of SHA-256(prefix + nonce).
func leadingZeroBits(prefix, nonce string) int {
	sum := sha256.Sum256([]byte(prefix + nonce))
	n := 0
	for _, b := range sum {
		if b != 0 {
			return n + bits.LeadingZeros8(b)
		}
		n += 8
	}
	return n
}

var uuidPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// demoNames gives the stand-in catalog names like the real demo catalog's, one per image.
var demoNames = map[string]string{
	"ao-thun": "Áo thun nam Coolmate cổ tròn cotton 100%", "quan-jean": "Quần jean nữ lưng cao Routine co giãn",
	"giay": "Giày thể thao Biti's Hunter nhẹ êm", "noi-com-dien": "Nồi cơm điện Sharp 1.8L nắp gài",
	"noi-chien": "Nồi chiên không dầu Philips 4.1L", "tai-nghe": "Tai nghe Bluetooth Sony chống ồn",
	"dien-thoai": "Điện thoại Samsung Galaxy A55 128GB", "ca-phe": "Cà phê rang xay Trung Nguyên 500g",
	"my-pham": "Kem chống nắng La Roche-Posay 50ml", "quat-dien": "Quạt đứng Senko 3 cánh hẹn giờ",
	"balo": "Ba lô laptop Mikkor chống nước", "sach": "Sách Nhà Giả Kim (bìa mềm)",
	"do-choi": "Gấu bông Teddy 60cm mềm mịn", "binh-giu-nhiet": "Bình giữ nhiệt Lock&Lock 500ml",
	"ban-phim-chuot": "Bộ bàn phím chuột Logitech không dây", "do-an-vat": "Snack khoai tây Lay's vị tự nhiên",
	"sua": "Sữa tươi Vinamilk không đường 1L", "dong-ho": "Đồng hồ nam Casio dây da",
}

func newStandIn(difficulty int) *standIn {
	s := &standIn{
		now:        time.Now,
		difficulty: difficulty,
		challenges: map[string]*standInChallenge{},
		tickets:    map[string]*standInTicket{},
		tokens:     map[string]string{},
		carts:      map[string]map[string]int{},
		orders:     map[string][]map[string]any{},
		idem:       map[string]standInReply{},
		attempts:   map[string][]string{},
		busy:       map[string]bool{},
	}
	for i := 0; i < 30; i++ {
		slug := categories[i%len(categories)]
		state := "in_stock"
		switch {
		case i%7 == 6:
			state = "out_of_stock"
		case i%5 == 3:
			state = "low"
		}
		name := demoNames[slug]
		if i >= len(categories) {
			name += " (mẫu " + strconv.Itoa(i+1) + ")"
		}
		s.products = append(s.products, standInProduct{
			ID: fmt.Sprintf("%08d", i+1), Name: name, Image: "/img/" + slug + ".svg", StockState: state,
			Description: "Mô tả sản phẩm số " + strconv.Itoa(i+1) + ": hàng chính hãng, giao nhanh.",
			Price:       749_000 + int64(i)*10_000,
		})
	}
	t := s.now().UTC()
	rfc := func(d time.Duration) string { return t.Add(d).Format(time.RFC3339) }
	s.sales = []map[string]any{
		{"id": "fs-live", "product_id": "00000002", "price": 399_000, "stock": 100, "starts_at": rfc(-10 * time.Minute),
			"ends_at": rfc(50 * time.Minute), "per_user_limit": 1, "state": "live"},
		{"id": "fs-soon", "product_id": "00000006", "price": 990_000, "stock": 50, "starts_at": rfc(2*time.Hour + 5*time.Minute),
			"ends_at": rfc(3 * time.Hour), "per_user_limit": 1, "state": "upcoming"},
		{"id": "fs-gone", "product_id": "00000007", "price": 4_990_000, "stock": 20, "starts_at": rfc(-2 * time.Hour),
			"ends_at": rfc(time.Hour), "per_user_limit": 1, "state": "sold_out"},
	}
	return s
}

func (s *standIn) register(r *router.Router) {
	r.GET("/api/v1/products", s.listProducts)
	r.GET("/api/v1/products/{id}", s.getProduct)
	r.POST("/api/v1/session", s.login)
	r.GET("/api/v1/cart", s.user(s.getCart))
	r.PUT("/api/v1/cart/items/{product_id}", s.user(s.putCart))
	r.DELETE("/api/v1/cart/items/{product_id}", s.user(s.deleteCart))
	r.POST("/api/v1/orders", s.user(s.placeOrder))
	r.GET("/api/v1/orders", s.user(s.listOrders))
	r.GET("/api/v1/flash-sales", s.listSales)
	r.POST("/api/v1/flash-sales/{id}/challenge", s.user(s.challenge))
	r.POST("/api/v1/flash-sales/{id}/attempts", s.user(s.attempt))
	r.GET("/api/v1/flash-sales/{id}/attempts/{ticket}", s.user(s.poll))
	r.POST("/api/v1/flash-sales/{id}/checkout", s.user(s.checkout))
	r.NotFound = func(ctx *fasthttp.RequestCtx) {
		s.problem("no route for %s %s", ctx.Method(), ctx.RequestURI())
		httpapi.WriteError(ctx, fasthttp.StatusNotFound, "route_not_found", "no such route")
	}
	r.MethodNotAllowed = func(ctx *fasthttp.RequestCtx) {
		s.problem("method not allowed: %s %s", ctx.Method(), ctx.RequestURI())
		httpapi.WriteError(ctx, fasthttp.StatusMethodNotAllowed, "method_not_allowed", "method not allowed")
	}
}

// Handler answers the maintenance 503 for API routes while maintenance is set, else runs next.
func (s *standIn) Handler(next fasthttp.RequestHandler) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		if s.maintenance.Load() && strings.HasPrefix(string(ctx.Path()), "/api/") {
			ctx.Response.Header.Set("Retry-After", "5")
			httpapi.WriteError(ctx, fasthttp.StatusServiceUnavailable, "service_unavailable", upstream.MaintenanceMessage)
			return
		}
		next(ctx)
	}
}

// AttemptKeys returns the Idempotency-Keys of user's attempts, in order.
func (s *standIn) AttemptKeys(user string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.attempts[user]...)
}

func (s *standIn) problem(format string, a ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.problems = append(s.problems, fmt.Sprintf(format, a...))
}

// Problems returns what the page did that the contract does not allow.
func (s *standIn) Problems() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.problems...)
}

// Answers returns the proof-of-work answers received.
func (s *standIn) Answers() []powAnswer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]powAnswer(nil), s.answers...)
}

// user checks the bearer token ("tok-<name>", no signature: a stand-in) and passes the user on.
func (s *standIn) user(h func(ctx *fasthttp.RequestCtx, user string)) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		auth := string(ctx.Request.Header.Peek("Authorization"))
		user, ok := strings.CutPrefix(auth, "Bearer tok-")
		if !ok || user == "" {
			s.problem("%s %s without a bearer token (%q)", ctx.Method(), ctx.Path(), auth)
			httpapi.WriteError(ctx, fasthttp.StatusUnauthorized, "unauthorized", "log in first")
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		h(ctx, user)
	}
}

func (s *standIn) publicProduct(p standInProduct) map[string]any {
	return map[string]any{"id": p.ID, "name": p.Name, "description": p.Description, "price": p.Price,
		"currency": "VND", "image": p.Image, "stock_state": p.StockState}
}

func (s *standIn) listProducts(ctx *fasthttp.RequestCtx) {
	limit, err := strconv.Atoi(string(ctx.QueryArgs().Peek("limit")))
	if err != nil || limit < 1 || limit > 100 {
		s.problem("products limit %q", ctx.QueryArgs().Peek("limit"))
		limit = 20
	}
	from := 0
	if c := ctx.QueryArgs().Peek("cursor"); len(c) > 0 {
		if from, err = strconv.Atoi(string(c)); err != nil {
			httpapi.WriteError(ctx, fasthttp.StatusBadRequest, "invalid_cursor", "bad cursor")
			return
		}
	}
	items := []map[string]any{}
	for i := from; i < len(s.products) && i < from+limit; i++ {
		items = append(items, s.publicProduct(s.products[i]))
	}
	next := ""
	if from+limit < len(s.products) {
		next = strconv.Itoa(from + limit)
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, map[string]any{"items": items, "next_cursor": next})
}

func (s *standIn) product(id string) (standInProduct, bool) {
	for _, p := range s.products {
		if p.ID == id {
			return p, true
		}
	}
	return standInProduct{}, false
}

func (s *standIn) getProduct(ctx *fasthttp.RequestCtx) {
	p, ok := s.product(ctx.UserValue("id").(string))
	if !ok {
		httpapi.WriteError(ctx, fasthttp.StatusNotFound, "product_not_found", "no such product")
		return
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, s.publicProduct(p))
}

func (s *standIn) login(ctx *fasthttp.RequestCtx) {
	var in struct {
		User string `json:"user"`
	}
	if !httpapi.DecodeJSON(ctx, &in) {
		s.problem("login body %q", ctx.PostBody())
		return
	}
	tok := "tok-" + in.User
	c := fasthttp.AcquireCookie()
	defer fasthttp.ReleaseCookie(c)
	c.SetKey("fe_session")
	c.SetValue(tok)
	c.SetPath("/")
	c.SetHTTPOnly(true)
	ctx.Response.Header.SetCookie(c)
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, map[string]string{"token": tok, "user_id": "u-" + in.User,
		"expires_at": s.now().Add(time.Hour).UTC().Format(time.RFC3339)})
}

func (s *standIn) cartView(user string) map[string]any {
	items := []map[string]any{}
	total := int64(0)
	ids := make([]string, 0, len(s.carts[user]))
	for id := range s.carts[user] {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		p, _ := s.product(id)
		q := s.carts[user][id]
		items = append(items, map[string]any{"product_id": id, "name": p.Name, "quantity": q, "price": p.Price})
		total += int64(q) * p.Price
	}
	return map[string]any{"items": items, "total": total}
}

func (s *standIn) getCart(ctx *fasthttp.RequestCtx, user string) {
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, s.cartView(user))
}

func (s *standIn) putCart(ctx *fasthttp.RequestCtx, user string) {
	id := ctx.UserValue("product_id").(string)
	var in struct {
		Quantity *int `json:"quantity"`
	}
	if !httpapi.DecodeJSON(ctx, &in) || in.Quantity == nil {
		s.problems = append(s.problems, fmt.Sprintf("cart PUT body %q", ctx.PostBody()))
		return
	}
	if _, ok := s.product(id); !ok {
		httpapi.WriteError(ctx, fasthttp.StatusNotFound, "product_not_found", "no such product")
		return
	}
	if s.carts[user] == nil {
		s.carts[user] = map[string]int{}
	}
	if *in.Quantity <= 0 {
		delete(s.carts[user], id)
	} else {
		s.carts[user][id] = *in.Quantity
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, s.cartView(user))
}

func (s *standIn) deleteCart(ctx *fasthttp.RequestCtx, user string) {
	delete(s.carts[user], ctx.UserValue("product_id").(string))
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, s.cartView(user))
}

// idempotent answers a repeated Idempotency-Key with its first answer; ok is false when it did
// (or when the key is missing or not a fresh UUID, which the page always sends).
func (s *standIn) idempotent(ctx *fasthttp.RequestCtx, user string) (key string, ok bool) {
	key = string(ctx.Request.Header.Peek("Idempotency-Key"))
	if !uuidPattern.MatchString(key) {
		s.problems = append(s.problems, fmt.Sprintf("%s %s: Idempotency-Key %q is not a UUID v4", ctx.Method(), ctx.Path(), key))
		httpapi.WriteError(ctx, fasthttp.StatusBadRequest, "idempotency_key_required", "Idempotency-Key is required")
		return "", false
	}
	key = user + " " + string(ctx.Path()) + " " + key
	if r, seen := s.idem[key]; seen {
		httpapi.WriteJSON(ctx, r.status, r.body)
		return "", false
	}
	return key, true
}

func (s *standIn) reply(ctx *fasthttp.RequestCtx, key string, status int, body any) {
	s.idem[key] = standInReply{status, body}
	httpapi.WriteJSON(ctx, status, body)
}

func (s *standIn) newOrder(user string, items []map[string]any, total int64, sale string) map[string]any {
	s.seq++
	o := map[string]any{"id": fmt.Sprintf("OD-%04d", s.seq), "user_id": "u-" + user, "items": items, "total": total,
		"status": "placed", "created_at": s.now().UTC().Format("2006-01-02T15:04:05.000Z07:00")}
	if sale != "" {
		o["id"] = fmt.Sprintf("FS-%04d", s.seq)
		o["flash_sale_id"] = sale
	}
	s.orders[user] = append(s.orders[user], o)
	return o
}

func (s *standIn) placeOrder(ctx *fasthttp.RequestCtx, user string) {
	key, ok := s.idempotent(ctx, user)
	if !ok {
		return
	}
	view := s.cartView(user)
	items := view["items"].([]map[string]any)
	if len(items) == 0 {
		s.reply(ctx, key, fasthttp.StatusUnprocessableEntity, httpapi.ErrorBody{Error: httpapi.ErrorDetail{Code: "cart_empty", Message: "Giỏ hàng trống. / Your cart is empty."}})
		return
	}
	o := s.newOrder(user, items, view["total"].(int64), "")
	delete(s.carts, user)
	s.reply(ctx, key, fasthttp.StatusCreated, o)
}

func (s *standIn) listOrders(ctx *fasthttp.RequestCtx, user string) {
	items := append([]map[string]any{}, s.orders[user]...)
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, map[string]any{"items": items})
}

func (s *standIn) listSales(ctx *fasthttp.RequestCtx) {
	s.mu.Lock()
	defer s.mu.Unlock()
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, map[string]any{"items": s.sales})
}

func (s *standIn) sale(id string) map[string]any {
	for _, sale := range s.sales {
		if sale["id"] == id {
			return sale
		}
	}
	return nil
}

func (s *standIn) challenge(ctx *fasthttp.RequestCtx, user string) {
	sale := s.sale(ctx.UserValue("id").(string))
	switch {
	case sale == nil:
		httpapi.WriteError(ctx, fasthttp.StatusNotFound, "sale_not_found", "no such sale")
		return
	case sale["state"] != "live":
		s.problems = append(s.problems, fmt.Sprintf("challenge asked for a %v sale", sale["state"]))
		httpapi.WriteError(ctx, http.StatusTooEarly, "sale_not_started", "not started")
		return
	}
	var rnd [12]byte
	_, _ = rand.Read(rnd[:])
	s.seq++
	id := fmt.Sprintf("ch-%d", s.seq)
	// A prefix with a non-ASCII part checks that the page hashes UTF-8 bytes, as Go does.
	c := &standInChallenge{user: user, prefix: "fe1:" + hex.EncodeToString(rnd[:]) + ":giá:", difficulty: s.difficulty}
	s.challenges[id] = c
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, map[string]any{
		"challenge_id": id, "kind": "pow-sha256",
		"payload":    map[string]any{"prefix": c.prefix, "difficulty": c.difficulty},
		"expires_at": s.now().Add(time.Minute).UTC().Format(time.RFC3339),
	})
}

func (s *standIn) attempt(ctx *fasthttp.RequestCtx, user string) {
	key, ok := s.idempotent(ctx, user)
	if !ok {
		return
	}
	var in struct {
		ChallengeID string `json:"challenge_id"`
		Answer      string `json:"answer"`
	}
	if !httpapi.DecodeJSON(ctx, &in) {
		s.problems = append(s.problems, fmt.Sprintf("attempt body %q", ctx.PostBody()))
		return
	}
	s.attempts[user] = append(s.attempts[user], string(ctx.Request.Header.Peek("Idempotency-Key")))
	// Users named busy... meet a full admission gate once, as in a rush.
	if strings.HasPrefix(user, "busy") && !s.busy[user] {
		s.busy[user] = true
		ctx.Response.Header.Set("Retry-After", "1")
		s.reply(ctx, key, fasthttp.StatusTooManyRequests, httpapi.ErrorBody{Error: httpapi.ErrorDetail{Code: "busy",
			Message: "Quá đông, vui lòng thử lại sau. / Too many shoppers, please retry shortly."}})
		return
	}
	// Users named late... arrive after the last unit went: the edge's sold-out answer.
	if strings.HasPrefix(user, "late") {
		s.reply(ctx, key, fasthttp.StatusGone, map[string]string{"status": "sold_out"})
		return
	}
	c := s.challenges[in.ChallengeID]
	if c == nil || c.user != user || c.used {
		s.problems = append(s.problems, fmt.Sprintf("attempt with challenge %q: unknown, foreign or used", in.ChallengeID))
		s.reply(ctx, key, fasthttp.StatusForbidden, httpapi.ErrorBody{Error: httpapi.ErrorDetail{Code: "bad_challenge", Message: "challenge missing or used"}})
		return
	}
	c.used = true
	s.answers = append(s.answers, powAnswer{Prefix: c.prefix, Nonce: in.Answer, Difficulty: c.difficulty})
	if leadingZeroBits(c.prefix, in.Answer) < c.difficulty {
		s.reply(ctx, key, fasthttp.StatusForbidden, httpapi.ErrorBody{Error: httpapi.ErrorDetail{Code: "bad_challenge", Message: "wrong answer"}})
		return
	}
	s.seq++
	ticket := fmt.Sprintf("t-%d", s.seq)
	s.tickets[ticket] = &standInTicket{user: user, sale: ctx.UserValue("id").(string)}
	s.reply(ctx, key, fasthttp.StatusAccepted, map[string]any{"ticket": ticket, "status": "queued", "poll_after_ms": 300})
}

// poll answers "queued" once, then "won" with a seckill token.
func (s *standIn) poll(ctx *fasthttp.RequestCtx, user string) {
	t := s.tickets[ctx.UserValue("ticket").(string)]
	if t == nil || t.user != user || t.sale != ctx.UserValue("id").(string) {
		httpapi.WriteError(ctx, fasthttp.StatusNotFound, "ticket_not_found", "no such ticket")
		return
	}
	t.polls++
	if t.polls == 1 {
		httpapi.WriteJSON(ctx, fasthttp.StatusOK, map[string]any{"status": "queued"})
		return
	}
	tok := "sk-" + ctx.UserValue("ticket").(string)
	if t.polls == 2 {
		s.tokens[tok] = user
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, map[string]any{"status": "won", "token": tok,
		"expires_at": s.now().Add(5 * time.Minute).UTC().Format(time.RFC3339)})
}

func (s *standIn) checkout(ctx *fasthttp.RequestCtx, user string) {
	var in struct {
		Token string `json:"token"`
	}
	if !httpapi.DecodeJSON(ctx, &in) {
		s.problems = append(s.problems, fmt.Sprintf("checkout body %q", ctx.PostBody()))
		return
	}
	if s.tokens[in.Token] != user {
		httpapi.WriteError(ctx, http.StatusConflict, "token_used", "Suất này đã được thanh toán. / This token was already used.")
		return
	}
	delete(s.tokens, in.Token)
	id := ctx.UserValue("id").(string)
	sale := s.sale(id)
	p, _ := s.product(sale["product_id"].(string))
	price := int64(sale["price"].(int))
	items := []map[string]any{{"product_id": p.ID, "name": p.Name, "quantity": 1, "price": price}}
	httpapi.WriteJSON(ctx, fasthttp.StatusCreated, s.newOrder(user, items, price, id))
}
