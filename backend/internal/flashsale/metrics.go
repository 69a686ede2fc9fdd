package flashsale

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/rueidis"

	"flashedge/shared/keyspace"
	"flashedge/shared/metrics"
)

// Counter is one count the flash-sale code moves. The *metrics.Counter of
// github.com/VictoriaMetrics/metrics that shared/metrics.Registry.Counter returns satisfies it.
type Counter interface{ Inc() }

type nopCounter struct{}

func (nopCounter) Inc() {}

// Metrics are the counters the Service and the Worker move, one per outcome, each created once
// with its label value fixed (see NewOrderMetrics and NewWorkerMetrics), so counting is one
// atomic add and builds no label. A nil field counts nothing; a nil *Metrics in Options counts
// nothing at all.
type Metrics struct {
	// Admission decisions of Attempt (flashedge_order_admission_total{decision}): first answers
	// only, since a replayed answer is not a new decision. Limit covers limit_reached and
	// attempt_pending, Busy both busy outcomes; NotStarted and Ended are the window refusals
	// the gate script makes when an attempt gets past the edge's own check.
	Admitted, SoldOut, Busy, Limit, BadChallenge, NotStarted, Ended Counter
	// Results of the messages the worker handled (flashedge_worker_processed_total{result}):
	// decided won, lost or sold out now, or found decided already (Duplicate: a redelivery).
	Won, Lost, DecidedSoldOut, Duplicate Counter
	// WorkerErrors counts what the worker logs as a warning (flashedge_worker_errors_total): a
	// message left pending by a failure, one dropped as malformed or of an unknown sale, a failed
	// acknowledgement, stream read, claim, sweep or trim.
	WorkerErrors Counter
	// Seckill tokens (flashedge_sale_tokens_total{event}): issued by a win, consumed when a
	// checkout's order is complete (by the checkout, or by the sweeper finishing one that
	// stopped half way), expired when the sweeper has put the unit back. Each moves exactly
	// once per token, whichever process does it.
	TokensIssued, TokensConsumed, TokensExpired Counter
}

// filled returns a copy of m (which may be nil) with every nil field counting nothing.
func (m *Metrics) filled() *Metrics {
	out := Metrics{}
	if m != nil {
		out = *m
	}
	for _, c := range []*Counter{&out.Admitted, &out.SoldOut, &out.Busy, &out.Limit, &out.BadChallenge,
		&out.NotStarted, &out.Ended, &out.Won, &out.Lost, &out.DecidedSoldOut, &out.Duplicate,
		&out.WorkerErrors, &out.TokensIssued, &out.TokensConsumed, &out.TokensExpired} {
		if *c == nil {
			*c = nopCounter{}
		}
	}
	return &out
}

// admission returns the counter of an Attempt outcome.
func (m *Metrics) admission(outcome string) Counter {
	switch outcome {
	case OutcomeAdmitted:
		return m.Admitted
	case OutcomeSoldOut:
		return m.SoldOut
	case OutcomeLimitReached, OutcomeAttemptPending:
		return m.Limit
	case OutcomeBusyBacklog, OutcomeBusyAdmission:
		return m.Busy
	}
	return nopCounter{}
}

// Worker results, the result label of flashedge_worker_processed_total.
const (
	resultWon       = "won"
	resultLost      = "lost"
	resultSoldOut   = "sold_out"
	resultDuplicate = "duplicate"
	resultDropped   = "dropped" // not a label value: counted as an error
)

func (m *Metrics) processed(result string) Counter {
	switch result {
	case resultWon:
		return m.Won
	case resultLost:
		return m.Lost
	case resultSoldOut:
		return m.DecidedSoldOut
	case resultDuplicate:
		return m.Duplicate
	}
	return m.WorkerErrors
}

// NewOrderMetrics registers in reg the counters the order service's flash-sale code moves and
// returns them for Options.Metrics: flashedge_order_admission_total{decision} (admitted,
// sold_out, busy, limit, bad_challenge, not_started, ended) and
// flashedge_sale_tokens_total{event="consumed"}. Every series exists from the start, at zero.
func NewOrderMetrics(reg *metrics.Registry) *Metrics {
	const adm = "flashedge_order_admission_total"
	return &Metrics{
		Admitted:       reg.Counter(adm, "decision", "admitted"),
		SoldOut:        reg.Counter(adm, "decision", "sold_out"),
		Busy:           reg.Counter(adm, "decision", "busy"),
		Limit:          reg.Counter(adm, "decision", "limit"),
		BadChallenge:   reg.Counter(adm, "decision", "bad_challenge"),
		NotStarted:     reg.Counter(adm, "decision", "not_started"),
		Ended:          reg.Counter(adm, "decision", "ended"),
		TokensConsumed: reg.Counter(tokensName, "event", "consumed"),
	}
}

// NewWorkerMetrics registers in reg the counters the worker moves and returns them for
// Options.Metrics: flashedge_worker_processed_total{result} (won, lost, sold_out, duplicate),
// flashedge_worker_errors_total and flashedge_sale_tokens_total{event} (issued, consumed,
// expired). Every series exists from the start, at zero.
func NewWorkerMetrics(reg *metrics.Registry) *Metrics {
	const proc = "flashedge_worker_processed_total"
	return &Metrics{
		Won:            reg.Counter(proc, "result", resultWon),
		Lost:           reg.Counter(proc, "result", resultLost),
		DecidedSoldOut: reg.Counter(proc, "result", resultSoldOut),
		Duplicate:      reg.Counter(proc, "result", resultDuplicate),
		WorkerErrors:   reg.Counter("flashedge_worker_errors_total"),
		TokensIssued:   reg.Counter(tokensName, "event", "issued"),
		TokensConsumed: reg.Counter(tokensName, "event", "consumed"),
		TokensExpired:  reg.Counter(tokensName, "event", "expired"),
	}
}

const tokensName = "flashedge_sale_tokens_total"

// Defaults for the zero values in ExportOptions.
const (
	DefaultExportSales   = 10
	DefaultExportTimeout = 200 * time.Millisecond
)

// exportReuse is how long one store read serves the families that share it: the families of
// one scrape are written within a few milliseconds of each other.
const exportReuse = 100 * time.Millisecond

// ExportOptions configure ExportOrder and ExportWorker, whose metrics are read from the store
// while /metrics is written. Zero values take the defaults named on each field.
type ExportOptions struct {
	// Group is the consumer group whose backlog, pending entries and lag are exported.
	// Zero means DefaultGroup.
	Group string
	// Sales bounds the sales exported per scrape: the latest by start time, leaving out those
	// that ended more than an hour plus the reservation ago. Zero means 10.
	Sales int
	// Timeout bounds the store reads of one scrape; a read that fails or runs out of time leaves
	// its series out of that scrape. Zero means 200ms.
	Timeout time.Duration
}

func (o *ExportOptions) fill() {
	if o.Group == "" {
		o.Group = DefaultGroup
	}
	if o.Sales <= 0 {
		o.Sales = DefaultExportSales
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultExportTimeout
	}
}

// ExportOrder registers in reg the order service's scrape-time metrics, read from the store
// with o.Timeout:
//
//	flashedge_order_stream_backlog           entries of the attempt stream not yet delivered to o.Group
//	flashedge_order_stream_pending           entries delivered to o.Group and not acknowledged
//	flashedge_sale_stock{sale,shard}         units left in each stock shard
//	flashedge_sale_queued{sale}              admitted attempts not decided yet
//	flashedge_sale_events_total{sale,event}  admitted, won, lost, sold_out, ordered, expired, returned
//
// The per-sale families come from each sale's Ledger (so their figures are the ledger's); the
// events are admitted attempts, tickets decided won, lost or sold out, orders complete,
// reservations expired and expired units returned to a shard.
func (s *Service) ExportOrder(reg *metrics.Registry, o ExportOptions) {
	o.fill()
	stream := &reused[streamInfo]{load: func() (streamInfo, error) { return s.readStream(o) }}
	reg.GaugeFamily("flashedge_order_stream_backlog", nil, func(emit metrics.Emit) {
		if si, err := stream.get(); err == nil && si.lagKnown {
			emit(float64(si.lag))
		}
	})
	reg.GaugeFamily("flashedge_order_stream_pending", nil, func(emit metrics.Emit) {
		if si, err := stream.get(); err == nil {
			emit(float64(si.pending))
		}
	})

	ledgers := &reused[[]saleLedger]{load: func() ([]saleLedger, error) { return s.recentLedgers(o) }}
	reg.GaugeFamily("flashedge_sale_stock", []string{"sale", "shard"}, func(emit metrics.Emit) {
		ls, _ := ledgers.get()
		for _, l := range ls {
			for i, n := range l.Shards {
				emit(float64(n), l.sale, strconv.Itoa(i))
			}
		}
	})
	reg.GaugeFamily("flashedge_sale_queued", []string{"sale"}, func(emit metrics.Emit) {
		ls, _ := ledgers.get()
		for _, l := range ls {
			emit(float64(l.Queued), l.sale)
		}
	})
	reg.CounterFamily("flashedge_sale_events_total", []string{"sale", "event"}, func(emit metrics.Emit) {
		ls, _ := ledgers.get()
		for _, l := range ls {
			for _, e := range [...]struct {
				name string
				n    int64
			}{
				{"admitted", l.Admitted}, {"won", l.Won}, {"lost", l.Lost}, {"sold_out", l.SoldOutAnswers},
				{"ordered", l.OrdersFinished}, {"expired", l.Expired}, {"returned", l.ExpiredReturned},
			} {
				emit(float64(e.n), l.sale, e.name)
			}
		}
	})
}

// ExportWorker registers in reg flashedge_worker_consumer_lag: the entries of the attempt
// stream o.Group has yet to read, from the store at scrape time with o.Timeout (left out of a
// scrape whose read fails).
func (s *Service) ExportWorker(reg *metrics.Registry, o ExportOptions) {
	o.fill()
	stream := &reused[streamInfo]{load: func() (streamInfo, error) { return s.readStream(o) }}
	reg.GaugeFamily("flashedge_worker_consumer_lag", nil, func(emit metrics.Emit) {
		if si, err := stream.get(); err == nil && si.lagKnown {
			emit(float64(si.lag))
		}
	})
}

// reused holds the result of load for exportReuse after it returned, so the families of one
// scrape share one store read. Safe for concurrent use; concurrent scrapes wait for one load.
type reused[T any] struct {
	load func() (T, error)

	mu   sync.Mutex
	at   time.Time
	val  T
	err  error
	done bool
}

func (r *reused[T]) get() (T, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done && time.Since(r.at) < exportReuse {
		return r.val, r.err
	}
	r.val, r.err = r.load()
	r.at, r.done = time.Now(), true
	return r.val, r.err
}

// streamInfo is what XINFO GROUPS says about one group of the attempt stream.
type streamInfo struct {
	lag      int64 // entries not yet delivered to the group
	lagKnown bool  // the store reported the lag (it may not: see XINFO GROUPS)
	pending  int64 // delivered, not acknowledged
}

// readStream reads the backlog and pending count of o.Group. A missing stream has neither; a
// missing group has every entry of the stream still to read.
func (s *Service) readStream(o ExportOptions) (streamInfo, error) {
	ctx, cancel := context.WithTimeout(context.Background(), o.Timeout)
	defer cancel()
	stream := keyspace.AttemptStream()
	groups, err := s.c.Do(ctx, s.c.B().XinfoGroups().Key(stream).Build()).ToArray()
	if err != nil {
		if strings.Contains(err.Error(), "no such key") {
			return streamInfo{lagKnown: true}, nil
		}
		return streamInfo{}, fmt.Errorf("flashsale: XINFO GROUPS: %w", err)
	}
	for _, g := range groups {
		info, err := g.AsMap()
		if err != nil {
			return streamInfo{}, fmt.Errorf("flashsale: XINFO GROUPS reply: %w", err)
		}
		field := func(k string) *rueidis.RedisMessage { m := info[k]; return &m }
		if name, _ := field("name").ToString(); name != o.Group {
			continue
		}
		var si streamInfo
		si.pending, _ = field("pending").AsInt64()
		si.lag, err = field("lag").AsInt64()
		si.lagKnown = err == nil
		return si, nil
	}
	n, err := s.c.Do(ctx, s.c.B().Xlen().Key(stream).Build()).AsInt64()
	if err != nil {
		return streamInfo{}, fmt.Errorf("flashsale: XLEN: %w", err)
	}
	return streamInfo{lag: n, lagKnown: true}, nil
}

// saleLedger is one sale's ledger for the per-sale families.
type saleLedger struct {
	sale string
	Ledger
}

// recentLedgers reads the ledgers of the sales ExportOrder exports, within o.Timeout overall.
// A sale whose ledger cannot be read is left out.
func (s *Service) recentLedgers(o ExportOptions) ([]saleLedger, error) {
	ctx, cancel := context.WithTimeout(context.Background(), o.Timeout)
	defer cancel()
	ids, err := s.recentSaleIDs(ctx, o.Sales)
	if err != nil {
		return nil, err
	}
	views, err := s.views(ctx, ids)
	if err != nil {
		return nil, err
	}
	now := s.now()
	out := make([]saleLedger, 0, len(views))
	for _, v := range views {
		if !now.Before(v.EndsAt.Add(s.o.Reservation + sweepHorizon)) {
			continue
		}
		l, err := s.Ledger(ctx, v.ID)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			continue
		}
		out = append(out, saleLedger{sale: v.ID, Ledger: l})
	}
	return out, nil
}
