// Package ceiling is the bare fasthttp handler that `make bench` measures as the upper bound for
// the edge's product read: a fixed product-sized JSON answer with no routing, store or cache.
package ceiling

import (
	"bytes"

	"github.com/valyala/fasthttp"

	"flashedge/shared/httpapi"
)

// Body is the fixed answer: a product of about the size the edge renders (170 bytes; a test pins it).
const Body = `{"id":"00000001","name":"Ao thun cotton","description":"Ao thun 100% cotton, size M",` +
	`"price":450000,"currency":"VND","image":"/img/00000001.svg","stock_state":"in_stock"}`

var (
	productsPrefix = []byte("/api/v1/products/")
	body           = []byte(Body)
)

// Handler answers GET /api/v1/products/{anything} with Body, /health and /ready with 200, and
// everything else with the contract's 404. It keeps no state and is safe for concurrent use.
func Handler(ctx *fasthttp.RequestCtx) {
	path := ctx.Path()
	switch {
	case ctx.IsGet() && len(path) > len(productsPrefix) && bytes.HasPrefix(path, productsPrefix):
		ctx.SetContentType("application/json")
		ctx.SetBody(body)
	case string(path) == "/health" || string(path) == "/ready":
		httpapi.WriteRawJSON(ctx, fasthttp.StatusOK, []byte(`{"status":"ok"}`))
	default:
		httpapi.WriteError(ctx, fasthttp.StatusNotFound, "not_found", "the ceiling server only answers GET /api/v1/products/{id}")
	}
}
