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
	// SweepSales is how many sales (the latest by start time) a sweep looks at.
	SweepSales = 1000
	// SweepBatch is how many due reservations and stranded tickets per sale one sweep handles.
	SweepBatch = 200
	// sweepHorizon: sales that ended longer ago than this plus the reservation are not swept.
	sweepHorizon = time.Hour
)

// SweepReport counts what one sweep did.
type SweepReport struct {
	Expired      int // reservations moved reserved -> expired and returned to a shard
	Completed    int // checkouts that had stopped after the pay step, finished
	Requeued     int // stranded tickets enqueued again
	FlagsCleared int // sold-out flags removed because a shard had stock again
}

// Sweep does one pass of the maintenance the worker binary runs on a ticker, over the latest
// SweepSales sales: due reservations (from keyspace.SaleDeadlines, by ZRANGEBYSCORE; no key scans
// and no keyspace events) are expired and their units returned exactly once, checkouts stopped
// half way are finished, tickets stranded between admission and XADD are enqueued again, and a
// sold-out flag is cleared where a shard holds stock. Every step is idempotent, so any number of
// sweepers may run at once.
func (s *Service) Sweep(ctx context.Context) (SweepReport, error) {
	var rep SweepReport
	ids, err := s.recentSaleIDs(ctx, SweepSales)
	if err != nil {
		return rep, err
	}
	views, err := s.views(ctx, ids)
	if err != nil {
		return rep, err
	}
	now := s.now()
	var active []SaleView
	for _, v := range views {
		if now.Before(v.EndsAt.Add(s.o.Reservation + sweepHorizon)) {
			active = append(active, v)
		}
	}
	if len(active) == 0 {
		return rep, nil
	}
	cmds := make(rueidis.Commands, 0, 2*len(active))
	stale := now.Add(-s.o.RequeueAfter)
	for _, v := range active {
		cmds = append(cmds,
			s.c.B().Zrangebyscore().Key(keyspace.SaleDeadlines(v.ID)).Min("-inf").Max(ms(now)).
				Limit(0, SweepBatch).Build(),
			s.c.B().Zrangebyscore().Key(keyspace.SaleQueue(v.ID)).Min("-inf").Max(ms(stale)).
				Limit(0, SweepBatch).Build())
	}
	res := s.c.DoMulti(ctx, cmds...)
	var errs []error
	for i, v := range active {
		due, err := res[2*i].AsStrSlice()
		if err != nil {
			return rep, fmt.Errorf("flashsale: read deadlines: %w", err)
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
		stranded, err := res[2*i+1].AsStrSlice()
		if err != nil {
			return rep, fmt.Errorf("flashsale: read queue: %w", err)
		}
		for _, ticket := range stranded {
			ok, err := s.requeue(ctx, v.Sale, ticket)
			if err != nil {
				errs = append(errs, err)
			} else if ok {
				rep.Requeued++
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
	}
	return rep, errors.Join(errs...)
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
	sale := sl.ID
	user, err := s.lua.requeueMark.Exec(ctx, s.c,
		[]string{keyspace.SaleResult(sale, ticket), keyspace.SaleQueue(sale)},
		[]string{ticket, ms(s.now()), strconv.Itoa(s.o.MaxRequeues)}).ToString()
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
// state within a bound and its user may try again. The ticket is decided first and its claims
// released after: a worker still busy with it then finds it decided and releases what it
// claimed itself, so no unit is both released and won.
func (s *Service) endStranded(ctx context.Context, sl *Sale, ticket string) error {
	if _, err := s.finish(ctx, sl.ID, ticket, "lost", "", OutcomeStranded, nil); err != nil {
		return fmt.Errorf("flashsale: end stranded ticket: %w", err)
	}
	released := false
	for i := range sl.Shards {
		res, err := s.settle(ctx, sl.ID, i, ticket, "release")
		if err != nil {
			return fmt.Errorf("flashsale: release a stranded ticket's claim: %w", err)
		}
		released = released || res == "ok"
	}
	if released {
		// The unit is back in a shard: move the return epoch on and clear the sold-out flag
		// (the ticket is decided already, so only that part of "released" applies).
		if _, err := s.finish(ctx, sl.ID, ticket, "released", "", OutcomeStranded, nil); err != nil {
			return fmt.Errorf("flashsale: reopen after a stranded release: %w", err)
		}
	}
	s.o.Log.Warn("flash-sale ticket ended undecided after its last requeue", "sale", sl.ID, "ticket", ticket, "unit_released", released)
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
