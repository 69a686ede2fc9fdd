package flashsale

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/rueidis"

	"flashedge/shared/keyspace"
	publicsale "flashedge/shared/sale"
)

// Defaults for the zero values in WorkerOptions.
const (
	DefaultGroup          = "flashsale"
	DefaultConcurrency    = 4
	DefaultBatch          = 64
	DefaultBlock          = time.Second
	DefaultClaimIdle      = 15 * time.Second
	DefaultClaimEvery     = 5 * time.Second
	DefaultSweepEvery     = time.Second
	DefaultTrimEvery      = 10 * time.Second
	DefaultMessageTimeout = 10 * time.Second
)

// WorkerOptions configure a Worker. Zero values take the defaults named on each field.
type WorkerOptions struct {
	// Group is the consumer group on keyspace.AttemptStream(). Zero means "flashsale".
	Group string
	// Consumer names this worker in the group; consumer loops are named Consumer-0, Consumer-1...
	// Zero means hostname-pid. Names must differ between live workers.
	Consumer string
	// Concurrency is the number of consumer loops, each with its own blocking read.
	// Zero means 4.
	Concurrency int
	// Batch is the XREADGROUP / XAUTOCLAIM COUNT. Zero means 64: a rush's admissions arrive in
	// bursts, and a loop decides its whole batch at once (Parallel), so a large batch is what
	// keeps tickets from queueing behind each other (issue 13: every ticket final within 2 s).
	Batch int
	// Parallel is how many messages of one batch a loop decides at once. Their store calls then
	// share the pipelined connection (one write and one read carry many scripts), which is what
	// keeps the worker's CPU per ticket low under a rush; tickets never depend on each other, and
	// two runs of one ticket at once are safe (see decide). The batch is acknowledged with one
	// XACK once all of it is decided. Zero means Batch; 1 decides them one after another.
	Parallel int
	// Block is the XREADGROUP BLOCK time, also the longest a stop waits for a read. Zero means 1s.
	Block time.Duration
	// ClaimIdle is how long a message stays pending with a consumer before another one takes it
	// over (XAUTOCLAIM min-idle-time): the bound on a dead consumer's messages. Zero means 15s.
	ClaimIdle time.Duration
	// ClaimEvery is how often each loop runs XAUTOCLAIM. Zero means 5s.
	ClaimEvery time.Duration
	// SweepEvery is how often expiries, stranded tickets and sold-out flags are swept.
	// Zero means 1s; negative disables the sweeper.
	SweepEvery time.Duration
	// TrimEvery is how often the stream is trimmed below its oldest unacknowledged entry.
	// Zero means 10s; negative disables trimming.
	TrimEvery time.Duration
	// MessageTimeout bounds the store calls of one message. Zero means 10s.
	MessageTimeout time.Duration
	// Log receives the worker's logs. Nil means the Service's logger.
	Log *slog.Logger

	// hook, when set (tests only), is called after each stage that changed the store ("claimed":
	// a unit claimed in a shard, "decided": the ticket's result written) and before the XACK; when
	// it returns true the loop stops at once without acknowledging, like a process killed there.
	hook func(stage, ticket string) bool
}

// Worker consumes admitted attempts from the stream and decides them. Any number of workers may
// run against one store. Create it with NewWorker and call Run once.
type Worker struct {
	s   *Service
	o   WorkerOptions
	log *slog.Logger
	m   *Metrics // the Service's
}

// NewWorker returns a worker deciding attempts for s.
func NewWorker(s *Service, o WorkerOptions) (*Worker, error) {
	if s == nil {
		return nil, errors.New("flashsale: NewWorker needs a Service")
	}
	if o.Group == "" {
		o.Group = DefaultGroup
	}
	if o.Consumer == "" {
		host, _ := os.Hostname()
		if host == "" {
			host = "worker"
		}
		o.Consumer = host + "-" + strconv.Itoa(os.Getpid())
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.Batch <= 0 {
		o.Batch = DefaultBatch
	}
	if o.Parallel <= 0 {
		o.Parallel = o.Batch
	}
	if o.Block <= 0 {
		o.Block = DefaultBlock
	}
	if o.ClaimIdle <= 0 {
		o.ClaimIdle = DefaultClaimIdle
	}
	if o.ClaimEvery <= 0 {
		o.ClaimEvery = DefaultClaimEvery
	}
	if o.SweepEvery == 0 {
		o.SweepEvery = DefaultSweepEvery
	}
	if o.TrimEvery == 0 {
		o.TrimEvery = DefaultTrimEvery
	}
	if o.MessageTimeout <= 0 {
		o.MessageTimeout = DefaultMessageTimeout
	}
	log := o.Log
	if log == nil {
		log = s.o.Log
	}
	return &Worker{s: s, o: o, log: log.With("consumer", o.Consumer), m: s.o.Metrics}, nil
}

// Options returns the worker's options with defaults filled in.
func (w *Worker) Options() WorkerOptions { return w.o }

// Run creates the consumer group when missing, then runs the consumer loops and, unless disabled,
// the sweeper and the trimmer until ctx is done. On stop every loop finishes and acknowledges the
// messages it holds before Run returns (within about Block plus the time to decide a batch).
func (w *Worker) Run(ctx context.Context) error {
	if err := w.ensureGroup(ctx); err != nil {
		return err
	}
	var wg sync.WaitGroup
	for _, name := range w.consumerNames() {
		wg.Go(func() { w.consume(ctx, name) })
	}
	if w.o.SweepEvery > 0 || w.o.TrimEvery > 0 {
		wg.Go(func() { w.maintain(ctx) })
	}
	wg.Wait()
	w.retireOwn()
	return nil
}

// ensureGroup creates the group reading from the start of the stream (so attempts enqueued before
// any worker existed are decided), retrying while the store is unreachable.
func (w *Worker) ensureGroup(ctx context.Context) error {
	for {
		cctx, cancel := context.WithTimeout(ctx, w.o.MessageTimeout)
		err := w.s.c.Do(cctx, w.s.c.B().XgroupCreate().Key(keyspace.AttemptStream()).Group(w.o.Group).
			Id("0").Mkstream().Build()).Error()
		cancel()
		if err == nil || strings.HasPrefix(err.Error(), "BUSYGROUP") {
			return nil
		}
		w.log.Warn("flash-sale worker: cannot create consumer group; retrying", "err", err)
		w.m.WorkerErrors.Inc()
		select {
		case <-ctx.Done():
			return fmt.Errorf("flashsale: create consumer group: %w", err)
		case <-time.After(time.Second):
		}
	}
}

// message is one stream entry. An admission's carries the user and the sale's return epoch the
// gate read (Attempt); a requeued ticket's has no epoch.
type message struct {
	id, sale, ticket, user, epoch string
}

func toMessages(entries []rueidis.XRangeEntry) []message {
	out := make([]message, 0, len(entries))
	for _, e := range entries {
		f := e.FieldValues
		out = append(out, message{id: e.ID, sale: f["sale"], ticket: f["ticket"], user: f["user"], epoch: f["epoch"]})
	}
	return out
}

// consume is one consumer loop. Reads use a context that a stop does not cancel, so a message
// delivered to this consumer is always seen and decided; the loop checks ctx between reads.
func (w *Worker) consume(ctx context.Context, name string) {
	var jobs chan<- decision
	if w.o.Parallel > 1 {
		var stop func()
		jobs, stop = w.startDeciders()
		defer stop()
	}
	cursor := "0-0"
	nextClaim := time.Now() // take over stale messages at start
	backoff := func() {
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
	for ctx.Err() == nil {
		if !time.Now().Before(nextClaim) {
			msgs, next, err := w.autoclaim(name, cursor)
			if err != nil {
				w.log.Warn("flash-sale worker: XAUTOCLAIM failed", "err", err)
				w.m.WorkerErrors.Inc()
				nextClaim = time.Now().Add(w.o.ClaimEvery)
			} else {
				cursor = next
				if next == "0-0" {
					nextClaim = time.Now().Add(w.o.ClaimEvery)
				}
				if !w.handle(jobs, name, msgs) {
					return
				}
			}
		}
		msgs, err := w.read(name)
		if err != nil {
			w.log.Warn("flash-sale worker: XREADGROUP failed", "err", err)
			w.m.WorkerErrors.Inc()
			if strings.HasPrefix(err.Error(), "NOGROUP") { // the stream was deleted under us
				if err := w.ensureGroup(ctx); err != nil {
					return
				}
			}
			backoff()
			continue
		}
		if !w.handle(jobs, name, msgs) {
			return
		}
	}
}

// read is one XREADGROUP BLOCK. rueidis sends blocking commands on connections of a separate
// pool, one per waiting call, so a blocked read never holds up the pipelined connection the
// scripts use.
func (w *Worker) read(name string) ([]message, error) {
	rctx, cancel := context.WithTimeout(context.Background(), w.o.Block+w.o.MessageTimeout)
	defer cancel()
	c := w.s.c
	res, err := c.Do(rctx, c.B().Xreadgroup().Group(w.o.Group, name).Count(int64(w.o.Batch)).
		Block(w.o.Block.Milliseconds()).Streams().Key(keyspace.AttemptStream()).Id(">").Build()).AsXRead()
	if rueidis.IsRedisNil(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return toMessages(res[keyspace.AttemptStream()]), nil
}

// autoclaim takes over up to Batch messages idle for ClaimIdle (a dead or stuck consumer's)
// starting at cursor, and returns them with the next cursor ("0-0" when the scan is complete).
func (w *Worker) autoclaim(name, cursor string) ([]message, string, error) {
	cctx, cancel := context.WithTimeout(context.Background(), w.o.MessageTimeout)
	defer cancel()
	c := w.s.c
	arr, err := c.Do(cctx, c.B().Xautoclaim().Key(keyspace.AttemptStream()).Group(w.o.Group).Consumer(name).
		MinIdleTime(strconv.FormatInt(w.o.ClaimIdle.Milliseconds(), 10)).Start(cursor).
		Count(int64(w.o.Batch)).Build()).ToArray()
	if err != nil {
		return nil, cursor, err
	}
	if len(arr) < 2 {
		return nil, cursor, fmt.Errorf("short XAUTOCLAIM reply")
	}
	next, err := arr[0].ToString()
	if err != nil {
		return nil, cursor, err
	}
	entries, err := arr[1].AsXRange()
	if err != nil {
		return nil, cursor, err
	}
	// Entries whose message was deleted come back with nil fields; nothing to decide for them.
	live := entries[:0]
	for _, e := range entries {
		if e.FieldValues != nil {
			live = append(live, e)
		}
	}
	return toMessages(live), next, nil
}

// decision is one message handed to a decider, with where its outcome goes.
type decision struct {
	m   message
	res *string
	err *error
	wg  *sync.WaitGroup
}

// startDeciders starts the Parallel goroutines a consumer loop hands its messages to, kept for
// the loop's life: a goroutine per message grew a new stack through the store client's calls
// every time (about a tenth of the worker's CPU in the admit bench). stop ends them and waits.
func (w *Worker) startDeciders() (jobs chan<- decision, stop func()) {
	ch := make(chan decision)
	var wg sync.WaitGroup
	for range w.o.Parallel {
		wg.Go(func() {
			for d := range ch {
				*d.res, *d.err = w.process(d.m)
				d.wg.Done()
			}
		})
	}
	return ch, func() { close(ch); wg.Wait() }
}

// handle decides msgs, up to Parallel at once on jobs (the loop's deciders; nil: one after
// another), and acknowledges those decided with one XACK. It returns false when the test hook
// simulated a crash (the loop must stop at once, acknowledging nothing).
func (w *Worker) handle(jobs chan<- decision, name string, msgs []message) bool {
	if len(msgs) == 0 {
		return true
	}
	errs := make([]error, len(msgs))
	results := make([]string, len(msgs))
	if jobs == nil || len(msgs) == 1 {
		for i, m := range msgs {
			results[i], errs[i] = w.process(m)
			if errors.Is(errs[i], errCrash) {
				return false
			}
		}
	} else {
		var wg sync.WaitGroup
		wg.Add(len(msgs))
		for i, m := range msgs {
			jobs <- decision{m: m, res: &results[i], err: &errs[i], wg: &wg}
		}
		wg.Wait()
	}
	ids := make([]string, 0, len(msgs))
	for i, m := range msgs {
		err := errs[i]
		if errors.Is(err, errCrash) {
			return false
		}
		if err != nil {
			// Left pending: XAUTOCLAIM hands it to a loop again after ClaimIdle.
			w.log.Warn("flash-sale worker: message not decided; it stays pending", "id", m.id,
				"sale", m.sale, "ticket", m.ticket, "user", m.user, "err", err)
			w.m.WorkerErrors.Inc()
			continue
		}
		w.m.processed(results[i]).Inc()
		ids = append(ids, m.id)
	}
	if len(ids) == 0 {
		return true
	}
	actx, cancel := context.WithTimeout(context.Background(), w.o.MessageTimeout)
	err := w.s.c.Do(actx, w.s.c.B().Xack().Key(keyspace.AttemptStream()).Group(w.o.Group).Id(ids...).Build()).Error()
	cancel()
	if err != nil {
		w.log.Warn("flash-sale worker: XACK failed; the messages will be decided again (harmlessly)",
			"ids", len(ids), "first", ids[0], "err", err)
		w.m.WorkerErrors.Inc()
	}
	return true
}

var errCrash = errors.New("flashsale: simulated crash")

func (w *Worker) crashAt(stage, ticket string) bool {
	return w.o.hook != nil && w.o.hook(stage, ticket)
}

// process decides one message and returns its result (won, lost, sold_out, duplicate, or
// dropped). A nil error means the message may be acknowledged: decided now, decided before, or
// not decidable ever (malformed, unknown sale or ticket).
func (w *Worker) process(m message) (string, error) {
	if m.sale == "" || !publicsale.ValidTicketID(m.ticket) {
		w.log.Warn("flash-sale worker: dropping malformed message", "id", m.id)
		return resultDropped, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), w.o.MessageTimeout)
	defer cancel()
	sl, err := w.s.loadSale(ctx, m.sale)
	if errors.Is(err, ErrNotFound) {
		w.log.Warn("flash-sale worker: dropping message of an unknown sale", "id", m.id, "sale", m.sale)
		return resultDropped, nil
	}
	if err != nil {
		return "", err
	}
	if m.user != "" && m.epoch != "" {
		return w.s.claim(ctx, sl, m.ticket, m.user, m.epoch, w.crashAt)
	}
	return w.s.decide(ctx, sl, m.ticket, w.crashAt)
}

// decide runs the worker's steps for one ticket (see the package comment): begin, claim probing
// the shards, then win, lost or sold out. It returns the result this run reached: won, lost or
// sold_out when it decided the ticket, duplicate when the ticket was decided (or unknown)
// already. crash (may be nil) is the test hook.
func (s *Service) decide(ctx context.Context, sl *Sale, ticket string, crash func(stage, ticket string) bool) (string, error) {
	sale := sl.ID
	rep, err := strs(s.lua.begin.Exec(ctx, s.c,
		[]string{keyspace.SaleResult(sale, ticket), keyspace.SaleUsers(sale), keyspace.SaleStats(sale)},
		[]string{strconv.FormatInt(sl.PerUserLimit, 10)}))
	if err != nil {
		return "", fmt.Errorf("begin: %w", err)
	}
	state, epoch, user := rep[0], rep[1], rep[2]
	switch state {
	case "missing", "done":
		return resultDuplicate, nil
	case "over_limit":
		return s.loseOverLimit(ctx, sl, ticket, epoch, crash)
	}
	return s.claim(ctx, sl, ticket, user, epoch, crash)
}

// claim is decide after begin: it probes the shards for ticket of user, then records the win,
// or ends the ticket sold out, with the sold-out flag set against epoch (the sale's return epoch
// read before the probe). The worker calls it directly for a message that carries the user and
// the epoch the gate read at admission (one script fewer per ticket): begin's checks are
// repeated where they matter, so skipping them changes no outcome. A ticket decided already
// finds its own claim or markers in the shards and worker_win.lua or worker_finish.lua answers
// "done" (a claim taken meanwhile for a ticket decided without a win is given back, as for two
// runs at once); an unknown ticket's claim goes back as an orphan; the per-user limit is checked
// by worker_win.lua. An older epoch (a unit went back since the admission) only keeps this run
// from setting the flag, which a ticket admitted after the return then sets; never wrongly.
func (s *Service) claim(ctx context.Context, sl *Sale, ticket, user, epoch string, crash func(stage, ticket string) bool) (string, error) {
	sale := sl.ID
	start := int(fnv32(ticket) % uint32(sl.Shards))
	for j := range sl.Shards {
		i := (start + j) % sl.Shards
		c, err := strs(s.lua.shardClaim.Exec(ctx, s.c,
			[]string{keyspace.StockShard(sale, i), keyspace.ShardClaims(sale, i), keyspace.ShardStats(sale, i)},
			[]string{ticket}))
		if err != nil {
			return "", fmt.Errorf("claim shard %d: %w", i, err)
		}
		if c[0] != "claimed" {
			continue
		}
		if crash != nil && crash("claimed", ticket) {
			return "", errCrash
		}
		emptied := c[1] == "new" && c[2] == "0"
		return s.recordWin(ctx, sl, ticket, user, i, epoch, emptied, crash)
	}
	return s.finish(ctx, sale, ticket, "sold_out", epoch, "", crash)
}

// loseOverLimit ends a ticket whose user already holds the limit. The gate admits a ticket only
// while held + in flight < limit, so this does not happen in normal operation; should it happen
// anyway, the ticket ends lost and a unit a previous run claimed for it goes back (closeClaims).
func (s *Service) loseOverLimit(ctx context.Context, sl *Sale, ticket, epoch string, crash func(stage, ticket string) bool) (string, error) {
	return s.loseAndClose(ctx, sl, ticket, epoch, OutcomeLimitReached, crash)
}

// loseAndClose ends a ticket lost with reason and, when this call decided it, closes its claims.
// When the ticket was decided already, nothing is released here: a win keeps its unit, and a
// loss was put in the closing set by whoever decided it, who (or the sweep) closes it.
func (s *Service) loseAndClose(ctx context.Context, sl *Sale, ticket, epoch, reason string, crash func(stage, ticket string) bool) (string, error) {
	res, err := s.finish(ctx, sl.ID, ticket, "lost", epoch, reason, crash)
	if err != nil || res != resultLost {
		return res, err
	}
	if _, err := s.closeClaims(ctx, sl, ticket); err != nil {
		return "", err // decided: the sweep closes the claims from the closing set
	}
	return res, nil
}

func fnv32(s string) uint32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(s))
	return h.Sum32()
}

func (s *Service) recordWin(ctx context.Context, sl *Sale, ticket, user string, shard int, epoch string,
	emptied bool, crash func(stage, ticket string) bool) (string, error) {
	sale := sl.ID
	now := s.now()
	token := newID()
	rep, err := strs(s.lua.win.Exec(ctx, s.c,
		[]string{keyspace.SaleResult(sale, ticket), keyspace.SaleToken(sale, token), keyspace.SaleDeadlines(sale),
			keyspace.SaleUsers(sale), keyspace.SaleStats(sale), keyspace.SaleInflight(sale), keyspace.SaleQueue(sale)},
		[]string{ticket, user, strconv.FormatInt(sl.PerUserLimit, 10), strconv.Itoa(shard), token,
			ms(now.Add(s.o.Reservation)), ms(now), strconv.FormatInt(sl.Price, 10), sl.ProductID, msDur(s.o.ResultTTL)}))
	if err != nil {
		return "", fmt.Errorf("record win: %w", err)
	}
	switch rep[0] {
	case "ok":
		s.o.Metrics.TokensIssued.Inc()
		if crash != nil && crash("decided", ticket) {
			return "", errCrash
		}
		if emptied {
			return resultWon, s.maybeFlagSoldOut(ctx, sl, shard, epoch)
		}
		return resultWon, nil
	case "over_limit":
		// The claim may not be kept: the ticket ends lost here, and its closing gives the unit back.
		return s.loseAndClose(ctx, sl, ticket, epoch, OutcomeLimitReached, crash)
	case "done":
		if len(rep) >= 3 && rep[1] == StatusWon && rep[2] == strconv.Itoa(shard) {
			return resultDuplicate, nil // decided before with this very claim
		}
		// Decided otherwise while this run claimed. Runs of one ticket follow the same markers, so
		// a win or a sold-out walk would have met this claim: the decision is a loss, made with
		// the ticket put in the closing set. Its closing passes this shard after the claim (a
		// closed shard refuses claims), so it gives this unit back; closing here too only makes
		// that sooner.
		if _, err := s.closeClaims(ctx, sl, ticket); err != nil {
			return "", err
		}
		return resultDuplicate, nil
	}
	// "missing": the ticket's record is gone, so no decision can ever name this claim.
	res, err := s.settle(ctx, sale, shard, ticket, "close")
	if err != nil {
		return "", err
	}
	units := 0
	if res == "released" {
		units = 1
	}
	if err := s.claimsClosed(ctx, sale, ticket, units, "orphan"); err != nil {
		return "", err
	}
	return resultDuplicate, nil
}

// closeClaims closes a ticket that is in the sale's closing set (decided without a win, which is
// final): in every shard, a unit claimed for it goes back and a shard it never visited is closed
// to it, so no later run of the ticket can claim there. Then claims_closed.lua removes it from
// the set and accounts for the units given back, once however many closers run. Any number of
// callers may close the same ticket at once. It reports whether the ticket was in the set.
func (s *Service) closeClaims(ctx context.Context, sl *Sale, ticket string) (bool, error) {
	sale := sl.ID
	err := s.c.Do(ctx, s.c.B().Zscore().Key(keyspace.SaleClosing(sale)).Member(ticket).Build()).Error()
	if rueidis.IsRedisNil(err) {
		return false, nil // closed already, or never to close (a win)
	}
	if err != nil {
		return false, fmt.Errorf("read closing set: %w", err)
	}
	units := 0
	for i := range sl.Shards {
		res, err := s.settle(ctx, sale, i, ticket, "close")
		if err != nil {
			return false, err
		}
		switch res {
		case "released", "u":
			units++
		case "closed", "-":
		default:
			return false, fmt.Errorf("close shard %d of ticket %s decided without a win: claim is %s", i, ticket, res)
		}
	}
	return true, s.claimsClosed(ctx, sale, ticket, units, "closing")
}

func (s *Service) claimsClosed(ctx context.Context, sale, ticket string, units int, mode string) error {
	err := s.lua.claimsClosed.Exec(ctx, s.c,
		[]string{keyspace.SaleClosing(sale), keyspace.SaleResult(sale, ticket), keyspace.SaleStats(sale), keyspace.SoldOut(sale)},
		[]string{ticket, strconv.Itoa(units), mode}).Error()
	if err != nil {
		return fmt.Errorf("claims closed: %w", err)
	}
	return nil
}

// settle runs shard_settle.lua: mode "order", "return" or "close".
func (s *Service) settle(ctx context.Context, sale string, shard int, ticket, mode string) (string, error) {
	res, err := s.lua.shardSettle.Exec(ctx, s.c,
		[]string{keyspace.StockShard(sale, shard), keyspace.ShardClaims(sale, shard), keyspace.ShardStats(sale, shard)},
		[]string{ticket, mode}).ToString()
	if err != nil {
		return "", fmt.Errorf("settle shard %d (%s): %w", shard, mode, err)
	}
	return res, nil
}

// finish runs worker_finish.lua in the given mode and returns the result this call reached:
// lost or sold_out when it ended the ticket, duplicate when the ticket had ended (or was
// unknown) already, the script's own answer in flag mode.
func (s *Service) finish(ctx context.Context, sale, ticket, mode, epoch, reason string, crash func(stage, ticket string) bool) (string, error) {
	res, err := s.lua.finish.Exec(ctx, s.c,
		[]string{keyspace.SaleResult(sale, ticket), keyspace.SaleStats(sale), keyspace.SaleInflight(sale),
			keyspace.SaleQueue(sale), keyspace.SoldOut(sale), keyspace.SaleClosing(sale)},
		[]string{mode, ticket, epoch, reason, ms(s.now()), msDur(s.o.ResultTTL)}).ToString()
	if err != nil {
		return "", fmt.Errorf("finish %s: %w", mode, err)
	}
	if mode != "flag" && crash != nil && crash("decided", ticket) {
		return "", errCrash
	}
	switch res {
	case "done", "missing":
		return resultDuplicate, nil
	}
	return res, nil
}

// maybeFlagSoldOut sets the sold-out flag right after a claim emptied a shard when every other
// shard is empty too, so the edges stop forwarding attempts without waiting for one more probe.
// The flag is set only if no unit went back since epoch (read before the probe).
func (s *Service) maybeFlagSoldOut(ctx context.Context, sl *Sale, emptied int, epoch string) error {
	cmds := make(rueidis.Commands, 0, sl.Shards-1)
	for i := range sl.Shards {
		if i != emptied {
			cmds = append(cmds, s.c.B().Get().Key(keyspace.StockShard(sl.ID, i)).Build())
		}
	}
	for _, r := range s.c.DoMulti(ctx, cmds...) {
		n, err := r.AsInt64()
		if err != nil && !rueidis.IsRedisNil(err) {
			return fmt.Errorf("read shard: %w", err)
		}
		if n > 0 {
			return nil
		}
	}
	_, err := s.finish(ctx, sl.ID, "", "flag", epoch, "", nil)
	return err
}

// maintain runs the sweeper and the trimmer on their tickers until ctx is done.
func (w *Worker) maintain(ctx context.Context) {
	tick := func(d time.Duration) <-chan time.Time {
		if d <= 0 {
			return nil
		}
		t := time.NewTicker(d)
		context.AfterFunc(ctx, t.Stop)
		return t.C
	}
	sweep, trim := tick(w.o.SweepEvery), tick(w.o.TrimEvery)
	if sweep != nil {
		// Once per store; bounded by the number of sales, so only the stop bounds it.
		if err := w.s.IndexLiveSales(ctx); err != nil && ctx.Err() == nil {
			w.log.Warn("flash-sale worker: older sales not put in the live index; the next start retries", "err", err)
			w.m.WorkerErrors.Inc()
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-sweep:
			sctx, cancel := context.WithTimeout(context.Background(), w.o.MessageTimeout)
			rep, err := w.s.Sweep(sctx)
			cancel()
			if err != nil {
				w.log.Warn("flash-sale sweep incomplete; the next one retries", "err", err)
				w.m.WorkerErrors.Inc()
			}
			if rep != (SweepReport{}) {
				w.log.Info("flash-sale sweep", "expired", rep.Expired, "completed", rep.Completed,
					"requeued", rep.Requeued, "closed", rep.Closed, "flags_cleared", rep.FlagsCleared, "retired", rep.Retired)
			}
		case <-trim:
			tctx, cancel := context.WithTimeout(context.Background(), w.o.MessageTimeout)
			n, err := TrimStream(tctx, w.s.c)
			cancel()
			if err != nil {
				w.log.Warn("flash-sale stream trim failed", "err", err)
				w.m.WorkerErrors.Inc()
			} else if n > 0 {
				w.log.Debug("flash-sale stream trimmed", "entries", n)
			}
			w.retireIdle()
		}
	}
}

// TrimStream removes acknowledged entries from the attempt stream: XTRIM MINID at the lowest id
// any consumer group still needs, that is, for each group its oldest pending entry or, with none
// pending, its last delivered id (entries after it are not delivered yet). Nothing unacknowledged
// is ever removed; entries read or pending after the group info was taken all have higher ids.
// With no group, nothing is trimmed. It returns the number of entries removed.
func TrimStream(ctx context.Context, c rueidis.Client) (int64, error) {
	stream := keyspace.AttemptStream()
	groups, err := c.Do(ctx, c.B().XinfoGroups().Key(stream).Build()).ToArray()
	if err != nil {
		if strings.Contains(err.Error(), "no such key") {
			return 0, nil
		}
		return 0, fmt.Errorf("flashsale: XINFO GROUPS: %w", err)
	}
	if len(groups) == 0 {
		return 0, nil
	}
	var boundary string
	for _, g := range groups {
		info, err := g.AsMap()
		if err != nil {
			return 0, fmt.Errorf("flashsale: XINFO GROUPS reply: %w", err)
		}
		field := func(k string) *rueidis.RedisMessage { m := info[k]; return &m }
		name, _ := field("name").ToString()
		pending, _ := field("pending").AsInt64()
		low, _ := field("last-delivered-id").ToString()
		if pending > 0 {
			sum, err := c.Do(ctx, c.B().Xpending().Key(stream).Group(name).Build()).ToArray()
			if err != nil {
				return 0, fmt.Errorf("flashsale: XPENDING: %w", err)
			}
			if len(sum) < 2 {
				return 0, fmt.Errorf("flashsale: short XPENDING reply")
			}
			if low, err = sum[1].ToString(); err != nil {
				return 0, nil // emptied meanwhile: trim next time
			}
		}
		if low == "" {
			return 0, nil
		}
		if boundary == "" || streamIDLess(low, boundary) {
			boundary = low
		}
	}
	if boundary == "0-0" {
		return 0, nil
	}
	n, err := c.Do(ctx, c.B().Xtrim().Key(stream).Minid().Threshold(boundary).Build()).AsInt64()
	if err != nil {
		return 0, fmt.Errorf("flashsale: XTRIM: %w", err)
	}
	return n, nil
}

// streamIDLess compares stream ids "ms-seq" numerically.
func streamIDLess(a, b string) bool {
	am, as, _ := strings.Cut(a, "-")
	bm, bs, _ := strings.Cut(b, "-")
	ami, _ := strconv.ParseUint(am, 10, 64)
	bmi, _ := strconv.ParseUint(bm, 10, 64)
	if ami != bmi {
		return ami < bmi
	}
	asi, _ := strconv.ParseUint(as, 10, 64)
	bsi, _ := strconv.ParseUint(bs, 10, 64)
	return asi < bsi
}
