package order

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"

	"flashedge/shared/keyspace"
	"flashedge/shared/kv"
)

// Store keeps orders, idempotency records and normal-checkout inventory in the store:
//
//	keyspace.Order(user, id)                       the order JSON, in its owner's slot
//	keyspace.UserOrders(user)                      sorted set of the user's order ids by created_at (ms)
//	keyspace.Idempotency(user, "checkout", key)    the idempotency record of a checkout
//	keyspace.OrderSeq()                            the counter order ids come from
//	keyspace.ProductStock(id), keyspace.Product(id) the stock reservations change (catalog's keys)
//
// An order, its list entry and its idempotency record share the user's hash tag, so Place writes
// them in one Lua call. Products live in their own slots, so reserving a cart of several products
// is one Lua call per product plus compensation (see Reserve). Safe for concurrent use; it does
// not own the client.
type Store struct {
	c       rueidis.Client
	reserve *rueidis.Lua
	release *rueidis.Lua
	place   *rueidis.Lua
	finish  *rueidis.Lua
}

var (
	//go:embed reserve.lua
	reserveScript string
	//go:embed release.lua
	releaseScript string
	//go:embed place.lua
	placeScript string
	//go:embed finish.lua
	finishScript string
)

// NewStore returns a Store working through c.
func NewStore(c rueidis.Client) *Store {
	return &Store{
		c:       c,
		reserve: rueidis.NewLuaScript(reserveScript),
		release: rueidis.NewLuaScript(releaseScript),
		place:   rueidis.NewLuaScript(placeScript),
		finish:  rueidis.NewLuaScript(finishScript),
	}
}

func unavailable(op string, err error) error {
	return fmt.Errorf("%w: %s: %v", ErrStoreUnavailable, op, err)
}

// NextID draws a new order id: the value of keyspace.OrderSeq() after INCR, zero-padded to 10
// digits so that ids of one millisecond sort in creation order in the user's list too.
func (s *Store) NextID(ctx context.Context) (string, error) {
	n, err := s.c.Do(ctx, s.c.B().Incr().Key(keyspace.OrderSeq()).Build()).AsInt64()
	if err != nil {
		return "", unavailable("draw order id", err)
	}
	return fmt.Sprintf("%010d", n), nil
}

// Reservation is the quantity of one product to take from stock.
type Reservation struct {
	ProductID string
	Name      string // for error messages only
	Quantity  int
}

// Reserve takes every reservation from stock, or none: one Lua call per product (products live
// in different cluster slots, so one script cannot cover them all), each decrementing only when
// enough is left. When one fails, the ones already taken are given back before Reserve returns.
// Stock is never oversold: a unit is only ever sold after the script took it.
//
// It returns an *OutOfStockError (errors.Is ErrOutOfStock) or a *ProductUnavailableError
// (errors.Is ErrProductUnavailable) naming the product, or an ErrStoreUnavailable; joined with
// an ErrReleaseFailed when giving back failed too.
//
// A store failure that leaves a product's outcome unknown (a timeout after sending) is not
// given back, since giving back units that were never taken would oversell; such a failure can
// under-sell a few units, never oversell. The same holds when the process dies between
// reserving and Place: the reserved units stay out of stock (no reservation log recovers them).
func (s *Store) Reserve(ctx context.Context, rs []Reservation) error {
	for i, r := range rs {
		left, err := s.reserve.Exec(ctx, s.c, []string{keyspace.ProductStock(r.ProductID), keyspace.Product(r.ProductID)},
			[]string{strconv.Itoa(r.Quantity)}).AsInt64()
		if err == nil && left >= 0 {
			continue
		}
		var failed error
		switch {
		case err != nil:
			failed = unavailable("reserve stock of product "+r.ProductID, err)
		case left == -1:
			failed = &OutOfStockError{ProductID: r.ProductID, Name: r.Name, Requested: r.Quantity}
		default:
			failed = &ProductUnavailableError{ProductID: r.ProductID}
		}
		return errors.Join(failed, s.Release(ctx, rs[:i]))
	}
	return nil
}

// Release gives reserved units back. It runs even when ctx is already done (a checkout that ran
// out of time still compensates), bounded by a few seconds of its own. Its error wraps
// ErrReleaseFailed: units it could not give back stay out of stock (under-sold).
func (s *Store) Release(ctx context.Context, rs []Reservation) error {
	if len(rs) == 0 {
		return nil
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
	defer cancel()
	var errs []error
	for _, r := range rs {
		err := s.release.Exec(rctx, s.c, []string{keyspace.ProductStock(r.ProductID), keyspace.Product(r.ProductID)},
			[]string{strconv.Itoa(r.Quantity)}).Error()
		if err != nil {
			errs = append(errs, fmt.Errorf("%w: %d of product %s: %v", ErrReleaseFailed, r.Quantity, r.ProductID, err))
		}
	}
	return errors.Join(errs...)
}

// Idempotency records. A pending record is "P:<fingerprint>:<attempt>"; a final one is
// "D:<fingerprint>:<status>:<body>". The fingerprint is a hex hash of the request body and the
// attempt a random hex id of the checkout holding the key, so only that checkout can end it.
const (
	pendingPrefix = "P:"
	donePrefix    = "D:"
)

// ClaimState is the outcome of Claim.
type ClaimState int

// The outcomes of Claim.
const (
	// Acquired: this request holds the key and must end it with Place or Finish.
	Acquired ClaimState = iota
	// Replay: the key has a final answer for the same body; answer it again.
	Replay
	// InProgress: a checkout with this key and body is still running.
	InProgress
	// Mismatch: the key was used with another body.
	Mismatch
)

// Claim is the result of Store.Claim.
type Claim struct {
	State ClaimState
	// Marker is the pending record this request set (Acquired only); pass it to Place or Finish.
	Marker string
	// Status and Body are the final answer (Replay only). Body is owned by the caller.
	Status int
	Body   []byte
}

// Claim takes the idempotency key of a user's checkout for a request with the given body
// fingerprint (a hex string), or reports what holds it. The pending marker lives pendingTTL:
// a checkout that dies frees its key after that long.
func (s *Store) Claim(ctx context.Context, user, key, fingerprint string, pendingTTL time.Duration) (Claim, error) {
	k := keyspace.Idempotency(user, "checkout", key)
	var rnd [12]byte
	_, _ = rand.Read(rnd[:])
	marker := pendingPrefix + fingerprint + ":" + hex.EncodeToString(rnd[:])
	for range 3 { // the record may expire between SET NX and GET: try again
		err := s.c.Do(ctx, s.c.B().Set().Key(k).Value(marker).Nx().Px(pendingTTL).Build()).Error()
		if err == nil {
			return Claim{State: Acquired, Marker: marker}, nil
		}
		if !kv.IsNil(err) {
			return Claim{}, unavailable("claim idempotency key", err)
		}
		cur, err := s.c.Do(ctx, s.c.B().Get().Key(k).Build()).ToString()
		if kv.IsNil(err) {
			continue
		}
		if err != nil {
			return Claim{}, unavailable("read idempotency key", err)
		}
		return parseRecord(cur, fingerprint)
	}
	return Claim{}, unavailable("claim idempotency key", errors.New("the record kept disappearing"))
}

func parseRecord(rec, fingerprint string) (Claim, error) {
	if rest, ok := strings.CutPrefix(rec, pendingPrefix); ok {
		fp, _, _ := strings.Cut(rest, ":")
		if fp != fingerprint {
			return Claim{State: Mismatch}, nil
		}
		return Claim{State: InProgress}, nil
	}
	if rest, ok := strings.CutPrefix(rec, donePrefix); ok {
		fp, rest, ok1 := strings.Cut(rest, ":")
		status, body, ok2 := strings.Cut(rest, ":")
		code, err := strconv.Atoi(status)
		if ok1 && ok2 && err == nil {
			if fp != fingerprint {
				return Claim{State: Mismatch}, nil
			}
			return Claim{State: Replay, Status: code, Body: []byte(body)}, nil
		}
	}
	return Claim{}, fmt.Errorf("order: unreadable idempotency record %.60q", rec)
}

func doneRecord(marker string, status int, body []byte) string {
	fp, _, _ := strings.Cut(strings.TrimPrefix(marker, pendingPrefix), ":")
	return donePrefix + fp + ":" + strconv.Itoa(status) + ":" + string(body)
}

// Place writes the order o (its JSON doc), adds it to the user's list and makes
// (201, doc) the final answer of the checkout holding marker, kept answerTTL, all in one step.
// It returns ErrKeyLost, writing nothing, when the marker is no longer in place (the checkout
// outlived its pending lifetime and another request took the key).
func (s *Store) Place(ctx context.Context, o Order, doc []byte, key, marker string, answerTTL time.Duration) error {
	created, err := time.Parse(time.RFC3339Nano, o.CreatedAt)
	if err != nil {
		return fmt.Errorf("order: created_at %q: %w", o.CreatedAt, err)
	}
	ok, err := s.place.Exec(ctx, s.c,
		[]string{keyspace.Idempotency(o.UserID, "checkout", key), keyspace.Order(o.UserID, o.ID), keyspace.UserOrders(o.UserID)},
		[]string{marker, string(doc), strconv.FormatInt(created.UnixMilli(), 10), o.ID,
			doneRecord(marker, 201, doc), strconv.FormatInt(answerTTL.Milliseconds(), 10)}).AsInt64()
	if err != nil {
		return unavailable("place order", err)
	}
	if ok == 0 {
		return ErrKeyLost
	}
	return nil
}

// Finish ends the checkout holding marker without an order: with status > 0 it records
// (status, body) as the key's final answer for answerTTL; with status 0 it frees the key so the
// same request may be tried again. It returns ErrKeyLost when the marker is no longer in place.
func (s *Store) Finish(ctx context.Context, user, key, marker string, status int, body []byte, answerTTL time.Duration) error {
	rec := ""
	if status > 0 {
		rec = doneRecord(marker, status, body)
	}
	ok, err := s.finish.Exec(ctx, s.c, []string{keyspace.Idempotency(user, "checkout", key)},
		[]string{marker, rec, strconv.FormatInt(answerTTL.Milliseconds(), 10)}).AsInt64()
	if err != nil {
		return unavailable("finish idempotency key", err)
	}
	if ok == 0 {
		return ErrKeyLost
	}
	return nil
}

// Get returns the JSON of the user's order id, or ErrNotFound. Another user's order id is simply
// not found: the key is per user.
func (s *Store) Get(ctx context.Context, user, id string) ([]byte, error) {
	b, err := s.c.Do(ctx, s.c.B().Get().Key(keyspace.Order(user, id)).Build()).AsBytes()
	if kv.IsNil(err) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, unavailable("read order", err)
	}
	return b, nil
}

// Exists reports whether the user has an order with this id.
func (s *Store) Exists(ctx context.Context, user, id string) (bool, error) {
	n, err := s.c.Do(ctx, s.c.B().Exists().Key(keyspace.Order(user, id)).Build()).AsInt64()
	if err != nil {
		return false, unavailable("look for order", err)
	}
	return n == 1, nil
}

// List returns the JSON of up to limit of the user's orders, newest first, skipping the first
// offset, and whether more follow.
func (s *Store) List(ctx context.Context, user string, offset, limit int) (docs [][]byte, more bool, err error) {
	ids, err := s.c.Do(ctx, s.c.B().Zrange().Key(keyspace.UserOrders(user)).
		Min(strconv.Itoa(offset)).Max(strconv.Itoa(offset+limit)).Rev().Build()).AsStrSlice()
	if err != nil {
		return nil, false, unavailable("list orders", err)
	}
	if len(ids) > limit {
		ids, more = ids[:limit], true
	}
	if len(ids) == 0 {
		return nil, more, nil
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = keyspace.Order(user, id)
	}
	// One MGET: every key carries the user's hash tag, so a cluster keeps them in one slot.
	vals, err := s.c.Do(ctx, s.c.B().Mget().Key(keys...).Build()).ToArray()
	if err != nil {
		return nil, false, unavailable("read orders", err)
	}
	for _, v := range vals {
		if b, err := v.AsBytes(); err == nil {
			docs = append(docs, b)
		}
	}
	return docs, more, nil
}

// Ping checks that the store answers.
func (s *Store) Ping(ctx context.Context) error {
	return s.c.Do(ctx, s.c.B().Ping().Build()).Error()
}
