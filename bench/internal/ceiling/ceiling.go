// Package ceiling is the bare fasthttp handler that `make bench` measures as the upper bound for
// the edge: a fixed product answer to a GET and a fixed sold-out answer to a POST attempt, with
// no routing, store, cache or per-request feature.
package ceiling

import (
	"bytes"

	"github.com/valyala/fasthttp"

	"flashedge/shared/httpapi"
)

// Body is the default product answer: a product of about the size the edge renders (170 bytes; a
// test pins it). benchrun gives the ceiling the edge's own answers instead (Bodies), so both
// send the same bytes.
const Body = `{"id":"00000001","name":"Ao thun cotton","description":"Ao thun 100% cotton, size M",` +
	`"price":450000,"currency":"VND","image":"/img/00000001.svg","stock_state":"in_stock"}`

// SoldOutBody is the default answer to a POST attempt, the shape of the edge's sold-out refusal.
const SoldOutBody = `{"status":"sold_out","error":{"code":"sold_out","message":"the flash sale is sold out"}}`

// Bodies are the fixed answers. Empty fields take Body and SoldOutBody.
type Bodies struct {
	Product, SoldOut []byte
}

var (
	productsPrefix = []byte("/api/v1/products/")
	salesPrefix    = []byte("/api/v1/flash-sales/")
	attemptsSuffix = []byte("/attempts")
)

// New returns the handler: GET /api/v1/products/{anything} answers 200 with the product body,
// POST /api/v1/flash-sales/{anything}/attempts 410 with the sold-out body (the POST twin of the
// read, the same request shape as an attempt), /health and /ready 200, everything else the
// contract's 404. It keeps no state and is safe for concurrent use.
func New(b Bodies) fasthttp.RequestHandler {
	if len(b.Product) == 0 {
		b.Product = []byte(Body)
	}
	if len(b.SoldOut) == 0 {
		b.SoldOut = []byte(SoldOutBody)
	}
	return func(ctx *fasthttp.RequestCtx) {
		path := ctx.Path()
		switch {
		case ctx.IsGet() && len(path) > len(productsPrefix) && bytes.HasPrefix(path, productsPrefix):
			ctx.SetContentType("application/json")
			ctx.SetBody(b.Product)
		case ctx.IsPost() && len(path) > len(salesPrefix)+len(attemptsSuffix) && bytes.HasPrefix(path, salesPrefix) && bytes.HasSuffix(path, attemptsSuffix):
			ctx.SetStatusCode(fasthttp.StatusGone)
			ctx.SetContentType("application/json")
			ctx.SetBody(b.SoldOut)
		case string(path) == "/health" || string(path) == "/ready":
			httpapi.WriteRawJSON(ctx, fasthttp.StatusOK, []byte(`{"status":"ok"}`))
		default:
			httpapi.WriteError(ctx, fasthttp.StatusNotFound, "not_found", "the ceiling server only answers GET /api/v1/products/{id} and POST /api/v1/flash-sales/{id}/attempts")
		}
	}
}
