package flashsale

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fasthttp/router"
	"github.com/redis/rueidis"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"flashedge/shared/challenge"
	"flashedge/shared/httpapi"
	"flashedge/shared/keyspace"
	"flashedge/shared/kv/kvtest"
	"flashedge/shared/product"
)

const testAdmin = "admin-secret"

// clock is a test clock: real time plus an offset tests move forward.
type clock struct{ off atomic.Int64 }

func (c *clock) Now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *clock) Advance(d time.Duration) { c.off.Add(int64(d)) }

// env is one private redis-server, a Service, its HTTP routes served in memory and a client.
type env struct {
	t     testing.TB
	srv   *kvtest.Server
	c     rueidis.Client
	svc   *Service
	clock *clock
	http  *fasthttp.HostClient
}

func newEnv(t testing.TB, o Options) *env {
	t.Helper()
	srv := kvtest.Start(t)
	e := newEnvOn(t, srv.Client(t), o)
	e.srv = srv
	return e
}

// newEnvOn is newEnv on a store client of the caller's (a cluster client, say).
func newEnvOn(t testing.TB, c rueidis.Client, o Options) *env {
	t.Helper()
	e := &env{t: t, c: c, clock: &clock{}}
	if o.Now == nil {
		o.Now = e.clock.Now
	}
	svc, err := New(c, o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	e.svc = svc
	h, err := NewHandler(svc, HandlerOptions{AdminToken: testAdmin})
	if err != nil {
		t.Fatalf("NewHandler: %v", err)
	}
	r := router.New()
	h.Register(r)
	ln := fasthttputil.NewInmemoryListener()
	server := httpapi.NewServer(r.Handler, httpapi.ServerOptions{Name: "flashsale-test"}, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = httpapi.Serve(ctx, server, ln, 5*time.Second)
	}()
	t.Cleanup(func() { cancel(); <-done })
	e.http = &fasthttp.HostClient{
		Addr:         "flashsale.test",
		Dial:         func(string) (net.Conn, error) { return ln.Dial() },
		MaxConns:     4096,
		ReadTimeout:  20 * time.Second,
		WriteTimeout: 20 * time.Second,
	}
	return e
}

// reply is an HTTP answer.
type reply struct {
	status     int
	body       []byte
	retryAfter string
	replayed   bool
}

func (r reply) String() string { return fmt.Sprintf("%d %s", r.status, r.body) }

func (r reply) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r, err)
	}
}

// do sends one request. user sets httpapi.HeaderUserID ("" leaves it out), admin the bearer
// token, idem the Idempotency-Key, body a JSON value (or raw []byte / nil).
func (e *env) do(method, path, user, admin, idem string, body any) reply {
	e.t.Helper()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(method)
	req.SetRequestURI("http://flashsale.test" + path)
	if user != "" {
		req.Header.Set(httpapi.HeaderUserID, user)
	}
	if admin != "" {
		req.Header.Set("Authorization", "Bearer "+admin)
	}
	if idem != "" {
		req.Header.Set(httpapi.HeaderIdempotencyKey, idem)
	}
	switch b := body.(type) {
	case nil:
	case []byte:
		req.SetBody(b)
	default:
		j, _ := json.Marshal(b)
		req.SetBody(j)
	}
	if err := e.http.DoTimeout(req, resp, 20*time.Second); err != nil {
		e.t.Errorf("%s %s: %v", method, path, err)
		return reply{}
	}
	return reply{
		status:     resp.StatusCode(),
		body:       append([]byte(nil), resp.Body()...),
		retryAfter: string(resp.Header.Peek("Retry-After")),
		replayed:   string(resp.Header.Peek("Idempotent-Replayed")) == "true",
	}
}

// putProduct stores a minimal product document so sales can name it.
func (e *env) putProduct(id string) {
	e.t.Helper()
	doc := fmt.Sprintf(`{"id":%q,"name":"Phone %s","description":"","price":1000,"currency":"VND","image":""}`, id, id)
	if err := e.c.Do(context.Background(), e.c.B().Set().Key(keyspace.Product(id)).Value(doc).Build()).Error(); err != nil {
		e.t.Fatalf("put product: %v", err)
	}
}

type saleSpec struct {
	id         string
	stock      int64
	shards     int
	limit      int64
	difficulty int
	startsIn   time.Duration // relative to the env clock; zero means started a minute ago
	lasts      time.Duration // zero means an hour
}

// createSale creates a sale through the admin route and fails the test unless it answers 201.
func (e *env) createSale(s saleSpec) saleJSON {
	e.t.Helper()
	e.putProduct("p-" + s.id)
	start := e.clock.Now().Add(-time.Minute)
	if s.startsIn != 0 {
		start = e.clock.Now().Add(s.startsIn)
	}
	if s.lasts == 0 {
		s.lasts = time.Hour
	}
	if s.limit == 0 {
		s.limit = 1
	}
	body := map[string]any{
		"id": s.id, "product_id": "p-" + s.id, "price": 990000, "stock": s.stock, "shards": s.shards,
		"starts_at": start.UTC().Format(time.RFC3339Nano), "ends_at": start.Add(s.lasts).UTC().Format(time.RFC3339Nano),
		"per_user_limit": s.limit, "difficulty": s.difficulty,
	}
	r := e.do("POST", "/api/v1/admin/flash-sales", "", testAdmin, "", body)
	if r.status != 201 {
		e.t.Fatalf("create sale %s: %s", s.id, r)
	}
	var out saleJSON
	r.decode(e.t, &out)
	return out
}

// mintChallenge issues user a challenge for a sale with the sale's difficulty, valid for ttl
// (zero: challenge.DefaultTTL), as the edge mints them (the order service only verifies them).
func (s *Service) mintChallenge(ctx context.Context, user, saleID string, ttl time.Duration) (challenge.Challenge, error) {
	if !product.ValidID([]byte(saleID)) {
		return challenge.Challenge{}, ErrNotFound
	}
	sl, err := s.loadSale(ctx, saleID)
	if err != nil {
		return challenge.Challenge{}, err
	}
	if ttl <= 0 {
		ttl = challenge.DefaultTTL
	}
	return s.o.Challenges.Issue(saleID, user, sl.Difficulty, s.now().Add(ttl))
}

// challenge mints a challenge for user and solves it honestly.
func (e *env) challenge(sale, user string) (id, answer string) {
	e.t.Helper()
	ch, err := e.svc.mintChallenge(context.Background(), user, sale, 0)
	if err != nil {
		e.t.Errorf("challenge for %s: %v", user, err)
		return "", ""
	}
	return ch.ID, challenge.Solve(ch.ID, ch.Difficulty)
}

// attempt fetches and solves a challenge, then posts an attempt with a fresh Idempotency-Key.
func (e *env) attempt(sale, user, idem string) reply {
	e.t.Helper()
	id, answer := e.challenge(sale, user)
	return e.do("POST", "/api/v1/flash-sales/"+sale+"/attempts", user, "", idem,
		map[string]string{"challenge_id": id, "answer": answer})
}

type pollReply struct {
	Status    string `json:"status"`
	Token     string `json:"token"`
	ExpiresAt string `json:"expires_at"`
	Reason    string `json:"reason"`
}

func (e *env) poll(sale, user, ticket string) (pollReply, reply) {
	e.t.Helper()
	r := e.do("GET", "/api/v1/flash-sales/"+sale+"/attempts/"+ticket, user, "", "", nil)
	var p pollReply
	if r.status == 200 {
		r.decode(e.t, &p)
	}
	return p, r
}

// ledger reads the admin ledger route: the counters and the audit of a live sale.
func (e *env) ledger(sale string) ledgerJSON {
	e.t.Helper()
	return e.ledgerQuery(sale, "")
}

func (e *env) ledgerQuery(sale, query string) ledgerJSON {
	e.t.Helper()
	r := e.do("GET", "/api/v1/admin/flash-sales/"+sale+"/ledger"+query, "", testAdmin, "", nil)
	if r.status != 200 {
		e.t.Fatalf("ledger %s: %s", sale, r)
	}
	var l ledgerJSON
	r.decode(e.t, &l)
	return l
}

// checkAtRest reads the ledger of a sale at rest (nothing in flight: every process idle) and
// fails the test on every problem its audit from the primary records finds: broken invariants,
// unsettled steps, counters that disagree with the records. It returns the ledger.
func (e *env) checkAtRest(when, sale string) ledgerJSON {
	e.t.Helper()
	l := e.ledgerQuery(sale, "?settled=true")
	checkBalanced(e.t, when, l)
	return l
}

// startWorkers runs n workers (each with its own consumer name) until the test ends or the
// returned stop is called; stop waits for them.
func (e *env) startWorkers(n int, o WorkerOptions) (stop func()) {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := range n {
		wo := o
		if wo.Consumer == "" {
			wo.Consumer = fmt.Sprintf("test-worker-%d", i)
		} else {
			wo.Consumer = fmt.Sprintf("%s-%d", wo.Consumer, i)
		}
		if wo.Block == 0 {
			wo.Block = 100 * time.Millisecond
		}
		w, err := NewWorker(e.svc, wo)
		if err != nil {
			e.t.Fatalf("NewWorker: %v", err)
		}
		wg.Go(func() {
			if err := w.Run(ctx); err != nil {
				e.t.Errorf("worker %s: %v", wo.Consumer, err)
			}
		})
	}
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	e.t.Cleanup(stop)
	return stop
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// pending returns the number of unacknowledged stream entries of the default group.
func (e *env) pending() int64 {
	e.t.Helper()
	arr, err := e.c.Do(context.Background(), e.c.B().Xpending().Key(keyspace.AttemptStream()).Group(DefaultGroup).Build()).ToArray()
	if err != nil {
		e.t.Fatalf("XPENDING: %v", err)
	}
	n, _ := arr[0].AsInt64()
	return n
}

// checkBalanced fails the test when the ledger's counters do not balance or its audit from the
// primary records finds a problem (at rest when the ledger was read with settled=true).
func checkBalanced(t testing.TB, when string, l ledgerJSON) {
	t.Helper()
	if !l.Balanced() {
		t.Errorf("%s: ledger counters do not balance: initial %d != remaining %d + reserved %d + ordered %d (shards %v)",
			when, l.Initial, l.Remaining, l.Reserved, l.Ordered, l.Shards)
	}
	if l.Audit == nil {
		t.Errorf("%s: the ledger has no audit", when)
		return
	}
	checkAudit(t, when, *l.Audit)
}

// checkAudit fails the test on every problem of an audit.
func checkAudit(t testing.TB, when string, a Audit) {
	t.Helper()
	for _, p := range a.Problems() {
		t.Errorf("%s: audit: %s", when, p)
	}
	if !a.OK && len(a.Problems()) == 0 {
		t.Errorf("%s: audit not ok without a problem listed: %+v", when, a)
	}
}

// saleJSON decodes the public sale view (shared/sale renders it).
type saleJSON struct {
	ID           string `json:"id"`
	ProductID    string `json:"product_id"`
	ProductName  string `json:"product_name"`
	Price        int64  `json:"price"`
	Stock        int64  `json:"stock"`
	StartsAt     string `json:"starts_at"`
	EndsAt       string `json:"ends_at"`
	PerUserLimit int64  `json:"per_user_limit"`
	State        string `json:"state"`
	Shards       int    `json:"shards"`
	Difficulty   int    `json:"difficulty"`
}
