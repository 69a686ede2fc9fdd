package product

import (
	"errors"
	"strconv"
)

// Catalog pages (GET /api/v1/products?limit=&cursor=), answered by the edge from its cache and by
// the catalog service: one rule for what both accept.
const (
	// DefaultPageLimit is the page size when limit is absent.
	DefaultPageLimit = 20
	// MaxPageLimit is the largest limit accepted.
	MaxPageLimit = 100
)

// Errors of ParsePage, and the messages the contract's 400 answers give for them.
var (
	ErrBadLimit  = errors.New("product: bad page limit")
	ErrBadCursor = errors.New("product: bad page cursor")
)

const (
	// LimitRule is the message of a 400 invalid_limit.
	LimitRule = "limit must be a whole number from 1 to 100"
	// CursorRule is the message of a 400 invalid_cursor.
	CursorRule = "cursor is not one this server handed out; start again without it"
)

// ParsePage validates the limit and cursor query values of a catalog page. An empty limit means
// DefaultPageLimit; an empty cursor means the first page, else it names the id the page starts
// after (DecodeCursor).
func ParsePage(limit, cursor []byte) (n int, after string, err error) {
	n = DefaultPageLimit
	if len(limit) > 0 {
		v, err := strconv.Atoi(string(limit))
		if err != nil || v < 1 || v > MaxPageLimit {
			return 0, "", ErrBadLimit
		}
		n = v
	}
	after, ok := DecodeCursor(cursor)
	if !ok {
		return 0, "", ErrBadCursor
	}
	return n, after, nil
}
