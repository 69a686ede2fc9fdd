package flashsale

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"

	"flashedge/shared/keyspace"
)

// Sweep limits.
const (
	// SweepPage is how many sales of the live index one read takes; a sweep pages through all.
	SweepPage = 1000
	// SweepBatch is how many due reservations, stranded tickets and tickets to close per sale one
	// sweep handles.
	SweepBatch = 200
	// liveAfterEnd is how long after its end a sale stays in the live index at least (clock skew
	// between the order service's gate and the sweeper); it leaves once nothing is left to sweep.
	liveAfterEnd = time.Minute
	// sweepHorizon: the metrics export leaves out sales that ended longer ago than this plus the
	// reservation.
	sweepHorizon = time.Hour
)

// SweepReport counts what one sweep did.
type SweepReport struct {
	Expired      int // reservations moved reserved -> expired and returned to a shard
	Completed    int // checkouts that had stopped after the pay step, finished
	Requeued     int // stranded tickets enqueued again
	Closed       int // tickets decided without a win whose claims were closed by the sweep
	FlagsCleared int // sold-out flags removed because a shard had stock again
	Retired      int // ended sales with nothing left to sweep, removed from the live index
}

// Sweep does one pass of the maintenance the worker binary runs on a ticker, over every sale in
// the live index (keyspace.LiveSales, read in pages of SweepPage): due reservations (from
// keyspace.SaleDeadlines, by ZRANGEBYSCORE; no key scans and no keyspace events) are expired and
// their units returned exactly once, checkouts stopped half way are finished, tickets stranded
// between admission and XADD are enqueued again, tickets decided without a win whose closing
// stopped half way (keyspace.SaleClosing) are closed, and a sold-out flag is cleared where a shard
// holds stock. A sale that ended with none of that work left leaves the live index. Every step is
// idempotent, so any number of sweepers may run at once.
func (s *Service) Sweep(ctx context.Context) (SweepReport, error) {
	var rep SweepReport
	var retire []string
	var errs []error
	for off := int64(0); ; off += SweepPage {
		ids, err := s.c.Do(ctx, s.c.B().Zrange().Key(keyspace.LiveSales()).Min(strconv.FormatInt(off, 10)).
			Max(strconv.FormatInt(off+SweepPage-1, 10)).Build()).AsStrSlice()
		if err != nil {
			return rep, fmt.Errorf("flashsale: read live sales: %w", err)
		}
		views, err := s.views(ctx, ids)
		if err != nil {
			return rep, err
		}
		done, err := s.sweepSales(ctx, views, &rep)
		if err != nil {
			errs = append(errs, err)
		}
		retire = append(retire, done...)
		if len(ids) < SweepPage {
			break
		}
	}
	if len(retire) > 0 {
		n, err := s.c.Do(ctx, s.c.B().Zrem().Key(keyspace.LiveSales()).Member(retire...).Build()).AsInt64()
		if err != nil {
			errs = append(errs, fmt.Errorf("flashsale: retire ended sales: %w", err))
		}
		rep.Retired += int(n)
	}
	return rep, errors.Join(errs...)
}

// IndexLiveSales puts every sale of the sale list (keyspace.Sales) into the sweeper's live index,
// once per store: the sales created before the live index existed (sales created since are put
// there by CreateSale). The sweep retires those it has nothing left to do for. A marker
// (keyspace.LiveSalesIndexed), set after a complete pass, makes later calls return at once;
// an interrupted pass is repeated whole, harmlessly (ZADD NX).
func (s *Service) IndexLiveSales(ctx context.Context) error {
	done, err := s.c.Do(ctx, s.c.B().Exists().Key(keyspace.LiveSalesIndexed()).Build()).AsInt64()
	if err != nil {
		return fmt.Errorf("flashsale: read live index marker: %w", err)
	}
	if done == 1 {
		return nil
	}
	for off := int64(0); ; off += SweepPage {
		ids, err := s.c.Do(ctx, s.c.B().Zrange().Key(keyspace.Sales()).Min(strconv.FormatInt(off, 10)).
			Max(strconv.FormatInt(off+SweepPage-1, 10)).Build()).AsStrSlice()
		if err != nil {
			return fmt.Errorf("flashsale: list sales: %w", err)
		}
		views, err := s.views(ctx, ids)
		if err != nil {
			return err
		}
		if len(views) > 0 {
			add := s.c.B().Zadd().Key(keyspace.LiveSales()).Nx().ScoreMember()
			for _, v := range views {
				add = add.ScoreMember(float64(v.EndsAt.UnixMilli()), v.ID)
			}
			if err := s.c.Do(ctx, add.Build()).Error(); err != nil {
				return fmt.Errorf("flashsale: index live sales: %w", err)
			}
		}
		if len(ids) < SweepPage {
			break
		}
	}
	if err := s.c.Do(ctx, s.c.B().Set().Key(keyspace.LiveSalesIndexed()).Value("1").Build()).Error(); err != nil {
		return fmt.Errorf("flashsale: set live index marker: %w", err)
	}
	return nil
}

// sweepSales sweeps one page of sales and returns the ended ones with nothing left to sweep.
func (s *Service) sweepSales(ctx context.Context, views []SaleView, rep *SweepReport) ([]string, error) {
	if len(views) == 0 {
		return nil, nil
	}
	now := s.now()
	stale := now.Add(-s.o.RequeueAfter)
	const perSale = 3
	cmds := make(rueidis.Commands, 0, perSale*len(views))
	for _, v := range views {
		cmds = append(cmds,
			s.c.B().Zrangebyscore().Key(keyspace.SaleDeadlines(v.ID)).Min("-inf").Max(ms(now)).
				Limit(0, SweepBatch).Build(),
			s.c.B().Zrangebyscore().Key(keyspace.SaleQueue(v.ID)).Min("-inf").Max(ms(stale)).
				Limit(0, SweepBatch).Build(),
			s.c.B().Zrange().Key(keyspace.SaleClosing(v.ID)).Min("0").Max(strconv.Itoa(SweepBatch-1)).Build())
	}
	res := s.c.DoMulti(ctx, cmds...)
	var errs []error
	var ended []SaleView
	for i, v := range views {
		due, err := res[perSale*i].AsStrSlice()
		if err != nil {
			return nil, fmt.Errorf("flashsale: read deadlines: %w", err)
		}
		for _, token := range due {
			switch out, err := s.expireOne(ctx, v.Sale, token); {
			case err != nil:
				errs = append(errs, err)
			case out == "expired":
				rep.Expired++
			case out == "completed":
				rep.Completed++
			}
		}
		stranded, err := res[perSale*i+1].AsStrSlice()
		if err != nil {
			return nil, fmt.Errorf("flashsale: read queue: %w", err)
		}
		for _, ticket := range stranded {
			ok, err := s.requeue(ctx, v.Sale, ticket)
			if err != nil {
				errs = append(errs, err)
			} else if ok {
				rep.Requeued++
			}
		}
		closing, err := res[perSale*i+2].AsStrSlice()
		if err != nil {
			return nil, fmt.Errorf("flashsale: read closing set: %w", err)
		}
		for _, ticket := range closing {
			ok, err := s.closeClaims(ctx, v.Sale, ticket)
			if err != nil {
				errs = append(errs, fmt.Errorf("flashsale: close claims: %w", err))
			} else if ok {
				rep.Closed++
			}
		}
		if v.State == StateSoldOut {
			cleared, err := s.auditSoldOut(ctx, v.Sale)
			if err != nil {
				errs = append(errs, err)
			} else if cleared {
				rep.FlagsCleared++
			}
		}
		if len(due) == 0 && len(stranded) == 0 && len(closing) == 0 && !now.Before(v.EndsAt.Add(liveAfterEnd)) {
			ended = append(ended, v)
		}
	}
	retire, err := s.idle(ctx, ended)
	if err != nil {
		errs = append(errs, err)
	}
	return retire, errors.Join(errs...)
}

// idle returns the sales of views (all ended past liveAfterEnd) that hold no reservation, no
// undecided ticket and no ticket to close: nothing can add any of those after the end, so the
// sweep is done with them. The order of the reads matters, since they are not one atomic step
// (another connection's command may run between two commands of a pipeline, on Dragonfly
// especially): after the end a ticket only moves out of the queue, into the closing set (lost)
// or the deadlines (won), and from the closing set nowhere but out. So the queue is read first,
// then the closing set, then the deadlines: a ticket moving while they are read is seen by a
// later read.
func (s *Service) idle(ctx context.Context, views []SaleView) ([]string, error) {
	if len(views) == 0 {
		return nil, nil
	}
	cmds := make(rueidis.Commands, 0, 3*len(views))
	for _, v := range views {
		cmds = append(cmds,
			s.c.B().Zcard().Key(keyspace.SaleQueue(v.ID)).Build(),
			s.c.B().Zcard().Key(keyspace.SaleClosing(v.ID)).Build(),
			s.c.B().Zcard().Key(keyspace.SaleDeadlines(v.ID)).Build())
	}
	res := s.c.DoMulti(ctx, cmds...)
	var out []string
	for i, v := range views {
		left := int64(0)
		for j := range 3 {
			n, err := res[3*i+j].AsInt64()
			if err != nil {
				return out, fmt.Errorf("flashsale: read what is left of sale %s: %w", v.ID, err)
			}
			left += n
		}
		if left == 0 {
			out = append(out, v.ID)
		}
	}
	return out, nil
}

// expireOne handles one due reservation; it returns "expired", "completed" or "" (nothing to do).
func (s *Service) expireOne(ctx context.Context, sl *Sale, token string) (string, error) {
	sale := sl.ID
	rep, err := strs(s.lua.tokenExpire.Exec(ctx, s.c,
		[]string{keyspace.SaleToken(sale, token), keyspace.SaleDeadlines(sale), keyspace.SaleUsers(sale), keyspace.SaleStats(sale)},
		[]string{token, ms(s.now())}))
	if err != nil {
		return "", fmt.Errorf("flashsale: expire token: %w", err)
	}
	switch rep[0] {
	case "expired":
		ticket := rep[1]
		shard, err := strconv.Atoi(rep[2])
		if err != nil {
			return "", fmt.Errorf("flashsale: token %s has shard %q", token, rep[2])
		}
		res, err := s.settle(ctx, sale, shard, ticket, "return")
		if err != nil {
			return "", err
		}
		if strings.HasPrefix(res, "bad:") {
			return "", fmt.Errorf("flashsale: return unit of ticket %s to shard %d: claim is %s", ticket, shard, res)
		}
		fin, err := s.tokenFinish(ctx, sale, token, "expired")
		if err != nil {
			return "", err
		}
		if fin != "ok" {
			return "", nil
		}
		s.o.Metrics.TokensExpired.Inc()
		return "expired", nil
	case "paid":
		p := paidToken{user: rep[1], ticket: rep[2], shardS: rep[3], priceS: rep[4], productID: rep[5], paidAtS: rep[6]}
		if _, err := s.completeOrder(ctx, sale, token, p); err != nil {
			return "", err
		}
		return "completed", nil
	}
	return "", nil
}

func (s *Service) tokenFinish(ctx context.Context, sale, token, mode string) (string, error) {
	res, err := s.lua.tokenFinish.Exec(ctx, s.c,
		[]string{keyspace.SaleToken(sale, token), keyspace.SaleDeadlines(sale), keyspace.SaleStats(sale), keyspace.SoldOut(sale)},
		[]string{mode, token, msDur(s.o.TokenGrace)}).ToString()
	if err != nil {
		return "", fmt.Errorf("flashsale: finish token (%s): %w", mode, err)
	}
	return res, nil
}

// requeue enqueues a stranded ticket again (at most MaxRequeues times).
func (s *Service) requeue(ctx context.Context, sl *Sale, ticket string) (bool, error) {
	sale, now := sl.ID, s.now()
	user, err := s.lua.requeueMark.Exec(ctx, s.c,
		[]string{keyspace.SaleResult(sale, ticket), keyspace.SaleQueue(sale)},
		[]string{ticket, ms(now), strconv.Itoa(s.o.MaxRequeues), ms(now.Add(-s.o.RequeueAfter))}).ToString()
	if rueidis.IsRedisNil(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("flashsale: mark requeue: %w", err)
	}
	if user == "exhausted" {
		return false, s.endStranded(ctx, sl, ticket)
	}
	err = s.c.Do(ctx, s.c.B().Xadd().Key(keyspace.AttemptStream()).Id("*").FieldValue().
		FieldValue("sale", sale).FieldValue("ticket", ticket).FieldValue("user", user).Build()).Error()
	if err != nil {
		// The XADD did not happen: give the requeue back so a stream outage does not use up
		// the ticket's bounded requeues.
		if uerr := s.c.Do(ctx, s.c.B().Hincrby().Key(keyspace.SaleResult(sale, ticket)).Field("requeues").Increment(-1).Build()).Error(); uerr != nil {
			err = errors.Join(err, uerr)
		}
		return false, fmt.Errorf("flashsale: requeue: %w", err)
	}
	s.o.Log.Info("flash-sale ticket enqueued again", "sale", sale, "ticket", ticket)
	return true, nil
}

// endStranded ends a ticket still undecided after its last requeue (no worker took it within
// MaxRequeues x RequeueAfter): lost, reason "stranded", so every admitted attempt reaches a final
// state within a bound and its user may try again. Only when this call is the one that decided it
// are its claims closed (a unit a dead run claimed goes back, every other shard is closed to the
// ticket so a run still in flight cannot claim later). A ticket a worker won meanwhile keeps its
// unit; one decided lost by another step is closed by that step or by the sweep.
func (s *Service) endStranded(ctx context.Context, sl *Sale, ticket string) error {
	res, err := s.loseAndClose(ctx, sl, ticket, "", OutcomeStranded, nil)
	if err != nil {
		return fmt.Errorf("flashsale: end stranded ticket: %w", err)
	}
	if res == resultLost {
		s.o.Log.Warn("flash-sale ticket ended undecided after its last requeue", "sale", sl.ID, "ticket", ticket)
	}
	return nil
}

// auditSoldOut clears a live sale's sold-out flag when a shard holds stock: the safety net for a
// flag set from a probe that raced with a unit going back when the returner died before clearing
// it. A flag wrongly cleared costs one probe by the next attempt; a flag wrongly kept would stop
// the sale.
func (s *Service) auditSoldOut(ctx context.Context, sl *Sale) (bool, error) {
	cmds := make(rueidis.Commands, sl.Shards)
	for i := range sl.Shards {
		cmds[i] = s.c.B().Get().Key(keyspace.StockShard(sl.ID, i)).Build()
	}
	for _, r := range s.c.DoMulti(ctx, cmds...) {
		n, err := r.AsInt64()
		if err != nil && !rueidis.IsRedisNil(err) {
			return false, fmt.Errorf("flashsale: audit shard: %w", err)
		}
		if n > 0 {
			if err := s.c.Do(ctx, s.c.B().Del().Key(keyspace.SoldOut(sl.ID)).Build()).Error(); err != nil {
				return false, fmt.Errorf("flashsale: clear sold-out flag: %w", err)
			}
			s.o.Log.Info("flash-sale sold-out flag cleared: a shard holds stock", "sale", sl.ID)
			return true, nil
		}
	}
	return false, nil
}
