// Package sale is the flash-sale contract both sides speak: the sale hash the order service
// writes and the edge reads (field names and parsing), the public sale view with the one
// renderer the edge and the order service both answer with, the ticket (attempt result) record
// and its rendering, and the refusal bodies both sides send.
//
// A sale lives in the store as the hash keyspace.Sale(id); its fields, all strings as Redis
// stores them:
//
//	id              the sale id
//	product_id      the product sold
//	product_name    the product's name when the sale was created (for orders and pages)
//	price           the flash price, whole units of the product's currency
//	stock           the initial number of units
//	shards          the number of stock shards (keyspace.StockShard(id, 0..shards-1))
//	starts_at       httpapi.TimeLayout (for people reading the store)
//	ends_at         httpapi.TimeLayout, exclusive end
//	starts_at_ms    the same instants in unix milliseconds (what is compared and rendered)
//	ends_at_ms
//	per_user_limit  units one user may hold (reserved or ordered)
//	difficulty      proof-of-work difficulty of its challenges, in leading zero bits
//	created_at      httpapi.TimeLayout
//	wr_*            the waiting room, when the sale has one (waitroom.Config.HashFields)
//
// The state is derived, not stored: ended when now >= ends_at, upcoming when now < starts_at,
// sold_out when keyspace.SoldOut(id) exists, live otherwise.
package sale

import (
	"strconv"
	"time"

	"flashedge/shared/httpapi"
	"flashedge/shared/waitroom"
)

// Field names of the sale hash.
const (
	FieldID           = "id"
	FieldProductID    = "product_id"
	FieldProductName  = "product_name"
	FieldPrice        = "price"
	FieldStock        = "stock"
	FieldShards       = "shards"
	FieldStartsAt     = "starts_at"
	FieldEndsAt       = "ends_at"
	FieldStartsAtMs   = "starts_at_ms"
	FieldEndsAtMs     = "ends_at_ms"
	FieldPerUserLimit = "per_user_limit"
	FieldDifficulty   = "difficulty"
	FieldCreatedAt    = "created_at"
)

// Sale states as shoppers see them.
const (
	StateUpcoming = "upcoming"
	StateLive     = "live"
	StateSoldOut  = "sold_out"
	StateEnded    = "ended"
)

// Sale is a flash sale's definition, immutable once created. Instants are UTC with millisecond
// precision (what the store keeps).
type Sale struct {
	ID           string
	ProductID    string
	ProductName  string
	Price        int64
	Stock        int64
	Shards       int
	StartsAt     time.Time
	EndsAt       time.Time
	PerUserLimit int64
	Difficulty   int
	CreatedAt    time.Time
	// WaitingRoom is the sale's waiting room; the zero Config when it has none.
	WaitingRoom waitroom.Config
}

// State derives the sale's state at now given its sold-out flag.
func (s *Sale) State(now time.Time, soldOut bool) string {
	return StateAt(now.UnixMilli(), s.StartsAt.UnixMilli(), s.EndsAt.UnixMilli(), soldOut)
}

// StateAt is State on unix milliseconds: the sale runs from startMs (inclusive) to endMs
// (exclusive).
func StateAt(nowMs, startMs, endMs int64, soldOut bool) string {
	switch {
	case nowMs >= endMs:
		return StateEnded
	case nowMs < startMs:
		return StateUpcoming
	case soldOut:
		return StateSoldOut
	default:
		return StateLive
	}
}

// HashFields returns the sale hash as field, value pairs (for HSET).
func (s *Sale) HashFields() []string {
	return append([]string{
		FieldID, s.ID,
		FieldProductID, s.ProductID,
		FieldProductName, s.ProductName,
		FieldPrice, strconv.FormatInt(s.Price, 10),
		FieldStock, strconv.FormatInt(s.Stock, 10),
		FieldShards, strconv.Itoa(s.Shards),
		FieldStartsAt, httpapi.FormatTime(s.StartsAt),
		FieldEndsAt, httpapi.FormatTime(s.EndsAt),
		FieldStartsAtMs, strconv.FormatInt(s.StartsAt.UnixMilli(), 10),
		FieldEndsAtMs, strconv.FormatInt(s.EndsAt.UnixMilli(), 10),
		FieldPerUserLimit, strconv.FormatInt(s.PerUserLimit, 10),
		FieldDifficulty, strconv.Itoa(s.Difficulty),
		FieldCreatedAt, httpapi.FormatTime(s.CreatedAt),
	}, s.WaitingRoom.HashFields()...)
}

// FromHash parses the sale hash (HGETALL's answer); ok is false when it is missing or a number
// field is malformed, which both sides treat as no such sale.
func FromHash(m map[string]string) (s *Sale, ok bool) {
	if m[FieldID] == "" {
		return nil, false
	}
	good := true
	num := func(k string) int64 {
		n, err := strconv.ParseInt(m[k], 10, 64)
		good = good && err == nil
		return n
	}
	s = &Sale{ID: m[FieldID], ProductID: m[FieldProductID], ProductName: m[FieldProductName]}
	s.Price = num(FieldPrice)
	s.Stock = num(FieldStock)
	s.Shards = int(num(FieldShards))
	s.StartsAt = time.UnixMilli(num(FieldStartsAtMs)).UTC()
	s.EndsAt = time.UnixMilli(num(FieldEndsAtMs)).UTC()
	s.PerUserLimit = num(FieldPerUserLimit)
	s.Difficulty = int(num(FieldDifficulty))
	if !good {
		return nil, false
	}
	s.CreatedAt, _ = time.Parse(time.RFC3339Nano, m[FieldCreatedAt])
	s.WaitingRoom = waitroom.FromHash(m)
	return s, true
}
