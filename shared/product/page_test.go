package product_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"flashedge/shared/product"
)

func cursor(id string) string { return string(product.AppendCursor(nil, id)) }

func TestParsePage(t *testing.T) {
	tests := []struct {
		name, limit, cursor string
		wantErr             error
		wantN               int
	}{
		{"defaults", "", "", nil, product.DefaultPageLimit},
		{"max", "100", "", nil, 100},
		{"zero", "0", "", product.ErrBadLimit, 0},
		{"negative", "-1", "", product.ErrBadLimit, 0},
		{"too big", "101", "", product.ErrBadLimit, 0},
		{"exponent", "1e9", "", product.ErrBadLimit, 0},
		{"not a number", "ten", "", product.ErrBadLimit, 0},
		{"cursor ok", "5", cursor("00000010"), nil, 5},
		{"cursor garbage", "5", "!!!", product.ErrBadCursor, 0},
		{"cursor bad id", "5", cursor("a b"), product.ErrBadCursor, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, _, err := product.ParsePage([]byte(tt.limit), []byte(tt.cursor))
			if !errors.Is(err, tt.wantErr) || (err == nil && n != tt.wantN) {
				t.Fatalf("ParsePage(%q,%q) = %d, %v; want %d, %v", tt.limit, tt.cursor, n, err, tt.wantN, tt.wantErr)
			}
		})
	}
	if !strings.Contains(product.LimitRule, "1 to "+strconv.Itoa(product.MaxPageLimit)) {
		t.Errorf("LimitRule %q does not name MaxPageLimit %d", product.LimitRule, product.MaxPageLimit)
	}
}

// FuzzParsePage: any limit and cursor a client sends is refused with ErrBadLimit or
// ErrBadCursor, or yields a limit in range and a valid product id whose own cursor names it.
func FuzzParsePage(f *testing.F) {
	f.Add([]byte("20"), []byte(cursor("00000042")))
	f.Add([]byte(""), []byte(""))
	f.Add([]byte("0"), []byte("!!"))
	f.Add([]byte("101"), []byte(cursor("a b")))
	f.Fuzz(func(t *testing.T, limit, c []byte) {
		n, after, err := product.ParsePage(limit, c)
		if err != nil {
			if !errors.Is(err, product.ErrBadLimit) && !errors.Is(err, product.ErrBadCursor) {
				t.Fatalf("ParsePage(%q, %q): %v", limit, c, err)
			}
			return
		}
		if n < 1 || n > product.MaxPageLimit {
			t.Fatalf("ParsePage(%q, %q): limit %d", limit, c, n)
		}
		if after == "" {
			return
		}
		if !product.ValidID([]byte(after)) {
			t.Fatalf("ParsePage(%q, %q): after %q is not a product id", limit, c, after)
		}
		// Cursors are opaque: a non-canonical base64 of an id is accepted ("Z0" and "Zw" both
		// name "g"); the one the server hands out names the same id.
		if _, again, err := product.ParsePage(nil, []byte(cursor(after))); err != nil || again != after {
			t.Fatalf("the cursor of %q parses as %q, %v", after, again, err)
		}
	})
}
