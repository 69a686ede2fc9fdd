// Package waitroom is the store side of the flash-sale waiting room: fixing each sale's shuffle
// seed when the sale is created (Prepare), and the admitter that, at the start, freezes and
// shuffles the pre-queue, reveals the seed and then moves the sale's serving counter on by one
// batch a second (Admitter). Shoppers join and poll at the edge (edge/internal/waitroom); the
// pure rules (shuffle order, tokens, pacing) are in shared/waitroom.
//
// Several admitters may run (one per worker replica): the shuffle is guarded by a lock and is a
// pure function of the seed and the frozen pre-queue, so a second run writes the same places; the
// batch script moves the counter at most once a second whoever calls it.
//
// Unused admissions are made up: an admitted place whose holder made no attempt with its pass
// (the edge records each pass used, keyspace.WaitRoomUsed) within hold_seconds + pass_seconds of
// its batch counts as unused, and the next batch admits that many more on top of
// admit_per_second. A place lost for want of polls is such an unused admission once the counter
// reaches it.
package waitroom

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/rueidis"

	"flashedge/shared/keyspace"
	"flashedge/shared/waitroom"
)

var (
	//go:embed prepare.lua
	prepareLua string
	//go:embed freeze.lua
	freezeLua string
	//go:embed reveal.lua
	revealLua string
	//go:embed advance.lua
	advanceLua string

	prepareScript = rueidis.NewLuaScript(prepareLua)
	freezeScript  = rueidis.NewLuaScript(freezeLua)
	revealScript  = rueidis.NewLuaScript(revealLua)
	advanceScript = rueidis.NewLuaScript(advanceLua)
)

// Prepare fixes the shuffle seed of sale (a fresh random one, unless it has one), publishes its
// commitment and puts the sale on the admitters' list until endsAt. It is safe to repeat: a retry
// keeps the first seed. It returns the commitment.
func Prepare(ctx context.Context, c rueidis.Client, sale string, endsAt time.Time) (string, error) {
	seed := make([]byte, waitroom.SeedLen)
	if _, err := rand.Read(seed); err != nil {
		return "", fmt.Errorf("waitroom: seed: %w", err)
	}
	commit, err := prepareScript.Exec(ctx, c, []string{keyspace.WaitRoomSeed(sale), keyspace.WaitRoom(sale)},
		[]string{hex.EncodeToString(seed), waitroom.Commitment(seed)}).ToString()
	if err != nil {
		return "", fmt.Errorf("waitroom: prepare %s: %w", sale, err)
	}
	err = c.Do(ctx, c.B().Zadd().Key(keyspace.WaitRooms()).ScoreMember().
		ScoreMember(float64(endsAt.UnixMilli()), sale).Build()).Error()
	if err != nil {
		return "", fmt.Errorf("waitroom: list %s: %w", sale, err)
	}
	return commit, nil
}

// Options configure an Admitter. Zero values take the defaults named on each field.
type Options struct {
	// Tick is how often the admitter looks at its sales. Zero means 250ms (a batch lands at most
	// this late).
	Tick time.Duration
	// StoreTimeout bounds each store call. Zero means 5s (a shuffle writes the whole pre-queue).
	StoreTimeout time.Duration
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
	// Log receives shuffle reports and store errors. Nil means slog.Default().
	Log *slog.Logger
}

// Admitter shuffles pre-queues at their sale's start and paces admission. Run it in every worker
// replica; it is safe for concurrent use by Run and Step.
type Admitter struct {
	c rueidis.Client
	o Options

	mu    sync.Mutex
	sales map[string]*saleDef // definitions never change once created
}

type saleDef struct {
	start, end time.Time
	cfg        waitroom.Config
	shuffled   bool
}

// NewAdmitter returns an Admitter over the store c.
func NewAdmitter(c rueidis.Client, o Options) (*Admitter, error) {
	if c == nil {
		return nil, errors.New("waitroom: a store client is required")
	}
	if o.Tick <= 0 {
		o.Tick = 250 * time.Millisecond
	}
	if o.StoreTimeout <= 0 {
		o.StoreTimeout = 5 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	return &Admitter{c: c, o: o, sales: map[string]*saleDef{}}, nil
}

// Run steps every Tick until ctx is cancelled, then returns nil. Store errors are logged and
// retried at the next tick.
func (a *Admitter) Run(ctx context.Context) error {
	t := time.NewTicker(a.o.Tick)
	defer t.Stop()
	for {
		if err := a.Step(ctx); err != nil && ctx.Err() == nil {
			a.o.Log.Warn("waiting room admitter", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Step looks once at every sale with a waiting room that has not ended: shuffles those that have
// started and were not shuffled yet, and advances the others' serving counters.
func (a *Admitter) Step(ctx context.Context) error {
	now := a.o.Now()
	sctx, cancel := context.WithTimeout(ctx, a.o.StoreTimeout)
	defer cancel()
	ids, err := a.c.Do(sctx, a.c.B().Zrangebyscore().Key(keyspace.WaitRooms()).
		Min(strconv.FormatInt(now.UnixMilli(), 10)).Max("+inf").Build()).AsStrSlice()
	if err != nil {
		return fmt.Errorf("waitroom: list sales: %w", err)
	}
	var errs []error
	for _, id := range ids {
		if err := a.step(sctx, id, now); err != nil {
			errs = append(errs, fmt.Errorf("sale %s: %w", id, err))
		}
	}
	a.forgetEnded(ids)
	return errors.Join(errs...)
}

func (a *Admitter) step(ctx context.Context, id string, now time.Time) error {
	d, err := a.def(ctx, id)
	if err != nil || d == nil || now.Before(d.start) || !now.Before(d.end) {
		return err
	}
	if !d.shuffled {
		done, err := a.shuffle(ctx, id, d, now)
		if err != nil || !done {
			return err
		}
		a.mu.Lock()
		d.shuffled = true
		a.mu.Unlock()
		return nil
	}
	window := (d.cfg.HoldSeconds + d.cfg.PassSeconds) * 1000
	err = advanceScript.Exec(ctx, a.c, []string{keyspace.WaitRoom(id), keyspace.SoldOut(id),
		keyspace.WaitRoomUsed(id), keyspace.WaitRoomBatches(id), keyspace.WaitRoomTail(id)},
		[]string{strconv.FormatInt(now.UnixMilli(), 10), strconv.FormatInt(d.cfg.AdmitPerSecond, 10),
			strconv.FormatInt(window, 10)}).Error()
	if err != nil {
		return fmt.Errorf("advance: %w", err)
	}
	return nil
}

// def returns the sale's definition, nil for a sale without a (valid) waiting room.
func (a *Admitter) def(ctx context.Context, id string) (*saleDef, error) {
	a.mu.Lock()
	d, ok := a.sales[id]
	a.mu.Unlock()
	if ok {
		return d, nil
	}
	m, err := a.c.Do(ctx, a.c.B().Hgetall().Key(keyspace.Sale(id)).Build()).AsStrMap()
	if err != nil {
		return nil, fmt.Errorf("read sale: %w", err)
	}
	start, e1 := strconv.ParseInt(m["starts_at_ms"], 10, 64)
	end, e2 := strconv.ParseInt(m["ends_at_ms"], 10, 64)
	cfg := waitroom.FromHash(m)
	if e1 == nil && e2 == nil && cfg.Enabled() {
		d = &saleDef{start: time.UnixMilli(start), end: time.UnixMilli(end), cfg: cfg}
	}
	a.mu.Lock()
	a.sales[id] = d
	a.mu.Unlock()
	return d, nil
}

func (a *Admitter) forgetEnded(live []string) {
	keep := make(map[string]bool, len(live))
	for _, id := range live {
		keep[id] = true
	}
	a.mu.Lock()
	for id := range a.sales {
		if !keep[id] {
			delete(a.sales, id)
		}
	}
	a.mu.Unlock()
}

// shuffleChunk is how many places one HSET writes.
const shuffleChunk = 1000

// shuffle freezes the pre-queue, orders it by the seed, writes every place and the order, then
// reveals the seed and admits the first batch. It reports false when another admitter holds the
// lock (it will be done by that one, or redone after the lock expires).
func (a *Admitter) shuffle(ctx context.Context, id string, d *saleDef, now time.Time) (bool, error) {
	st, err := a.c.Do(ctx, a.c.B().Hget().Key(keyspace.WaitRoom(id)).Field("shuffled").Build()).ToString()
	if err == nil && st == "1" {
		return true, nil
	}
	if err != nil && !rueidis.IsRedisNil(err) {
		return false, fmt.Errorf("read state: %w", err)
	}
	err = a.c.Do(ctx, a.c.B().Set().Key(keyspace.WaitRoomLock(id)).Value("1").Nx().Px(time.Minute).Build()).Error()
	if rueidis.IsRedisNil(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("lock: %w", err)
	}
	size, err := freezeScript.Exec(ctx, a.c, []string{keyspace.WaitRoom(id), keyspace.WaitRoomPre(id)}, nil).AsInt64()
	if err != nil {
		return false, fmt.Errorf("freeze: %w", err)
	}
	users, err := a.c.Do(ctx, a.c.B().Hkeys().Key(keyspace.WaitRoomPre(id)).Build()).AsStrSlice()
	if err != nil {
		return false, fmt.Errorf("read pre-queue: %w", err)
	}
	if int64(len(users)) != size {
		return false, fmt.Errorf("pre-queue holds %d users, frozen at %d", len(users), size)
	}
	seedHex, err := a.c.Do(ctx, a.c.B().Get().Key(keyspace.WaitRoomSeed(id)).Build()).ToString()
	if err != nil {
		return false, fmt.Errorf("read seed: %w", err)
	}
	seed, err := hex.DecodeString(seedHex)
	if err != nil {
		return false, fmt.Errorf("seed is not hex: %w", err)
	}
	order := waitroom.Order(seed, users)
	var cmds rueidis.Commands
	for i := 0; i < len(order); i += shuffleChunk {
		b := a.c.B().Hset().Key(keyspace.WaitRoomPlace(id)).FieldValue()
		for j := i; j < min(i+shuffleChunk, len(order)); j++ {
			b = b.FieldValue(order[j], strconv.Itoa(j+1))
		}
		cmds = append(cmds, b.Build())
	}
	cmds = append(cmds, a.c.B().Set().Key(keyspace.WaitRoomOrder(id)).Value(strings.Join(order, "\n")).Build())
	for _, r := range a.c.DoMulti(ctx, cmds...) {
		if err := r.Error(); err != nil {
			return false, fmt.Errorf("write places: %w", err)
		}
	}
	serving, err := revealScript.Exec(ctx, a.c, []string{keyspace.WaitRoom(id), keyspace.WaitRoomBatches(id), keyspace.WaitRoomTail(id)},
		[]string{seedHex, strconv.FormatInt(now.UnixMilli(), 10), strconv.FormatInt(d.cfg.AdmitPerSecond, 10)}).AsInt64()
	if err != nil {
		return false, fmt.Errorf("reveal: %w", err)
	}
	a.o.Log.Info("waiting room shuffled", "sale", id, "pre_queue", len(order), "serving", serving,
		"took", a.o.Now().Sub(now).String())
	return true, nil
}
