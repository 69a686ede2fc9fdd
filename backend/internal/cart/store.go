// Package cart is the cart service: per-user carts in the store (Store), priced from the
// catalog's product documents (Prices: StorePrices reads them from the store, CatalogPrices asks
// the catalog service), and the HTTP routes that read and change them (Service).
//
// The user id comes only from the header httpapi.HeaderUserID, which the edge sets after
// verifying the session; there is no route that names a user, so a request can only ever touch
// its own user's cart.
package cart

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"

	"flashedge/shared/keyspace"
	"flashedge/shared/product"
)

// Limits of a cart.
const (
	// MaxQuantity is the most units of one product a cart line may hold.
	MaxQuantity = 99
	// MaxLines is the most distinct products one cart may hold; it bounds the catalog calls
	// that rendering a cart makes.
	MaxLines = 50
	// TTL is how long a cart is kept after its last added or changed line: anyone can log in
	// under any name and fill a cart, so abandoned carts must not stay in the store for ever.
	TTL = 30 * 24 * time.Hour
)

// Domain errors. The HTTP layer maps them to status codes.
var (
	// ErrProductNotFound: the catalog does not know the product.
	ErrProductNotFound = errors.New("cart: product not found")
	// ErrCartFull: the cart already holds MaxLines other products.
	ErrCartFull = errors.New("cart: cart is full")
	// ErrStoreUnavailable wraps failures to reach the store.
	ErrStoreUnavailable = errors.New("cart: store unavailable")
	// ErrCatalogUnavailable wraps failures to get an answer from the catalog service.
	ErrCatalogUnavailable = errors.New("cart: catalog unavailable")
)

// Line is one product in a cart.
type Line struct {
	ProductID string `json:"product_id"`
	Quantity  int    `json:"quantity"`
}

// Store keeps carts in the store: keyspace.Cart(user) is a hash product id -> quantity, tagged by
// user so carts spread over a cluster. It is safe for concurrent use and does not own the client.
type Store struct {
	c        rueidis.Client
	set      *rueidis.Lua
	subtract *rueidis.Lua
}

//go:embed set.lua
var setScript string

//go:embed subtract.lua
var subtractScript string

// NewStore returns a Store working through c.
func NewStore(c rueidis.Client) *Store {
	return &Store{c: c, set: rueidis.NewLuaScript(setScript), subtract: rueidis.NewLuaScript(subtractScript)}
}

func unavailable(op string, err error) error {
	return fmt.Errorf("%w: %s: %v", ErrStoreUnavailable, op, err)
}

// Lines appends the user's cart to dst (which may be nil) in product id order; an empty cart
// appends nothing. Fields that are not product ids with positive whole quantities (never
// written by this package) are skipped.
func (s *Store) Lines(ctx context.Context, user string, dst []Line) ([]Line, error) {
	res := s.c.Do(ctx, s.c.B().Hgetall().Key(keyspace.Cart(user)).Build())
	if err := res.Error(); err != nil {
		return nil, unavailable("read cart", err)
	}
	if m, err := res.ToMessage(); err == nil && m.IsMap() { // RESP3, what rueidis speaks
		pairs, err := m.AsStrMap()
		if err != nil {
			return nil, unavailable("read cart", err)
		}
		n := len(dst)
		for id, q := range pairs {
			dst = appendLine(dst, id, q)
		}
		return sortLines(dst, n), nil
	}
	flat, err := res.ToArray() // RESP2: field, value pairs
	if err != nil {
		return nil, unavailable("read cart", err)
	}
	return appendLines(dst, flat)
}

// appendLines appends the lines of a cart hash's field, value pairs to dst in product id order.
// The ids share the messages' memory: no allocation.
func appendLines(dst []Line, flat []rueidis.RedisMessage) ([]Line, error) {
	n := len(dst)
	for i := 0; i+1 < len(flat); i += 2 {
		id, err := flat[i].ToString()
		if err != nil {
			return nil, unavailable("read cart", err)
		}
		q, err := flat[i+1].ToString()
		if err != nil {
			return nil, unavailable("read cart", err)
		}
		dst = appendLine(dst, id, q)
	}
	return sortLines(dst, n), nil
}

// appendLine appends the line of one field and value of a cart hash, skipping fields that are
// not product ids and quantities that are not positive whole numbers (never written by this
// package).
func appendLine(dst []Line, id, q string) []Line {
	v, err := strconv.Atoi(q)
	if err != nil || v <= 0 || !product.ValidID([]byte(id)) {
		return dst
	}
	return append(dst, Line{ProductID: id, Quantity: v})
}

// sortLines sorts lines[from:] by product id and returns lines.
func sortLines(lines []Line, from int) []Line {
	slices.SortFunc(lines[from:], func(a, b Line) int { return strings.Compare(a.ProductID, b.ProductID) })
	return lines
}

// maxLinesArg and ttlArg are MaxLines and TTL as set.lua's arguments.
var (
	maxLinesArg = strconv.Itoa(MaxLines)
	ttlArg      = strconv.FormatInt(TTL.Milliseconds(), 10)
)

// Set sets the quantity (1..MaxQuantity, checked by the caller) of a product in the user's cart,
// keeps the cart for TTL from now, and appends the cart as it is then (in product id order) to
// dst, in one round trip. It returns ErrCartFull when the product is new and the cart holds
// MaxLines products already.
func (s *Store) Set(ctx context.Context, user, productID string, quantity int, dst []Line) ([]Line, error) {
	res, err := s.set.Exec(ctx, s.c, []string{keyspace.Cart(user)},
		[]string{productID, strconv.Itoa(quantity), maxLinesArg, ttlArg}).ToArray()
	if err != nil {
		return nil, unavailable("set cart line", err)
	}
	if len(res) == 0 {
		return nil, ErrCartFull
	}
	return appendLines(dst, res)
}

// Remove takes a product out of the user's cart; removing an absent product is not an error.
func (s *Store) Remove(ctx context.Context, user, productID string) error {
	if err := s.c.Do(ctx, s.c.B().Hdel().Key(keyspace.Cart(user)).Field(productID).Build()).Error(); err != nil {
		return unavailable("remove cart line", err)
	}
	return nil
}

// Clear empties the user's cart.
func (s *Store) Clear(ctx context.Context, user string) error {
	if err := s.c.Do(ctx, s.c.B().Del().Key(keyspace.Cart(user)).Build()).Error(); err != nil {
		return unavailable("clear cart", err)
	}
	return nil
}

// SubtractOnceTTL is how long Subtract remembers an order id, so a retried call within it
// changes nothing.
const SubtractOnceTTL = 24 * time.Hour

// Subtract takes ordered quantities out of the user's cart in one atomic step: each line loses
// the quantity given and is removed at zero. What the shopper added while a checkout ran stays.
// With a non-empty orderID it happens at most once per order (within SubtractOnceTTL), so the
// caller may retry it.
func (s *Store) Subtract(ctx context.Context, user, orderID string, ordered []Line) error {
	if len(ordered) == 0 {
		return nil
	}
	keys := []string{keyspace.Cart(user)}
	if orderID != "" {
		keys = append(keys, keyspace.Idempotency(user, "cart-subtract", orderID))
	}
	args := make([]string, 0, 1+2*len(ordered))
	args = append(args, strconv.FormatInt(SubtractOnceTTL.Milliseconds(), 10))
	for _, l := range ordered {
		args = append(args, l.ProductID, strconv.Itoa(l.Quantity))
	}
	if err := s.subtract.Exec(ctx, s.c, keys, args).Error(); err != nil {
		return unavailable("subtract ordered lines", err)
	}
	return nil
}

// Ping checks that the store answers.
func (s *Store) Ping(ctx context.Context) error {
	return s.c.Do(ctx, s.c.B().Ping().Build()).Error()
}
