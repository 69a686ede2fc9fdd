package productcache

import (
	"errors"
	"testing"

	"flashedge/shared/product"
)

// FuzzParsePage: any limit and cursor a client sends is refused with ErrBadLimit or
// ErrBadCursor, or yields a limit in range and a valid product id whose own cursor names it.
func FuzzParsePage(f *testing.F) {
	f.Add([]byte("20"), []byte(EncodeCursor("00000042")))
	f.Add([]byte(""), []byte(""))
	f.Add([]byte("0"), []byte("!!"))
	f.Add([]byte("101"), []byte(EncodeCursor("a b")))
	f.Fuzz(func(t *testing.T, limit, cursor []byte) {
		n, after, err := ParsePage(limit, cursor)
		if err != nil {
			if !errors.Is(err, ErrBadLimit) && !errors.Is(err, ErrBadCursor) {
				t.Fatalf("ParsePage(%q, %q): %v", limit, cursor, err)
			}
			return
		}
		if n < 1 || n > MaxLimit {
			t.Fatalf("ParsePage(%q, %q): limit %d", limit, cursor, n)
		}
		if after == "" {
			return
		}
		if !product.ValidID([]byte(after)) {
			t.Fatalf("ParsePage(%q, %q): after %q is not a product id", limit, cursor, after)
		}
		// Cursors are opaque: a non-canonical base64 of an id is accepted ("Z0" and "Zw" both
		// name "g"); the one the server hands out names the same id.
		if _, again, err := ParsePage(nil, []byte(EncodeCursor(after))); err != nil || again != after {
			t.Fatalf("the cursor of %q parses as %q, %v", after, again, err)
		}
	})
}
