package cart

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/redis/rueidis"

	"flashedge/shared/keyspace"
)

// Prices looks up the products a cart names: a whole cart in one call. Every id asked for is a
// key of the answer; an id no product has maps to a Product with an empty ID. Failures wrap
// ErrCatalogUnavailable or ErrStoreUnavailable.
type Prices interface {
	Products(ctx context.Context, requestID []byte, ids []string) (map[string]Product, error)
}

// StorePrices reads products from their documents in the store (the catalog service writes
// them; shared/product is their one format) through the store client's server-assisted
// client-side cache: a product read before costs no round trip, and the store's invalidation
// push drops it when the catalog changes it, so a price is never older than the push. This is
// how a cart add prices the cart without a call to the catalog. Safe for concurrent use.
type StorePrices struct {
	// KV is the store client (client-side caching on, the rueidis default). Required.
	KV rueidis.Client
	// ClientTTL caps how long a document stays in the client-side cache without an
	// invalidation. Zero means 1h.
	ClientTTL time.Duration
}

// Products reads the documents of ids in one DoMultiCache (no round trip when all are cached).
func (p *StorePrices) Products(ctx context.Context, _ []byte, ids []string) (map[string]Product, error) {
	out := make(map[string]Product, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	ttl := p.ClientTTL
	if ttl == 0 {
		ttl = time.Hour
	}
	cmds := make([]rueidis.CacheableTTL, len(ids))
	for i, id := range ids {
		cmds[i] = rueidis.CT(p.KV.B().Get().Key(keyspace.Product(id)).Cache(), ttl)
	}
	for i, r := range p.KV.DoMultiCache(ctx, cmds...) {
		doc, err := r.AsBytes()
		if rueidis.IsRedisNil(err) {
			out[ids[i]] = Product{}
			continue
		}
		if err != nil {
			return nil, unavailable("read products", err)
		}
		var pr Product
		if err := json.Unmarshal(doc, &pr); err != nil || pr.ID != ids[i] {
			return nil, fmt.Errorf("%w: product %s: the store holds no product document under its key", ErrCatalogUnavailable, ids[i])
		}
		out[ids[i]] = pr
	}
	return out, nil
}

// CatalogPrices reads products from the catalog service's batch route GET
// /internal/v1/products?ids=... (one call per cart, never one per line), passing the request id
// on.
func CatalogPrices(c Caller) Prices { return catalogClient{c} }

func (cc catalogClient) Products(ctx context.Context, requestID []byte, ids []string) (map[string]Product, error) {
	return cc.products(ctx, requestID, ids)
}
