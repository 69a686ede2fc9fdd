package flashgate

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/rueidis"

	"flashedge/edge/internal/invcache"
	"flashedge/shared/keyspace"
	publicsale "flashedge/shared/sale"
)

// sale is one sale as the edge sees it; immutable once built.
type sale struct {
	exists         bool
	id             string
	startMs, endMs int64
	soldOut        bool
	difficulty     int             // of its challenges, in leading zero bits
	room           bool            // it has a waiting room (Options.Pass checks attempts)
	view           publicsale.View // the public JSON around the state, so rendering is two appends
}

// States of a sale (shared/sale).
const (
	StateUpcoming = publicsale.StateUpcoming
	StateLive     = publicsale.StateLive
	StateSoldOut  = publicsale.StateSoldOut
	StateEnded    = publicsale.StateEnded
)

func (s *sale) state(nowMs int64) string {
	return publicsale.StateAt(nowMs, s.startMs, s.endMs, s.soldOut)
}

func (s *sale) appendJSON(dst []byte, nowMs int64) []byte {
	return s.view.AppendJSON(dst, s.state(nowMs))
}

// sales is the edge's copy of the sales it was asked about (unknown ids included, so a
// repeated guess costs no store read), kept coherent by invalidation.
type sales struct {
	kv        rueidis.Client
	cache     *invcache.Cache[*sale]
	clientTTL time.Duration
	timeout   time.Duration
}

// held returns the sale (known, or known to be unknown) when it is in memory, else nil.
func (ss *sales) held(id []byte) *sale {
	s, _ := ss.cache.Get(id)
	return s
}

// lookup returns the sale with id (exists false when there is none). id is not retained.
func (ss *sales) lookup(id []byte) (*sale, error) {
	return ss.cache.Load(id, ss.fetch)
}

// invalidate drops the sale a changed store key derives from and reports whether key was one.
func (ss *sales) invalidate(key string) bool {
	id, ok := keyspace.SaleStateOf(key)
	if ok {
		ss.cache.Delete(id)
	}
	return ok
}

func (ss *sales) fetch(id string) (*sale, error) {
	ctx, cancel := context.WithTimeout(context.Background(), ss.timeout)
	defer cancel()
	res := ss.kv.DoMultiCache(ctx,
		rueidis.CT(ss.kv.B().Hgetall().Key(keyspace.Sale(id)).Cache(), ss.clientTTL),
		rueidis.CT(ss.kv.B().Get().Key(keyspace.SoldOut(id)).Cache(), ss.clientTTL),
	)
	m, err := res[0].AsStrMap()
	if err != nil {
		return nil, fmt.Errorf("flashgate: read sale %s: %w", id, err)
	}
	_, ferr := res[1].ToString()
	if ferr != nil && !rueidis.IsRedisNil(ferr) {
		return nil, fmt.Errorf("flashgate: read sold-out flag of %s: %w", id, ferr)
	}
	s := &sale{id: id, soldOut: ferr == nil}
	def, ok := publicsale.FromHash(m)
	if !ok {
		return s, nil
	}
	s.exists = true
	s.startMs, s.endMs, s.difficulty = def.StartsAt.UnixMilli(), def.EndsAt.UnixMilli(), def.Difficulty
	s.room = def.WaitingRoom.Enabled()
	s.view = publicsale.Render(def)
	return s, nil
}
