// Package productcache answers product reads at the edge from memory.
//
// Two layers sit in front of the store. The rueidis client-side cache holds the raw store values
// (DoCache / DoMultiCache with server-assisted tracking, OPTIN), and the edge's one
// invalidation-checked cache (package invcache) holds the rendered responses, so a hit is one
// read-locked map lookup. Both are kept coherent by the store's invalidation pushes: rueidis
// drops its own entries, and Invalidate (wired to rueidis' OnInvalidations hook) drops the
// rendered bodies derived from them. Nothing relies on a TTL.
//
// Races between a fill and an invalidation are settled by invcache's generations: a fill takes
// the generation of its key's shard before it reads the store, and its body is kept only if no
// invalidation moved it since, so an invalidation that lands during a fill can never leave a
// stale body behind.
//
// An invalidation does not wait for the next read to pay for the re-read: a product whose body was
// cached is re-read at once in the background (batched, one pipelined round trip for what
// arrived together), so the first read after a change is normally a hit on the new body, and
// the key is tracked again right away. The re-read follows the same generation rule as a read's
// fill; when the queue is full the next read fills lazily instead.
//
// When a connection to the store is lost rueidis drops its local cache and calls the hook with
// nil. The rendered bodies are then kept but marked unverified (the connection epoch moves on):
// the next read refreshes them from the store, and only if the store cannot be reached is the
// unverified body served, for at most Options.StaleIfError (stale-if-error).
package productcache

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"flashedge/edge/internal/httpcache"
	"flashedge/edge/internal/invcache"
	"flashedge/shared/keyspace"
	"flashedge/shared/product"
)

// Errors returned by Product and Page.
var (
	ErrNotFound = errors.New("product not found")
	// ErrStore wraps a failed store read when nothing servable was cached.
	ErrStore = errors.New("store unavailable")
)

// Options configure a Cache. Zero values take the defaults named on each field.
type Options struct {
	// MaxBytes bounds the rendered bodies kept (seven eighths for products, the rest for catalog
	// pages). Zero means 64 MiB; at least 1 MiB.
	MaxBytes int64
	// ClientTTL is the client-side TTL given to DoCache: an upper bound only, since invalidation
	// drops entries as soon as the store changes them. Zero means 1h.
	ClientTTL time.Duration
	// StoreTimeout bounds one store read on a miss. Zero means 500ms.
	StoreTimeout time.Duration
	// StaleIfError is how long after losing the store connection a body cached before the loss
	// may still be served when the store cannot be read. Zero means 60s; negative disables it.
	StaleIfError time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Stats counts what the cache did. Read it with Cache.Stats.
type Stats struct {
	Hits, Misses, StoreHits, StoreMisses, Stale, Invalidations uint64
	// Refreshes counts products re-read in the background after an invalidation; RefreshDrops
	// those left to the next read because the queue was full.
	Refreshes, RefreshDrops uint64
}

// Cache renders and caches product responses. It is safe for concurrent use.
type Cache struct {
	kv       rueidis.Client
	products *invcache.Cache[*entry] // by product id
	pages    *invcache.Cache[*entry] // by pageKey; cleared by any product change
	o        Options

	epoch  atomic.Uint64 // moves on when a connection (and its local cache) is lost
	lostAt atomic.Int64  // unix nanos of the last connection loss
	// downUntil (unix nanos): after a failed store read, stale bodies are served without trying
	// the store again until then, so an outage costs one timeout, not one per request.
	downUntil atomic.Int64
	// upSince (unix nanos) is when the current up period began: the first successful store
	// read after the latest loss (0: since start). outageUpSince is the start of the up period
	// the latest loss ended; only bodies filled since then may be served stale.
	upSince, outageUpSince atomic.Int64

	hits, misses, storeHits, storeMisses, stale, invalidations atomic.Uint64
	refreshes, refreshDrops                                    atomic.Uint64

	// refresh carries the ids whose cached bodies an invalidation dropped to the refresher
	// goroutine, which Close stops (closing stop) and waits for (done).
	refresh    chan string
	stop, done chan struct{}
}

// refreshQueue bounds the ids waiting for a background re-read; refreshBatch is the most
// re-read in one pipelined round trip.
const (
	refreshQueue = 4096
	refreshBatch = 64
)

type entry struct {
	rep      *httpcache.Rep
	epoch    uint64
	filledAt int64 // unix nanos
}

// entryOverhead approximates the memory an entry takes besides its bytes (map slot, key, entry
// and Rep structs), for the byte bound.
const entryOverhead = 160

// New returns a Cache reading through kv. The client must deliver its invalidations to
// Cache.Invalidate (kv.Options.OnInvalidations, set when the client is opened).
func New(kv rueidis.Client, o Options) (*Cache, error) {
	if o.MaxBytes == 0 {
		o.MaxBytes = 64 << 20
	}
	if o.MaxBytes < 1<<20 {
		return nil, errors.New("productcache: MaxBytes must be at least 1 MiB")
	}
	if o.ClientTTL == 0 {
		o.ClientTTL = time.Hour
	}
	if o.StoreTimeout == 0 {
		o.StoreTimeout = 500 * time.Millisecond
	}
	if o.StaleIfError == 0 {
		o.StaleIfError = 60 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	pageBytes := o.MaxBytes / 8
	c := &Cache{kv: kv, o: o,
		// The byte bound binds first: a product answer takes about half a kilobyte.
		products: invcache.New[*entry](invcache.Options{MaxEntries: int(o.MaxBytes / 256), MaxCost: o.MaxBytes - pageBytes}),
		pages:    invcache.New[*entry](invcache.Options{MaxEntries: int(pageBytes / 1024), MaxCost: pageBytes}),
		refresh:  make(chan string, refreshQueue), stop: make(chan struct{}), done: make(chan struct{})}
	go c.refresher()
	return c, nil
}

// Close stops the background re-reads and waits for the one in flight. Call it once, after the
// store client stops delivering invalidations.
func (c *Cache) Close() {
	close(c.stop)
	<-c.done
}

// Len returns the number of product bodies and catalog pages held.
func (c *Cache) Len() (products, pages int) { return c.products.Len(), c.pages.Len() }

// Stats returns the counters so far.
func (c *Cache) Stats() Stats {
	return Stats{
		Hits: c.hits.Load(), Misses: c.misses.Load(), StoreHits: c.storeHits.Load(),
		StoreMisses: c.storeMisses.Load(), Stale: c.stale.Load(), Invalidations: c.invalidations.Load(),
		Refreshes: c.refreshes.Load(), RefreshDrops: c.refreshDrops.Load(),
	}
}

// Invalidate drops the rendered bodies derived from the keys the store says changed. A nil
// slice means a connection was lost together with its local cache: every body becomes
// unverified. It is fast and never calls the store (it runs on rueidis' reader goroutine).
func (c *Cache) Invalidate(msgs []rueidis.RedisMessage) {
	if msgs == nil {
		// Every connection of the client reports its own loss; the up period they end is the
		// same until a store read succeeds again.
		c.outageUpSince.Store(c.upSince.Load())
		c.lostAt.Store(c.o.Now().UnixNano())
		c.epoch.Add(1)
		return
	}
	for _, m := range msgs {
		key, err := m.ToString()
		if err != nil {
			continue
		}
		c.invalidations.Add(1)
		c.InvalidateKey(key)
	}
}

// InvalidateKey drops what derives from one store key.
func (c *Cache) InvalidateKey(key string) {
	if key == keyspace.ProductIndex() {
		c.pages.Clear()
		return
	}
	if id, ok := keyspace.ProductOf(key); ok {
		_, cached := c.products.Get([]byte(id))
		c.products.Delete(id)
		c.pages.Clear() // pages embed the product
		if cached {
			c.enqueue(id)
		}
		// Otherwise nobody read it since it was last dropped (or a re-read is in flight and
		// will go again): the next read fills it.
	}
}

// refresher re-reads the products whose bodies invalidations dropped, in batches, until Close.
func (c *Cache) refresher() {
	defer close(c.done)
	batch := make([]string, 0, refreshBatch)
	for {
		batch = batch[:0]
		select {
		case <-c.stop:
			return
		case id := <-c.refresh:
			batch = append(batch, id)
		}
	more:
		for len(batch) < refreshBatch {
			select {
			case id := <-c.refresh:
				if !slices.Contains(batch, id) { // a product written twice in a row: one re-read
					batch = append(batch, id)
				}
			default:
				break more
			}
		}
		c.refill(batch)
	}
}

// refill re-reads ids in one pipelined round trip and keeps each body under the generation
// rule, as a read's fill does. Failures are dropped: the next read tries again.
func (c *Cache) refill(ids []string) {
	type fill struct{ gen, epoch uint64 }
	fills := make([]fill, len(ids))
	cmds := make([]rueidis.CacheableTTL, 0, 2*len(ids))
	for i, id := range ids {
		fills[i] = fill{c.products.Gen([]byte(id)), c.epoch.Load()}
		cmds = append(cmds,
			rueidis.CT(c.kv.B().Get().Key(keyspace.Product(id)).Cache(), c.o.ClientTTL),
			rueidis.CT(c.kv.B().Get().Key(keyspace.ProductStock(id)).Cache(), c.o.ClientTTL))
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.o.StoreTimeout)
	defer cancel()
	res := c.kv.DoMultiCache(ctx, cmds...)
	c.countStore(res...)
	for i, id := range ids {
		body, err := render(res[2*i], res[2*i+1])
		if err != nil {
			continue
		}
		c.refreshes.Add(1)
		f := fills[i]
		if !c.keep(id, httpcache.New(body, true), f.gen, f.epoch) && c.epoch.Load() == f.epoch {
			// Written again while being re-read (a document and its stock, say): that
			// invalidation found no body to refresh, so this re-read goes again.
			c.enqueue(id)
		}
	}
}

func (c *Cache) enqueue(id string) {
	select {
	case c.refresh <- id:
	default:
		c.refreshDrops.Add(1)
	}
}

// Product returns the public JSON of product id with its ETag (and compressed copies when it is
// large enough), built when the body was cached. The representation is shared and immutable:
// callers copy the bytes out (fasthttp's SetBody does) and never modify them. id is not
// retained. On a hit it makes no store round trip and no allocation.
func (c *Cache) Product(ctx context.Context, id []byte) (*httpcache.Rep, error) {
	epoch := c.epoch.Load()
	e, ok := c.products.Get(id)
	if ok && e.epoch == epoch {
		c.hits.Add(1)
		return e.rep, nil
	}
	return c.productMiss(ctx, id, e, ok, epoch)
}

// CachedProduct returns product id's representation when it is cached and current, and
// reports whether it was: a caller that must charge a miss before it reaches the store (the
// edge's shopping budget) looks here first and calls Product only on a miss. A hit counts as
// one; a miss is counted by the Product call that follows. It makes no allocation.
func (c *Cache) CachedProduct(id []byte) (*httpcache.Rep, bool) {
	e, ok := c.products.Get(id)
	if ok && e.epoch == c.epoch.Load() {
		c.hits.Add(1)
		return e.rep, true
	}
	return nil, false
}

func (c *Cache) productMiss(ctx context.Context, id []byte, e *entry, ok bool, epoch uint64) (*httpcache.Rep, error) {
	c.misses.Add(1)
	gen := c.products.Gen(id)
	if ok && c.servableStale(e) && c.storeDown() {
		c.stale.Add(1)
		return e.rep, nil
	}
	body, err := c.fetchProduct(ctx, string(id))
	c.noteStore(err)
	switch {
	case err == nil:
	case errors.Is(err, ErrNotFound):
		return nil, err
	case ok && c.servableStale(e):
		// The store cannot be read; the body was current when the connection was lost.
		c.stale.Add(1)
		return e.rep, nil
	default:
		return nil, err
	}
	rep := httpcache.New(body, true)
	c.keep(string(id), rep, gen, epoch)
	return rep, nil
}

// keep caches a product's body filled under generation gen and connection epoch, unless an
// invalidation or a connection loss came since, and reports whether it did.
func (c *Cache) keep(id string, rep *httpcache.Rep, gen, epoch uint64) bool {
	if c.epoch.Load() != epoch {
		return false
	}
	e := &entry{rep: rep, epoch: epoch, filledAt: c.o.Now().UnixNano()}
	return c.products.PutCost(id, e, int64(rep.Size()+len(id)+entryOverhead), gen)
}

// storeDownBackoff is how long stale bodies are served without retrying the store after a
// failed read.
const storeDownBackoff = time.Second

func (c *Cache) noteStore(err error) {
	now := c.o.Now().UnixNano()
	switch {
	case errors.Is(err, ErrStore):
		c.downUntil.Store(now + int64(storeDownBackoff))
	case c.upSince.Load() < c.lostAt.Load():
		c.upSince.Store(now) // the first good read after a loss starts a new up period
	}
}

func (c *Cache) storeDown() bool { return c.o.Now().UnixNano() < c.downUntil.Load() }

// servableStale reports whether e may be served although its connection epoch has passed: it
// was filled during the up period that the latest loss ended (so the store was tracking it for
// this client until then; an invalidation since would have deleted it), and the loss is recent
// enough. A body filled before an earlier loss may have changed while a later connection, which
// did not track it, was up.
func (c *Cache) servableStale(e *entry) bool {
	return e.filledAt >= c.outageUpSince.Load() && c.staleAllowed()
}

func (c *Cache) staleAllowed() bool {
	if c.o.StaleIfError < 0 {
		return false
	}
	lost := c.lostAt.Load()
	return lost != 0 && c.o.Now().Sub(time.Unix(0, lost)) <= c.o.StaleIfError
}

// fetchProduct reads the document and stock through the client-side cache and renders them.
func (c *Cache) fetchProduct(ctx context.Context, id string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.o.StoreTimeout)
	defer cancel()
	res := c.kv.DoMultiCache(ctx,
		rueidis.CT(c.kv.B().Get().Key(keyspace.Product(id)).Cache(), c.o.ClientTTL),
		rueidis.CT(c.kv.B().Get().Key(keyspace.ProductStock(id)).Cache(), c.o.ClientTTL),
	)
	c.countStore(res...)
	return render(res[0], res[1])
}

// render makes a product's public JSON from the replies to GET of its document and its stock.
func render(docRes, stockRes rueidis.RedisResult) ([]byte, error) {
	doc, err := docRes.AsBytes()
	if err != nil {
		if rueidis.IsRedisNil(err) {
			return nil, ErrNotFound
		}
		return nil, errors.Join(ErrStore, err)
	}
	var stock int64
	if s, err := stockRes.ToString(); err == nil {
		stock = product.ParseStock(s)
	} else if !rueidis.IsRedisNil(err) {
		return nil, errors.Join(ErrStore, err)
	}
	return product.AppendPublic(make([]byte, 0, len(doc)+32), doc, stock)
}

func (c *Cache) countStore(res ...rueidis.RedisResult) {
	for _, r := range res {
		if r.IsCacheHit() {
			c.storeHits.Add(1)
		} else {
			c.storeMisses.Add(1)
		}
	}
}

// EncodeCursor makes the opaque cursor that follows product id.
func EncodeCursor(id string) string { return string(product.AppendCursor(nil, id)) }

// Page returns the JSON of a catalog page: {"items":[...],"next_cursor":"..."}, limit products
// with ids after the given one (lexicographic, which is numeric for the catalog's zero-padded
// ids). next_cursor is "" on the last page. The representation (ETag, compressed copies) is
// shared and immutable.
func (c *Cache) Page(ctx context.Context, limit int, after string) (*httpcache.Rep, error) {
	key := appendPageKey(make([]byte, 0, 80), limit, after)
	epoch := c.epoch.Load()
	e, ok := c.pages.Get(key)
	if ok && e.epoch == epoch {
		c.hits.Add(1)
		return e.rep, nil
	}
	c.misses.Add(1)
	gen := c.pages.Gen(key)
	if ok && c.servableStale(e) && c.storeDown() {
		c.stale.Add(1)
		return e.rep, nil
	}
	body, err := c.fetchPage(ctx, limit, after)
	c.noteStore(err)
	if err != nil {
		if ok && c.servableStale(e) {
			c.stale.Add(1)
			return e.rep, nil
		}
		return nil, err
	}
	rep := httpcache.New(body, true)
	if c.epoch.Load() == epoch {
		c.pages.PutCost(string(key), &entry{rep: rep, epoch: epoch, filledAt: c.o.Now().UnixNano()}, int64(rep.Size()+len(key)+entryOverhead), gen)
	}
	return rep, nil
}

// CachedPage is CachedProduct for a catalog page: the page when it is cached and current.
func (c *Cache) CachedPage(limit int, after string) (*httpcache.Rep, bool) {
	var kb [80]byte
	e, ok := c.pages.Get(appendPageKey(kb[:0], limit, after))
	if ok && e.epoch == c.epoch.Load() {
		c.hits.Add(1)
		return e.rep, true
	}
	return nil, false
}

// appendPageKey appends the cache key of a catalog page to dst.
func appendPageKey(dst []byte, limit int, after string) []byte {
	dst = append(dst, 0) // pages and product ids never collide: ids cannot hold a NUL
	dst = strconv.AppendInt(dst, int64(limit), 10)
	dst = append(dst, ':')
	return append(dst, after...)
}

func (c *Cache) fetchPage(ctx context.Context, limit int, after string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.o.StoreTimeout)
	defer cancel()
	min := "-"
	if after != "" {
		min = "(" + after
	}
	r := c.kv.DoCache(ctx, c.kv.B().Zrange().Key(keyspace.ProductIndex()).Min(min).Max("+").Bylex().
		Limit(0, int64(limit+1)).Cache(), c.o.ClientTTL)
	c.countStore(r)
	ids, err := r.AsStrSlice()
	if err != nil {
		return nil, errors.Join(ErrStore, err)
	}
	next := ""
	if len(ids) > limit {
		ids = ids[:limit]
		next = EncodeCursor(ids[len(ids)-1])
	}
	cmds := make([]rueidis.CacheableTTL, 0, 2*len(ids))
	for _, id := range ids {
		cmds = append(cmds,
			rueidis.CT(c.kv.B().Get().Key(keyspace.Product(id)).Cache(), c.o.ClientTTL),
			rueidis.CT(c.kv.B().Get().Key(keyspace.ProductStock(id)).Cache(), c.o.ClientTTL))
	}
	var res []rueidis.RedisResult
	if len(cmds) > 0 {
		res = c.kv.DoMultiCache(ctx, cmds...)
		c.countStore(res...)
	}
	out := append(make([]byte, 0, 256*len(ids)+64), `{"items":[`...)
	first := true
	for i := range ids {
		doc, err := res[2*i].AsBytes()
		if rueidis.IsRedisNil(err) {
			continue // deleted between the index read and now, or a half-written create
		}
		if err != nil {
			return nil, errors.Join(ErrStore, err)
		}
		var stock int64
		if s, err := res[2*i+1].ToString(); err == nil {
			stock = product.ParseStock(s)
		}
		if !first {
			out = append(out, ',')
		}
		if out, err = product.AppendPublic(out, doc, stock); err != nil {
			return nil, err
		}
		first = false
	}
	out = append(out, `],"next_cursor":`...)
	out = strconv.AppendQuote(out, next)
	return append(out, '}'), nil
}
