package cart

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/redis/rueidis"

	"flashedge/shared/keyspace"
)

// Prices looks up the products a cart names: a whole cart in one call.
type Prices interface {
	// Products stores the product of ids[i] in out[i] (len(out) >= len(ids)); an id no product
	// has leaves a Product with an empty ID. Failures wrap ErrCatalogUnavailable or
	// ErrStoreUnavailable.
	Products(ctx context.Context, requestID []byte, ids []string, out []Product) error
	// Local reports whether a lookup is answered from this process's memory in the steady state
	// (no network call): an add then checks its product before the write and prices the cart
	// the write answers afterwards, which spares it a read of the cart. Otherwise an add reads
	// the cart first, so one call prices every line.
	Local() bool
}

// StorePrices reads products from their documents in the store (the catalog service writes
// them; shared/product is their one format) through the store client's server-assisted
// client-side cache, so a cart add prices the cart without a call to the catalog. A document is
// parsed once, and the parse kept:
//
//   - Tracked (the cart binary): Invalidate receives the client's invalidation pushes, so a kept
//     parse is served from memory (a read-locked map lookup, no client call) until the store
//     says the document changed, the connection is lost, or ClientTTL passes.
//   - Untracked: every lookup asks the client-side cache (DoCache: no round trip when cached,
//     the store's push drops a changed document), and the parse is reused only while it hands
//     back the same document.
//
// Either way a price is never older than the store's push. Set the fields before the first
// Products; then it is safe for concurrent use.
type StorePrices struct {
	// KV is the store client (client-side caching on, the rueidis default). Required.
	KV rueidis.Client
	// ClientTTL caps how long a document stays cached without an invalidation. Zero means 1h.
	ClientTTL time.Duration
	// Tracked says Invalidate is wired to KV's invalidation pushes (kv.Options.OnInvalidations),
	// with the client-side cache on (not kv.Options.DisableCache: no key is tracked then, and a
	// kept parse would only expire with ClientTTL).
	Tracked bool

	mu     sync.RWMutex
	parsed map[string]*parsedDoc // by product id; at most maxParsed entries
	gen    uint64                // moves on with every invalidation (under mu)
}

// maxParsed bounds StorePrices' parses (about half a KiB each): past it they are all dropped
// and parsed again as carts name them.
const maxParsed = 20_000

// parsedDoc is one product document and its parse.
type parsedDoc struct {
	doc     string // as the store holds it
	key     string // keyspace.Product(id)
	p       Product
	expires int64 // unix nanos: ClientTTL after it was read
}

// Local is true: a known document costs no round trip.
func (p *StorePrices) Local() bool { return true }

// Invalidate drops the parses of the product documents the store says changed; nil (a lost
// connection, a flushed store) drops them all. Wire it to the client's OnInvalidations; it is
// fast and never calls the store.
func (p *StorePrices) Invalidate(msgs []rueidis.RedisMessage) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.gen++
	if msgs == nil {
		clear(p.parsed)
		return
	}
	for _, m := range msgs {
		if key, err := m.ToString(); err == nil {
			if id, ok := keyspace.ProductOf(key); ok {
				delete(p.parsed, id)
			}
		}
	}
}

// Products looks ids up: tracked and known, from memory; otherwise through the client-side
// cache, one DoCache each when every id has been read before (cache hits in the steady state: no
// round trip, no allocation), else one DoMultiCache for all that are not served from memory
// (one round trip).
func (p *StorePrices) Products(ctx context.Context, _ []byte, ids []string, out []Product) error {
	ttl := p.ClientTTL
	if ttl == 0 {
		ttl = time.Hour
	}
	var known [MaxLines + 1]*parsedDoc // nil once served from memory
	var now int64
	if p.Tracked {
		now = time.Now().UnixNano()
	}
	p.mu.RLock()
	gen := p.gen
	need, all := 0, len(ids) <= len(known)
	for i, id := range ids {
		if !all {
			break
		}
		d := p.parsed[id]
		switch {
		case d == nil:
			all = false
		case p.Tracked && now < d.expires:
			out[i] = d.p
		default:
			known[i] = d
			need++
		}
	}
	p.mu.RUnlock()
	if !all {
		return p.fetch(ctx, ids, out, ttl, gen)
	}
	for i := 0; need > 0 && i < len(ids); i++ {
		if d := known[i]; d != nil {
			r := p.KV.DoCache(ctx, p.KV.B().Get().Key(d.key).Cache(), ttl)
			if err := p.product(ids[i], d.key, d, r, &out[i], gen, ttl); err != nil {
				return err
			}
		}
	}
	return nil
}

// fetch reads the documents of ids in one DoMultiCache (one round trip for those not cached).
func (p *StorePrices) fetch(ctx context.Context, ids []string, out []Product, ttl time.Duration, gen uint64) error {
	cmds := make([]rueidis.CacheableTTL, len(ids))
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = keyspace.Product(id)
		cmds[i] = rueidis.CT(p.KV.B().Get().Key(keys[i]).Cache(), ttl)
	}
	for i, r := range p.KV.DoMultiCache(ctx, cmds...) {
		p.mu.RLock()
		d := p.parsed[ids[i]]
		p.mu.RUnlock()
		if err := p.product(ids[i], keys[i], d, r, &out[i], gen, ttl); err != nil {
			return err
		}
	}
	return nil
}

// product sets *out from the store's answer r for the document of id, reusing the parse d when
// it is of the same document, and keeps a new parse unless an invalidation came after gen (it
// may be of the document as it was before the change the invalidation reports).
func (p *StorePrices) product(id, key string, d *parsedDoc, r rueidis.RedisResult, out *Product, gen uint64, ttl time.Duration) error {
	doc, err := r.ToString()
	if rueidis.IsRedisNil(err) {
		*out = Product{}
		return nil
	}
	if err != nil {
		return unavailable("read products", err)
	}
	expires := time.Now().Add(ttl).UnixNano()
	if d != nil && d.doc == doc {
		*out = d.p
		if !p.Tracked {
			return nil
		}
		nd := *d // renewed: the client-side cache answered for it just now
		d = &nd
	} else {
		d = &parsedDoc{doc: doc, key: key}
		if err := json.Unmarshal([]byte(doc), &d.p); err != nil || d.p.ID != id {
			return fmt.Errorf("%w: product %s: the store holds no product document under its key", ErrCatalogUnavailable, id)
		}
		d.p.nameJSON = appendJSONString(nil, d.p.Name)
		*out = d.p
	}
	d.expires = expires
	p.mu.Lock()
	if p.gen == gen {
		if p.parsed == nil || len(p.parsed) >= maxParsed {
			p.parsed = make(map[string]*parsedDoc)
		}
		p.parsed[id] = d
	}
	p.mu.Unlock()
	return nil
}

// CatalogPrices reads products from the catalog service's batch route GET
// /internal/v1/products?ids=... (one call per cart, never one per line), passing the request id
// on.
func CatalogPrices(c Caller) Prices { return catalogClient{c} }

// Local is false: every lookup is a call to the catalog service.
func (cc catalogClient) Local() bool { return false }

func (cc catalogClient) Products(ctx context.Context, requestID []byte, ids []string, out []Product) error {
	return cc.products(ctx, requestID, ids, out)
}
