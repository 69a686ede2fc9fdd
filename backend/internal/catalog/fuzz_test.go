package catalog_test

import (
	"encoding/json"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/valyala/fasthttp"

	"flashedge/backend/internal/catalog"
	"flashedge/shared/kv/kvtest"
	"flashedge/shared/product"
)

// FuzzAdminProductBody sends arbitrary bodies to the admin product routes (create, and update
// of an existing product) against a real store: every answer is a success or a 4xx with a JSON
// error code, never a 5xx or a panic, and a product the catalog accepts reads back within the
// product rules.
func FuzzAdminProductBody(f *testing.F) {
	srv := kvtest.Start(f)
	store := catalog.NewStore(srv.Client(f))
	h, err := catalog.NewHandler(store, catalog.Options{AdminToken: adminToken, Timeout: time.Second})
	if err != nil {
		f.Fatal(err)
	}
	name, price, stock := "fuzz", int64(1000), int64(5)
	p, err := store.Create(f.Context(), product.Input{Name: &name, Price: &price, Stock: &stock})
	if err != nil {
		f.Fatal(err)
	}

	f.Add(false, []byte(`{"name":"a","price":1,"stock":0}`))
	f.Add(true, []byte(`{"price":2500}`))
	f.Add(true, []byte(`{"name":""}`))
	f.Add(false, []byte(`{"name":"x","price":-1,"stock":1}`))
	f.Add(false, []byte(`{"name":"x","price":1,"stock":1,"id":"00000001"}`))
	f.Add(true, []byte(`{"currency":"VNDX","image":"javascript:alert(1)"}`))
	f.Add(true, []byte(`{"stock":9223372036854775807}`))
	f.Add(false, []byte(`{"name":"\u0000","price":1e20}`))
	f.Add(true, []byte(`null`))
	f.Fuzz(func(t *testing.T, update bool, body []byte) {
		method, path := "POST", "/api/v1/admin/products"
		if update {
			method, path = "PUT", "/api/v1/admin/products/"+p.ID
		}
		var req fasthttp.Request
		req.Header.SetMethod(method)
		req.SetRequestURI(path)
		req.Header.Set("Authorization", "Bearer "+adminToken)
		req.Header.SetContentType("application/json")
		req.SetBody(body)
		var ctx fasthttp.RequestCtx
		ctx.Init(&req, nil, nil)
		h(&ctx)
		status, answer := ctx.Response.StatusCode(), ctx.Response.Body()
		var e struct {
			Error struct {
				Code string `json:"code"`
			} `json:"error"`
		}
		switch {
		case status == 200 || status == 201:
			var got productJSON
			if err := json.Unmarshal(answer, &got); err != nil {
				t.Fatalf("%s %q: %d with a body that is not a product: %q", method, body, status, answer)
			}
			if !product.ValidID([]byte(got.ID)) || got.Name == "" || utf8.RuneCountInString(got.Name) > product.MaxNameLen || !utf8.ValidString(got.Name) || got.Price < 0 ||
				got.Stock == nil || *got.Stock < 0 {
				t.Fatalf("%s %q: accepted a product outside the rules: %q", method, body, answer)
			}
		case status >= 400 && status < 500 && json.Unmarshal(answer, &e) == nil && e.Error.Code != "":
		default:
			t.Fatalf("%s %q: %d %q, want a success or a 4xx JSON error with a code", method, body, status, answer)
		}
	})
}
