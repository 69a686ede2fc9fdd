// Package flashsale is the backend core of a flash sale: sales and their split stock, the check
// of the proof-of-work challenges the edge mints, attempt admission, the stream worker that
// decides attempts, seckill tokens, checkout, the expiry sweeper and the ledger. The order
// service mounts its HTTP routes (Handler.Register); the worker binary runs Worker.
//
// # Store layout
//
// Keys come from shared/keyspace. Every Lua script touches keys of one hash tag only (Dragonfly
// and a cluster refuse anything else), so the flow is split by slot:
//
// The sale slot {s:<sale>} holds everything about decisions: the sale hash (keyspace.Sale), the
// shard list (SaleShards), the sold-out flag (SoldOut), the ledger counters (SaleStats), units held
// per user (SaleUsers), attempts in flight per user (SaleInflight), the backlog of undecided
// tickets (SaleQueue), tickets decided without a win still to be closed (SaleClosing), challenges (SaleChallenge), idempotency records (SaleIdempotency), result
// records (SaleResult), seckill tokens (SaleToken) and reservation deadlines (SaleDeadlines).
//
// Each stock shard slot {s:<sale>:<i>} holds the shard's stock (StockShard, an integer), a claim
// marker per ticket (ShardClaims: r reserved, o ordered, x expired and returned, u released, "-"
// no unit taken here) and the shard's counters (ShardStats: reserved, ordered, returned,
// released). Every script that changes a shard's stock changes its claim marker and
// counters in the same call, so per shard, at every instant:
//
//	initial_i = stock_i + reserved_i + ordered_i
//
// and the ledger, which reads each shard atomically, balances at every sample.
//
// # Moving a unit across slots
//
// A unit moves in steps, each one Lua call in one slot, each idempotent, so a process that dies
// between two steps leaves work a retry finishes and never a unit counted twice:
//
//  1. Worker, sale slot (worker_begin.lua): ticket already decided? user at the limit? Only for a
//     requeued ticket's message: an admission's carries the user and the return epoch the gate
//     read, and steps 2-3 (and worker_finish.lua) check again what begin checks.
//  2. Worker, shard slot (shard_claim.lua), per shard probed: if the ticket has a claim marker,
//     reuse it; else DECR when above zero and mark "r", or mark "-" (no unit here). A redelivered
//     message finds its marker and takes nothing more; two workers on one ticket follow the same
//     markers and stop at the same shard.
//  3. Worker, sale slot (worker_win.lua): result "won", token, deadline, user count. If the user
//     is at the limit, the ticket ends lost (step 6); if it was decided meanwhile, it was decided
//     lost and step 6 gives the claim back.
//  4. Checkout, sale slot (token_pay.lua): reserved -> paid; user slot (order_write.lua): the order
//     document, SET NX; shard slot (shard_settle.lua): r -> o; sale slot (token_finish.lua): token
//     deleted, deadline removed.
//  5. Sweeper, sale slot (token_expire.lua): reserved -> expired (the same state field as pay, so
//     exactly one wins); shard slot (shard_settle.lua): r -> x, unit back; sale slot
//     (token_finish.lua): returned, deadline removed, sold-out flag cleared. A deadline stays in
//     the sorted set until its last step, so the next sweep finishes what a dead one started,
//     including checkouts that stopped after the pay step.
//  6. Closing a ticket decided without a win. A loss (limit reached, stranded) is decided in the
//     sale slot (worker_finish.lua) together with an entry in the closing set (SaleClosing). Then
//     whoever decided it closes the ticket in every shard (shard_settle.lua, close): a unit
//     claimed for it goes back (r -> u), and a shard without a marker gets "-", so a run of the
//     ticket still in flight can no longer claim there; a claim made before the close is seen by
//     it. Last, claims_closed.lua (sale slot) removes the entry and accounts for the units given
//     back once: the return epoch moves on, the sold-out flag is cleared, and a stranded ticket
//     that took no unit gives its admission back. Should the closer die, the sweep closes what
//     is left in the set. A sold-out decision needs no closing: its walk left "-" in every shard.
//
// Who may give a unit back is decided by the ticket's decision, which is final: a won ticket's
// unit leaves its claim only through checkout (o) or expiry (x); only tickets in the closing set,
// decided lost, are closed; a step that finds a ticket decided by someone else releases nothing on
// its own account. The races this rules out (a stranded end releasing a unit a worker had just
// won; a worker claiming for a ticket the sweeper had ended, then dying) have regression tests in
// races_test.go.
//
// # Admission and its crash window
//
// The order service runs one script in the sale slot (attempt_gate.lua): replay of the
// Idempotency-Key's first answer, sale window, challenge check and consume, sold-out flag,
// per-user limit (held + in flight), backlog (SaleQueue size) and the admitted count (less the
// tickets that ended stranded without a unit) against k x (initial + units put back into
// shards). It records the answer and, when admitted, the queued result and the backlog entry, all
// atomically; then it XADDs to the global stream (another slot). If it dies between the two, the
// ticket is in SaleQueue without a message: the worker's maintenance requeues tickets that stayed
// queued longer than RequeueAfter (bounded, MaxRequeues; then the ticket ends lost "stranded"),
// and the worker's already-done check makes the resulting duplicate messages harmless.
//
// The sweep reaches every sale in the live index (LiveSales, by end time, read in pages): a sale
// enters it at creation and leaves once it has ended with no reservation, undecided ticket or
// ticket to close left.
//
// A spent challenge makes every later answer final: the first answer for an Idempotency-Key
// (admitted with its ticket, sold out, limit, busy) is stored and replayed; a 429 means "fetch a
// new challenge and try again with a new key". Refusals before the challenge is spent (unknown
// sale, not started, ended, bad challenge) are not stored; repeating them gives the same answer.
//
// # The sold-out flag
//
// The flag (keyspace.SoldOut) only ever guides refusals; the shard scripts alone decide sales.
// SaleStats' "epoch" counts units put back into shards. The worker reads it before probing and
// sets the flag only if it is unchanged after finding every shard empty (or after taking the last
// unit); whoever puts a unit back bumps the epoch and clears the flag after the unit is in its
// shard. The sweep also clears the flag of a live sale whose shards hold stock: the safety net for
// a returner that died between its two steps.
//
// # Choices worth knowing
//
//   - A challenge costs the store nothing until it is spent: its id is self-authenticating
//     (shared/challenge: a MAC over sale, user, difficulty, expiry and a nonce) and is minted by
//     the edge. The order service checks the MAC, the expiry and the answer's hash in Go; the
//     gate then marks the id spent (SET NX with a TTL to its expiry) in the same atomic call as
//     the rest of admission, in the sale's slot (keyspace.SaleChallenge), so a replayed challenge
//     is refused exactly once spent and the mark disappears when the id could no longer verify.
//   - A reserved token has no store TTL: a key that expired on its own would take the unit's way
//     back with it. Its life is expires_at, enforced by checkout and by the sweeper; an expired
//     token is kept TokenGrace (so checkout answers 410), a paid one is deleted.
//   - Shards may start empty (stock < shards): the worker probes past them.
//   - The stream is trimmed (TrimStream) only below every group's oldest unacknowledged entry.
package flashsale

import (
	"context"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/redis/rueidis"

	"flashedge/shared/challenge"
)

// Domain errors. The HTTP layer maps them to status codes.
var (
	ErrNotFound      = errors.New("flash sale not found")
	ErrInvalid       = errors.New("invalid input")
	ErrConflict      = errors.New("a different sale with this id exists")
	ErrNoProduct     = errors.New("product not found")
	ErrBadChallenge  = errors.New("challenge missing, expired, foreign or wrongly answered")
	ErrEnded         = errors.New("flash sale has ended")
	ErrNotStarted    = errors.New("flash sale has not started")
	ErrReusedKey     = errors.New("idempotency key reused with another challenge")
	ErrTokenNotFound = errors.New("seckill token not found")
	ErrTokenUsed     = errors.New("seckill token already used")
	ErrTokenExpired  = errors.New("seckill token expired")
	ErrTicketUnknown = errors.New("ticket not found")
)

func invalid(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, a...))
}

// Defaults for the zero values in Options.
const (
	DefaultK              = 2.0
	DefaultMaxBacklog     = 5000
	DefaultDifficulty     = 12
	DefaultPollAfter      = time.Second
	DefaultBusyRetryAfter = 2 * time.Second
	DefaultIdempotencyTTL = 24 * time.Hour
	DefaultResultTTL      = 24 * time.Hour
	MinResultTTL          = time.Hour
	DefaultReservation    = 5 * time.Minute
	DefaultTokenGrace     = time.Hour
	DefaultStoreTimeout   = 2 * time.Second
	DefaultRequeueAfter   = 30 * time.Second
	DefaultMaxRequeues    = 5
	MaxDifficulty         = 28
)

// Options configure a Service. Zero values take the defaults named on each field. The order
// service and the worker should be given the same values.
type Options struct {
	// K bounds admission: attempts admitted per sale <= ceil(K x (initial stock + units put back)).
	// Zero means 2. Values below 1 are refused.
	K float64
	// MaxBacklog bounds a sale's admitted but undecided attempts; past it attempts get 429.
	// Zero means 5000.
	MaxBacklog int
	// Difficulty is the proof-of-work difficulty (leading zero bits) for sales that do not set
	// their own. Zero means 12; a negative value means 0 (any nonce answers).
	Difficulty int
	// Challenges verify the challenge ids of attempts (the edge mints them). Give every order
	// service replica and the edge the keys derived from the same FLASHEDGE_SESSION_SECRET. Nil
	// means challenge.RandomKeys(): no challenge minted elsewhere verifies (the worker, tests).
	Challenges *challenge.Keys
	// PollAfter is the poll_after_ms hint in a 202. Zero means 1s.
	PollAfter time.Duration
	// BusyRetryAfter is the Retry-After of a 429 busy answer. Zero means 2s.
	BusyRetryAfter time.Duration
	// IdempotencyTTL is how long the first answer to an Idempotency-Key is kept. Zero means 24h.
	IdempotencyTTL time.Duration
	// ResultTTL is how long a decided ticket's result stays readable. Zero means 24h.
	ResultTTL time.Duration
	// Reservation is how long a winner may check out (the token's life). Zero means 5m.
	Reservation time.Duration
	// TokenGrace is how long an expired token is kept so checkout answers "expired" rather
	// than "not found". Zero means 1h.
	TokenGrace time.Duration
	// RequeueAfter is how long an admitted ticket may stay undecided before the sweeper enqueues
	// it again (the order service may have died between admission and XADD). Keep it above the
	// worker's ClaimIdle so a slow but live worker is not raced. Zero means 30s.
	RequeueAfter time.Duration
	// MaxRequeues bounds how often one ticket is enqueued again. Zero means 5.
	MaxRequeues int
	// StoreTimeout bounds each HTTP handler's store calls. Zero means 2s.
	StoreTimeout time.Duration
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
	// Log receives operational logs. Nil discards them.
	Log *slog.Logger
	// Metrics are the counters to move (see NewOrderMetrics, NewWorkerMetrics). Nil counts nothing.
	Metrics *Metrics
}

func (o *Options) fill() error {
	if o.K == 0 {
		o.K = DefaultK
	}
	if o.K < 1 {
		return fmt.Errorf("flashsale: K=%v: admission factor must be at least 1", o.K)
	}
	if o.MaxBacklog == 0 {
		o.MaxBacklog = DefaultMaxBacklog
	}
	if o.MaxBacklog < 0 {
		return fmt.Errorf("flashsale: MaxBacklog=%d: must be positive", o.MaxBacklog)
	}
	switch {
	case o.Difficulty == 0:
		o.Difficulty = DefaultDifficulty
	case o.Difficulty < 0:
		o.Difficulty = 0
	case o.Difficulty > MaxDifficulty:
		return fmt.Errorf("flashsale: Difficulty=%d: at most %d bits", o.Difficulty, MaxDifficulty)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if o.Challenges == nil {
		o.Challenges = challenge.RandomKeys()
	}
	def(&o.PollAfter, DefaultPollAfter)
	def(&o.BusyRetryAfter, DefaultBusyRetryAfter)
	def(&o.IdempotencyTTL, DefaultIdempotencyTTL)
	def(&o.ResultTTL, DefaultResultTTL)
	def(&o.Reservation, DefaultReservation)
	def(&o.TokenGrace, DefaultTokenGrace)
	def(&o.StoreTimeout, DefaultStoreTimeout)
	def(&o.RequeueAfter, DefaultRequeueAfter)
	if o.MaxRequeues <= 0 {
		o.MaxRequeues = DefaultMaxRequeues
	}
	// A decided ticket's result must outlive every later run of the same ticket (requeues,
	// redeliveries) and its reservation: the worker reads a missing result as "no decision names
	// this claim" and gives the claim back, which for an expired win would sell its unit twice.
	if min := max(MinResultTTL, 2*(o.Reservation+o.TokenGrace)); o.ResultTTL < min {
		return fmt.Errorf("flashsale: ResultTTL=%v: at least %v (one hour, and twice the reservation with its grace)", o.ResultTTL, min)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	o.Metrics = o.Metrics.filled()
	return nil
}

//go:embed *.lua
var luaFiles embed.FS

func lua(name string) string {
	b, err := luaFiles.ReadFile(name)
	if err != nil {
		panic("flashsale: missing embedded script " + name) // a build mistake, caught by every test
	}
	return string(b)
}

type scripts struct {
	saleClaim, saleCommit               *rueidis.Lua
	gate                                *rueidis.Lua
	begin, shardClaim, shardSettle, win *rueidis.Lua
	finish, shardRead                   *rueidis.Lua
	tokenPay, tokenExpire, tokenFinish  *rueidis.Lua
	orderWrite, requeueMark             *rueidis.Lua
	claimsClosed                        *rueidis.Lua
	consumerRetire                      *rueidis.Lua
}

func loadScripts() *scripts {
	return &scripts{
		saleClaim:      rueidis.NewLuaScript(lua("sale_claim.lua")),
		saleCommit:     rueidis.NewLuaScript(lua("sale_commit.lua")),
		gate:           rueidis.NewLuaScript(lua("attempt_gate.lua")),
		begin:          rueidis.NewLuaScript(lua("worker_begin.lua")),
		shardClaim:     rueidis.NewLuaScript(lua("shard_claim.lua")),
		shardSettle:    rueidis.NewLuaScript(lua("shard_settle.lua")),
		win:            rueidis.NewLuaScript(lua("worker_win.lua")),
		finish:         rueidis.NewLuaScript(lua("worker_finish.lua")),
		shardRead:      rueidis.NewLuaScript(lua("shard_read.lua")), // not EVAL_RO: older Dragonfly lacks it
		tokenPay:       rueidis.NewLuaScript(lua("token_pay.lua")),
		tokenExpire:    rueidis.NewLuaScript(lua("token_expire.lua")),
		tokenFinish:    rueidis.NewLuaScript(lua("token_finish.lua")),
		orderWrite:     rueidis.NewLuaScript(lua("order_write.lua")),
		requeueMark:    rueidis.NewLuaScript(lua("requeue_mark.lua")),
		claimsClosed:   rueidis.NewLuaScript(lua("claims_closed.lua")),
		consumerRetire: rueidis.NewLuaScript(lua("consumer_retire.lua")),
	}
}

// Service is the flash-sale logic over the store. It is safe for concurrent use; the caller owns
// the client and closes it after the Service is no longer used.
type Service struct {
	c   rueidis.Client
	o   Options
	lua *scripts
	// gateArgs are the admission script's arguments that only depend on o, formatted once:
	// k, max backlog, idempotency TTL (ms), busy Retry-After (s).
	gateArgs [4]string

	mu   sync.RWMutex
	defs map[string]*Sale // sale definitions are immutable once committed
}

// maxCachedDefs bounds the in-process cache of sale definitions; past it the cache is dropped.
const maxCachedDefs = 10000

// New returns a Service using c. It validates o.
func New(c rueidis.Client, o Options) (*Service, error) {
	if c == nil {
		return nil, errors.New("flashsale: nil store client")
	}
	if err := o.fill(); err != nil {
		return nil, err
	}
	s := &Service{c: c, o: o, lua: loadScripts(), defs: map[string]*Sale{}}
	s.gateArgs = [4]string{strconv.FormatFloat(o.K, 'f', -1, 64), strconv.Itoa(o.MaxBacklog), msDur(o.IdempotencyTTL),
		strconv.Itoa(int((o.BusyRetryAfter + time.Second - 1) / time.Second))}
	return s, nil
}

// Options returns the options in effect (defaults filled in).
func (s *Service) Options() Options { return s.o }

func (s *Service) now() time.Time { return s.o.Now() }

// newID returns 16 random bytes in hex: tickets, tokens and challenge ids.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func ms(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }

func msDur(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }

// strs reads a script's array reply as strings (nil elements become "").
func strs(r rueidis.RedisResult) ([]string, error) {
	arr, err := r.ToArray()
	if err != nil {
		return nil, err
	}
	out := make([]string, len(arr))
	for i := range arr {
		if arr[i].IsNil() {
			continue
		}
		if v, err := arr[i].ToString(); err == nil {
			out[i] = v
		} else if n, err := arr[i].AsInt64(); err == nil {
			out[i] = strconv.FormatInt(n, 10)
		} else {
			return nil, fmt.Errorf("flashsale: unexpected script reply element %d: %v", i, arr[i])
		}
	}
	return out, nil
}

// storeCtx returns a context for one handler's store calls, bounded by StoreTimeout (fasthttp's
// request context has no deadline of its own).
func (s *Service) storeCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), s.o.StoreTimeout)
}
