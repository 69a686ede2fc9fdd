package cart_test

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/fasthttp/router"
	"github.com/valyala/fasthttp"

	"flashedge/backend/internal/cart"
	"flashedge/backend/internal/catalog"
	"flashedge/shared/httpapi"
	"flashedge/shared/kv/kvtest"
	"flashedge/shared/product"
	"flashedge/shared/upstream"
)

// FuzzCartBodies sends arbitrary bodies to the cart routes that read one (PUT an item, and the
// order service's subtract) against a real store and catalog: every answer is a success or a
// 4xx with a JSON error code, never a 5xx or a panic, and a cart never holds a line outside the
// quantity rule.
func FuzzCartBodies(f *testing.F) {
	srv := kvtest.Start(f)
	store := srv.Client(f)
	products := catalog.NewStore(store)
	ch, err := catalog.NewHandler(products, catalog.Options{AdminToken: "test-admin-token-0123"})
	if err != nil {
		f.Fatal(err)
	}
	catAddr, _ := serve(f, ch)
	pool, err := upstream.New(upstream.Options{Name: "catalog", Addrs: []string{catAddr}, Timeout: time.Second}, discard())
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(pool.Close)
	name, price, stock := "fuzz", int64(1000), int64(5)
	p, err := products.Create(f.Context(), product.Input{Name: &name, Price: &price, Stock: &stock})
	if err != nil {
		f.Fatal(err)
	}
	r := router.New()
	cart.New(cart.NewStore(store), cart.CatalogPrices(pool), cart.Options{Log: discard()}).Register(r)
	h := r.Handler

	f.Add(false, []byte(`{"quantity":2}`))
	f.Add(false, []byte(`{"quantity":0}`))
	f.Add(false, []byte(`{"quantity":-1}`))
	f.Add(false, []byte(`{"quantity":1e3}`))
	f.Add(false, []byte(`{"quantity":1,"price":1}`))
	f.Add(false, []byte(`{"quantity":"1"}`))
	f.Add(false, []byte(`{"quantity":1}]`))
	f.Add(true, []byte(`{"order_id":"o1","items":[{"product_id":"`+p.ID+`","quantity":1}]}`))
	f.Add(true, []byte(`{"order_id":"a}b","items":[]}`))
	f.Add(true, []byte(`{"items":[{"product_id":"","quantity":100}]}`))
	f.Fuzz(func(t *testing.T, subtract bool, body []byte) {
		// The decoder-free reading of a PUT body agrees with the JSON decoder on what it takes.
		if q, ok := cart.QuickQuantity(body); ok {
			var in struct {
				Quantity *int `json:"quantity"`
			}
			dec := json.NewDecoder(bytes.NewReader(body))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&in); err != nil || in.Quantity == nil || *in.Quantity != q || dec.More() {
				t.Fatalf("QuickQuantity(%q) = %d, the JSON decoder reads %v (%v)", body, q, in.Quantity, err)
			}
		}
		method, path := "PUT", "/api/v1/cart/items/"+p.ID
		if subtract {
			method, path = "DELETE", "/internal/v1/cart"
		}
		status, answer := call(h, method, path, "fuzz-user", body)
		checkAnswer(t, method+" "+path, body, status, answer)
		if status != 200 {
			return
		}
		var v cart.View
		if err := json.Unmarshal(answer, &v); err != nil {
			t.Fatalf("%s %q: 200 with a body that is not a cart: %q", method, body, answer)
		}
		for _, l := range v.Items {
			if l.Quantity < 1 || l.Quantity > cart.MaxQuantity {
				t.Fatalf("%s %q: the cart holds %d of %s", method, body, l.Quantity, l.ProductID)
			}
		}
	})
}

// call runs h on one in-memory request as user and returns the status and a copy of the body.
func call(h fasthttp.RequestHandler, method, path, user string, body []byte) (int, []byte) {
	var req fasthttp.Request
	req.Header.SetMethod(method)
	req.SetRequestURI(path)
	req.Header.Set(httpapi.HeaderUserID, user)
	req.Header.SetContentType("application/json")
	req.SetBody(body)
	var ctx fasthttp.RequestCtx
	ctx.Init(&req, nil, nil)
	h(&ctx)
	return ctx.Response.StatusCode(), append([]byte(nil), ctx.Response.Body()...)
}

// checkAnswer fails unless the answer is a success, or a 4xx whose body is a JSON error with
// a code.
func checkAnswer(t *testing.T, what string, in []byte, status int, body []byte) {
	t.Helper()
	if status >= 200 && status < 300 {
		return
	}
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if status < 400 || status >= 500 || json.Unmarshal(body, &e) != nil || e.Error.Code == "" {
		t.Fatalf("%s with %q: %d %q, want a success or a 4xx JSON error with a code", what, in, status, body)
	}
}
