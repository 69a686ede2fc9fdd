package product_test

import (
	"encoding/json"
	"errors"
	"testing"

	"flashedge/shared/product"
)

func ptr[T any](v T) *T { return &v }

func TestApply(t *testing.T) {
	tests := []struct {
		name    string
		in      product.Input
		create  bool
		wantErr bool
	}{
		{"create ok", product.Input{Name: ptr("Phở"), Price: ptr[int64](45000), Stock: ptr[int64](3)}, true, false},
		{"create without price", product.Input{Name: ptr("x"), Stock: ptr[int64](1)}, true, true},
		{"create without stock", product.Input{Name: ptr("x"), Price: ptr[int64](1)}, true, true},
		{"blank name", product.Input{Name: ptr("  ")}, false, true},
		{"negative price", product.Input{Price: ptr[int64](-1)}, false, true},
		{"zero price", product.Input{Price: ptr[int64](0)}, false, true},
		{"negative stock", product.Input{Stock: ptr[int64](-5)}, false, true},
		{"lower-case currency", product.Input{Currency: ptr("vnd")}, false, true},
		{"javascript image", product.Input{Image: ptr("javascript:alert(1)")}, false, true},
		{"update price only", product.Input{Price: ptr[int64](10)}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d product.Doc
			_, err := tt.in.Apply(&d, tt.create)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Apply(%+v) err = %v, want error %v", tt.in, err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, product.ErrInvalid) {
				t.Fatalf("err %v is not ErrInvalid", err)
			}
		})
	}
}

func TestAppendPublic(t *testing.T) {
	doc := product.Marshal(product.Doc{ID: "1", Name: "Áo dài", Price: 500000, Currency: "VND"})
	for _, tt := range []struct {
		stock int64
		want  string
	}{{0, "out_of_stock"}, {5, "low"}, {11, "in_stock"}} {
		out, err := product.AppendPublic(nil, doc, tt.stock)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(out, &m); err != nil {
			t.Fatalf("rendering %s is not JSON: %v", out, err)
		}
		if m["stock_state"] != tt.want || m["name"] != "Áo dài" {
			t.Errorf("stock %d: got %s, want stock_state %s", tt.stock, out, tt.want)
		}
	}
	if _, err := product.AppendPublic(nil, []byte("nope"), 1); err == nil {
		t.Error("AppendPublic accepted a non-object")
	}
}

func TestAppendPublicAllocs(t *testing.T) {
	doc := product.Marshal(product.Doc{ID: "1", Name: "x", Price: 1, Currency: "VND"})
	buf := make([]byte, 0, 512)
	if n := testing.AllocsPerRun(100, func() { buf, _ = product.AppendPublic(buf[:0], doc, 3) }); n != 0 {
		t.Errorf("AppendPublic allocates %v times per call, want 0", n)
	}
}

// A cursor has one spelling: what AppendCursor makes decodes back, and the same bytes with a line
// break put in (Go's decoder would skip it) or with non-zero trailing bits are refused.
func TestCursorRoundTrip(t *testing.T) {
	for _, id := range []string{"00000001", "99999999", "a_B-9"} {
		c := product.AppendCursor(nil, id)
		got, ok := product.DecodeCursor(c)
		if !ok || got != id {
			t.Errorf("DecodeCursor(AppendCursor(%q)=%q) = %q, %v", id, c, got, ok)
		}
		for _, bad := range []string{string(c[:2]) + "\n" + string(c[2:]), string(c) + "\r", string(c) + "="} {
			if got, ok := product.DecodeCursor([]byte(bad)); ok {
				t.Errorf("DecodeCursor(%q) = %q, accepted", bad, got)
			}
		}
	}
	if got, ok := product.DecodeCursor(nil); !ok || got != "" {
		t.Errorf(`DecodeCursor("") = %q, %v, want the start`, got, ok)
	}
	// "MDB" ends in bits AppendCursor never sets ("MDA" is "00").
	if got, ok := product.DecodeCursor([]byte("MDB")); ok {
		t.Errorf(`DecodeCursor("MDB") = %q, accepted`, got)
	}
}
