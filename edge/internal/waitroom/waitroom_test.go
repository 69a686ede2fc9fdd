package waitroom_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fasthttp/router"
	"github.com/redis/rueidis"
	"github.com/valyala/fasthttp"

	"flashedge/edge/internal/clientaddr"
	"flashedge/edge/internal/guard"
	"flashedge/edge/internal/session"
	"flashedge/edge/internal/waitroom"
	"flashedge/shared/httpapi"
	"flashedge/shared/keyspace"
	"flashedge/shared/kv"
	"flashedge/shared/kv/kvtest"
	"flashedge/shared/sale"
	shared "flashedge/shared/waitroom"
)

// env is a Room served over real HTTP on a loopback port, backed by a real redis-server, with a
// clock the test moves. The test writes what the order service and the admitter would (the sale
// hash, the shuffled places, the serving counter, the sold-out flag) with a second client, so
// the Room learns of each change through the store's invalidation pushes, as in production.
type env struct {
	t       *testing.T
	base    string
	store   rueidis.Client // the test's own client (the Room has another)
	srv     *kvtest.Server
	signer  *session.Signer
	sealer  *shared.Sealer
	room    *waitroom.Room
	clockMs atomic.Int64
	t0      time.Time
}

const hold = 30 // hold_seconds of the test sales

func newEnv(t *testing.T, o waitroom.Options) *env {
	t.Helper()
	e := &env{t: t, srv: kvtest.Start(t)}
	e.store = e.srv.ClientWith(t, kv.Options{DisableCache: true})
	e.t0 = time.Now().UTC().Truncate(time.Second)
	e.clockMs.Store(e.t0.UnixMilli())
	keys := map[string][]byte{"k1": []byte(strings.Repeat("s", 48))}
	var err error
	if e.signer, err = session.NewSigner(keys, "k1", time.Hour); err != nil {
		t.Fatal(err)
	}
	if e.sealer, err = shared.NewSealer(keys, "k1"); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	roomStore := e.srv.Client(t)
	g, err := guard.New(roomStore, log, guard.Options{Resolver: clientaddr.New(nil)})
	if err != nil {
		t.Fatal(err)
	}
	o.Now = e.now
	if e.room, err = waitroom.New(roomStore, e.signer, e.sealer, g, log, o); err != nil {
		t.Fatal(err)
	}
	r := router.New()
	e.room.Register(r)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := httpapi.NewServer(r.Handler, httpapi.ServerOptions{Name: "waitroom-test"}, log)
	done := make(chan struct{})
	go func() { defer close(done); _ = hs.Serve(ln) }()
	t.Cleanup(func() { _ = hs.Shutdown(); <-done })
	e.base = "http://" + ln.Addr().String()
	return e
}

func (e *env) now() time.Time { return time.UnixMilli(e.clockMs.Load()) }

// at sets the Room's clock to t0 + d.
func (e *env) at(d time.Duration) { e.clockMs.Store(e.t0.Add(d).UnixMilli()) }

func (e *env) do(cmd rueidis.Completed) {
	e.t.Helper()
	if err := e.store.Do(context.Background(), cmd).Error(); err != nil {
		e.t.Fatalf("store: %v", err)
	}
}

// sale writes a sale starting at t0+start and ending at t0+end; with a waiting room opening at
// t0-1s when admit > 0.
func (e *env) sale(id string, start, end time.Duration, admit int64) {
	s := &sale.Sale{ID: id, ProductID: "00000001", ProductName: "p", Price: 1000, Stock: 10, Shards: 1,
		StartsAt: e.t0.Add(start), EndsAt: e.t0.Add(end), PerUserLimit: 1, CreatedAt: e.t0}
	if admit > 0 {
		s.WaitingRoom = shared.Config{OpensAt: e.t0.Add(-time.Second), AdmitPerSecond: admit, PassSeconds: 60, HoldSeconds: hold}
	}
	args := s.HashFields()
	b := e.store.B().Hset().Key(keyspace.Sale(id)).FieldValue()
	for i := 0; i+1 < len(args); i += 2 {
		b = b.FieldValue(args[i], args[i+1])
	}
	e.do(b.Build())
	e.do(e.store.B().Hset().Key(keyspace.WaitRoom(id)).FieldValue().FieldValue("commitment", strings.Repeat("ab", 32)).Build())
}

// shuffle does what the admitter does at the start: freeze the pre-queue, write each
// pre-queue member's place and the order (as given), then reveal, serving the first `serving`.
func (e *env) shuffle(id string, order []string, serving int) {
	e.t.Helper()
	if len(order) > 0 {
		b := e.store.B().Hset().Key(keyspace.WaitRoomPlace(id)).FieldValue()
		for i, u := range order {
			b = b.FieldValue(u, strconv.Itoa(i+1))
		}
		e.do(b.Build())
	}
	e.do(e.store.B().Set().Key(keyspace.WaitRoomOrder(id)).Value(strings.Join(order, "\n")).Build())
	e.do(e.store.B().Hset().Key(keyspace.WaitRoom(id)).FieldValue().FieldValue("presize", strconv.Itoa(len(order))).
		FieldValue("shuffled", "1").FieldValue("seed", strings.Repeat("cd", 32)).FieldValue("serving", strconv.Itoa(serving)).Build())
}

func (e *env) serve(id string, serving int64) {
	e.do(e.store.B().Hset().Key(keyspace.WaitRoom(id)).FieldValue().FieldValue("serving", strconv.FormatInt(serving, 10)).Build())
}

type reply struct {
	status int
	code   string
	header http.Header
	q      shared.Answer
	body   string
}

// shopper is one user's session and the last queue token the edge gave them.
type shopper struct {
	e     *env
	user  string
	token string
	qt    string
	last  shared.Answer
}

func (e *env) shopper(name string) *shopper {
	tok, _ := e.signer.Issue("u-"+name, time.Now())
	return &shopper{e: e, user: "u-" + name, token: tok}
}

// call sends one request; the queue token sent is qt (the shopper's last when qt is "last").
func (e *env) call(method, path, bearer, qt string) reply {
	e.t.Helper()
	req, err := http.NewRequest(method, e.base+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	if qt != "" {
		req.Header.Set(waitroom.HeaderQueueToken, qt)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, header: resp.Header, body: string(b)}
	if r.status == 200 {
		if err := json.Unmarshal(b, &r.q); err != nil {
			e.t.Fatalf("%s %s: body %q: %v", method, path, b, err)
		}
	} else {
		var eb httpapi.ErrorBody
		if err := json.Unmarshal(b, &eb); err != nil || eb.Error.Message == "" {
			e.t.Fatalf("%s %s: %d with body %q, want a JSON error", method, path, r.status, b)
		}
		r.code = eb.Error.Code
	}
	return r
}

func (s *shopper) send(method, id, qt string) reply {
	s.e.t.Helper()
	r := s.e.call(method, "/api/v1/flash-sales/"+id+"/queue", s.token, qt)
	if r.status == 200 {
		s.last = r.q
		if r.q.QueueToken != "" {
			s.qt = r.q.QueueToken
		}
	}
	return r
}

func (s *shopper) join(id string) reply { s.e.t.Helper(); return s.send("POST", id, s.qt) }
func (s *shopper) poll(id string) reply { s.e.t.Helper(); return s.send("GET", id, s.qt) }

// pollUntil polls (with the shopper's token) until the answer's state is want, within a
// generous deadline: the Room sees the test's store writes through invalidation pushes.
func (s *shopper) pollUntil(id, want string) reply {
	s.e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := s.poll(id)
		if r.status == 200 && r.q.State == want {
			return r
		}
		if time.Now().After(deadline) {
			s.e.t.Fatalf("%s polling %s: %d %s, want state %s", s.user, id, r.status, r.body, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func want(t *testing.T, what string, r reply, status int, code string) {
	t.Helper()
	if r.status != status || r.code != code {
		t.Fatalf("%s: %d %q (%s), want %d %q", what, r.status, r.code, r.body, status, code)
	}
}

func TestRefusals(t *testing.T) {
	e := newEnv(t, waitroom.Options{UserRate: 1000, AddrRate: -1})
	e.sale("wr", 10*time.Second, time.Hour, 5)
	e.sale("plain", -time.Second, time.Hour, 0)
	e.sale("gone", -2*time.Hour, -time.Hour, 5)
	e.sale("sold", -time.Second, time.Hour, 5)
	e.do(e.store.B().Set().Key(keyspace.SoldOut("sold")).Value("1").Build())
	e.sale("later", time.Hour, 2*time.Hour, 5)
	e.do(e.store.B().Hset().Key(keyspace.Sale("later")).FieldValue().
		FieldValue(shared.FieldOpensAtMs, strconv.FormatInt(e.t0.Add(time.Minute).UnixMilli(), 10)).Build())
	a := e.shopper("a")

	tests := []struct {
		name, method, path, bearer string
		status                     int
		code                       string
	}{
		{"join without a session", "POST", "/api/v1/flash-sales/wr/queue", "", 401, "unauthorized"},
		{"poll with a forged session", "GET", "/api/v1/flash-sales/wr/queue", a.token + "x", 401, "unauthorized"},
		{"malformed sale id", "POST", "/api/v1/flash-sales/" + strings.Repeat("a", 65) + "/queue", a.token, 404, "not_found"},
		{"unknown sale", "POST", "/api/v1/flash-sales/nope/queue", a.token, 404, "not_found"},
		{"sale without a waiting room", "POST", "/api/v1/flash-sales/plain/queue", a.token, 409, "no_waiting_room"},
		{"fairness of a sale without one", "GET", "/api/v1/flash-sales/plain/queue/fairness", "", 409, "no_waiting_room"},
		{"before the room opens", "POST", "/api/v1/flash-sales/later/queue", a.token, 425, "not_open"},
		{"poll before joining", "GET", "/api/v1/flash-sales/wr/queue", a.token, 404, "not_in_queue"},
		{"join an ended sale", "POST", "/api/v1/flash-sales/gone/queue", a.token, 410, "ended"},
		{"join a sold-out sale", "POST", "/api/v1/flash-sales/sold/queue", a.token, 410, "sold_out"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.call(tt.method, tt.path, tt.bearer, "")
			want(t, tt.method+" "+tt.path, r, tt.status, tt.code)
			if tt.status == 425 {
				if ra, _ := strconv.Atoi(r.header.Get("Retry-After")); ra < 59 || ra > 61 {
					t.Errorf("Retry-After %q, want the 60 s until the room opens", r.header.Get("Retry-After"))
				}
			}
		})
	}

	t.Run("a token of another user or sale is not taken", func(t *testing.T) {
		b := e.shopper("b")
		if r := b.join("wr"); r.status != 200 {
			t.Fatalf("b joins: %d %s", r.status, r.body)
		}
		// a presents b's token: the token is ignored, and a has no place.
		want(t, "poll with another user's token", e.call("GET", "/api/v1/flash-sales/wr/queue", a.token, b.qt), 404, "not_in_queue")
		forged := b.qt[:len(b.qt)-2] + "AA"
		if r := b.send("GET", "wr", forged); r.status != 200 || r.q.State != "waiting" {
			t.Fatalf("b with a forged token: %d %s, want the place looked up in the store", r.status, r.body)
		}
	})

	t.Run("user rate limit", func(t *testing.T) {
		e2 := newEnv(t, waitroom.Options{UserRate: 1, UserBurst: 2, AddrRate: -1})
		e2.sale("wr", 10*time.Second, time.Hour, 5)
		c := e2.shopper("c")
		var last reply
		for range 3 {
			last = c.join("wr")
		}
		want(t, "third join within the burst of 2", last, 429, "rate_limited")
		if last.header.Get("Retry-After") == "" {
			t.Error("429 without Retry-After")
		}
	})
}

// TestQueueStates walks one sale through the pre-queue, the shuffle, admission with a pass, the
// sell-out and the end, and checks that polls carrying a token cost the store nothing.
func TestQueueStates(t *testing.T) {
	e := newEnv(t, waitroom.Options{UserRate: 1000, AddrRate: -1})
	const id = "wr"
	e.sale(id, 20*time.Second, time.Hour, 2)
	var pre []*shopper
	for i := range 6 {
		pre = append(pre, e.shopper(fmt.Sprintf("p%d", i)))
	}
	for _, s := range pre {
		r := s.join(id)
		if r.status != 200 || r.q.State != "waiting" || r.q.Position != nil || r.q.QueueToken == "" {
			t.Fatalf("%s joins the pre-queue: %d %s, want waiting with no position yet", s.user, r.status, r.body)
		}
		if *r.q.ETASeconds != 20 || *r.q.PollAfterMs < 1000 || *r.q.PollAfterMs > 20_000+1100 {
			t.Errorf("%s before the start: eta %d s, poll after %d ms, want 20 s and at most the start plus 1.1 s",
				s.user, *r.q.ETASeconds, *r.q.PollAfterMs)
		}
	}
	if r := pre[0].join(id); r.status != 200 || r.q.State != "waiting" || r.q.Position != nil {
		t.Fatalf("joining again: %d %s", r.status, r.body)
	}

	// Polls with a token, before and after the shuffle, are answered from memory.
	pre[1].poll(id)
	calls := func() int64 { n, _ := kv.CommandCalls(context.Background(), e.store, ""); return n }
	before := calls()
	for range 20 {
		if r := pre[1].poll(id); r.status != 200 || r.q.State != "waiting" {
			t.Fatalf("poll before the start: %d %s", r.status, r.body)
		}
	}
	if d := calls() - before; d != 0 {
		t.Errorf("20 polls with a token before the start cost %d store commands, want 0", d)
	}

	// The start: the pre-queue is drawn (here: in reverse join order) and 2 are served.
	e.at(21 * time.Second)
	order := []string{}
	for i := len(pre) - 1; i >= 0; i-- {
		order = append(order, pre[i].user)
	}
	e.shuffle(id, order, 2)
	// The late joiner's place is taken by the store at once (its token carries it); the edge
	// shows it once the shuffle's invalidation has reached its cached sale state.
	late := e.shopper("late")
	lr := late.join(id)
	for deadline := time.Now().Add(10 * time.Second); lr.status == 200 && lr.q.Position == nil; lr = late.poll(id) {
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if lr.status != 200 || lr.q.Position == nil || *lr.q.Position != int64(len(pre)+1) {
		t.Fatalf("a joiner after the start: %s, want position %d behind the pre-queue", lr.body, len(pre)+1)
	}
	back := pre[0] // drawn last: position 6
	r := back.poll(id)
	for deadline := time.Now().Add(10 * time.Second); r.q.Position == nil; r = back.poll(id) {
		if time.Now().After(deadline) {
			t.Fatalf("no position after the shuffle: %s", r.body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if *r.q.Position != 6 || *r.q.Ahead != 3 || *r.q.ETASeconds != 2 {
		t.Fatalf("position 6 with 2 served at 2/s: %s, want ahead 3 and eta 2 s", r.body)
	}
	// The edge read the whole order once: the other waiting pre-queue members' first polls
	// after the shuffle are answered from memory too (positions 5, 4, 3; 1 and 2 are admitted).
	before = calls()
	for i, s := range pre[1:4] {
		if r := s.poll(id); r.status != 200 || r.q.Position == nil || *r.q.Position != int64(len(pre)-1-i) {
			t.Fatalf("%s's first poll after the shuffle: %s, want position %d", s.user, r.body, len(pre)-1-i)
		}
	}
	if d := calls() - before; d != 0 {
		t.Errorf("the other pre-queue members' first polls after the shuffle cost %d store commands, want 0", d)
	}
	before = calls()
	for range 20 {
		if r := back.poll(id); r.status != 200 || r.q.State != "waiting" || *r.q.Position != 6 {
			t.Fatalf("poll after the shuffle: %d %s", r.status, r.body)
		}
	}
	if d := calls() - before; d != 0 {
		t.Errorf("20 polls with a known position cost %d store commands, want 0", d)
	}

	// The turn comes: admitted with a pass, recorded once; a re-join keeps it.
	e.serve(id, 6)
	r = back.pollUntil(id, "admitted")
	if r.q.Pass == "" || r.q.PassExpiresAt == "" || *r.q.Ahead != 0 {
		t.Fatalf("admitted: %s, want a pass and its expiry", r.body)
	}
	p, err := e.sealer.OpenPass(r.q.Pass, id, back.user, e.now())
	if err != nil || p.Position != 6 {
		t.Fatalf("the pass does not open for its holder: %+v %v", p, err)
	}
	exp := r.q.PassExpiresAt
	e.at(25 * time.Second)
	if r := back.join(id); r.status != 200 || r.q.State != "admitted" || r.q.PassExpiresAt != exp {
		t.Fatalf("re-join when admitted: %s, want admitted with the same pass expiry %s", r.body, exp)
	}
	if r := back.send("GET", id, ""); r.status != 200 || r.q.State != "admitted" || r.q.PassExpiresAt != exp {
		t.Fatalf("poll without a token when admitted: %s, want the same pass", r.body)
	}

	// Sold out: every waiting shopper's next poll says so, at once.
	w := late // position 7, behind the 6 served
	w.pollUntil(id, "waiting")
	e.do(e.store.B().Set().Key(keyspace.SoldOut(id)).Value("1").Build())
	r = w.pollUntil(id, "sold_out")
	if r.q.PollAfterMs == nil || *r.q.PollAfterMs < 1000 {
		t.Errorf("sold out answer: %s, want a poll_after_ms (units may come back)", r.body)
	}
	want(t, "join after the sell-out", e.shopper("x").join(id), 410, "sold_out")
	e.do(e.store.B().Del().Key(keyspace.SoldOut(id)).Build())
	w.pollUntil(id, "waiting")

	// The end.
	e.at(time.Hour + time.Second)
	if r := w.poll(id); r.status != 200 || r.q.State != "ended" {
		t.Fatalf("poll after the end: %s, want ended", r.body)
	}
	want(t, "join after the end", e.shopper("y").join(id), 410, "ended")
}

// TestPassCheck: an attempt on a sale with a waiting room needs its holder's unexpired pass.
func TestPassCheck(t *testing.T) {
	e := newEnv(t, waitroom.Options{UserRate: 1000, AddrRate: -1})
	e.sale("wr", -time.Second, time.Hour, 5)
	e.sale("other", -time.Second, time.Hour, 5)
	e.sale("plain", -time.Second, time.Hour, 0)
	now := e.now()
	good := e.sealer.SealPass(shared.Pass{Sale: "wr", User: "u-a", Position: 3, Expires: now.Add(time.Minute)})
	foreignKeys, _ := shared.NewSealer(map[string][]byte{"k1": []byte(strings.Repeat("z", 48))}, "k1")
	tests := []struct {
		name, sale, user, body string
		ok                     bool
		code                   string
	}{
		{"own pass", "wr", "u-a", `{"pass":"` + good + `"}`, true, ""},
		{"own pass again", "wr", "u-a", `{"pass":"` + good + `"}`, true, ""},
		{"no waiting room", "plain", "u-a", `{}`, true, ""},
		{"no pass", "wr", "u-a", `{"challenge_id":"c"}`, false, "pass_required"},
		{"empty pass", "wr", "u-a", `{"pass":""}`, false, "pass_required"},
		{"not JSON", "wr", "u-a", `pass=`, false, "pass_required"},
		{"another user's pass", "wr", "u-b", `{"pass":"` + good + `"}`, false, "pass_invalid"},
		{"another sale's pass", "other", "u-a", `{"pass":"` + good + `"}`, false, "pass_invalid"},
		{"forged", "wr", "u-a", `{"pass":"` + good[:len(good)-3] + `AAA"}`, false, "pass_invalid"},
		{"signed with another key", "wr", "u-a", `{"pass":"` + foreignKeys.SealPass(shared.Pass{Sale: "wr", User: "u-a", Position: 3, Expires: now.Add(time.Minute)}) + `"}`, false, "pass_invalid"},
		{"expired", "wr", "u-a", `{"pass":"` + e.sealer.SealPass(shared.Pass{Sale: "wr", User: "u-a", Position: 3, Expires: now}) + `"}`, false, "pass_invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ctx fasthttp.RequestCtx
			ctx.Request.SetBodyString(tt.body)
			if ok := e.room.Pass(&ctx, []byte(tt.sale), tt.user); ok != tt.ok {
				t.Fatalf("Pass = %v (%d %s), want %v", ok, ctx.Response.StatusCode(), ctx.Response.Body(), tt.ok)
			}
			if tt.ok {
				return
			}
			var eb httpapi.ErrorBody
			if ctx.Response.StatusCode() != 403 || json.Unmarshal(ctx.Response.Body(), &eb) != nil || eb.Error.Code != tt.code {
				t.Fatalf("refusal %d %s, want 403 %s", ctx.Response.StatusCode(), ctx.Response.Body(), tt.code)
			}
		})
	}
	// The first use is recorded once, with the pass's position, for the admitter's make-up count.
	used, err := e.store.Do(context.Background(), e.store.B().Zrange().Key(keyspace.WaitRoomUsed("wr")).Min("0").Max("-1").Withscores().Build()).AsZScores()
	if err != nil || len(used) != 1 || used[0].Member != "u-a" || used[0].Score != 3 {
		t.Fatalf("used passes %+v (%v), want u-a at 3 once", used, err)
	}
}

// TestHoldAndRejoin: a place is lost after hold_seconds without a poll, and joining again then
// gives a new place at the back, never the old one: a re-join can neither reset a lost place into
// a better position nor hold two places.
func TestHoldAndRejoin(t *testing.T) {
	e := newEnv(t, waitroom.Options{UserRate: 1000, AddrRate: -1})
	const id = "wr"
	e.sale(id, -time.Second, time.Hour, 1)
	e.shuffle(id, nil, 0) // an empty pre-queue: everyone joins in order
	var s []*shopper
	for i := range 5 {
		sh := e.shopper(fmt.Sprintf("h%d", i))
		if r := sh.join(id); r.status != 200 || r.q.Position == nil || *r.q.Position != int64(i+1) {
			t.Fatalf("%s joins: %s, want position %d", sh.user, r.body, i+1)
		}
		s = append(s, sh)
	}
	positionOf := func(sh *shopper) int64 {
		p, err := e.store.Do(context.Background(), e.store.B().Hget().Key(keyspace.WaitRoomPlace(id)).Field(sh.user).Build()).AsInt64()
		if err != nil {
			t.Fatalf("place of %s: %v", sh.user, err)
		}
		return p
	}

	t.Run("polling within hold keeps the place", func(t *testing.T) {
		e.at((hold - 1) * time.Second)
		if r := s[0].poll(id); r.status != 200 || r.q.State != "waiting" || *r.q.Position != 1 {
			t.Fatalf("poll after %d s: %s", hold-1, r.body)
		}
		e.at((2*hold - 2) * time.Second) // hold - 1 s after that poll
		if r := s[0].poll(id); r.status != 200 || r.q.State != "waiting" || *r.q.Position != 1 {
			t.Fatalf("second poll within hold: %s", r.body)
		}
		if r := s[0].join(id); r.status != 200 || *r.q.Position != 1 {
			t.Fatalf("re-join with a fresh token: %s, want the same place 1", r.body)
		}
	})

	t.Run("a place not polled for hold is lost", func(t *testing.T) {
		// s[1] last polled (joined) at t0; the clock is now 2*hold-2 s on.
		if r := s[1].poll(id); r.status != 200 || r.q.State != "expired" || r.q.QueueToken != "" {
			t.Fatalf("poll after %d s without one: %s, want expired and no token", 2*hold-2, r.body)
		}
		if r := s[1].send("GET", id, ""); r.q.State != "expired" {
			t.Fatalf("poll without a token after the loss: %s, want expired", r.body)
		}
	})

	t.Run("joining again after the loss goes to the back", func(t *testing.T) {
		r := s[1].join(id)
		if r.status != 200 || r.q.State != "waiting" || r.q.Position == nil || *r.q.Position != 6 {
			t.Fatalf("re-join after the loss: %s, want waiting at 6, behind everyone", r.body)
		}
		if got := positionOf(s[1]); got != 6 {
			t.Fatalf("the store holds %s at %d, want 6", s[1].user, got)
		}
	})

	t.Run("a stale token presented at a join loses the place", func(t *testing.T) {
		// s[3] keeps the token of its join at t0, polls at 10 s for a fresh one, then joins
		// again at hold+5 s presenting the old one.
		e.at(0)
		staleTok := s[3].qt
		e.at(10 * time.Second)
		if r := s[3].poll(id); r.q.State != "waiting" || *r.q.Position != 4 {
			t.Fatalf("s3 polls: %s", r.body)
		}
		fresh := s[3].qt
		e.at((hold + 5) * time.Second) // staleTok is hold+5 s old, fresh hold-5 s
		r := s[3].send("POST", id, staleTok)
		if r.status != 200 || *r.q.Position != 7 {
			t.Fatalf("join with a stale token: %s, want a new place 7 at the back", r.body)
		}
		// The fresh token of the old, better place cannot be used to hold it too.
		e.serve(id, 5)
		r = s[3].send("GET", id, fresh)
		deadline := time.Now().Add(10 * time.Second)
		for r.q.State == "waiting" && time.Now().Before(deadline) { // until the edge sees serving 5
			time.Sleep(20 * time.Millisecond)
			r = s[3].send("GET", id, fresh)
		}
		if r.q.State != "expired" || r.q.Pass != "" {
			t.Fatalf("poll with the old place's token once it is served: %s, want expired without a pass", r.body)
		}
		if n, _ := e.store.Do(context.Background(), e.store.B().Hexists().Key(keyspace.WaitRoomPass(id)).Field(s[3].user).Build()).AsInt64(); n != 0 {
			t.Fatal("a pass was recorded for the old place")
		}
		if r := s[3].join(id); r.q.State != "waiting" || *r.q.Position != 7 {
			t.Fatalf("s3's place after all that: %s, want still waiting at 7", r.body)
		}
	})

	t.Run("joining again without a token after hold goes to the back", func(t *testing.T) {
		// s[4] joined at t0 and never polled; the store saw it last then.
		e.at((hold + 6) * time.Second)
		r := s[4].send("POST", id, "")
		if r.status != 200 || *r.q.Position != 8 {
			t.Fatalf("token-less re-join after hold: %s, want a new place 8", r.body)
		}
		// Within hold of that join, a token-less re-join or poll keeps the new place.
		e.at((hold + 10) * time.Second)
		if r := s[4].send("POST", id, ""); *r.q.Position != 8 {
			t.Fatalf("token-less re-join within hold: %s, want 8 again", r.body)
		}
		if r := s[4].send("GET", id, ""); r.q.State != "waiting" || *r.q.Position != 8 {
			t.Fatalf("token-less poll within hold: %s, want 8 again", r.body)
		}
		e.at((2*hold + 11) * time.Second)
		if r := s[4].send("GET", id, ""); r.q.State != "expired" {
			t.Fatalf("token-less poll after hold: %s, want expired", r.body)
		}
	})
}

// TestFairnessRenderedOnce: before the shuffle the fairness answer is revalidated each time
// (no-cache); after it, a crowd of concurrent requests gets one rendering of the whole order,
// compressed and with an ETag (304 on revalidation), kept by the edge without asking the store
// again, and cacheable by anyone (it never changes).
func TestFairnessRenderedOnce(t *testing.T) {
	e := newEnv(t, waitroom.Options{AddrRate: -1})
	const id = "fair"
	e.sale(id, 20*time.Second, time.Hour, 2)
	path := e.base + "/api/v1/flash-sales/" + id + "/queue/fairness"
	get := func(headers ...string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest("GET", path, nil)
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		resp, err := (&http.Transport{DisableCompression: true}).RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	resp, b := get()
	if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "no-cache" || !strings.Contains(string(b), `"seed":null`) {
		t.Fatalf("before the shuffle: %d %q %s", resp.StatusCode, resp.Header.Get("Cache-Control"), b)
	}

	e.at(21 * time.Second)
	order := make([]string, 2000)
	for i := range order {
		order[i] = fmt.Sprintf("u-shopper-%04d", i)
	}
	e.shuffle(id, order, 0)
	var first []byte
	for deadline := time.Now().Add(10 * time.Second); ; {
		if resp, b = get(); resp.StatusCode == 200 && strings.Contains(string(b), "u-shopper-1999") {
			first = b
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the shuffle: %d %s", resp.StatusCode, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
	etag := resp.Header.Get("ETag")
	if etag == "" || resp.Header.Get("Cache-Control") != "public, max-age=3600" {
		t.Fatalf("after the shuffle: ETag %q, Cache-Control %q", etag, resp.Header.Get("Cache-Control"))
	}
	// The edge keeps the rendering: the store's copy of the order is not read again.
	e.do(e.store.B().Del().Key(keyspace.WaitRoomOrder(id)).Build())
	var wg sync.WaitGroup
	bodies := make([][]byte, 50)
	for i := range bodies {
		wg.Go(func() { _, bodies[i] = get() })
	}
	wg.Wait()
	for i, b := range bodies {
		if string(b) != string(first) {
			t.Fatalf("request %d: %d bytes, want the first answer's %d", i, len(b), len(first))
		}
	}
	if resp, _ := get("If-None-Match", etag); resp.StatusCode != 304 {
		t.Fatalf("revalidation: %d, want 304", resp.StatusCode)
	}
	resp, gz := get("Accept-Encoding", "gzip")
	if resp.Header.Get("Content-Encoding") != "gzip" || len(gz)*4 > len(first) {
		t.Fatalf("gzip: encoding %q, %d bytes for %d", resp.Header.Get("Content-Encoding"), len(gz), len(first))
	}
}
