// Package waitroom is the edge's side of a flash sale's waiting room: joining, polls answered
// from memory, the fairness record, and the pass check on attempts.
//
// A poll costs the store nothing: the sale, its sold-out flag and the waiting room's state hash
// (the serving counter, written once per admission batch) are read through the store's
// client-side cache, and the shopper's place travels in a signed queue token (shared/waitroom)
// that any edge verifies. The store is asked only when a shopper joins, once per edge after the
// opening shuffle (the whole shuffled order, from which every pre-queue member's first poll
// learns the position), when a turn comes (the pass is recorded once), when a place is lost,
// when a pass is first used and when a client comes without a token.
//
// A place is kept while its holder polls. A holder away longer than hold_seconds (the token's
// last poll says so; without a token, the last join or token-less look-up the store recorded)
// loses it, and joining again gives a new place at the back, never the old one; a token kept
// from a place given up is never admitted, so one shopper never holds two places.
package waitroom

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fasthttp/router"
	"github.com/redis/rueidis"
	"github.com/valyala/fasthttp"

	"flashedge/edge/internal/clientaddr"
	"flashedge/edge/internal/ratelimit"
	"flashedge/shared/httpapi"
	"flashedge/shared/keyspace"
	"flashedge/shared/product"
	"flashedge/shared/waitroom"
)

var (
	//go:embed join.lua
	joinLua string
	//go:embed admit.lua
	admitLua string
	//go:embed lose.lua
	loseLua string

	joinScript  = rueidis.NewLuaScript(joinLua)
	admitScript = rueidis.NewLuaScript(admitLua)
	loseScript  = rueidis.NewLuaScript(loseLua)
)

// HeaderQueueToken carries the queue token of the previous answer back to the edge.
const HeaderQueueToken = "X-Queue-Token"

// Queue states.
const (
	StateWaiting  = "waiting"
	StateAdmitted = "admitted"
	StateSoldOut  = "sold_out"
	StateExpired  = "expired"
	StateEnded    = "ended"
)

// Sessions verifies a request's session and returns its user id.
type Sessions interface {
	FromRequest(ctx *fasthttp.RequestCtx) (string, error)
}

// AddrKeyer appends the limit key of a request's client address (a *guard.Guard).
type AddrKeyer interface {
	AppendAddrKey(dst []byte, ctx *fasthttp.RequestCtx) []byte
}

// Options configure a Room. Zero values take the defaults named on each field.
type Options struct {
	// UserRate and UserBurst limit joins and polls per user at this edge (requests/s). Zero
	// means 5/s and a burst of 10.
	UserRate, UserBurst float64
	// AddrRate limits joins, polls and fairness reads per client address at this edge (a budget
	// of its own: shoppers behind one address poll often), with a burst of twice the rate. Zero
	// means 200/s; a negative rate disables the limit.
	AddrRate float64
	// ClientTTL caps how long store values stay in the client-side cache without an
	// invalidation. Zero means 1h.
	ClientTTL time.Duration
	// StoreTimeout bounds a store call. Zero means 500ms.
	StoreTimeout time.Duration
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
}

// Room serves the waiting-room routes and checks passes. Safe for concurrent use.
type Room struct {
	kv       rueidis.Client
	sessions Sessions
	seal     *waitroom.Sealer
	addrs    AddrKeyer
	log      *slog.Logger
	o        Options

	userLimit, ipLimit *ratelimit.Limiter

	mu       sync.Mutex
	fairness map[string]*fairEntry // fairness answers of shuffled sales (immutable)
	orders   map[string]*order     // shuffled pre-queues by sale (immutable once read)
	used     map[string]struct{}
}

// New returns a Room. Every argument is required.
//
// addrs gives each request's client address key (its guard: one home for what an address is);
// its own limits are not spent, the Room keeps budgets of its own.
func New(kv rueidis.Client, sessions Sessions, seal *waitroom.Sealer, addrs AddrKeyer, log *slog.Logger, o Options) (*Room, error) {
	if kv == nil || sessions == nil || seal == nil || addrs == nil || log == nil {
		return nil, errors.New("waitroom: store client, sessions, sealer, address keyer and logger are required")
	}
	if o.UserRate == 0 {
		o.UserRate, o.UserBurst = 5, 10
	}
	if o.UserBurst == 0 {
		o.UserBurst = 2 * o.UserRate
	}
	if o.AddrRate == 0 {
		o.AddrRate = 200
	}
	if o.ClientTTL == 0 {
		o.ClientTTL = time.Hour
	}
	if o.StoreTimeout == 0 {
		o.StoreTimeout = 500 * time.Millisecond
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	r := &Room{kv: kv, sessions: sessions, seal: seal, addrs: addrs, log: log, o: o, fairness: map[string]*fairEntry{},
		orders: map[string]*order{}, used: map[string]struct{}{}}
	var err error
	if r.userLimit, err = ratelimit.New(ratelimit.Options{Rate: o.UserRate, Burst: o.UserBurst, Now: o.Now}); err != nil {
		return nil, err
	}
	if o.AddrRate > 0 {
		if r.ipLimit, err = ratelimit.New(ratelimit.Options{Rate: o.AddrRate, Burst: 2 * o.AddrRate, Now: o.Now}); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Sweep forgets idle rate-limit buckets; the edge calls it every few seconds.
func (r *Room) Sweep() {
	r.userLimit.Sweep()
	if r.ipLimit != nil {
		r.ipLimit.Sweep()
	}
}

// Register adds the waiting-room routes to rt.
func (r *Room) Register(rt *router.Router) {
	rt.POST("/api/v1/flash-sales/{id}/queue", r.join)
	rt.GET("/api/v1/flash-sales/{id}/queue", r.poll)
	rt.GET("/api/v1/flash-sales/{id}/queue/fairness", r.fairnessRoute)
}

// sale is what a poll needs of a sale, from the client-side cache.
type sale struct {
	id         string
	exists     bool
	start, end int64 // unix ms
	soldOut    bool
	cfg        waitroom.Config
	shuffled   bool
	serving    int64
	commitment string
	seed       string
	preSize    int64
	hasPreSize bool
}

func (r *Room) storeCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), r.o.StoreTimeout)
}

// load reads the sale, its sold-out flag and its waiting-room state through the client-side
// cache: after the first read at this edge, only an invalidation (a batch, the sell-out) makes
// the next one go to the store.
func (r *Room) load(id string) (*sale, error) {
	ctx, cancel := r.storeCtx()
	defer cancel()
	res := r.kv.DoMultiCache(ctx,
		rueidis.CT(r.kv.B().Hgetall().Key(keyspace.Sale(id)).Cache(), r.o.ClientTTL),
		rueidis.CT(r.kv.B().Get().Key(keyspace.SoldOut(id)).Cache(), r.o.ClientTTL),
		rueidis.CT(r.kv.B().Hgetall().Key(keyspace.WaitRoom(id)).Cache(), r.o.ClientTTL),
	)
	m, err := res[0].AsStrMap()
	if err != nil {
		return nil, fmt.Errorf("waitroom: read sale %s: %w", id, err)
	}
	_, ferr := res[1].ToString()
	if ferr != nil && !rueidis.IsRedisNil(ferr) {
		return nil, fmt.Errorf("waitroom: read sold-out flag of %s: %w", id, ferr)
	}
	st, err := res[2].AsStrMap()
	if err != nil {
		return nil, fmt.Errorf("waitroom: read waiting room of %s: %w", id, err)
	}
	num := func(m map[string]string, k string) int64 { n, _ := strconv.ParseInt(m[k], 10, 64); return n }
	s := &sale{id: id, exists: m["id"] != "", soldOut: ferr == nil}
	if !s.exists {
		return s, nil
	}
	s.start, s.end = num(m, "starts_at_ms"), num(m, "ends_at_ms")
	s.cfg = waitroom.FromHash(m)
	s.shuffled = st["shuffled"] == "1"
	s.serving = num(st, "serving")
	s.commitment, s.seed = st["commitment"], st["seed"]
	_, s.hasPreSize = st["presize"]
	s.preSize = num(st, "presize")
	return s, nil
}

func ptr(n int64) *int64 { return &n }

var statusTooEarly = 425

// open checks what join and poll share: rate limits, session, the sale and its waiting room. It
// writes the refusal itself and returns nil on refusal.
func (r *Room) open(ctx *fasthttp.RequestCtx) (*sale, string) {
	if !r.allowIP(ctx) {
		return nil, ""
	}
	ctx.Request.Header.Del(httpapi.HeaderUserID)
	uid, err := r.sessions.FromRequest(ctx)
	if err != nil {
		httpapi.WriteError(ctx, fasthttp.StatusUnauthorized, "unauthorized", "log in first: a valid, unexpired session token is required")
		return nil, ""
	}
	if ok, wait := r.userLimit.Allow([]byte(uid)); !ok {
		limited(ctx, wait)
		return nil, ""
	}
	s := r.sale(ctx)
	if s == nil {
		return nil, ""
	}
	if now := r.o.Now().UnixMilli(); now < s.cfg.OpensAt.UnixMilli() {
		ctx.Response.Header.Set("Retry-After", strconv.FormatInt((s.cfg.OpensAt.UnixMilli()-now+999)/1000, 10))
		httpapi.WriteError(ctx, statusTooEarly, "not_open", "the waiting room opens at "+s.cfg.OpensAt.Format(time.RFC3339))
		return nil, ""
	}
	return s, uid
}

// sale loads the route's sale and refuses unknown ones and those without a waiting room.
func (r *Room) sale(ctx *fasthttp.RequestCtx) *sale {
	id, _ := ctx.UserValue("id").(string)
	if !product.ValidID([]byte(id)) {
		notFound(ctx)
		return nil
	}
	s, err := r.load(id)
	if err != nil {
		r.storeDown(ctx, err)
		return nil
	}
	if !s.exists {
		notFound(ctx)
		return nil
	}
	if !s.cfg.Enabled() {
		httpapi.WriteError(ctx, fasthttp.StatusConflict, "no_waiting_room", "this flash sale has no waiting room: attempt it directly")
		return nil
	}
	return s
}

func (r *Room) join(ctx *fasthttp.RequestCtx) {
	s, uid := r.open(ctx)
	if s == nil {
		return
	}
	now := r.o.Now()
	switch {
	case now.UnixMilli() >= s.end:
		httpapi.WriteError(ctx, fasthttp.StatusGone, "ended", "the flash sale has ended")
		return
	case s.soldOut && now.UnixMilli() >= s.start:
		httpapi.WriteError(ctx, fasthttp.StatusGone, "sold_out", "the flash sale is sold out")
		return
	}
	// A token of this user's place tells whether its holder kept polling; without one, the
	// store's record of the last sign of life does.
	token := ""
	if t, err := r.seal.OpenTicket(string(ctx.Request.Header.Peek(HeaderQueueToken))); err == nil && t.Sale == s.id && t.User == uid {
		token = "0"
		if t.PassExpires.IsZero() && now.Sub(t.LastPoll) > s.hold() {
			token = "1"
		}
	}
	t, passExp, lost, err := r.place(s, uid, now, token, true)
	if err != nil {
		r.placeError(ctx, err)
		return
	}
	r.respond(ctx, s, t, passExp, lost, now)
}

func (s *sale) hold() time.Duration { return time.Duration(s.cfg.HoldSeconds) * time.Second }

// place asks the store for uid's place: joining (join) or only looking it up. token says what
// the caller's queue token showed: "1" away longer than hold, "0" not, "" no token.
func (r *Room) place(s *sale, uid string, now time.Time, token string, join bool) (t waitroom.Ticket, passExp int64, lost bool, err error) {
	ctx, cancel := r.storeCtx()
	defer cancel()
	keys := []string{keyspace.WaitRoom(s.id), keyspace.WaitRoomPre(s.id), keyspace.WaitRoomPlace(s.id),
		keyspace.WaitRoomLost(s.id), keyspace.WaitRoomTail(s.id), keyspace.WaitRoomPass(s.id), keyspace.WaitRoomSeen(s.id)}
	t = waitroom.Ticket{Sale: s.id, User: uid, LastPoll: now}
	mode := "look"
	if join {
		mode = "join"
	}
	rep, err := joinScript.Exec(ctx, r.kv, keys, []string{uid, strconv.FormatInt(now.UnixMilli(), 10),
		strconv.FormatInt(s.start, 10), strconv.FormatInt(s.hold().Milliseconds(), 10), token, mode}).ToArray()
	if err != nil || len(rep) != 3 {
		return t, 0, false, fmt.Errorf("waitroom: %s %s: %v", mode, s.id, err)
	}
	kind, _ := rep[0].ToString()
	t.Position, _ = rep[1].AsInt64()
	passExp, _ = rep[2].AsInt64()
	switch kind {
	case "none":
		return t, 0, false, errNotInQueue
	case "busy":
		return t, 0, false, errShuffling
	}
	return t, passExp, kind == "lost", nil
}

// placeError answers a failed place look-up.
func (r *Room) placeError(ctx *fasthttp.RequestCtx, err error) {
	switch {
	case errors.Is(err, errNotInQueue):
		httpapi.WriteError(ctx, fasthttp.StatusNotFound, "not_in_queue", "you have not joined this waiting room: POST to join")
	case errors.Is(err, errShuffling):
		ctx.Response.Header.Set("Retry-After", "1")
		httpapi.WriteError(ctx, fasthttp.StatusServiceUnavailable, "shuffling", "the queue is being drawn at the opening: retry in a second")
	default:
		r.storeDown(ctx, err)
	}
}

var (
	errNotInQueue = errors.New("waitroom: not in the queue")
	errShuffling  = errors.New("waitroom: the pre-queue is being shuffled")
)

func (r *Room) poll(ctx *fasthttp.RequestCtx) {
	s, uid := r.open(ctx)
	if s == nil {
		return
	}
	now := r.o.Now()
	t, err := r.seal.OpenTicket(string(ctx.Request.Header.Peek(HeaderQueueToken)))
	var passExp int64
	lost := false
	if err != nil || t.Sale != s.id || t.User != uid {
		// No usable token: the place is looked up in the store (rate limited above). It is
		// kept when the store saw its holder within hold (a join or such a look-up), and the
		// look-up counts as a sign of life.
		if t, passExp, lost, err = r.place(s, uid, now, "", false); err != nil {
			r.placeError(ctx, err)
			return
		}
	} else if passExp, lost, err = r.advance(s, &t, now); err != nil {
		r.storeDown(ctx, err)
		return
	}
	r.respond(ctx, s, t, passExp, lost, now)
}

// advance applies a verified ticket's history: a place not polled for hold_seconds is lost
// (recorded in the store once), and a pre-queue joiner learns the position after the shuffle
// (one store read).
func (r *Room) advance(s *sale, t *waitroom.Ticket, now time.Time) (passExp int64, lost bool, err error) {
	if !t.PassExpires.IsZero() {
		return t.PassExpires.UnixMilli(), false, nil
	}
	admitted := s.shuffled && t.Position > 0 && t.Position <= s.serving
	if now.Sub(t.LastPoll) > s.hold() && !admitted {
		ctx, cancel := r.storeCtx()
		defer cancel()
		n, err := loseScript.Exec(ctx, r.kv, []string{keyspace.WaitRoomPass(s.id), keyspace.WaitRoomLost(s.id), keyspace.WaitRoomPlace(s.id)},
			[]string{t.User, strconv.FormatInt(now.UnixMilli(), 10), strconv.FormatInt(t.Position, 10)}).AsInt64()
		if err != nil {
			return 0, false, fmt.Errorf("waitroom: lose place: %w", err)
		}
		if n == 1 {
			return 0, true, nil
		}
		return n, false, nil
	}
	if t.Position == 0 && s.shuffled {
		pos, err := r.prePosition(s.id, t.User)
		if err != nil {
			return 0, false, err
		}
		t.Position = pos
	}
	return 0, false, nil
}

// MaxOrderCache bounds the pre-queues an edge keeps in memory (users): a larger one is not
// held, and each member's position is read from the store once instead.
const MaxOrderCache = 2_000_000

// order is a sale's shuffled pre-queue: user -> position, read once per edge. After the shuffle
// every pre-queue member polls within a second or so; reading the whole order once (it never
// changes) answers all of them from memory instead of one store read each at the busiest moment.
type order struct {
	once sync.Once
	pos  map[string]int64 // nil: not held (too large, or the read failed)
	err  error
}

// prePosition returns the place of pre-queue member user of a shuffled sale, 0 when the user is
// not in the pre-queue.
func (r *Room) prePosition(sale, user string) (int64, error) {
	r.mu.Lock()
	o := r.orders[sale]
	if o == nil {
		if len(r.orders) >= 64 {
			clear(r.orders)
		}
		o = &order{}
		r.orders[sale] = o
	}
	r.mu.Unlock()
	o.once.Do(func() { o.pos, o.err = r.readOrder(sale) })
	if o.err != nil {
		r.mu.Lock()
		if r.orders[sale] == o {
			delete(r.orders, sale) // the next poll tries again
		}
		r.mu.Unlock()
		return 0, o.err
	}
	if o.pos != nil {
		return o.pos[user], nil
	}
	ctx, cancel := r.storeCtx()
	defer cancel()
	pos, err := r.kv.Do(ctx, r.kv.B().Hget().Key(keyspace.WaitRoomPlace(sale)).Field(user).Build()).AsInt64()
	if err != nil && !rueidis.IsRedisNil(err) {
		return 0, fmt.Errorf("waitroom: read position: %w", err)
	}
	return pos, nil
}

// readOrder reads a shuffled sale's published order (WaitRoomOrder, written before the seed is
// revealed and never changed) into a map; nil for one over MaxOrderCache.
func (r *Room) readOrder(sale string) (map[string]int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*r.o.StoreTimeout)
	defer cancel()
	n, err := r.kv.Do(ctx, r.kv.B().Strlen().Key(keyspace.WaitRoomOrder(sale)).Build()).AsInt64()
	if err != nil {
		return nil, fmt.Errorf("waitroom: read order size: %w", err)
	}
	if n > MaxOrderCache*(httpapi.MaxUserIDLen+1) {
		return nil, nil
	}
	s, err := r.kv.Do(ctx, r.kv.B().Get().Key(keyspace.WaitRoomOrder(sale)).Build()).ToString()
	if err != nil && !rueidis.IsRedisNil(err) {
		return nil, fmt.Errorf("waitroom: read order: %w", err)
	}
	m := make(map[string]int64, strings.Count(s, "\n")+1)
	for i := int64(1); s != ""; i++ {
		u, rest, _ := strings.Cut(s, "\n")
		m[u], s = i, rest
	}
	if len(m) > MaxOrderCache {
		return nil, nil
	}
	return m, nil
}

// respond writes the answer for ticket t (position 0: not known yet) at now.
func (r *Room) respond(ctx *fasthttp.RequestCtx, s *sale, t waitroom.Ticket, passExp int64, lost bool, now time.Time) {
	ctx.Response.Header.Set("Cache-Control", "no-store")
	nowMs := now.UnixMilli()
	hold := time.Duration(s.cfg.HoldSeconds) * time.Second
	a := waitroom.Answer{}
	if t.Position > 0 && s.shuffled {
		a.Position = ptr(t.Position)
	}
	t.LastPoll = now
	keep := func() { a.QueueToken = r.seal.SealTicket(t) }
	switch {
	case nowMs >= s.end:
		a.State = StateEnded
	case lost:
		a.State = StateExpired
	case s.soldOut && nowMs >= s.start:
		a.State = StateSoldOut
		a.PollAfterMs = ptr(waitroom.PollAfter(waitroom.MaxPollAfter, hold).Milliseconds())
		keep()
	case a.Position != nil && t.Position <= s.serving:
		if passExp == 0 {
			exp, err := r.admit(s, t, now)
			if err != nil {
				r.storeDown(ctx, err)
				return
			}
			if exp < 0 {
				a.State = StateExpired
				break
			}
			passExp = exp
		}
		if nowMs >= passExp {
			a.State = StateExpired
			break
		}
		a.State = StateAdmitted
		t.PassExpires = time.UnixMilli(passExp)
		a.Ahead, a.ETASeconds = ptr(0), ptr(0)
		a.Pass = r.seal.SealPass(waitroom.Pass{Sale: s.id, User: t.User, Position: t.Position, Expires: time.UnixMilli(passExp)})
		a.PassExpiresAt = time.UnixMilli(passExp).UTC().Format(time.RFC3339)
		a.PollAfterMs = ptr(max(waitroom.MinPollAfter, min(time.Duration(passExp-nowMs)*time.Millisecond, hold/3)).Milliseconds())
		keep()
	default:
		a.State = StateWaiting
		var wait time.Duration
		if a.Position != nil {
			a.Ahead = ptr(waitroom.Ahead(t.Position, s.serving))
			wait = waitroom.Wait(t.Position, s.serving, s.cfg.AdmitPerSecond)
		} else if nowMs < s.start {
			wait = time.Duration(s.start-nowMs) * time.Millisecond
		}
		a.ETASeconds = ptr(int64((wait + time.Second - 1) / time.Second))
		a.PollAfterMs = ptr(waitroom.Spread(waitroom.PollAfter(wait, hold), hash(t.User, nowMs)).Milliseconds())
		if a.Position == nil && nowMs < s.start {
			// Everyone in the pre-queue comes back just after the start, spread over a second.
			a.PollAfterMs = ptr(min(*a.PollAfterMs, s.start-nowMs+int64(jitter(t.User))))
		}
		keep()
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, a)
}

// jitter spreads a user's first poll after the start over a second, the same for every edge.
func jitter(user string) int { return 100 + int(hash(user, 0)%1000) }

// hash is FNV-1a of user and n: what spreads one shopper's polls from another's.
func hash(user string, n int64) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(user); i++ {
		h = (h ^ uint32(user[i])) * 16777619
	}
	for ; n != 0; n >>= 8 {
		h = (h ^ uint32(n&0xff)) * 16777619
	}
	return h
}

// admit records the pass of t's holder (once; a repeat returns the first expiry): -1 when the
// place was lost or t's position is not the holder's place any more.
func (r *Room) admit(s *sale, t waitroom.Ticket, now time.Time) (int64, error) {
	ctx, cancel := r.storeCtx()
	defer cancel()
	exp := now.Add(time.Duration(s.cfg.PassSeconds) * time.Second).UnixMilli()
	n, err := admitScript.Exec(ctx, r.kv, []string{keyspace.WaitRoomPass(s.id), keyspace.WaitRoomLost(s.id), keyspace.WaitRoomPlace(s.id)},
		[]string{t.User, strconv.FormatInt(exp, 10), strconv.FormatInt(t.Position, 10)}).AsInt64()
	if err != nil {
		return 0, fmt.Errorf("waitroom: admit: %w", err)
	}
	return n, nil
}

func limited(ctx *fasthttp.RequestCtx, wait time.Duration) {
	ctx.Response.Header.Set("Retry-After", strconv.Itoa(max(1, int((wait+time.Second-1)/time.Second))))
	httpapi.WriteError(ctx, fasthttp.StatusTooManyRequests, "rate_limited", "too many requests; slow down and retry after Retry-After seconds")
}

func notFound(ctx *fasthttp.RequestCtx) {
	httpapi.WriteError(ctx, fasthttp.StatusNotFound, "not_found", "no flash sale has this id")
}

func (r *Room) storeDown(ctx *fasthttp.RequestCtx, err error) {
	r.log.Error("waiting room store call", "err", err)
	ctx.Response.Header.Set("Retry-After", "2")
	httpapi.WriteError(ctx, fasthttp.StatusServiceUnavailable, "store_unavailable", "the waiting room is under maintenance, please come back in a moment")
}

// Pass checks an attempt on sale id by uid before it goes to the order service: a sale with a
// waiting room needs a valid pass of this user and sale in the body's "pass". It reports whether
// the attempt may go on; when not it has written the 403 (or 503) itself. A pass's first use at
// this edge is recorded in the store so unused admissions can be made up.
func (r *Room) Pass(ctx *fasthttp.RequestCtx, id []byte, uid string) bool {
	s, err := r.load(string(id))
	if err != nil {
		r.storeDown(ctx, err)
		return false
	}
	if !s.exists || !s.cfg.Enabled() {
		return true
	}
	var body struct {
		Pass *string `json:"pass"`
	}
	if json.Unmarshal(ctx.PostBody(), &body) != nil || body.Pass == nil || *body.Pass == "" {
		httpapi.WriteError(ctx, fasthttp.StatusForbidden, "pass_required", "this flash sale has a waiting room: join it and attempt with the pass it gives you")
		return false
	}
	p, err := r.seal.OpenPass(*body.Pass, s.id, uid, r.o.Now())
	if err != nil {
		msg := "the pass is not valid for you and this sale"
		if errors.Is(err, waitroom.ErrExpired) {
			msg = "the pass has expired"
		}
		httpapi.WriteError(ctx, fasthttp.StatusForbidden, "pass_invalid", msg)
		return false
	}
	k := s.id + "\x00" + uid
	r.mu.Lock()
	_, seen := r.used[k]
	r.mu.Unlock()
	if seen {
		return true
	}
	sctx, cancel := r.storeCtx()
	defer cancel()
	err = r.kv.Do(sctx, r.kv.B().Zadd().Key(keyspace.WaitRoomUsed(s.id)).Nx().ScoreMember().
		ScoreMember(float64(p.Position), uid).Build()).Error()
	if err != nil {
		r.storeDown(ctx, err)
		return false
	}
	r.mu.Lock()
	if len(r.used) >= 1_000_000 {
		clear(r.used)
	}
	r.used[k] = struct{}{}
	r.mu.Unlock()
	return true
}

// allowIP applies the per-address limit, answering the refusal itself.
func (r *Room) allowIP(ctx *fasthttp.RequestCtx) bool {
	if r.ipLimit == nil {
		return true
	}
	var kb [clientaddr.KeyLen]byte
	ok, wait := r.ipLimit.Allow(r.addrs.AppendAddrKey(kb[:0], ctx))
	if !ok {
		limited(ctx, wait)
	}
	return ok
}
