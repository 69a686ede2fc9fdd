// Package product is the product document shared by the catalog service, which writes it to the
// store, and the edge, which renders it from the store to shoppers.
//
// The store holds the document without its stock (keyspace.Product) and the stock as an integer
// beside it (keyspace.ProductStock), so checkouts change stock without rewriting the document.
// The public rendering adds "stock_state" derived from the stock.
package product

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"flashedge/shared/httpapi"
)

// Doc is a product as stored (without stock) and as rendered (plus stock_state).
// Price is in whole units of Currency (VND has no minor unit).
type Doc struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description"`
	Price       int64  `json:"price"`
	Currency    string `json:"currency"`
	Image       string `json:"image"`
}

// Input is the body of an admin product write. Pointer fields distinguish "absent" from zero so
// an update can change some fields only; a create requires name, price and stock.
type Input struct {
	Name        *string `json:"name"`
	Description *string `json:"description"`
	Price       *int64  `json:"price"`
	Currency    *string `json:"currency"`
	Image       *string `json:"image"`
	Stock       *int64  `json:"stock"`
}

// Limits of product fields.
const (
	MaxNameLen        = 200
	MaxDescriptionLen = 4000
	MaxImageLen       = 512
	MaxPrice          = 1_000_000_000_000 // one trillion VND
	MaxStock          = 1_000_000_000
	LowStock          = 10 // at or below this (and above zero) the state is "low"
	DefaultCurrency   = "VND"
)

// ErrInvalid wraps every validation failure; its message says which field and why.
var ErrInvalid = errors.New("invalid product")

func invalid(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, a...))
}

// Apply validates in and applies it to d (a zero Doc for a create). It returns the new stock
// when in sets one. create says whether name, price and stock are required.
func (in Input) Apply(d *Doc, create bool) (stock *int64, err error) {
	if create {
		switch {
		case in.Name == nil:
			return nil, invalid("name is required")
		case in.Price == nil:
			return nil, invalid("price is required")
		case in.Stock == nil:
			return nil, invalid("stock is required")
		}
	}
	if in.Name != nil {
		n := strings.TrimSpace(*in.Name)
		if n == "" || utf8.RuneCountInString(n) > MaxNameLen || !utf8.ValidString(n) {
			return nil, invalid("name must be 1 to %d characters", MaxNameLen)
		}
		d.Name = n
	}
	if in.Description != nil {
		if utf8.RuneCountInString(*in.Description) > MaxDescriptionLen || !utf8.ValidString(*in.Description) {
			return nil, invalid("description must be at most %d characters", MaxDescriptionLen)
		}
		d.Description = *in.Description
	}
	if in.Price != nil {
		if *in.Price <= 0 || *in.Price > MaxPrice {
			return nil, invalid("price must be a whole number between 1 and %d", int64(MaxPrice))
		}
		d.Price = *in.Price
	}
	if in.Currency != nil {
		c := *in.Currency
		if len(c) != 3 || strings.ToUpper(c) != c || strings.IndexFunc(c, func(r rune) bool { return r < 'A' || r > 'Z' }) >= 0 {
			return nil, invalid("currency must be a 3-letter ISO 4217 code such as VND")
		}
		d.Currency = c
	}
	if d.Currency == "" {
		d.Currency = DefaultCurrency
	}
	if in.Image != nil {
		img := *in.Image
		if len(img) > MaxImageLen || (img != "" && !strings.HasPrefix(img, "https://") && !strings.HasPrefix(img, "http://") && !strings.HasPrefix(img, "/")) {
			return nil, invalid("image must be an http(s) URL or a path starting with / of at most %d bytes", MaxImageLen)
		}
		d.Image = img
	}
	if in.Stock != nil {
		if *in.Stock < 0 || *in.Stock > MaxStock {
			return nil, invalid("stock must be between 0 and %d", MaxStock)
		}
		s := *in.Stock
		stock = &s
	}
	return stock, nil
}

// ValidID reports whether id can name a product: 1 to 64 of A-Z a-z 0-9 _ -.
func ValidID(id []byte) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// AppendCursor appends the opaque catalog-page cursor for a page that starts after id: base64url
// without padding of the id, or nothing when id is "" (no further page). The catalog service and
// the edge's cached pages both spell cursors this way.
func AppendCursor(dst []byte, id string) []byte {
	return base64.RawURLEncoding.AppendEncode(dst, []byte(id))
}

// DecodeCursor returns the id a cursor names; an empty cursor is the start (""), and ok is false
// for anything AppendCursor could not have made (httpapi.Base64URL: a line break the decoder
// would skip included).
func DecodeCursor(c []byte) (after string, ok bool) {
	if len(c) == 0 {
		return "", true
	}
	if !httpapi.Base64URL(c) {
		return "", false
	}
	id, err := base64.RawURLEncoding.Strict().AppendDecode(nil, c)
	if err != nil || !ValidID(id) {
		return "", false
	}
	return string(id), true
}

// StockState names a stock level for shoppers: "out_of_stock", "low" or "in_stock".
func StockState(stock int64) string {
	switch {
	case stock <= 0:
		return "out_of_stock"
	case stock <= LowStock:
		return "low"
	default:
		return "in_stock"
	}
}

// Marshal encodes d as stored.
func Marshal(d Doc) []byte {
	b, _ := json.Marshal(d) // a Doc of strings and ints always encodes
	return b
}

// AppendPublic appends the public rendering of a stored document (a JSON object) with its
// stock_state to dst, without decoding the document. It returns an error when doc is not a JSON
// object.
func AppendPublic(dst, doc []byte, stock int64) ([]byte, error) {
	if len(doc) < 2 || doc[0] != '{' || doc[len(doc)-1] != '}' {
		return dst, errors.New("product: stored document is not a JSON object")
	}
	dst = append(dst, doc[:len(doc)-1]...)
	if len(doc) > 2 {
		dst = append(dst, ',')
	}
	dst = append(dst, `"stock_state":"`...)
	dst = append(dst, StockState(stock)...)
	return append(dst, `"}`...), nil
}

// ParseStock parses a stored stock value; a missing value is 0.
func ParseStock(s string) int64 {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0
	}
	return n
}
