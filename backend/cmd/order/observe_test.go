package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/router"

	"flashedge/backend/internal/cart"
	"flashedge/backend/internal/catalog"
	"flashedge/backend/internal/flashsale"
	"flashedge/shared/challenge"
	"flashedge/shared/httpapi"
	"flashedge/shared/keyspace"
	"flashedge/shared/kv/kvtest"
	"flashedge/shared/metrics/metricstest"
	"flashedge/shared/obs"
	"flashedge/shared/obs/obstest"
	"flashedge/shared/product"
	"flashedge/shared/signkey"
	"flashedge/shared/upstream"
)

const stackAdminToken = "order-observe-admin-token"

// stack is the order binary running against real catalog and cart routes, each of those behind
// the request-id and access-log middlewares the binaries use, logging JSON into a buffer.
type stack struct {
	srv               *kvtest.Server
	base              string // the order service
	cartBase          string
	productID         string
	orderLog, cartLog *obstest.Buffer
	catalogLog        *obstest.Buffer
	cancel            context.CancelFunc
	errc              chan error
	stopped           bool
}

func startStack(t *testing.T, extraEnv map[string]string) *stack {
	t.Helper()
	s := &stack{srv: kvtest.Start(t), orderLog: &obstest.Buffer{}, cartLog: &obstest.Buffer{}, catalogLog: &obstest.Buffer{}}
	kvc := s.srv.Client(t)
	jsonLog := func(w *obstest.Buffer, service string) *slog.Logger {
		return slog.New(slog.NewJSONHandler(w, nil)).With("service", service)
	}
	products := catalog.NewStore(kvc)
	name, price, stock := "Cà phê", int64(45_000), int64(10)
	p, err := products.Create(context.Background(), product.Input{Name: &name, Price: &price, Stock: &stock})
	if err != nil {
		t.Fatal(err)
	}
	s.productID = p.ID
	ch, err := catalog.NewHandler(products, catalog.Options{AdminToken: "catalog-admin-token"})
	if err != nil {
		t.Fatal(err)
	}
	catalogAddr := serve(t, httpapi.RequestIDs(httpapi.AccessLog(ch, jsonLog(s.catalogLog, "catalog"), 1, httpapi.HeaderUserID), obs.NewIDs()))
	catalogPool, err := upstream.New(upstream.Options{Name: "catalog", Addrs: []string{catalogAddr}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(catalogPool.Close)
	cr := router.New()
	cr.GET("/health", (&httpapi.Probe{}).Health)
	cart.New(cart.NewStore(kvc), cart.CatalogPrices(catalogPool), cart.Options{}).Register(cr)
	cartAddr := serve(t, httpapi.RequestIDs(httpapi.AccessLog(cr.Handler, jsonLog(s.cartLog, "cart"), 1, httpapi.HeaderUserID), obs.NewIDs()))
	s.cartBase = "http://" + cartAddr

	env := map[string]string{
		"FLASHEDGE_STORE_ADDR":     s.srv.Addr,
		"FLASHEDGE_ADMIN_TOKEN":    stackAdminToken,
		"FLASHEDGE_SESSION_SECRET": testSessionSecret,
		"FLASHEDGE_ORDER_LISTEN":   "127.0.0.1:0",
		"FLASHEDGE_CART_ADDRS":     cartAddr,
		"FLASHEDGE_CATALOG_ADDRS":  catalogAddr,
		"FLASHEDGE_LOG_FORMAT":     "json",
		// Every request logged (the default samples 1 in 100): the test follows one through.
		"FLASHEDGE_ACCESS_LOG_SAMPLE": "1",
	}
	for k, v := range extraEnv {
		env[k] = v
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel, s.errc = cancel, make(chan error, 1)
	go func() { s.errc <- run(ctx, nil, func(k string) string { return env[k] }, s.orderLog) }()
	t.Cleanup(func() { s.stop(t) })
	s.base = "http://" + obstest.ListenAddr(t, s.orderLog, s.errc)
	return s
}

// stop cancels the order binary and expects a clean return.
func (s *stack) stop(t *testing.T) {
	t.Helper()
	if s.stopped {
		return
	}
	s.stopped = true
	s.cancel()
	select {
	case err := <-s.errc:
		if err != nil {
			t.Errorf("run returned %v, want nil", err)
		}
	case <-time.After(15 * time.Second):
		t.Error("run did not return within 15s of cancel")
	}
}

// requestLines returns the access-log lines ("msg":"request") of a JSON log.
func requestLines(log *obstest.Buffer) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(log.String(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == "request" {
			out = append(out, rec)
		}
	}
	return out
}

// TestRequestIDFollowsCheckout sends a checkout with a known X-Request-ID to the order binary
// and finds that id in the access logs of the cart and catalog services it called.
func TestRequestIDFollowsCheckout(t *testing.T) {
	s := startStack(t, nil)
	alice := []string{httpapi.HeaderUserID, "u-alice"}
	if st, body := call(t, "PUT", s.cartBase+"/api/v1/cart/items/"+s.productID, `{"quantity":2}`, alice...); st != 200 {
		t.Fatalf("fill cart: %d %s", st, body)
	}
	const rid = "edge-7f3a-42"
	st, body := call(t, "POST", s.base+"/api/v1/orders", "",
		append([]string{obs.HeaderRequestID, rid, httpapi.HeaderIdempotencyKey, "k-rid"}, alice...)...)
	if st != 201 {
		t.Fatalf("checkout: %d %s", st, body)
	}

	type want struct {
		log          *obstest.Buffer
		service      string
		method, path string
	}
	for _, w := range []want{
		{s.orderLog, "order", "POST", "/api/v1/orders"},
		{s.cartLog, "cart", "GET", "/internal/v1/cart"},
		{s.cartLog, "cart", "DELETE", "/internal/v1/cart"},
		{s.catalogLog, "catalog", "GET", "/internal/v1/products"},
	} {
		found := false
		deadline := time.Now().Add(5 * time.Second)
		for !found && time.Now().Before(deadline) {
			for _, rec := range requestLines(w.log) {
				if rec["method"] == w.method && rec["path"] == w.path && rec["request_id"] == rid && rec["service"] == w.service {
					found = true
				}
			}
			if !found {
				time.Sleep(5 * time.Millisecond)
			}
		}
		if !found {
			t.Errorf("%s's access log has no %s %s with request_id %s:\n%s", w.service, w.method, w.path, rid, w.log)
		}
	}
	// The order service logs the user too.
	for _, rec := range requestLines(s.orderLog) {
		if rec["request_id"] == rid && (rec["user_id"] != "u-alice" || rec["status"] != float64(201) || rec["duration_ms"] == nil) {
			t.Errorf("order's request line %v: want user_id u-alice, status 201 and a duration", rec)
		}
	}
}

// TestRunMetrics drives flash-sale attempts of every decision, checkout and the normal order
// routes through the order binary, then checks its /metrics (parsed with the Prometheus text
// parser): requests by route pattern and status, admission decisions, the stream backlog,
// tokens consumed and the per-sale families, and /metrics.json.
func TestRunMetrics(t *testing.T) {
	s := startStack(t, map[string]string{"FLASHEDGE_FLASHSALE_DIFFICULTY": "0", "FLASHEDGE_FLASHSALE_K": "1"})
	kvc := s.srv.Client(t)
	bg := context.Background()
	admin := []string{"Authorization", "Bearer " + stackAdminToken}
	now := time.Now().UTC()
	sale := fmt.Sprintf(`{"id":"s1","product_id":%q,"price":9000,"stock":2,"shards":2,"per_user_limit":1,"starts_at":%q,"ends_at":%q}`,
		s.productID, now.Add(-time.Minute).Format(time.RFC3339), now.Add(time.Hour).Format(time.RFC3339))
	if st, body := call(t, "POST", s.base+"/api/v1/admin/flash-sales", sale, admin...); st != 201 {
		t.Fatalf("create sale: %d %s", st, body)
	}

	attemptsPath := "/api/v1/flash-sales/s1/attempts"
	// The challenges are minted as the edge mints them, with keys derived from the same secret.
	secrets, kid, err := signkey.Parse(testSessionSecret)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := challenge.NewKeys(secrets, kid)
	if err != nil {
		t.Fatal(err)
	}
	attempt := func(user, key string) (int, string, string) {
		t.Helper()
		ch, err := keys.Issue("s1", user, 0, time.Now().Add(time.Minute))
		if err != nil {
			t.Fatalf("challenge for %s: %v", user, err)
		}
		req := fmt.Sprintf(`{"challenge_id":%q,"answer":"0"}`, ch.ID)
		st, body := call(t, "POST", s.base+attemptsPath, req, httpapi.HeaderUserID, user, httpapi.HeaderIdempotencyKey, key)
		return st, body, req
	}
	ticketOf := func(body string) string {
		var a struct{ Ticket string }
		_ = json.Unmarshal([]byte(body), &a)
		return a.Ticket
	}
	st1, body1, _ := attempt("u1", "k1")
	st2, body2, req2 := attempt("u2", "k2")
	if st1 != 202 || st2 != 202 {
		t.Fatalf("first two attempts: %d %s, %d %s; want 202 each", st1, body1, st2, body2)
	}
	tickets := map[string]string{"u1": ticketOf(body1), "u2": ticketOf(body2)}
	codes := map[int]float64{202: 2}
	for _, c := range []struct {
		name   string
		status int
		send   func() (int, string)
	}{
		{"replay", 202, func() (int, string) {
			return call(t, "POST", s.base+attemptsPath, req2, httpapi.HeaderUserID, "u2", httpapi.HeaderIdempotencyKey, "k2")
		}},
		{"second attempt while undecided", 409, func() (int, string) { st, b, _ := attempt("u1", "k1b"); return st, b }},
		{"k x stock admitted", 429, func() (int, string) { st, b, _ := attempt("u3", "k3"); return st, b }},
		{"unknown challenge", 403, func() (int, string) {
			return call(t, "POST", s.base+attemptsPath, `{"challenge_id":"0123456789abcdef0123456789abcdef","answer":"0"}`,
				httpapi.HeaderUserID, "u4", httpapi.HeaderIdempotencyKey, "k4")
		}},
		{"sold-out flag", 410, func() (int, string) {
			if err := kvc.Do(bg, kvc.B().Set().Key(keyspace.SoldOut("s1")).Value("1").Build()).Error(); err != nil {
				t.Fatal(err)
			}
			defer kvc.Do(bg, kvc.B().Del().Key(keyspace.SoldOut("s1")).Build())
			st, b, _ := attempt("u5", "k5")
			return st, b
		}},
	} {
		if st, body := c.send(); st != c.status {
			t.Fatalf("%s: %d %s, want %d", c.name, st, body, c.status)
		}
		codes[c.status]++
	}

	page := metricstest.Scrape(t, s.base+"/metrics")
	for decision, n := range map[string]float64{"admitted": 2, "sold_out": 1, "busy": 1, "limit": 1, "bad_challenge": 1, "not_started": 0, "ended": 0} {
		if got := page.Value("flashedge_order_admission_total", "decision", decision); got != n {
			t.Errorf("flashedge_order_admission_total{decision=%q} = %v, want %v", decision, got, n)
		}
	}
	for code, n := range codes {
		if got := page.Requests("order", "/api/v1/flash-sales/{id}/attempts", fmt.Sprint(code)); got != n {
			t.Errorf("requests_total{route=attempts,code=%d} = %v, want %v", code, got, n)
		}
	}
	if got := page.Requests("order", "/api/v1/admin/flash-sales", "201"); got != 1 {
		t.Errorf("requests_total{route=admin create,code=201} = %v, want 1", got)
	}
	if got := page.Value("flashedge_order_request_duration_seconds", "route", "/api/v1/flash-sales/{id}/attempts"); got != 7 {
		t.Errorf("request_duration_seconds{route=attempts} count = %v, want 7", got)
	}
	// No worker has created the group yet: the backlog is the whole stream.
	for series, want := range map[string]float64{"flashedge_order_stream_backlog": 2, "flashedge_order_stream_pending": 0} {
		if got := page.Value(series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	if got := page.Value("flashedge_sale_queued", "sale", "s1"); got != 2 {
		t.Errorf("flashedge_sale_queued{sale=s1} = %v, want 2", got)
	}
	if got := page.Value("flashedge_sale_events_total", "sale", "s1", "event", "admitted"); got != 2 {
		t.Errorf("flashedge_sale_events_total{sale=s1,event=admitted} = %v, want 2", got)
	}
	if got := page.Value("flashedge_sale_stock", "sale", "s1", "shard", "0") + page.Value("flashedge_sale_stock", "sale", "s1", "shard", "1"); got != 2 {
		t.Errorf("flashedge_sale_stock{sale=s1} sums to %v, want 2", got)
	}
	if got := page.Value("flashedge_sale_tokens_total", "event", "consumed"); got != 0 {
		t.Errorf("flashedge_sale_tokens_total{event=consumed} = %v before any checkout, want 0", got)
	}

	// A worker decides both tickets (two units: both win); u1 pays.
	fs, err := flashsale.New(kvc, flashsale.Options{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := flashsale.NewWorker(fs, flashsale.WorkerOptions{Consumer: "observe-test", Block: 100 * time.Millisecond, SweepEvery: -1, TrimEvery: -1})
	if err != nil {
		t.Fatal(err)
	}
	wctx, stopWorker := context.WithCancel(bg)
	wdone := make(chan error, 1)
	go func() { wdone <- w.Run(wctx) }()
	defer func() { stopWorker(); <-wdone }()
	token := ""
	deadline := time.Now().Add(10 * time.Second)
	for token == "" {
		st, body := call(t, "GET", s.base+"/api/v1/flash-sales/s1/attempts/"+tickets["u1"], "", httpapi.HeaderUserID, "u1")
		var r struct{ Status, Token string }
		_ = json.Unmarshal([]byte(body), &r)
		switch {
		case st != 200 || (r.Status != "queued" && r.Status != "won"):
			t.Fatalf("poll u1's ticket: %d %s", st, body)
		case r.Status == "won":
			token = r.Token
		case time.Now().After(deadline):
			t.Fatal("u1's ticket not decided within 10s")
		default:
			time.Sleep(10 * time.Millisecond)
		}
	}
	if st, body := call(t, "POST", s.base+"/api/v1/flash-sales/s1/checkout", fmt.Sprintf(`{"token":%q}`, token), httpapi.HeaderUserID, "u1"); st != 201 {
		t.Fatalf("checkout: %d %s", st, body)
	}

	// Scrape-time reads are reused for a moment: poll until the page shows the decisions.
	want := map[string]float64{
		"backlog": 0, "pending": 0, "queued": 0, "won": 2, "ordered": 1, "stock": 0, "consumed": 1,
	}
	read := func(p metricstest.Page) map[string]float64 {
		return map[string]float64{
			"backlog":  p.Value("flashedge_order_stream_backlog"),
			"pending":  p.Value("flashedge_order_stream_pending"),
			"queued":   p.Value("flashedge_sale_queued", "sale", "s1"),
			"won":      p.Value("flashedge_sale_events_total", "sale", "s1", "event", "won"),
			"ordered":  p.Value("flashedge_sale_events_total", "sale", "s1", "event", "ordered"),
			"stock":    p.Value("flashedge_sale_stock", "sale", "s1", "shard", "0") + p.Value("flashedge_sale_stock", "sale", "s1", "shard", "1"),
			"consumed": p.Value("flashedge_sale_tokens_total", "event", "consumed"),
		}
	}
	var got map[string]float64
	deadline = time.Now().Add(10 * time.Second)
	for {
		got = read(metricstest.Scrape(t, s.base+"/metrics"))
		if fmt.Sprint(got) == fmt.Sprint(want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the worker and one checkout: %v, want %v", got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
	sum := metricstest.ReadSummary(t, s.base+"/metrics.json")
	if sum.Service != "order" || sum.Client != 4 || sum.Server != 0 {
		t.Errorf("/metrics.json = %+v, want service order, 4 client errors (409, 429, 403, 410), no server error", sum)
	}
}
