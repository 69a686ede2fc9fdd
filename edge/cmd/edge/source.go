package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/redis/rueidis"
	"github.com/valyala/fasthttp"

	"flashedge/edge/internal/dashboard"
	"flashedge/edge/internal/flashgate"
	"flashedge/edge/internal/productcache"
	"flashedge/shared/keyspace"
	"flashedge/shared/metrics"
	"flashedge/shared/upstream"
)

// edgeSource feeds the dashboard and the edge's domain metrics from the parts run wires.
type edgeSource struct {
	reg        *metrics.Registry
	products   *productcache.Cache
	gate       *flashgate.Gate
	store      rueidis.Client
	pools      []*upstream.Pool
	order      *upstream.Pool
	adminToken string

	mu       sync.Mutex // guards the reused read of the sales
	sales    []dashboard.Sale
	salesErr error
	salesAt  time.Time
}

func (s *edgeSource) Traffic() metrics.Summary { return s.reg.Summary() }

// Cache reports the three layers a product read can end in: a rendered body (layer "body", invcache), a raw
// value in rueidis' client-side cache, or a round trip to the store.
func (s *edgeSource) Cache() []dashboard.CacheLayer {
	st := s.products.Stats()
	return []dashboard.CacheLayer{
		{Layer: "body", Hits: st.Hits, Misses: st.Misses},
		{Layer: "rueidis", Hits: st.StoreHits, Misses: st.StoreMisses},
		{Layer: "store", Hits: st.StoreMisses},
	}
}

func (s *edgeSource) Backends() []dashboard.Backend {
	var out []dashboard.Backend
	for _, p := range s.pools {
		out = append(out, dashboard.Backends(p.Name(), p.Snapshot())...)
	}
	return out
}

// maxDashboardSales bounds the sales the dashboard shows (and the ledger reads it costs).
const maxDashboardSales = 8

// salesReuse is how long one read of the sales serves every dashboard that asks: open pages
// (or anyone fetching data.json) cannot multiply the ledger reads sent to the order service.
const salesReuse = time.Second

// Sales returns the latest sales' ledgers, read from the order service (which owns them) at most
// once per salesReuse.
func (s *edgeSource) Sales(ctx context.Context) ([]dashboard.Sale, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if time.Since(s.salesAt) < salesReuse {
		return s.sales, s.salesErr
	}
	s.sales, s.salesErr = s.readSales(ctx)
	s.salesAt = time.Now()
	return s.sales, s.salesErr
}

// readSales reads the latest sales from the index (latest start first), their states from the
// gate's sales, and their ledgers from the order service.
func (s *edgeSource) readSales(ctx context.Context) ([]dashboard.Sale, error) {
	ids, err := s.store.Do(ctx, s.store.B().Zrange().Key(keyspace.Sales()).Min("+inf").Max("-inf").
		Byscore().Rev().Limit(0, maxDashboardSales).Build()).AsStrSlice()
	if err != nil {
		return nil, err
	}
	out := make([]dashboard.Sale, 0, len(ids))
	for _, id := range ids {
		state, exists, err := s.gate.SaleState(id)
		if err != nil {
			return out, err
		}
		if !exists {
			continue
		}
		l, err := s.ledger(ctx, id)
		if err != nil {
			return out, err
		}
		out = append(out, dashboard.Sale{
			ID: id, State: state, Initial: l.Initial, Shards: l.Shards, Admitted: l.Admitted, Queued: l.Queued,
			Won: l.Won, Ordered: l.Ordered, Expired: l.Expired, Returned: l.ExpiredReturned,
		})
	}
	return out, nil
}

type ledger struct {
	Initial         int64   `json:"initial"`
	Shards          []int64 `json:"shards"`
	Admitted        int64   `json:"admitted"`
	Queued          int64   `json:"queued"`
	Won             int64   `json:"won"`
	Ordered         int64   `json:"ordered"`
	Expired         int64   `json:"expired"`
	ExpiredReturned int64   `json:"expired_returned"`
}

func (s *edgeSource) ledger(ctx context.Context, id string) (ledger, error) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("/api/v1/admin/flash-sales/" + id + "/ledger")
	req.Header.Set(fasthttp.HeaderAuthorization, "Bearer "+s.adminToken)
	var l ledger
	if err := s.order.Do(ctx, req, resp); err != nil {
		return l, err
	}
	if resp.StatusCode() != fasthttp.StatusOK {
		return l, fmt.Errorf("ledger of %s: order service answered %d", id, resp.StatusCode())
	}
	return l, json.Unmarshal(resp.Body(), &l)
}

// register adds the edge's domain metrics, read at scrape time from the counters the caches,
// the gate and the pools keep anyway: nothing is added to the request path.
func (s *edgeSource) register() {
	s.reg.CounterFamily("flashedge_edge_cache_hits_total", []string{"layer"}, func(emit metrics.Emit) {
		for _, l := range s.Cache() {
			emit(float64(l.Hits), l.Layer)
		}
	})
	s.reg.CounterFamily("flashedge_edge_cache_misses_total", []string{"layer"}, func(emit metrics.Emit) {
		for _, l := range s.Cache() {
			emit(float64(l.Misses), l.Layer)
		}
	})
	s.reg.CounterFamily("flashedge_edge_invalidations_total", nil, func(emit metrics.Emit) {
		emit(float64(s.products.Stats().Invalidations))
	})
	s.reg.CounterFamily("flashedge_edge_rejections_total", []string{"reason"}, func(emit metrics.Emit) {
		for reason, n := range s.gate.Stats().Rejected {
			emit(float64(n), reason)
		}
	})
	s.reg.CounterFamily("flashedge_edge_shed_total", []string{"backend"}, func(emit metrics.Emit) {
		for _, p := range s.pools {
			emit(float64(p.Shed()), p.Name())
		}
	})
	// Batches sent to a backend, and the requests they carried: their ratio is the mean batch.
	s.reg.CounterFamily("flashedge_edge_batches_total", []string{"backend"}, func(emit metrics.Emit) {
		for _, p := range s.pools {
			if n, _, on := p.Batched(); on {
				emit(float64(n), p.Name())
			}
		}
	})
	s.reg.CounterFamily("flashedge_edge_batched_requests_total", []string{"backend"}, func(emit metrics.Emit) {
		for _, p := range s.pools {
			if _, r, on := p.Batched(); on {
				emit(float64(r), p.Name())
			}
		}
	})
	s.reg.CounterFamily("flashedge_edge_queue_expired_total", []string{"backend"}, func(emit metrics.Emit) {
		for _, p := range s.pools {
			emit(float64(p.Expired()), p.Name())
		}
	})
	s.reg.GaugeFamily("flashedge_edge_inflight_limit", []string{"backend"}, func(emit metrics.Emit) {
		for _, p := range s.pools {
			emit(float64(p.Limit()), p.Name())
		}
	})
	s.reg.GaugeFamily("flashedge_edge_inflight", []string{"backend"}, func(emit metrics.Emit) {
		for _, p := range s.pools {
			emit(float64(p.InFlight()), p.Name())
		}
	})
	s.reg.GaugeFamily("flashedge_edge_queued", []string{"backend"}, func(emit metrics.Emit) {
		for _, p := range s.pools {
			emit(float64(p.Queued()), p.Name())
		}
	})
	s.reg.GaugeFamily("flashedge_edge_breaker_state", []string{"backend", "addr"}, func(emit metrics.Emit) {
		for _, p := range s.pools {
			for _, r := range p.Snapshot() {
				emit(metrics.BreakerValue(r.Breaker), p.Name(), r.Addr)
			}
		}
	})
	s.reg.GaugeFamily("flashedge_edge_backend_healthy", []string{"backend", "addr"}, func(emit metrics.Emit) {
		for _, p := range s.pools {
			for _, r := range p.Snapshot() {
				v := 0.0
				if r.Healthy {
					v = 1
				}
				emit(v, p.Name(), r.Addr)
			}
		}
	})
}
