package product

import (
	"bytes"
	"context"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
	"github.com/valyala/fasthttp"

	"flashedge/shared/keyspace"
)

// Caller sends one request to another service and fills resp (an *upstream.Pool).
type Caller interface {
	Do(ctx context.Context, req *fasthttp.Request, resp *fasthttp.Response) error
}

// StoreFallback is a Caller for the catalog service that keeps product reads working while the
// catalog is down: a GET /api/v1/products/{id} that fails (no replica, transport error, 5xx) is
// answered from the product's documents in the store instead, read through the client-side
// cache, in the catalog's own shape. Everything else goes to the catalog unchanged.
//
// The cart and order services ask the catalog over HTTP, so prices have one owner; this lets
// "stop the product service" leave the cart and ordering working, as the edge's own reads do.
// Answers from the store carry the header X-Flashedge-Fallback: store. Safe for concurrent use.
type StoreFallback struct {
	// Catalog is the catalog service. Required.
	Catalog Caller
	// KV is the store. Required.
	KV rueidis.Client
	// ClientTTL caps how long a product stays in the client-side cache without an
	// invalidation. Zero means 1h.
	ClientTTL time.Duration

	served atomic.Uint64
}

// Served returns how many reads the store answered for the catalog.
func (f *StoreFallback) Served() uint64 { return f.served.Load() }

var productsPath = []byte("/api/v1/products/")

// Do sends req to the catalog and, for a product read the catalog could not answer, answers it
// from the store.
func (f *StoreFallback) Do(ctx context.Context, req *fasthttp.Request, resp *fasthttp.Response) error {
	err := f.Catalog.Do(ctx, req, resp)
	if err == nil && resp.StatusCode() < 500 {
		return nil
	}
	id, ok := bytes.CutPrefix(req.URI().Path(), productsPath)
	if !ok || !req.Header.IsGet() || !ValidID(id) {
		return err
	}
	ttl := f.ClientTTL
	if ttl == 0 {
		ttl = time.Hour
	}
	res := f.KV.DoMultiCache(ctx,
		rueidis.CT(f.KV.B().Get().Key(keyspace.Product(string(id))).Cache(), ttl),
		rueidis.CT(f.KV.B().Get().Key(keyspace.ProductStock(string(id))).Cache(), ttl),
	)
	doc, derr := res[0].AsBytes()
	if derr != nil && !rueidis.IsRedisNil(derr) {
		return err // the store is down too: the catalog's failure stands
	}
	resp.Reset()
	resp.Header.Set("X-Flashedge-Fallback", "store")
	resp.Header.SetContentType("application/json")
	f.served.Add(1)
	if rueidis.IsRedisNil(derr) {
		resp.SetStatusCode(fasthttp.StatusNotFound)
		resp.SetBodyString(`{"error":{"code":"not_found","message":"no product has this id"}}`)
		return nil
	}
	var stock int64
	if s, err := res[1].ToString(); err == nil {
		stock = ParseStock(s)
	}
	body, aerr := AppendPublic(nil, doc, stock)
	if aerr != nil {
		return err
	}
	resp.SetStatusCode(fasthttp.StatusOK)
	resp.SetBody(body)
	return nil
}
