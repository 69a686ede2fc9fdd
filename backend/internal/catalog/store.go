// Package catalog is the product catalog service: a store adapter that keeps products in the
// layout the edge reads directly (see Store), the HTTP handlers of the read and admin routes
// (NewHandler) and the demo catalog seeder (DemoProducts, Store.SeedDemo).
package catalog

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"strconv"
	"time"

	"github.com/redis/rueidis"

	"flashedge/shared/keyspace"
	"flashedge/shared/kv"
	"flashedge/shared/product"
)

// Domain errors. Validation failures wrap product.ErrInvalid instead.
var (
	// ErrNotFound means no product has the id.
	ErrNotFound = errors.New("catalog: product not found")
	// ErrConflict means concurrent updates of one product kept colliding; the caller may retry.
	ErrConflict = errors.New("catalog: the product kept changing during the update; retry")
	// ErrUnavailable wraps every failure to reach the store (timeouts, lost connections).
	ErrUnavailable = errors.New("catalog: store unavailable")
)

// Product is a product as the catalog knows it: the stored document and its stock.
type Product struct {
	product.Doc
	Stock int64
}

// Page is one page of a listing in id order. Next is the id the following page starts after,
// or "" when this is the last page.
type Page struct {
	Items []Product
	Next  string
}

// Store keeps products in the store in the layout the edge reads directly:
//
//	keyspace.Product(id)      JSON of product.Doc (product.Marshal), without stock
//	keyspace.ProductStock(id) the stock, an integer
//	keyspace.ProductIndex()   sorted set of all ids, score 0, read in lexicographic order
//	keyspace.ProductSeq()     the counter ids are drawn from; ids are FormatID(n)
//
// The document and stock share a hash tag and change together in one Lua call. The index lives
// in another slot, so it changes in a separate command, ordered so a crash in between never
// leaves an index entry whose document is missing in a way that breaks reads: a create writes
// the document before adding the id, a delete removes the id before the document, and List skips
// ids whose document is gone.
//
// A Store is safe for concurrent use. It does not own the client.
type Store struct {
	c   rueidis.Client
	put *rueidis.Lua
	del *rueidis.Lua
}

//go:embed put.lua
var putScript string

//go:embed delete.lua
var deleteScript string

// NewStore returns a Store working through c.
func NewStore(c rueidis.Client) *Store {
	return &Store{c: c, put: rueidis.NewLuaScript(putScript), del: rueidis.NewLuaScript(deleteScript)}
}

// FormatID renders the n-th product id: zero-padded to 8 digits, so that lexicographic order
// (the index's order) is numeric order up to 99,999,999 products.
func FormatID(n int64) string { return fmt.Sprintf("%08d", n) }

// Attempts before giving up: create retries when a drawn id is somehow taken (the counter was
// reset under existing products); update retries its compare-and-set under concurrent writes.
const (
	createAttempts = 3
	updateAttempts = 20
)

// backoff waits a random 0..attempt ms before a retried compare-and-set, so colliding writers
// spread out instead of colliding again in lock step.
func backoff(ctx context.Context, attempt int) error {
	t := time.NewTimer(time.Duration(mrand.Int64N(int64(attempt)*int64(time.Millisecond) + 1)))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return unavailable("update retry", ctx.Err())
	}
}

func unavailable(op string, err error) error {
	return fmt.Errorf("%w: %s: %v", ErrUnavailable, op, err)
}

// Create validates in (name, price and stock are required), stores a new product under a fresh
// id and returns it.
func (s *Store) Create(ctx context.Context, in product.Input) (Product, error) {
	var d product.Doc
	stock, err := in.Apply(&d, true)
	if err != nil {
		return Product{}, err
	}
	for range createAttempts {
		n, err := s.c.Do(ctx, s.c.B().Incr().Key(keyspace.ProductSeq()).Build()).AsInt64()
		if err != nil {
			return Product{}, unavailable("draw product id", err)
		}
		d.ID = FormatID(n)
		status, st, err := s.runPut(ctx, d.ID, "create", nil, product.Marshal(d), stock)
		if err != nil {
			return Product{}, err
		}
		if status == "exists" {
			continue
		}
		add := s.c.B().Zadd().Key(keyspace.ProductIndex()).ScoreMember().ScoreMember(0, d.ID).Build()
		if err := s.c.Do(ctx, add).Error(); err != nil {
			// Best effort: do not leave a product that no listing shows behind a failed create.
			_, _ = s.runDelete(ctx, d.ID)
			return Product{}, unavailable("index product", err)
		}
		return Product{Doc: d, Stock: st}, nil
	}
	return Product{}, fmt.Errorf("catalog: %d drawn ids were already taken: is %s behind the stored products?", createAttempts, keyspace.ProductSeq())
}

// Update applies the fields set in in to the product id (a partial update) and returns the
// result. It is a compare-and-set on the stored document, retried under concurrent updates.
func (s *Store) Update(ctx context.Context, id string, in product.Input) (Product, error) {
	for attempt := range updateAttempts {
		if attempt > 0 {
			if err := backoff(ctx, attempt); err != nil {
				return Product{}, err
			}
		}
		cur, err := s.c.Do(ctx, s.c.B().Get().Key(keyspace.Product(id)).Build()).AsBytes()
		if kv.IsNil(err) {
			return Product{}, ErrNotFound
		}
		if err != nil {
			return Product{}, unavailable("read product", err)
		}
		d, err := decodeDoc(id, cur)
		if err != nil {
			return Product{}, err
		}
		stock, err := in.Apply(&d, false)
		if err != nil {
			return Product{}, err
		}
		status, st, err := s.runPut(ctx, id, "update", cur, product.Marshal(d), stock)
		switch {
		case err != nil:
			return Product{}, err
		case status == "not_found":
			return Product{}, ErrNotFound
		case status == "conflict":
			continue
		}
		return Product{Doc: d, Stock: st}, nil
	}
	return Product{}, ErrConflict
}

// Delete removes the product id: first from the index, then its document and stock.
func (s *Store) Delete(ctx context.Context, id string) error {
	rem := s.c.B().Zrem().Key(keyspace.ProductIndex()).Member(id).Build()
	listed, err := s.c.Do(ctx, rem).AsInt64()
	if err != nil {
		return unavailable("unindex product", err)
	}
	existed, err := s.runDelete(ctx, id)
	if err != nil {
		return err
	}
	if listed == 0 && !existed {
		return ErrNotFound
	}
	return nil
}

// Get returns the product id.
func (s *Store) Get(ctx context.Context, id string) (Product, error) {
	res := s.c.DoMulti(ctx,
		s.c.B().Get().Key(keyspace.Product(id)).Build(),
		s.c.B().Get().Key(keyspace.ProductStock(id)).Build())
	p, ok, err := readProduct(id, res[0], res[1])
	if err != nil {
		return Product{}, err
	}
	if !ok {
		return Product{}, ErrNotFound
	}
	return p, nil
}

// AppendPublicMany appends to dst the public JSON of the products among ids that exist, in the
// order of ids, separated by commas, and returns it. It reads through the client-side cache
// (kept coherent by invalidation; two GETs per id in one pipelined round, none on a hit) and
// renders the stored documents as they are, without decoding them: the batch read the cart and
// order services price whole carts with.
func (s *Store) AppendPublicMany(ctx context.Context, dst []byte, ids []string) ([]byte, error) {
	cmds := make([]rueidis.CacheableTTL, 0, 2*len(ids))
	for _, id := range ids {
		cmds = append(cmds,
			rueidis.CT(s.c.B().Get().Key(keyspace.Product(id)).Cache(), time.Hour),
			rueidis.CT(s.c.B().Get().Key(keyspace.ProductStock(id)).Cache(), time.Hour))
	}
	res := s.c.DoMultiCache(ctx, cmds...)
	n := 0
	for i, id := range ids {
		raw, err := res[2*i].AsBytes()
		if kv.IsNil(err) {
			continue
		}
		if err != nil {
			return nil, unavailable("read product", err)
		}
		st, err := res[2*i+1].ToString()
		if err != nil && !kv.IsNil(err) {
			return nil, unavailable("read stock", err)
		}
		if n > 0 {
			dst = append(dst, ',')
		}
		if dst, err = product.AppendPublic(dst, raw, product.ParseStock(st)); err != nil {
			return nil, fmt.Errorf("catalog: stored product %s: %w", id, err)
		}
		n++
	}
	return dst, nil
}

// List returns up to limit products in id order, starting after the id after ("" starts at the
// beginning). Ids whose document is missing (a write interrupted by a crash) are skipped, so a
// page may hold fewer than limit items while Next is still set.
func (s *Store) List(ctx context.Context, after string, limit int) (Page, error) {
	if limit < 1 {
		return Page{}, fmt.Errorf("catalog: list limit %d: want at least 1", limit)
	}
	lo := "-"
	if after != "" {
		lo = "(" + after
	}
	// One id more than asked tells whether another page follows without an empty last page.
	ids, err := s.c.Do(ctx, s.c.B().Zrange().Key(keyspace.ProductIndex()).Min(lo).Max("+").
		Bylex().Limit(0, int64(limit)+1).Build()).AsStrSlice()
	if err != nil {
		return Page{}, unavailable("read product index", err)
	}
	var page Page
	if len(ids) > limit {
		ids = ids[:limit]
		page.Next = ids[len(ids)-1]
	}
	if len(ids) == 0 {
		return page, nil
	}
	cmds := make(rueidis.Commands, 0, 2*len(ids))
	for _, id := range ids {
		cmds = append(cmds,
			s.c.B().Get().Key(keyspace.Product(id)).Build(),
			s.c.B().Get().Key(keyspace.ProductStock(id)).Build())
	}
	res := s.c.DoMulti(ctx, cmds...)
	page.Items = make([]Product, 0, len(ids))
	for i, id := range ids {
		p, ok, err := readProduct(id, res[2*i], res[2*i+1])
		if err != nil {
			return Page{}, err
		}
		if ok {
			page.Items = append(page.Items, p)
		}
	}
	return page, nil
}

// Count returns how many ids the index holds.
func (s *Store) Count(ctx context.Context) (int64, error) {
	n, err := s.c.Do(ctx, s.c.B().Zcard().Key(keyspace.ProductIndex()).Build()).AsInt64()
	if err != nil {
		return 0, unavailable("count products", err)
	}
	return n, nil
}

// Ping reports whether the store answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.c.Do(ctx, s.c.B().Ping().Build()).Error(); err != nil {
		return unavailable("ping", err)
	}
	return nil
}

// runPut runs put.lua; expected is the document an update read (nil for a create) and stock is
// nil to keep the stored stock. It returns the script's status and the stock after the write.
func (s *Store) runPut(ctx context.Context, id, mode string, expected, doc []byte, stock *int64) (string, int64, error) {
	st := ""
	if stock != nil {
		st = strconv.FormatInt(*stock, 10)
	}
	res, err := s.put.Exec(ctx, s.c,
		[]string{keyspace.Product(id), keyspace.ProductStock(id)},
		[]string{mode, string(expected), string(doc), st}).ToArray()
	if err != nil {
		return "", 0, unavailable("write product", err)
	}
	if len(res) == 0 {
		return "", 0, errors.New("catalog: put.lua returned an empty reply")
	}
	status, err := res[0].ToString()
	if err != nil {
		return "", 0, fmt.Errorf("catalog: put.lua status: %w", err)
	}
	if status != "ok" {
		return status, 0, nil
	}
	if len(res) < 2 {
		return "", 0, errors.New("catalog: put.lua returned ok without the stock")
	}
	n, err := res[1].AsInt64()
	if err != nil {
		return "", 0, fmt.Errorf("catalog: put.lua stock: %w", err)
	}
	return status, n, nil
}

// runDelete runs delete.lua and reports whether the document existed.
func (s *Store) runDelete(ctx context.Context, id string) (bool, error) {
	n, err := s.del.Exec(ctx, s.c, []string{keyspace.Product(id), keyspace.ProductStock(id)}, nil).AsInt64()
	if err != nil {
		return false, unavailable("delete product", err)
	}
	return n > 0, nil
}

// readProduct turns the replies of GET document and GET stock into a product; ok is false when
// the document is missing.
func readProduct(id string, docRes, stockRes rueidis.RedisResult) (p Product, ok bool, err error) {
	raw, err := docRes.AsBytes()
	if kv.IsNil(err) {
		return Product{}, false, nil
	}
	if err != nil {
		return Product{}, false, unavailable("read product", err)
	}
	d, err := decodeDoc(id, raw)
	if err != nil {
		return Product{}, false, err
	}
	st, err := stockRes.ToString()
	if err != nil && !kv.IsNil(err) {
		return Product{}, false, unavailable("read stock", err)
	}
	return Product{Doc: d, Stock: product.ParseStock(st)}, true, nil
}

func decodeDoc(id string, raw []byte) (product.Doc, error) {
	var d product.Doc
	if err := json.Unmarshal(raw, &d); err != nil {
		return product.Doc{}, fmt.Errorf("catalog: stored product %s is not valid JSON: %w", id, err)
	}
	d.ID = id
	return d, nil
}
