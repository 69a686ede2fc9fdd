package compare

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
	"github.com/valyala/fasthttp"

	"flashedge/bench/internal/cpustat"
	"flashedge/shared/keyspace"
	"flashedge/shared/product"
)

// Memory is the edge's resident memory with a number of distinct products cached (issue 13:
// at most 64 MiB with 10,000).
type Memory struct {
	Products int     `json:"products"`
	Reads    int64   `json:"reads"`
	Failed   int64   `json:"failed"`
	RSSMiB   float64 `json:"rss_mib"`
	Seconds  float64 `json:"seconds"`
	// BeforeMiB is the edge's resident memory before the first of these reads.
	BeforeMiB float64 `json:"before_mib"`
}

// memory writes products m0000001.. into the store and reads each once through the edge (so each
// is rendered and cached), then reads the edge's VmRSS; once per count in MemoryProducts, in
// increasing order, on the same edge.
func (r *runner) memory(ctx context.Context) {
	if len(r.cfg.MemoryProducts) == 0 || r.edgeBase == "" {
		return
	}
	pid, ok := r.pidOf["edge"]
	if !ok {
		return
	}
	client := &fasthttp.Client{MaxConnsPerHost: 64, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second}
	host := strings.TrimPrefix(r.edgeBase, "http://")
	seeded := 0
	for _, n := range r.cfg.MemoryProducts {
		before := cpustat.RSSMiB(pid)
		r.logf("memory: writing %d products to the store and reading each through the edge", n)
		if err := r.seedProducts(ctx, seeded, n); err != nil {
			r.note("memory: seeding %d products: %v", n, err)
			return
		}
		seeded = n
		start := time.Now()
		var reads, failed atomic.Int64
		var next atomic.Int64
		var wg sync.WaitGroup
		for range 32 {
			wg.Go(func() {
				req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
				defer fasthttp.ReleaseRequest(req)
				defer fasthttp.ReleaseResponse(resp)
				for ctx.Err() == nil {
					i := next.Add(1)
					if i > int64(n) {
						return
					}
					req.SetRequestURI("http://" + host + "/api/v1/products/" + memID(int(i)))
					if err := client.Do(req, resp); err != nil || resp.StatusCode() != 200 {
						failed.Add(1)
					}
					reads.Add(1)
				}
			})
		}
		wg.Wait()
		m := Memory{Products: n, Reads: reads.Load(), Failed: failed.Load(), RSSMiB: cpustat.RSSMiB(pid), BeforeMiB: before,
			Seconds: time.Since(start).Seconds()}
		r.rep.Memory = append(r.rep.Memory, m)
		r.logf("memory: %d products cached: edge RSS %.1f MiB (%.1f before; %d reads, %d failed, %.1fs)", n, m.RSSMiB, before, m.Reads, m.Failed, m.Seconds)
	}
}

func memID(i int) string { return fmt.Sprintf("m%07d", i) }

// seedProducts writes products from+1..to (documents of the demo's size, with stock).
func (r *runner) seedProducts(ctx context.Context, from, to int) error {
	const batch = 1000
	for lo := from + 1; lo <= to; lo += batch {
		cmds := make(rueidis.Commands, 0, 2*batch)
		for i := lo; i < lo+batch && i <= to; i++ {
			id := memID(i)
			doc := product.Marshal(product.Doc{ID: id, Name: "Sản phẩm " + id, Description: "Mô tả sản phẩm " + id + ": chất liệu bền, bảo hành 12 tháng, giao hàng toàn quốc.",
				Price: int64(1000 + i), Currency: "VND", Image: "/img/placeholder.svg"})
			cmds = append(cmds, r.store.B().Set().Key(keyspace.Product(id)).Value(string(doc)).Build(),
				r.store.B().Set().Key(keyspace.ProductStock(id)).Value("100").Build())
		}
		for _, res := range r.store.DoMulti(ctx, cmds...) {
			if err := res.Error(); err != nil {
				return err
			}
		}
	}
	return nil
}
