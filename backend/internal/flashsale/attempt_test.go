package flashsale

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"flashedge/backend/internal/order"
	"flashedge/shared/challenge"
	"flashedge/shared/keyspace"
)

// decided polls a ticket until it is no longer queued.
func (e *env) decided(sale, user, ticket string, within time.Duration) pollReply {
	e.t.Helper()
	var p pollReply
	waitFor(e.t, within, "ticket "+ticket+" decided", func() bool {
		var r reply
		p, r = e.poll(sale, user, ticket)
		if r.status != 200 {
			e.t.Fatalf("poll %s: %s", ticket, r)
		}
		return p.Status != StatusQueued
	})
	return p
}

func admittedTicket(t testing.TB, r reply) string {
	t.Helper()
	var a struct {
		Ticket      string `json:"ticket"`
		Status      string `json:"status"`
		PollAfterMS int64  `json:"poll_after_ms"`
	}
	if r.status != 202 {
		t.Fatalf("attempt = %s, want 202", r)
	}
	r.decode(t, &a)
	if a.Status != StatusQueued || a.Ticket == "" || a.PollAfterMS <= 0 {
		t.Fatalf("attempt body = %s", r.body)
	}
	return a.Ticket
}

// TestWinAndCheckout walks one shopper through the whole flow over HTTP.
func TestWinAndCheckout(t *testing.T) {
	e := newEnv(t, Options{})
	e.createSale(saleSpec{id: "s", stock: 2, shards: 2})
	e.startWorkers(1, WorkerOptions{})

	ticket := admittedTicket(t, e.attempt("s", "alice", "k1"))
	p := e.decided("s", "alice", ticket, 5*time.Second)
	if p.Status != StatusWon || p.Token == "" || p.ExpiresAt == "" {
		t.Fatalf("result = %+v, want won with a token", p)
	}
	if _, r := e.poll("s", "bob", ticket); r.status != 404 {
		t.Errorf("bob polling alice's ticket = %s, want 404", r)
	}
	l := e.checkAtRest("after the win", "s")
	if l.Reserved != 1 || l.Remaining != 1 || l.Admitted != 1 || l.Won != 1 {
		t.Errorf("ledger after the win = %+v", l)
	}

	// Another user's token is not found; a second attempt of alice is over the limit.
	if r := e.do("POST", "/api/v1/flash-sales/s/checkout", "bob", "", "", map[string]string{"token": p.Token}); r.status != 404 {
		t.Errorf("bob checking out alice's token = %s, want 404", r)
	}
	if r := e.attempt("s", "alice", "k2"); r.status != 409 {
		t.Errorf("second attempt over the limit = %s, want 409", r)
	}

	r := e.do("POST", "/api/v1/flash-sales/s/checkout", "alice", "", "", map[string]string{"token": p.Token})
	if r.status != 201 {
		t.Fatalf("checkout = %s, want 201", r)
	}
	var o order.Order
	r.decode(t, &o)
	if o.ID != OrderID("s", p.Token) || o.UserID != "alice" || o.Status != "paid" || o.FlashSaleID != "s" ||
		o.Total != 990000 || len(o.Items) != 1 || o.Items[0].Quantity != 1 || o.Items[0].Price != 990000 ||
		o.Items[0].ProductID != "p-s" || o.CreatedAt == "" {
		t.Errorf("order = %s", r.body)
	}
	stored, err := e.c.Do(context.Background(), e.c.B().Get().Key(keyspace.Order("alice", o.ID)).Build()).AsBytes()
	if err != nil || !bytes.Equal(bytes.TrimSpace(stored), bytes.TrimSpace(r.body)) {
		t.Errorf("stored order = %s (%v), answered %s", stored, err, r.body)
	}
	if n, _ := e.c.Do(context.Background(), e.c.B().Zscore().Key(keyspace.UserOrders("alice")).Member(o.ID).Build()).AsFloat64(); n == 0 {
		t.Error("order not in the user's order index")
	}
	if n, _ := e.c.Do(context.Background(), e.c.B().Exists().Key(keyspace.SaleToken("s", p.Token)).Build()).AsInt64(); n != 0 {
		t.Error("token still exists after checkout")
	}
	if r := e.do("POST", "/api/v1/flash-sales/s/checkout", "alice", "", "", map[string]string{"token": p.Token}); r.status != 409 {
		t.Errorf("second checkout = %s, want 409", r)
	}
	l = e.checkAtRest("after checkout", "s")
	if l.Reserved != 0 || l.Ordered != 1 || l.Remaining != 1 || l.OrdersFinished != 1 || l.Paid != 1 {
		t.Errorf("ledger after checkout = %+v", l)
	}
}

// TestAttemptAnswers covers the answers of the attempt route that do not need the worker.
func TestAttemptAnswers(t *testing.T) {
	e := newEnv(t, Options{})
	e.createSale(saleSpec{id: "live", stock: 5, shards: 2})
	e.createSale(saleSpec{id: "soon", stock: 5, shards: 2, startsIn: time.Hour})
	e.createSale(saleSpec{id: "over", stock: 5, shards: 2, startsIn: -2 * time.Hour, lasts: time.Hour})
	e.createSale(saleSpec{id: "none", stock: 0, shards: 1})
	e.createSale(saleSpec{id: "hard", stock: 5, shards: 1, difficulty: 20})

	post := func(sale, user, idem string, body any) reply {
		return e.do("POST", "/api/v1/flash-sales/"+sale+"/attempts", user, "", idem, body)
	}
	chLive, ansLive := e.challenge("live", "alice")
	tests := []struct {
		name string
		r    func() reply
		code int
		err  string
	}{
		{"no user", func() reply { return post("live", "", "k", map[string]string{"challenge_id": chLive}) }, 401, "unauthorized"},
		{"bad user", func() reply { return post("live", "a:b", "k", map[string]string{"challenge_id": chLive}) }, 401, "unauthorized"},
		{"no idempotency key", func() reply { return post("live", "alice", "", map[string]string{"challenge_id": chLive}) }, 400, "invalid_request"},
		{"bad idempotency key", func() reply { return post("live", "alice", "a{b}", map[string]string{"challenge_id": chLive}) }, 400, "invalid_request"},
		{"malformed body", func() reply { return post("live", "alice", "k", []byte(`{"challenge_id":1}`)) }, 400, "malformed_json"},
		{"unknown field", func() reply {
			return post("live", "alice", "k", map[string]string{"challenge_id": chLive, "user": "x"})
		}, 400, "malformed_json"},
		{"unknown sale", func() reply { return post("nope", "alice", "k", map[string]string{"challenge_id": chLive}) }, 404, "not_found"},
		{"not started", func() reply { return post("soon", "alice", "k", map[string]string{"challenge_id": chLive}) }, 425, "not_started"},
		{"ended", func() reply { return post("over", "alice", "k", map[string]string{"challenge_id": chLive}) }, 410, "ended"},
		{"garbage challenge", func() reply { return post("live", "alice", "k", map[string]string{"challenge_id": "zz"}) }, 403, "bad_challenge"},
		{"unknown challenge", func() reply { return post("live", "alice", "k", map[string]string{"challenge_id": newID()}) }, 403, "bad_challenge"},
		{"another user's challenge", func() reply {
			return post("live", "bob", "k", map[string]string{"challenge_id": chLive, "answer": ansLive})
		}, 403, "bad_challenge"},
		{"another sale's challenge", func() reply {
			return post("none", "alice", "k", map[string]string{"challenge_id": chLive, "answer": ansLive})
		}, 403, "bad_challenge"},
		{"wrong answer", func() reply {
			id, _ := e.challenge("hard", "alice")
			return post("hard", "alice", "k", map[string]string{"challenge_id": id, "answer": "not-it"})
		}, 403, "bad_challenge"},
		{"sold out", func() reply { return e.attempt("none", "alice", "k") }, 410, "sold_out"},
		{"poll unknown ticket", func() reply { return e.do("GET", "/api/v1/flash-sales/live/attempts/"+newID(), "alice", "", "", nil) }, 404, "ticket_not_found"},
		{"poll garbage ticket", func() reply { return e.do("GET", "/api/v1/flash-sales/live/attempts/x", "alice", "", "", nil) }, 404, "ticket_not_found"},
		{"checkout unknown token", func() reply {
			return e.do("POST", "/api/v1/flash-sales/live/checkout", "alice", "", "", map[string]string{"token": newID()})
		}, 404, "token_not_found"},
		{"checkout without body", func() reply { return e.do("POST", "/api/v1/flash-sales/live/checkout", "alice", "", "", nil) }, 400, "empty_body"},
		{"ledger of unknown sale", func() reply { return e.do("GET", "/api/v1/admin/flash-sales/nope/ledger", "", testAdmin, "", nil) }, 404, "not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.r()
			var body struct {
				Error struct{ Code string } `json:"error"`
			}
			_ = json.Unmarshal(r.body, &body)
			if r.status != tt.code || body.Error.Code != tt.err {
				t.Errorf("%s = %s, want %d %s", tt.name, r, tt.code, tt.err)
			}
		})
	}
	// The challenge survived the refusals above (foreign user, other sale) and still works once.
	r := post("live", "alice", "k-ok", map[string]string{"challenge_id": chLive, "answer": ansLive})
	admittedTicket(t, r)
	if r := post("live", "alice", "k-again", map[string]string{"challenge_id": chLive, "answer": ansLive}); r.status != 403 {
		t.Errorf("second use of a challenge = %s, want 403", r)
	}
	l := e.ledger("live")
	if l.RejectedByReason["bad_challenge"] < 3 || l.Admitted != 1 {
		t.Errorf("ledger counts = %+v", l)
	}
	if l := e.ledger("none"); l.RejectedByReason["sold_out"] != 1 {
		t.Errorf("sold-out rejection not counted: %+v", l)
	}
}

// TestIdempotentReplay: a repeated Idempotency-Key gets the first answer (status and body),
// whatever happened since; the same key with another challenge is refused.
func TestIdempotentReplay(t *testing.T) {
	e := newEnv(t, Options{K: 1})
	e.createSale(saleSpec{id: "s", stock: 1, shards: 1})

	id, ans := e.challenge("s", "alice")
	body := map[string]string{"challenge_id": id, "answer": ans}
	first := e.do("POST", "/api/v1/flash-sales/s/attempts", "alice", "", "k1", body)
	ticket := admittedTicket(t, first)
	// k = 1 and one unit: the admission budget is spent, a new attempt of bob is busy.
	busy := e.attempt("s", "bob", "kb")
	if busy.status != 429 || busy.retryAfter == "" {
		t.Fatalf("attempt past the admission budget = %s (Retry-After %q), want 429 with Retry-After", busy, busy.retryAfter)
	}
	e.startWorkers(1, WorkerOptions{})
	if p := e.decided("s", "alice", ticket, 5*time.Second); p.Status != StatusWon {
		t.Fatalf("alice = %+v, want won", p)
	}
	for _, tt := range []struct {
		name      string
		user, key string
		body      map[string]string
		want      reply
	}{
		{name: "admitted replay", user: "alice", key: "k1", body: body, want: first},
		{name: "busy replay", user: "bob", key: "kb", want: busy},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.body
			if b == nil { // the same request again: its challenge is spent, the answer is the record
				b = map[string]string{"challenge_id": e.lastChallenge(t, "s", tt.user, tt.key), "answer": ""}
			}
			r := e.do("POST", "/api/v1/flash-sales/s/attempts", tt.user, "", tt.key, b)
			if r.status != tt.want.status || !bytes.Equal(r.body, tt.want.body) || r.retryAfter != tt.want.retryAfter || !r.replayed {
				t.Errorf("replay = %s (Retry-After %q, replayed %v), want %s (Retry-After %q)", r, r.retryAfter, r.replayed, tt.want, tt.want.retryAfter)
			}
		})
	}
	other, otherAns := e.challenge("s", "alice")
	r := e.do("POST", "/api/v1/flash-sales/s/attempts", "alice", "", "k1", map[string]string{"challenge_id": other, "answer": otherAns})
	if r.status != 422 {
		t.Errorf("same key, other challenge = %s, want 422", r)
	}
	// Replays add nothing to the ledger.
	if l := e.ledger("s"); l.Admitted != 1 || l.RejectedByReason[OutcomeBusyAdmission] != 1 {
		t.Errorf("ledger after replays = %+v", l)
	}
}

// lastChallenge reads the challenge id an idempotency record was made with.
func (e *env) lastChallenge(t testing.TB, sale, user, key string) string {
	t.Helper()
	v, err := e.c.Do(context.Background(), e.c.B().Hget().Key(keyspace.SaleIdempotency(sale, user, key)).Field("challenge").Build()).ToString()
	if err != nil {
		t.Fatalf("idempotency record %s/%s: %v", user, key, err)
	}
	return v
}

// TestChallenge checks the challenge as the attempt spends it: binding, single use, expiry.
func TestChallenge(t *testing.T) {
	e := newEnv(t, Options{})
	e.createSale(saleSpec{id: "a", stock: 5, shards: 1, difficulty: 8})
	e.createSale(saleSpec{id: "b", stock: 5, shards: 1, difficulty: 8})
	ctx := context.Background()
	ch, err := e.svc.mintChallenge(ctx, "alice", "a", 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if ch.Difficulty != 8 || ch.ID == "" {
		t.Fatalf("challenge = %+v", ch)
	}
	use := func(user, sale, id, answer, key string) (AttemptAnswer, error) {
		return e.svc.Attempt(ctx, AttemptInput{User: user, SaleID: sale, ChallengeID: id, Answer: answer, IdempotencyKey: key})
	}
	good := challenge.Solve(ch.ID, ch.Difficulty)
	wrong := "x"
	for challenge.LeadingZeroBits(ch.ID, wrong) >= 8 {
		wrong += "x"
	}
	// A challenge minted with another secret (a forger's), and the real one with one character
	// of its MAC or of its difficulty changed, each answered correctly for what it claims.
	forger, err := challenge.NewKeys(map[string][]byte{"k1": []byte(strings.Repeat("f", 32))}, "k1")
	if err != nil {
		t.Fatal(err)
	}
	forged, _ := forger.Issue("a", "alice", 0, time.Now().Add(time.Minute))
	last := len(ch.ID) - 1
	tamperedMAC := ch.ID[:last] + string("01"[(ch.ID[last]-'0'+1)%2])
	if tamperedMAC == ch.ID {
		tamperedMAC = ch.ID[:last] + "2"
	}
	parts := strings.Split(ch.ID, ".")
	parts[2] = "0"
	easier := strings.Join(parts, ".")
	otherSale, _ := e.svc.mintChallenge(ctx, "alice", "b", 300*time.Millisecond)
	for _, tt := range []struct {
		name, user, sale, id, answer string
	}{
		{"wrong user", "bob", "a", ch.ID, good},
		{"wrong sale", "alice", "b", ch.ID, good},
		{"wrong answer", "alice", "a", ch.ID, wrong},
		{"forged with another key", "alice", "a", forged.ID, "0"},
		{"tampered MAC", "alice", "a", tamperedMAC, challenge.Solve(tamperedMAC, 8)},
		{"difficulty lowered", "alice", "a", easier, "0"},
		{"another sale's challenge", "alice", "a", otherSale.ID, challenge.Solve(otherSale.ID, 8)},
		{"old-style hex id", "alice", "a", newID(), "0"},
	} {
		if _, err := use(tt.user, tt.sale, tt.id, tt.answer, "k-"+tt.user+"-"+tt.sale+"-"+tt.name[:5]); !errors.Is(err, ErrBadChallenge) {
			t.Errorf("%s: err = %v, want ErrBadChallenge", tt.name, err)
		}
	}
	if ans, err := use("alice", "a", ch.ID, good, "k-right"); err != nil || ans.Outcome != OutcomeAdmitted {
		t.Fatalf("right answer: %+v, %v", ans, err)
	}
	if _, err := use("alice", "a", ch.ID, good, "k-again"); !errors.Is(err, ErrBadChallenge) {
		t.Errorf("second use: err = %v, want ErrBadChallenge", err)
	}
	// The spent mark lives as long as the challenge could verify, plus the clock skew allowed.
	if pttl, err := e.c.Do(ctx, e.c.B().Pttl().Key(keyspace.SaleChallenge("a", ch.ID)).Build()).AsInt64(); err != nil || pttl <= SpentMarkSkew.Milliseconds() || pttl > 300+SpentMarkSkew.Milliseconds() {
		t.Errorf("spent mark PTTL = %d, %v; want the skew allowance + 1..300 ms", pttl, err)
	}
	late, _ := e.svc.mintChallenge(ctx, "alice", "a", 300*time.Millisecond)
	waitFor(t, 5*time.Second, "challenge expiry", func() bool { return time.Now().After(late.ExpiresAt) })
	if _, err := use("alice", "a", late.ID, challenge.Solve(late.ID, 8), "k-late"); !errors.Is(err, ErrBadChallenge) {
		t.Errorf("expired challenge: err = %v, want ErrBadChallenge", err)
	}
}

// TestHonestDifficulty solves a real proof of work over HTTP and wins with it.
func TestHonestDifficulty(t *testing.T) {
	e := newEnv(t, Options{})
	e.createSale(saleSpec{id: "pow", stock: 1, shards: 1, difficulty: 16})
	e.startWorkers(1, WorkerOptions{})
	ch, err := e.svc.mintChallenge(context.Background(), "alice", "pow", 0)
	if err != nil || ch.Difficulty != 16 {
		t.Fatalf("challenge = %+v, %v; want difficulty 16", ch, err)
	}
	start := time.Now()
	nonce := challenge.Solve(ch.ID, ch.Difficulty)
	t.Logf("solved difficulty 16 in %v", time.Since(start))
	if z := challenge.LeadingZeroBits(ch.ID, nonce); z < 16 {
		t.Fatalf("Solve gave %d zero bits", z)
	}
	ticket := admittedTicket(t, e.do("POST", "/api/v1/flash-sales/pow/attempts", "alice", "", "k",
		map[string]string{"challenge_id": ch.ID, "answer": nonce}))
	if p := e.decided("pow", "alice", ticket, 5*time.Second); p.Status != StatusWon {
		t.Errorf("result = %+v, want won", p)
	}
}
