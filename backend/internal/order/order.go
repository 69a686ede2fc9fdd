// Package order is the order service: checkout from the cart with an Idempotency-Key, atomic
// inventory reservation in the store, order history and detail (Service), over a store adapter
// (Store). It talks to the cart and catalog services over HTTP only.
//
// A checkout, in order:
//
//  1. claims the Idempotency-Key with a pending marker (SET NX with a lifetime): a repeat of a
//     finished request gets the first answer again, a repeat while it runs gets 409, the same key
//     with another body 422;
//  2. reads the cart from the cart service (GET /internal/v1/cart) and every product's name and
//     price from the catalog service (GET /api/v1/products/{id}); the client sends no prices;
//  3. reserves the stock of every product (Store.Reserve: one Lua call per product, given back
//     on failure; never below zero);
//  4. writes the order, the user's order list entry and the final answer of the key in one Lua
//     call in the user's slot (Store.Place);
//  5. takes the ordered lines out of the cart through the cart service, at most once per order.
//
// Failures of a dependency free the key (the same request may be sent again); business answers
// (201, 409 out of stock, 422 empty cart, ...) are kept as the key's final answer.
package order

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"

	"flashedge/shared/httpapi"
)

// Order is an order as stored and as answered, the one order document: the flash-sale checkout
// (flashsale) writes it too, with status "paid" and FlashSaleID set. Prices are in whole
// currency units.
type Order struct {
	ID          string `json:"id"`
	UserID      string `json:"user_id"`
	Items       []Item `json:"items"`
	Total       int64  `json:"total"`
	Status      string `json:"status"`
	FlashSaleID string `json:"flash_sale_id,omitempty"`
	// CreatedAt is in httpapi.TimeLayout.
	CreatedAt string `json:"created_at"`
}

// Item is one line of an Order, with the catalog's name and unit price at checkout.
type Item struct {
	ProductID string `json:"product_id"`
	Name      string `json:"name"`
	Quantity  int    `json:"quantity"`
	Price     int64  `json:"price"`
}

// StatusPlaced is the status of an order written by a checkout.
const StatusPlaced = "placed"

// MaxQuantity is the most units of one product a checkout accepts (the cart's own limit).
const MaxQuantity = 99

// Domain errors. The HTTP layer maps them to status codes.
var (
	// ErrNotFound: the user has no order with this id.
	ErrNotFound = errors.New("order: not found")
	// ErrEmptyCart: there is nothing to check out.
	ErrEmptyCart = errors.New("order: the cart is empty")
	// ErrOutOfStock: a product has fewer units left than the cart holds (see OutOfStockError).
	ErrOutOfStock = errors.New("order: out of stock")
	// ErrProductUnavailable: a product in the cart is no longer sold (see ProductUnavailableError).
	ErrProductUnavailable = errors.New("order: product unavailable")
	// ErrTotalChanged: the total differs from the expected_total the client sent.
	ErrTotalChanged = errors.New("order: total changed")
	// ErrKeyLost: the checkout outlived its idempotency key's pending lifetime and another request
	// took the key; nothing was written.
	ErrKeyLost = errors.New("order: idempotency key lost")
	// ErrStoreUnavailable, ErrCartUnavailable and ErrCatalogUnavailable wrap failures to get an
	// answer from the store or the other services.
	ErrStoreUnavailable   = errors.New("order: store unavailable")
	ErrCartUnavailable    = errors.New("order: cart service unavailable")
	ErrCatalogUnavailable = errors.New("order: catalog service unavailable")
	// ErrReleaseFailed: reserved units could not be given back and stay out of stock.
	ErrReleaseFailed = errors.New("order: giving back reserved stock failed")
)

// OutOfStockError names the product that is short.
type OutOfStockError struct {
	ProductID string
	Name      string
	Requested int
}

func (e *OutOfStockError) Error() string {
	return fmt.Sprintf("%q (product %s) does not have %d units left in stock", e.Name, e.ProductID, e.Requested)
}

// Is makes errors.Is(err, ErrOutOfStock) true.
func (e *OutOfStockError) Is(target error) bool { return target == ErrOutOfStock }

// ProductUnavailableError names the product that is no longer sold.
type ProductUnavailableError struct{ ProductID string }

func (e *ProductUnavailableError) Error() string {
	return fmt.Sprintf("product %s in the cart is no longer sold", e.ProductID)
}

// Is makes errors.Is(err, ErrProductUnavailable) true.
func (e *ProductUnavailableError) Is(target error) bool { return target == ErrProductUnavailable }

// TotalChangedError says what the total is now.
type TotalChangedError struct{ Expected, Actual int64 }

func (e *TotalChangedError) Error() string {
	return fmt.Sprintf("the cart's total is %d now, not the expected %d", e.Actual, e.Expected)
}

// Is makes errors.Is(err, ErrTotalChanged) true.
func (e *TotalChangedError) Is(target error) bool { return target == ErrTotalChanged }

// Options configure New. Zero values take the defaults named on each field.
type Options struct {
	// CheckoutTimeout bounds one checkout, calls and store steps together. Zero means 10s.
	CheckoutTimeout time.Duration
	// Timeout bounds the store calls of the read routes. Zero means 3s.
	Timeout time.Duration
	// PendingTTL is how long a running checkout holds its idempotency key; the key of a checkout
	// whose process died is free again after it. It must exceed CheckoutTimeout. Zero means 30s.
	PendingTTL time.Duration
	// AnswerTTL is how long a checkout's final answer is kept for repeats. Zero means 24h.
	AnswerTTL time.Duration
	// Log receives failures that end a request with 5xx and stock that could not be given back.
	// Nil discards.
	Log *slog.Logger
	// Now is the clock of created_at. Nil means time.Now.
	Now func() time.Time
}

// Service answers the order routes. It is safe for concurrent use.
type Service struct {
	store   *Store
	cart    cartClient
	catalog catalogClient
	o       Options
}

// New returns the order service over store, calling the cart and catalog services through the
// given callers (their replica pools).
func New(store *Store, cart, catalog Caller, o Options) (*Service, error) {
	if o.CheckoutTimeout == 0 {
		o.CheckoutTimeout = 10 * time.Second
	}
	if o.Timeout == 0 {
		o.Timeout = 3 * time.Second
	}
	if o.PendingTTL == 0 {
		o.PendingTTL = 30 * time.Second
	}
	if o.AnswerTTL == 0 {
		o.AnswerTTL = 24 * time.Hour
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.CheckoutTimeout < 0 || o.Timeout < 0 || o.AnswerTTL < 0 || o.PendingTTL <= o.CheckoutTimeout {
		return nil, fmt.Errorf("order: PendingTTL (%s) must be longer than CheckoutTimeout (%s), and no duration negative", o.PendingTTL, o.CheckoutTimeout)
	}
	return &Service{store: store, cart: cartClient{cart}, catalog: catalogClient{catalog}, o: o}, nil
}

// checkout runs steps 2 to 5 of the package doc for a request holding the key through marker,
// and returns the order and its JSON (the answer body).
func (s *Service) checkout(ctx context.Context, requestID []byte, user, key, marker string, expectedTotal *int64) (Order, []byte, error) {
	lines, err := s.cart.lines(ctx, requestID, user)
	if err != nil {
		return Order{}, nil, err
	}
	if len(lines) == 0 {
		return Order{}, nil, ErrEmptyCart
	}
	o := Order{UserID: user, Items: make([]Item, 0, len(lines)), Status: StatusPlaced}
	rs := make([]Reservation, 0, len(lines))
	ids := make([]string, 0, len(lines))
	for _, l := range lines {
		if !slices.Contains(ids, l.ProductID) {
			ids = append(ids, l.ProductID)
		}
	}
	// One catalog call prices the whole cart.
	products, err := s.catalog.products(ctx, requestID, ids)
	if err != nil {
		return Order{}, nil, err
	}
	for _, l := range lines {
		p := products[l.ProductID]
		o.Items = append(o.Items, Item{ProductID: p.ID, Name: p.Name, Quantity: l.Quantity, Price: p.Price})
		o.Total += p.Price * int64(l.Quantity)
		rs = append(rs, Reservation{ProductID: p.ID, Name: p.Name, Quantity: l.Quantity})
	}
	if expectedTotal != nil && *expectedTotal != o.Total {
		return Order{}, nil, &TotalChangedError{Expected: *expectedTotal, Actual: o.Total}
	}
	if o.ID, err = s.store.NextID(ctx); err != nil {
		return Order{}, nil, err
	}
	if err := s.store.Reserve(ctx, rs); err != nil {
		return Order{}, nil, err
	}
	o.CreatedAt = httpapi.FormatTime(s.o.Now())
	doc, err := json.Marshal(o)
	if err != nil {
		return Order{}, nil, errors.Join(err, s.store.Release(ctx, rs))
	}
	if err := s.store.Place(ctx, o, doc, key, marker, s.o.AnswerTTL); err != nil {
		if !errors.Is(err, ErrStoreUnavailable) {
			return Order{}, nil, errors.Join(err, s.store.Release(ctx, rs))
		}
		// A store failure may come after the script ran (a timeout): look before giving the
		// stock back, or a placed order would lose its units to someone else (an oversell).
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
		placed, lerr := s.store.Exists(lctx, user, o.ID)
		cancel()
		switch {
		case lerr != nil:
			return Order{}, nil, fmt.Errorf("%w; whether order %s was placed is unknown, so its stock stays reserved: %v", err, o.ID, lerr)
		case !placed:
			return Order{}, nil, errors.Join(err, s.store.Release(ctx, rs))
		}
	}

	// The order stands; emptying the cart is cleanup that must not undo it. It gets its own
	// bounded context so a checkout that used up its time still tidies the cart.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
	defer cancel()
	if err := s.cart.subtract(cctx, requestID, user, o.ID, lines); err != nil {
		s.o.Log.Warn("order placed but its lines stay in the cart", "err", err, "order_id", o.ID,
			"user_id", user, "request_id", string(requestID))
	}
	return o, doc, nil
}
