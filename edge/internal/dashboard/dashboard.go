// Package dashboard serves the edge's live dashboard: a self-contained page at GET /dashboard
// (HTML, CSS and JS embedded in the binary; no outside service, no CDN) that polls
// GET /dashboard/data.json every 1.5 s and draws request rate, error rate, latency, cache hit
// ratio per layer, backend health and breakers, and the progress of every flash sale.
//
// The figures come from a Source the edge implements over its metrics registry, caches,
// upstream pools and the store. Rates are computed in the page from successive samples, so the
// server keeps no state per viewer.
package dashboard

import (
	"context"
	"embed"
	"encoding/json"
	"time"

	"github.com/fasthttp/router"
	"github.com/valyala/fasthttp"

	"flashedge/shared/metrics"
	"flashedge/shared/upstream"
)

// Source supplies the figures. Its methods are called once per data request, concurrently when
// several pages are open, so they must be safe for concurrent use and quick; only Sales may
// touch the store.
type Source interface {
	// Traffic returns the edge's request summary: metrics.Registry.Summary.
	Traffic() metrics.Summary
	// Cache returns hits and misses per cache layer (body: the rendered bodies, rueidis, store), since start.
	Cache() []CacheLayer
	// Backends returns every backend replica: one entry per upstream.Pool replica.
	Backends() []Backend
	// Sales returns the flash sales to show. ctx carries the Options.SalesTimeout deadline.
	Sales(ctx context.Context) ([]Sale, error)
}

// CacheLayer counts lookups answered (Hits) and passed on (Misses) by one cache layer.
type CacheLayer struct {
	Layer  string `json:"layer"`
	Hits   uint64 `json:"hits"`
	Misses uint64 `json:"misses"`
}

// Backend is one replica of a backend service as the edge sees it.
type Backend struct {
	// Service is the pool's name: catalog, cart, order.
	Service string `json:"service"`
	upstream.ReplicaState
}

// Backends turns the snapshot of an upstream pool into dashboard rows.
func Backends(service string, states []upstream.ReplicaState) []Backend {
	out := make([]Backend, len(states))
	for i, s := range states {
		out[i] = Backend{Service: service, ReplicaState: s}
	}
	return out
}

// Sale is the progress of one flash sale. Counts are since the sale was created.
type Sale struct {
	ID        string `json:"id"`
	ProductID string `json:"product_id,omitempty"`
	// State is upcoming, live, sold_out or ended (shared/sale).
	State string `json:"state"`
	// Initial is the stock the sale started with; zero when unknown.
	Initial int64 `json:"initial"`
	// Shards is the stock left in each stock shard, in shard order.
	Shards []int64 `json:"shards"`
	// Admitted attempts passed the admission gate; Queued of them are not decided yet.
	Admitted int64 `json:"admitted"`
	Queued   int64 `json:"queued"`
	// Won attempts got a reservation; Ordered reservations were paid; Expired ones lapsed
	// unpaid; Returned units went back to a shard (normally equal to Expired).
	Won      int64 `json:"won"`
	Ordered  int64 `json:"ordered"`
	Expired  int64 `json:"expired"`
	Returned int64 `json:"returned"`
}

// Snapshot is the body of GET /dashboard/data.json.
type Snapshot struct {
	// Now is when the snapshot was taken; the page divides count deltas by its deltas.
	Now      time.Time       `json:"now"`
	Traffic  metrics.Summary `json:"traffic"`
	Cache    []CacheLayer    `json:"cache"`
	Backends []Backend       `json:"backends"`
	Sales    []Sale          `json:"sales"`
	// SalesError says why Sales is empty when the Source failed; the page shows it.
	SalesError string `json:"sales_error,omitempty"`
}

// Options tune the dashboard. The zero value is ready to use.
type Options struct {
	// SalesTimeout bounds Source.Sales. Zero means 2s.
	SalesTimeout time.Duration
}

// Dashboard serves the page, its assets and the data. It is safe for concurrent use.
type Dashboard struct {
	src  Source
	opts Options
	page fasthttp.RequestHandler
}

//go:embed static
var static embed.FS

// New returns a Dashboard reading from src.
func New(src Source, opts Options) *Dashboard {
	if opts.SalesTimeout == 0 {
		opts.SalesTimeout = 2 * time.Second
	}
	d := &Dashboard{src: src, opts: opts}
	d.page = d.asset("static/index.html", "text/html; charset=utf-8")
	return d
}

// Register adds GET /dashboard, its assets under /dashboard/ and GET /dashboard/data.json to
// r, each tagged with its route for the request metrics.
func Register(r *router.Router, src Source, opts Options) {
	d := New(src, opts)
	r.GET("/dashboard", metrics.Tag("/dashboard", d.Page))
	r.GET("/dashboard/app.js", metrics.Tag("/dashboard/app.js", d.asset("static/app.js", "text/javascript; charset=utf-8")))
	r.GET("/dashboard/app.css", metrics.Tag("/dashboard/app.css", d.asset("static/app.css", "text/css; charset=utf-8")))
	r.GET("/dashboard/data.json", metrics.Tag("/dashboard/data.json", d.Data))
}

// contentSecurityPolicy allows nothing but this origin: the page has no inline script or
// style, loads no font or script from elsewhere, and fetches only its own data.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Page answers GET /dashboard.
func (d *Dashboard) Page(ctx *fasthttp.RequestCtx) { d.page(ctx) }

func (d *Dashboard) asset(name, contentType string) fasthttp.RequestHandler {
	body, err := static.ReadFile(name)
	if err != nil {
		panic("dashboard: embedded asset missing: " + name) // the build embeds it; cannot happen
	}
	return func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType(contentType)
		h := &ctx.Response.Header
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set(fasthttp.HeaderCacheControl, "no-cache")
		ctx.SetBody(body)
	}
}

// Data answers GET /dashboard/data.json with a Snapshot.
func (d *Dashboard) Data(ctx *fasthttp.RequestCtx) {
	s := d.Snapshot(context.Background())
	body, err := json.Marshal(s)
	if err != nil {
		ctx.SetStatusCode(fasthttp.StatusInternalServerError)
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`{"error":{"code":"internal","message":"dashboard data could not be encoded"}}`)
		return
	}
	ctx.SetContentType("application/json")
	ctx.Response.Header.Set(fasthttp.HeaderCacheControl, "no-store")
	ctx.SetBody(body)
}

// Snapshot gathers the figures from the Source. Nil slices become empty ones so that the page
// always sees arrays.
func (d *Dashboard) Snapshot(ctx context.Context) Snapshot {
	s := Snapshot{
		Now:      time.Now(),
		Traffic:  d.src.Traffic(),
		Cache:    d.src.Cache(),
		Backends: d.src.Backends(),
	}
	sctx, cancel := context.WithTimeout(ctx, d.opts.SalesTimeout)
	defer cancel()
	sales, err := d.src.Sales(sctx)
	if err != nil {
		s.SalesError = "flash sales unavailable: " + err.Error()
		sales = nil
	}
	if s.Cache == nil {
		s.Cache = []CacheLayer{}
	}
	if s.Backends == nil {
		s.Backends = []Backend{}
	}
	if sales == nil {
		sales = []Sale{}
	}
	for i := range sales {
		if sales[i].Shards == nil {
			sales[i].Shards = []int64{}
		}
	}
	s.Sales = sales
	return s
}
