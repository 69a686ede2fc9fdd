package product

import (
	"bytes"
	"context"
	"slices"
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
// catalog is down: a GET /api/v1/products/{id} or a batch read GET BatchPath?ids=... that fails
// (no replica, transport error, 5xx) is answered from the products' documents in the store
// instead, read through the client-side cache, in the catalog's own shape. Everything else goes
// to the catalog unchanged.
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
	ttl := f.ClientTTL
	if ttl == 0 {
		ttl = time.Hour
	}
	if req.Header.IsGet() && string(req.URI().Path()) == BatchPath {
		return f.batch(ctx, req, resp, ttl, err)
	}
	id, ok := bytes.CutPrefix(req.URI().Path(), productsPath)
	if !ok || !req.Header.IsGet() || !ValidID(id) {
		return err
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

// batch answers a failed batch read from the store: {"items":[...]} in the order asked, unknown
// ids left out, as the catalog answers it.
func (f *StoreFallback) batch(ctx context.Context, req *fasthttp.Request, resp *fasthttp.Response, ttl time.Duration, cerr error) error {
	ids, ok := ParseIDList(req.URI().QueryArgs().Peek("ids"), MaxBatch)
	if !ok {
		return cerr
	}
	cmds := make([]rueidis.CacheableTTL, 0, 2*len(ids))
	for _, id := range ids {
		cmds = append(cmds,
			rueidis.CT(f.KV.B().Get().Key(keyspace.Product(id)).Cache(), ttl),
			rueidis.CT(f.KV.B().Get().Key(keyspace.ProductStock(id)).Cache(), ttl))
	}
	res := f.KV.DoMultiCache(ctx, cmds...)
	body := append(make([]byte, 0, 64+320*len(ids)), `{"items":[`...)
	n := 0
	for i := range ids {
		doc, derr := res[2*i].AsBytes()
		if rueidis.IsRedisNil(derr) {
			continue
		}
		if derr != nil {
			return cerr // the store is down too: the catalog's failure stands
		}
		var stock int64
		if s, err := res[2*i+1].ToString(); err == nil {
			stock = ParseStock(s)
		}
		if n > 0 {
			body = append(body, ',')
		}
		var aerr error
		if body, aerr = AppendPublic(body, doc, stock); aerr != nil {
			return cerr
		}
		n++
	}
	resp.Reset()
	resp.Header.Set("X-Flashedge-Fallback", "store")
	resp.Header.SetContentType("application/json")
	f.served.Add(1)
	resp.SetStatusCode(fasthttp.StatusOK)
	resp.SetBody(append(body, "]}"...))
	return nil
}

// BatchPath is the catalog's batch read: GET BatchPath?ids=a,b,c answers {"items":[public
// product...]} for the ids it knows, in the order asked. The cart and order services price a
// whole cart with one such call.
const BatchPath = "/internal/v1/products"

// MaxBatch is the most ids one batch read may name (a cart holds at most 50 lines).
const MaxBatch = 100

// ParseIDList splits a comma-separated list of product ids, dropping repeats; false when it is
// empty, names more than max ids or holds an invalid one.
func ParseIDList(v []byte, max int) ([]string, bool) {
	if len(v) == 0 || bytes.Count(v, []byte(",")) >= max {
		return nil, false
	}
	var ids []string
	for part := range bytes.SplitSeq(v, []byte(",")) {
		if !ValidID(part) {
			return nil, false
		}
		if !slices.Contains(ids, string(part)) {
			ids = append(ids, string(part))
		}
	}
	return ids, true
}
