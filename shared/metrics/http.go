package metrics

import (
	"encoding/json"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	vm "github.com/VictoriaMetrics/metrics"
	"github.com/fasthttp/router"
	"github.com/valyala/fasthttp"
)

// RouteOther is the route label of requests that matched no route (404, 405) or whose route
// could not be told, and of every route past MaxRoutes.
const RouteOther = "other"

// MaxRoutes bounds the number of distinct route labels a Registry keeps; later routes count as
// RouteOther. Route labels must be patterns, so real services stay far below it.
const MaxRoutes = 256

// RouteFunc names the route of a request for the route label. It must return a route PATTERN
// ("/api/v1/products/{id}"), never the raw path, so that the number of series stays bounded.
// It runs after the handler, on the request's goroutine, and must not allocate on hot paths:
// return constants or strings the router already holds.
type RouteFunc func(ctx *fasthttp.RequestCtx) string

// routeKey is the user-value key under which Tag stores a route.
type routeKey struct{}

// Tag returns h with its route label fixed to pattern: Instrument's default RouteFunc reads it.
// It costs no allocation per request; the router's SaveMatchedRoutePath costs two (it boxes its
// key and the path into interfaces on every request), which only matters on hot routes. Use it
// around handlers given to the router:
//
//	r.GET("/api/v1/orders/{id}", metrics.Tag("/api/v1/orders/{id}", h))
func Tag(pattern string, h fasthttp.RequestHandler) fasthttp.RequestHandler {
	p := new(string)
	*p = pattern
	return func(ctx *fasthttp.RequestCtx) {
		ctx.SetUserValue(routeKey{}, p)
		h(ctx)
	}
}

// SetRoute sets the route label of the current request to *pattern, for handlers that answer
// before any router (the edge's hot product path). pattern must point to memory that outlives
// the request (a package-level or long-lived string); storing a pointer costs no allocation.
func SetRoute(ctx *fasthttp.RequestCtx, pattern *string) {
	ctx.SetUserValue(routeKey{}, pattern)
}

// Route is the default RouteFunc: the pattern set by Tag or SetRoute, else the pattern the
// fasthttp router saved (when its SaveMatchedRoutePath is true), else RouteOther.
func Route(ctx *fasthttp.RequestCtx) string {
	if p, ok := ctx.UserValue(routeKey{}).(*string); ok && p != nil {
		return *p
	}
	if s, ok := ctx.UserValue(router.MatchedRoutePathParam).(string); ok && s != "" {
		return s
	}
	return RouteOther
}

const (
	minCode = 100
	maxCode = 599
)

// routeStats are the counters and histogram of one route label. Counters per status code are
// created the first time that code is seen, then found by indexing: no map, no string building.
type routeStats struct {
	route string
	hist  *Histogram
	codes [maxCode - minCode + 2]atomic.Pointer[vm.Counter] // last slot: codes out of range
}

// routeFor returns the stats of route, creating them when new.
func (r *Registry) routeFor(route string) *routeStats {
	if rs := (*r.routes.Load())[route]; rs != nil {
		return rs
	}
	r.routesMu.Lock()
	defer r.routesMu.Unlock()
	old := *r.routes.Load()
	if rs := old[route]; rs != nil {
		return rs
	}
	if len(old) >= MaxRoutes && r.other != nil {
		return r.other
	}
	route = strings.Clone(route) // the caller's string may be borrowed from a request
	rs := &routeStats{route: route, hist: newHistogram(r.prefix+"request_duration_seconds", `route="`+escapeLabel(route)+`"`, r.buckets)}
	m := make(map[string]*routeStats, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	m[route] = rs
	r.routes.Store(&m)
	r.routeOrder = append(r.routeOrder, rs)
	return rs
}

// routeList returns the route stats sorted by route.
func (r *Registry) routeList() []*routeStats {
	r.routesMu.Lock()
	out := append([]*routeStats(nil), r.routeOrder...)
	r.routesMu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].route < out[j].route })
	return out
}

func codeSlot(code int) int {
	if code < minCode || code > maxCode {
		return maxCode - minCode + 1
	}
	return code - minCode
}

func (r *Registry) counterFor(rs *routeStats, code int) *vm.Counter {
	slot := &rs.codes[codeSlot(code)]
	if c := slot.Load(); c != nil {
		return c
	}
	label := "other"
	if code >= minCode && code <= maxCode {
		label = strconv.Itoa(code)
	}
	c := r.set.GetOrCreateCounter(r.prefix + `requests_total{route="` + escapeLabel(rs.route) + `",code="` + label + `"}`)
	slot.Store(c)
	return c
}

// Instrument counts every request handled by next in flashedge_<service>_requests_total
// {route,code} and times it in flashedge_<service>_request_duration_seconds{route} and in the
// latency window of the JSON summary. route names the route after next returns; nil means
// Route. Put it outermost, so that the time covers every middleware.
//
// The time starts when the fasthttp server handed the request over (ctx.Time(), which the
// server reads anyway), or when Instrument is entered for a ctx that did not come from a server.
// Per request it then costs one monotonic clock read, a map lookup by string and four atomic adds, and
// makes no allocation once a (route, code) pair has been seen.
func (r *Registry) Instrument(next fasthttp.RequestHandler, route RouteFunc) fasthttp.RequestHandler {
	if route == nil {
		route = Route
	}
	return func(ctx *fasthttp.RequestCtx) {
		start := ctx.Time()
		if start.IsZero() {
			start = time.Now()
		}
		next(ctx)
		// Since reads only the monotonic clock, about half the cost of Now on a VM; the
		// latency window takes its slot from the start time, which is close enough.
		r.observe(route(ctx), ctx.Response.StatusCode(), time.Since(start), start)
	}
}

// RouteHandle records the requests of one route without looking the route up: a hot path that
// knows its route at start-up takes a handle then and calls Observe per request instead of going
// through Instrument (which finds the route by its label on every request). Safe for concurrent
// use.
type RouteHandle struct {
	r  *Registry
	rs *routeStats
}

// Handle returns the handle of route (a pattern, as for Tag).
func (r *Registry) Handle(route string) *RouteHandle {
	return &RouteHandle{r: r, rs: r.routeFor(route)}
}

// Observe records one request of the handle's route that ended with code after d; start is when
// it began (it picks the latency window's slot). It makes no allocation once code was seen.
func (h *RouteHandle) Observe(code int, d time.Duration, start time.Time) {
	h.r.counterFor(h.rs, code).Inc()
	h.rs.hist.Observe(d)
	h.r.lat.record(d, start)
}

// Observe records one request as Instrument does, for servers that do not go through it.
func (r *Registry) Observe(route string, code int, d time.Duration) {
	r.observe(route, code, d, time.Now())
}

func (r *Registry) observe(route string, code int, d time.Duration, now time.Time) {
	rs := r.routeFor(route)
	r.counterFor(rs, code).Inc()
	rs.hist.Observe(d)
	r.lat.record(d, now)
}

// Summary is the seed's monitoring summary, served at /metrics.json.
//
// Success means a status below 400; failed is everything else and splits into client errors
// (4xx: bad input, rate limited, sold out) and server errors (5xx: the service or a dependency
// failed). TotalRequests == SuccessRequests + FailedRequests and FailedRequests ==
// ClientErrors + ServerErrors in every snapshot.
type Summary struct {
	Service         string  `json:"service"`
	TotalRequests   uint64  `json:"total_requests"`
	SuccessRequests uint64  `json:"success_requests"`
	FailedRequests  uint64  `json:"failed_requests"`
	ClientErrors    uint64  `json:"client_errors"`
	ServerErrors    uint64  `json:"server_errors"`
	Latency         Latency `json:"latency_ms"`
	UptimeSeconds   float64 `json:"uptime_seconds"`
	// StartedAt is when New was called, RFC 3339.
	StartedAt time.Time `json:"started_at"`
}

// Latency holds request latency percentiles in milliseconds over the last WindowSeconds
// (about a minute), each within ~3% of the true value; zero when no request was seen.
type Latency struct {
	P50           float64 `json:"p50"`
	P90           float64 `json:"p90"`
	P99           float64 `json:"p99"`
	P999          float64 `json:"p999"`
	Samples       uint64  `json:"samples"`
	WindowSeconds float64 `json:"window_seconds"`
}

// Summary returns the counts since start and the recent latency percentiles.
func (r *Registry) Summary() Summary {
	now := time.Now()
	s := Summary{Service: r.service, StartedAt: r.started, UptimeSeconds: now.Sub(r.started).Seconds()}
	for _, rs := range r.routeList() {
		for i := range rs.codes {
			c := rs.codes[i].Load()
			if c == nil {
				continue
			}
			n := c.Get()
			switch code := i + minCode; {
			case code < 400:
				s.SuccessRequests += n
			case code < 500:
				s.ClientErrors += n
			default: // 5xx and out-of-range codes
				s.ServerErrors += n
			}
		}
	}
	s.FailedRequests = s.ClientErrors + s.ServerErrors
	s.TotalRequests = s.SuccessRequests + s.FailedRequests
	q, n := r.lat.quantiles(now, []float64{0.5, 0.9, 0.99, 0.999})
	s.Latency = Latency{P50: q[0], P90: q[1], P99: q[2], P999: q[3], Samples: n,
		WindowSeconds: (windowSlots * slotLen).Seconds()}
	return s
}

// MetricsHandler answers GET /metrics in the Prometheus text format (version 0.0.4).
func (r *Registry) MetricsHandler(ctx *fasthttp.RequestCtx) {
	ctx.SetContentType("text/plain; version=0.0.4; charset=utf-8")
	ctx.Response.Header.Set(fasthttp.HeaderCacheControl, "no-store")
	ctx.Response.ResetBody()
	r.WritePrometheus(ctx.Response.BodyWriter())
}

// SummaryHandler answers GET /metrics.json with Summary as JSON.
func (r *Registry) SummaryHandler(ctx *fasthttp.RequestCtx) {
	body, err := json.Marshal(r.Summary())
	if err != nil { // a struct of numbers and a time: cannot happen
		ctx.SetStatusCode(fasthttp.StatusInternalServerError)
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`{"error":{"code":"internal","message":"summary could not be encoded"}}`)
		return
	}
	ctx.SetContentType("application/json")
	ctx.Response.Header.Set(fasthttp.HeaderCacheControl, "no-store")
	ctx.SetBody(body)
}

// Register adds GET /metrics and GET /metrics.json to rt.
func (r *Registry) Register(rt *router.Router) {
	rt.GET("/metrics", Tag("/metrics", r.MetricsHandler))
	rt.GET("/metrics.json", Tag("/metrics.json", r.SummaryHandler))
}
