package cart

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/fasthttp/router"
	"github.com/valyala/fasthttp"

	"flashedge/backend/internal/catalog"
	"flashedge/shared/httpapi"
	"flashedge/shared/kv/kvtest"
	"flashedge/shared/product"
)

// TestAppendViewMatchesWriteJSON: the hand-rolled cart body is byte for byte what
// httpapi.WriteJSON writes for the same View, names with every escaping rule included, with the
// name encoded per document (StorePrices) and on the fly (CatalogPrices).
func TestAppendViewMatchesWriteJSON(t *testing.T) {
	names := []string{"Phone", `Quote " and \ back`, "Phở bò <b>&amp;</b>", "tab\tnew\nline\x01", "bad \xff utf-8", "sep \u2028 \u2029", ""}
	var lines []Line
	var prods []Product
	for i, n := range names {
		id := string(rune('a'+i)) + "-1"
		lines = append(lines, Line{ProductID: id, Quantity: i + 1})
		prods = append(prods, Product{ID: id, Name: n, Price: int64(1000*i + 7)})
	}
	lines = append(lines, Line{ProductID: "gone", Quantity: 3})
	prods = append(prods, Product{}) // withdrawn: left out
	tests := []struct {
		name  string
		lines []Line
		prods []Product
	}{
		{"empty", nil, nil},
		{"one", lines[:1], prods[:1]},
		{"withdrawn only", lines[len(lines)-1:], prods[len(prods)-1:]},
		{"all", lines, prods},
	}
	for _, tt := range tests {
		for _, encoded := range []bool{false, true} {
			prods := append([]Product(nil), tt.prods...)
			v := View{Items: []ViewItem{}}
			for i, l := range tt.lines {
				if encoded {
					prods[i].nameJSON = appendJSONString(nil, prods[i].Name)
				}
				if p := prods[i]; p.ID != "" {
					v.Items = append(v.Items, ViewItem{ProductID: l.ProductID, Name: p.Name, Quantity: l.Quantity, Price: p.Price})
					v.Total += p.Price * int64(l.Quantity)
				}
			}
			var ctx fasthttp.RequestCtx
			httpapi.WriteJSON(&ctx, 200, v)
			if got := appendView(nil, tt.lines, prods); string(got) != string(ctx.Response.Body()) {
				t.Errorf("%s (names encoded %v): appendView wrote\n%s\nWriteJSON writes\n%s", tt.name, encoded, got, ctx.Response.Body())
			}
		}
	}
}

// TestQuickQuantity: the decoder-free reading of a PUT body takes only bodies DecodeJSON reads
// the same way.
func TestQuickQuantity(t *testing.T) {
	tests := []struct {
		body string
		want int
		ok   bool
	}{
		{`{"quantity":0}`, 0, true},
		{`{"quantity":7}`, 7, true},
		{`{"quantity":99}`, 99, true},
		{`{"quantity":100}`, 100, true},
		{`{"quantity":999}`, 999, true},
		{`{"quantity":1000}`, 0, false},
		{`{"quantity":07}`, 0, false},
		{`{"quantity":-1}`, 0, false},
		{`{"quantity":1.5}`, 0, false},
		{`{"quantity":1e2}`, 0, false},
		{`{"quantity":}`, 0, false},
		{`{"quantity": 2}`, 0, false},
		{`{"quantity":2} `, 0, false},
		{`{"quantity":"2"}`, 0, false},
		{`{"Quantity":2}`, 0, false},
		{``, 0, false},
	}
	for _, tt := range tests {
		got, ok := quickQuantity([]byte(tt.body))
		if got != tt.want || ok != tt.ok {
			t.Errorf("quickQuantity(%q) = %d, %v; want %d, %v", tt.body, got, ok, tt.want, tt.ok)
		}
		if ok {
			var in putRequest
			if err := json.Unmarshal([]byte(tt.body), &in); err != nil || in.Quantity == nil || *in.Quantity != got {
				t.Errorf("quickQuantity(%q) = %d but encoding/json reads %v, %v", tt.body, got, in.Quantity, err)
			}
		}
	}
}

// addEnv is the cart service as the cart binary wires it (StorePrices over a real store, its
// invalidation pushes wired) with one product, called in memory.
func addEnv(tb testing.TB) (h fasthttp.RequestHandler, prices *StorePrices, id string) {
	tb.Helper()
	srv := kvtest.Start(tb)
	name, price, stock := "Áo dài <lụa>", int64(450000), int64(10)
	p, err := catalog.NewStore(srv.Client(tb)).Create(context.Background(), product.Input{Name: &name, Price: &price, Stock: &stock})
	if err != nil {
		tb.Fatal(err)
	}
	prices = &StorePrices{Tracked: true}
	o := srv.Options()
	o.OnInvalidations = prices.Invalidate
	kvc := srv.ClientWith(tb, o)
	prices.KV = kvc
	r := router.New()
	New(NewStore(kvc), prices, Options{}).Register(r)
	return r.Handler, prices, p.ID
}

func addRequest(ctx *fasthttp.RequestCtx, id string) {
	ctx.Request.Reset()
	ctx.Response.Reset()
	ctx.Request.Header.SetMethod("PUT")
	ctx.Request.SetRequestURI("/api/v1/cart/items/" + id)
	ctx.Request.Header.Set(httpapi.HeaderUserID, "u-bench")
	ctx.Request.SetBodyString(`{"quantity":3}`)
}

// TestAddAllocs: the cart's own work in an add (reading the body, pricing the cart from the
// kept parses, rendering it) allocates nothing; the whole add through the router and the store
// client stays within the few allocations of its dependencies (the request's deadline, the
// router's path parameter, the store key and the client's reply).
func TestAddAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under -race (sync.Pool drops items)")
	}
	h, prices, id := addEnv(t)
	var ctx fasthttp.RequestCtx
	addRequest(&ctx, id)
	h(&ctx)
	if ctx.Response.StatusCode() != 200 {
		t.Fatalf("add: %d %s", ctx.Response.StatusCode(), ctx.Response.Body())
	}
	lines := []Line{{ProductID: id, Quantity: 3}}
	ids, prods := []string{id}, make([]Product, 1)
	body := []byte(`{"quantity":3}`)
	var out []byte
	if n := testing.AllocsPerRun(1000, func() {
		if q, ok := quickQuantity(body); !ok || q != 3 {
			t.Fatalf("quickQuantity(%s) = %d, %v", body, q, ok)
		}
		if err := prices.Products(context.Background(), nil, ids, prods); err != nil || prods[0].ID != id {
			t.Fatalf("Products: %v %+v", err, prods[0])
		}
		out = appendView(out[:0], lines, prods)
	}); n != 0 {
		t.Errorf("body, prices and rendering of an add: %.1f allocations, want 0", n)
	}
	const most = 16 // 13 on go1.26 with rueidis v1.0.79 and fasthttp/router v1.5
	if n := testing.AllocsPerRun(500, func() {
		addRequest(&ctx, id)
		h(&ctx)
	}); n > most {
		t.Errorf("an add through the handler: %.1f allocations, want at most %d", n, most)
	}
}

// BenchmarkAdd is one cart add through the handler (router, body, prices from the kept parses,
// the set script on a real redis-server, rendering), in memory.
func BenchmarkAdd(b *testing.B) {
	h, _, id := addEnv(b)
	var ctx fasthttp.RequestCtx
	b.ReportAllocs()
	for b.Loop() {
		addRequest(&ctx, id)
		h(&ctx)
		if ctx.Response.StatusCode() != 200 {
			b.Fatalf("add: %d %s", ctx.Response.StatusCode(), ctx.Response.Body())
		}
	}
}
