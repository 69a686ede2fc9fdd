package flashsale

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/rueidis"

	wrstore "flashedge/backend/internal/waitroom"
	"flashedge/shared/keyspace"
	"flashedge/shared/product"
	"flashedge/shared/sale"
	"flashedge/shared/waitroom"
)

// Limits of a sale definition.
const (
	MaxStock        = 10_000_000
	MaxShards       = 64
	DefaultShards   = 8
	MaxPerUserLimit = 1_000_000
)

// Sale states as shoppers see them (shared/sale).
const (
	StateUpcoming = sale.StateUpcoming
	StateLive     = sale.StateLive
	StateSoldOut  = sale.StateSoldOut
	StateEnded    = sale.StateEnded
)

// Sale is a flash sale's definition, immutable once created; in the store it is the hash
// keyspace.Sale(id) (shared/sale names its fields), which the edge reads directly.
type Sale = sale.Sale

// SaleInput is the body of an admin create. Pointer fields tell absent from zero.
type SaleInput struct {
	// ID is optional: 1 to 64 of A-Z a-z 0-9 _ -; a random id is chosen when absent.
	ID        *string `json:"id"`
	ProductID string  `json:"product_id"`
	// Price is required: 1 to product.MaxPrice.
	Price *int64 `json:"price"`
	// Stock is required: 0 to MaxStock. A sale of 0 units is sold out from the start.
	Stock *int64 `json:"stock"`
	// Shards is optional: 1 to MaxShards; absent means min(8, max(1, stock)). More shards than
	// units is allowed: the extra shards start empty and the worker probes past them.
	Shards *int `json:"shards"`
	// StartsAt and EndsAt are required RFC 3339 instants, end after start.
	StartsAt string `json:"starts_at"`
	EndsAt   string `json:"ends_at"`
	// PerUserLimit is optional: 1 to MaxPerUserLimit, absent means 1.
	PerUserLimit *int64 `json:"per_user_limit"`
	// Difficulty is optional: 0 to MaxDifficulty leading zero bits; absent means the service's.
	Difficulty *int `json:"difficulty"`
	// WaitingRoom is optional (see waitroom.Input); absent means attempts need no pass.
	WaitingRoom *waitroom.Input `json:"waiting_room"`
}

// validate checks in and returns the definition it describes (without CreatedAt; with an empty
// ID when none was given).
func (in SaleInput) validate(defaultDifficulty int) (*Sale, error) {
	sl := &Sale{ProductID: in.ProductID}
	if in.ID != nil {
		if !product.ValidID([]byte(*in.ID)) {
			return nil, invalid("id must be 1 to 64 of A-Z a-z 0-9 _ -")
		}
		sl.ID = *in.ID
	}
	if !product.ValidID([]byte(in.ProductID)) {
		return nil, invalid("product_id is required: 1 to 64 of A-Z a-z 0-9 _ -")
	}
	if in.Price == nil || *in.Price < 1 || *in.Price > product.MaxPrice {
		return nil, invalid("price is required: a whole number from 1 to %d", int64(product.MaxPrice))
	}
	sl.Price = *in.Price
	if in.Stock == nil || *in.Stock < 0 || *in.Stock > MaxStock {
		return nil, invalid("stock is required: a whole number from 0 to %d", MaxStock)
	}
	sl.Stock = *in.Stock
	if in.Shards == nil {
		sl.Shards = int(min(DefaultShards, max(1, sl.Stock)))
	} else {
		if *in.Shards < 1 || *in.Shards > MaxShards {
			return nil, invalid("shards must be from 1 to %d", MaxShards)
		}
		sl.Shards = *in.Shards
	}
	var err error
	if sl.StartsAt, err = time.Parse(time.RFC3339, in.StartsAt); err != nil {
		return nil, invalid("starts_at is required: an RFC 3339 time such as 2025-11-11T12:00:00Z")
	}
	if sl.EndsAt, err = time.Parse(time.RFC3339, in.EndsAt); err != nil {
		return nil, invalid("ends_at is required: an RFC 3339 time such as 2025-11-11T13:00:00Z")
	}
	sl.StartsAt = sl.StartsAt.UTC().Truncate(time.Millisecond)
	sl.EndsAt = sl.EndsAt.UTC().Truncate(time.Millisecond)
	if !sl.EndsAt.After(sl.StartsAt) {
		return nil, invalid("ends_at must be after starts_at")
	}
	if in.WaitingRoom != nil {
		if sl.WaitingRoom, err = in.WaitingRoom.Validate(sl.StartsAt); err != nil {
			return nil, invalid("%s", err.Error())
		}
	}
	sl.PerUserLimit = 1
	if in.PerUserLimit != nil {
		if *in.PerUserLimit < 1 || *in.PerUserLimit > MaxPerUserLimit {
			return nil, invalid("per_user_limit must be from 1 to %d", MaxPerUserLimit)
		}
		sl.PerUserLimit = *in.PerUserLimit
	}
	sl.Difficulty = defaultDifficulty
	if in.Difficulty != nil {
		if *in.Difficulty < 0 || *in.Difficulty > MaxDifficulty {
			return nil, invalid("difficulty must be from 0 to %d", MaxDifficulty)
		}
		sl.Difficulty = *in.Difficulty
	}
	return sl, nil
}

// fingerprint identifies a create request so a retry with the same body is recognised.
func fingerprint(sl *Sale) string {
	h := sha256.Sum256(fmt.Appendf(nil, "%s|%s|%d|%d|%d|%d|%d|%d|%d%s", sl.ID, sl.ProductID, sl.Price,
		sl.Stock, sl.Shards, sl.StartsAt.UnixMilli(), sl.EndsAt.UnixMilli(), sl.PerUserLimit, sl.Difficulty,
		sl.WaitingRoom.Fingerprint()))
	return hex.EncodeToString(h[:16])
}

// splitStock divides stock over n shards as evenly as possible: the first stock%n shards get
// one unit more.
func splitStock(stock int64, n int) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = stock / int64(n)
		if int64(i) < stock%int64(n) {
			out[i]++
		}
	}
	return out
}

// CreateSale validates in, then creates and preheats the sale: stock split over the shard keys,
// the shard list, the sale hash, the index and, for a sale without stock, the sold-out flag.
// A retry with the same body returns the sale with created false; another body for an existing
// id fails with ErrConflict. An unknown product fails with ErrNoProduct.
func (s *Service) CreateSale(ctx context.Context, in SaleInput) (sl *Sale, created bool, err error) {
	sl, err = in.validate(s.o.Difficulty)
	if err != nil {
		return nil, false, err
	}
	if sl.ID == "" {
		sl.ID = newID()[:16]
	}
	sl.CreatedAt = s.now().UTC().Truncate(time.Millisecond)
	doc, err := s.c.Do(ctx, s.c.B().Get().Key(keyspace.Product(sl.ProductID)).Build()).AsBytes()
	if rueidis.IsRedisNil(err) {
		return nil, false, ErrNoProduct
	}
	if err != nil {
		return nil, false, fmt.Errorf("flashsale: read product: %w", err)
	}
	var pd product.Doc
	if json.Unmarshal(doc, &pd) == nil {
		sl.ProductName = pd.Name
	}
	fp := fingerprint(sl)
	args := []string{fp}
	for i := range sl.Shards {
		args = append(args, keyspace.StockShard(sl.ID, i))
	}
	rep, err := strs(s.lua.saleClaim.Exec(ctx, s.c,
		[]string{keyspace.Sale(sl.ID), keyspace.SaleClaim(sl.ID), keyspace.SaleShards(sl.ID)}, args))
	if err != nil {
		return nil, false, fmt.Errorf("flashsale: claim sale id: %w", err)
	}
	switch rep[0] {
	case "exists":
		if rep[1] != fp {
			return nil, false, ErrConflict
		}
		got, err := s.loadSale(ctx, sl.ID)
		if err != nil {
			return nil, false, err
		}
		// Finish a create that died after its commit and before the index.
		if err := s.index(ctx, got); err != nil {
			return nil, false, err
		}
		return got, false, nil
	case "conflict":
		return nil, false, ErrConflict
	}
	// The id is claimed by this body. It enters the sweeper's live index before the commit makes
	// it live, so no sale can sell without being swept, whatever stops this create after the
	// commit (a create that stops before it leaves an index entry the sweep reads as no sale).
	if err := s.c.Do(ctx, s.c.B().Zadd().Key(keyspace.LiveSales()).ScoreMember().
		ScoreMember(float64(sl.EndsAt.UnixMilli()), sl.ID).Build()).Error(); err != nil {
		return nil, false, fmt.Errorf("flashsale: index sale for the sweep: %w", err)
	}
	// The shards are written with NX: only requests with this
	// same body can get here, they all write the same split, and a concurrent twin may already
	// have committed, after which a shard may hold less and must not be reset.
	parts := splitStock(sl.Stock, sl.Shards)
	cmds := make(rueidis.Commands, 0, sl.Shards)
	for i, v := range parts {
		cmds = append(cmds, s.c.B().Set().Key(keyspace.StockShard(sl.ID, i)).Value(strconv.FormatInt(v, 10)).Nx().Build())
	}
	for _, r := range s.c.DoMulti(ctx, cmds...) {
		if err := r.Error(); err != nil && !rueidis.IsRedisNil(err) { // nil: NX found it written
			return nil, false, fmt.Errorf("flashsale: write stock shards: %w", err)
		}
	}
	cargs := append([]string{fp, strconv.FormatInt(sl.Stock, 10)}, sl.HashFields()...)
	res, err := s.lua.saleCommit.Exec(ctx, s.c, []string{keyspace.Sale(sl.ID), keyspace.SaleClaim(sl.ID),
		keyspace.SoldOut(sl.ID), keyspace.SaleStats(sl.ID)}, cargs).ToString()
	if err != nil {
		return nil, false, fmt.Errorf("flashsale: commit sale: %w", err)
	}
	switch res {
	case "exists": // a concurrent create with the same body committed first
		got, err := s.loadSale(ctx, sl.ID)
		if err != nil {
			return nil, false, err
		}
		return got, false, s.index(ctx, got)
	case "conflict":
		return nil, false, ErrConflict
	}
	if err := s.index(ctx, sl); err != nil {
		return nil, false, err
	}
	return sl, true, nil
}

// index adds a committed sale to the list of sales (keyspace.Sales, by start) and to the sweeper's
// live index (keyspace.LiveSales, by end), which the sweep leaves once it is done with the sale.
func (s *Service) index(ctx context.Context, sl *Sale) error {
	if sl.WaitingRoom.Enabled() {
		if _, err := wrstore.Prepare(ctx, s.c, sl.ID, sl.EndsAt); err != nil {
			return fmt.Errorf("flashsale: %w", err)
		}
	}
	for _, r := range s.c.DoMulti(ctx,
		s.c.B().Zadd().Key(keyspace.Sales()).ScoreMember().ScoreMember(float64(sl.StartsAt.UnixMilli()), sl.ID).Build(),
		s.c.B().Zadd().Key(keyspace.LiveSales()).ScoreMember().ScoreMember(float64(sl.EndsAt.UnixMilli()), sl.ID).Build()) {
		if err := r.Error(); err != nil {
			return fmt.Errorf("flashsale: index sale: %w", err)
		}
	}
	return nil
}

// loadSale returns a sale's definition, from the in-process cache when it was read before
// (definitions never change once committed). A missing sale is ErrNotFound.
func (s *Service) loadSale(ctx context.Context, id string) (*Sale, error) {
	s.mu.RLock()
	sl := s.defs[id]
	s.mu.RUnlock()
	if sl != nil {
		return sl, nil
	}
	m, err := s.c.Do(ctx, s.c.B().Hgetall().Key(keyspace.Sale(id)).Build()).AsStrMap()
	if err != nil {
		return nil, fmt.Errorf("flashsale: read sale: %w", err)
	}
	sl, ok := sale.FromHash(m)
	if !ok {
		return nil, ErrNotFound
	}
	s.remember(sl)
	return sl, nil
}

func (s *Service) remember(sl *Sale) {
	s.mu.Lock()
	if len(s.defs) >= maxCachedDefs {
		s.defs = map[string]*Sale{}
	}
	s.defs[sl.ID] = sl
	s.mu.Unlock()
}

// SaleView is a sale with its state at a moment.
type SaleView struct {
	*Sale
	State string
}

// GetSale returns a sale and its current state. Unknown ids are ErrNotFound.
func (s *Service) GetSale(ctx context.Context, id string) (SaleView, error) {
	if !product.ValidID([]byte(id)) {
		return SaleView{}, ErrNotFound
	}
	sl, err := s.loadSale(ctx, id)
	if err != nil {
		return SaleView{}, err
	}
	n, err := s.c.Do(ctx, s.c.B().Exists().Key(keyspace.SoldOut(id)).Build()).AsInt64()
	if err != nil {
		return SaleView{}, fmt.Errorf("flashsale: read sold-out flag: %w", err)
	}
	return SaleView{sl, sl.State(s.now(), n == 1)}, nil
}

// MaxListed is how many sales ListSales returns: those with the latest start times.
const MaxListed = 100

// ListSales returns up to MaxListed sales with the latest start times, ordered by start time,
// with their states.
func (s *Service) ListSales(ctx context.Context) ([]SaleView, error) {
	ids, err := s.recentSaleIDs(ctx, MaxListed)
	if err != nil {
		return nil, err
	}
	return s.views(ctx, ids)
}

func (s *Service) recentSaleIDs(ctx context.Context, n int) ([]string, error) {
	ids, err := s.c.Do(ctx, s.c.B().Zrevrange().Key(keyspace.Sales()).Start(0).Stop(int64(n-1)).Build()).AsStrSlice()
	if err != nil {
		return nil, fmt.Errorf("flashsale: list sales: %w", err)
	}
	for i, j := 0, len(ids)-1; i < j; i, j = i+1, j-1 {
		ids[i], ids[j] = ids[j], ids[i]
	}
	return ids, nil
}

// views loads definitions (cached or in one pipeline) and sold-out flags of ids, skipping
// ids whose sale is missing.
func (s *Service) views(ctx context.Context, ids []string) ([]SaleView, error) {
	defs := make([]*Sale, len(ids))
	var missing rueidis.Commands
	var at []int
	s.mu.RLock()
	for i, id := range ids {
		if defs[i] = s.defs[id]; defs[i] == nil {
			missing = append(missing, s.c.B().Hgetall().Key(keyspace.Sale(id)).Build())
			at = append(at, i)
		}
	}
	s.mu.RUnlock()
	if len(missing) > 0 {
		for j, r := range s.c.DoMulti(ctx, missing...) {
			m, err := r.AsStrMap()
			if err != nil {
				return nil, fmt.Errorf("flashsale: read sale: %w", err)
			}
			if sl, ok := sale.FromHash(m); ok {
				s.remember(sl)
				defs[at[j]] = sl
			}
		}
	}
	flags := make(rueidis.Commands, len(ids))
	for i, id := range ids {
		flags[i] = s.c.B().Exists().Key(keyspace.SoldOut(id)).Build()
	}
	now := s.now()
	out := make([]SaleView, 0, len(ids))
	for i, r := range s.c.DoMulti(ctx, flags...) {
		n, err := r.AsInt64()
		if err != nil {
			return nil, fmt.Errorf("flashsale: read sold-out flag: %w", err)
		}
		if defs[i] != nil {
			out = append(out, SaleView{defs[i], defs[i].State(now, n == 1)})
		}
	}
	return out, nil
}
