package flashsale

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/rueidis"

	"flashedge/shared/keyspace"
	"flashedge/shared/product"
)

// Ledger is a sale's accounting. Remaining, Reserved, Ordered, ExpiredReturned and Released are
// sums over the shards, each shard read in one atomic step, so Initial == Remaining + Reserved +
// Ordered holds in every ledger read, during a rush as after it (see the package comment). The
// other counters come from the sale's slot and may trail the shards by the steps in flight.
type Ledger struct {
	Initial          int64            `json:"initial"`
	Remaining        int64            `json:"remaining"`
	Shards           []int64          `json:"shards"`
	Reserved         int64            `json:"reserved"`
	Ordered          int64            `json:"ordered"`
	ExpiredReturned  int64            `json:"expired_returned"`
	Admitted         int64            `json:"admitted"`
	RejectedByReason map[string]int64 `json:"rejected_by_reason"`

	// Released counts units claimed for tickets that could not keep them (back in the shard).
	Released int64 `json:"released"`
	// Queued is the number of admitted tickets not decided yet.
	Queued int64 `json:"queued"`
	// Won, Lost and SoldOutAnswers count decided tickets by result.
	Won            int64 `json:"won"`
	Lost           int64 `json:"lost"`
	SoldOutAnswers int64 `json:"sold_out_answers"`
	// Paid counts tokens consumed by checkout; OrdersFinished those whose order is complete.
	Paid           int64 `json:"paid"`
	OrdersFinished int64 `json:"orders_finished"`
	// Expired counts reservations expired by the sweeper (ExpiredReturned once back in a shard).
	Expired int64 `json:"expired"`
	// SoldOutFlag reports the flag edges cache.
	SoldOutFlag bool `json:"sold_out_flag"`
}

// Balanced reports whether Initial == Remaining + Reserved + Ordered with no negative shard.
func (l Ledger) Balanced() bool {
	for _, v := range l.Shards {
		if v < 0 {
			return false
		}
	}
	return l.Initial == l.Remaining+l.Reserved+l.Ordered
}

// Ledger reads a sale's ledger. Unknown sales are ErrNotFound.
func (s *Service) Ledger(ctx context.Context, saleID string) (Ledger, error) {
	if !product.ValidID([]byte(saleID)) {
		return Ledger{}, ErrNotFound
	}
	sl, err := s.loadSale(ctx, saleID)
	if err != nil {
		return Ledger{}, err
	}
	l := Ledger{Initial: sl.Stock, Shards: make([]int64, sl.Shards), RejectedByReason: map[string]int64{}}
	execs := make([]rueidis.LuaExec, sl.Shards)
	for i := range sl.Shards {
		execs[i] = rueidis.LuaExec{Keys: []string{keyspace.StockShard(saleID, i), keyspace.ShardStats(saleID, i)}}
	}
	for i, r := range s.lua.shardRead.ExecMulti(ctx, s.c, execs...) {
		v, err := strs(r)
		if err != nil {
			return Ledger{}, fmt.Errorf("flashsale: read shard %d: %w", i, err)
		}
		n := make([]int64, len(v))
		for j := range v {
			if n[j], err = strconv.ParseInt(v[j], 10, 64); err != nil {
				return Ledger{}, fmt.Errorf("flashsale: shard %d holds %q", i, v[j])
			}
		}
		l.Shards[i] = n[0]
		l.Remaining += n[0]
		l.Reserved += n[1]
		l.Ordered += n[2]
		l.ExpiredReturned += n[3]
		l.Released += n[4]
	}
	res := s.c.DoMulti(ctx,
		s.c.B().Hgetall().Key(keyspace.SaleStats(saleID)).Build(),
		s.c.B().Zcard().Key(keyspace.SaleQueue(saleID)).Build(),
		s.c.B().Exists().Key(keyspace.SoldOut(saleID)).Build())
	stats, err := res[0].AsIntMap()
	if err != nil {
		return Ledger{}, fmt.Errorf("flashsale: read stats: %w", err)
	}
	if l.Queued, err = res[1].AsInt64(); err != nil {
		return Ledger{}, fmt.Errorf("flashsale: read queue: %w", err)
	}
	flag, err := res[2].AsInt64()
	if err != nil {
		return Ledger{}, fmt.Errorf("flashsale: read sold-out flag: %w", err)
	}
	l.SoldOutFlag = flag == 1
	for k, v := range stats {
		if reason, ok := strings.CutPrefix(k, "rejected:"); ok {
			l.RejectedByReason[reason] = v
		}
	}
	l.Admitted = stats["admitted"]
	l.Won, l.Lost, l.SoldOutAnswers = stats["won"], stats["lost"], stats["sold_out"]
	l.Paid, l.OrdersFinished, l.Expired = stats["paid"], stats["ordered"], stats["expired"]
	return l, nil
}
