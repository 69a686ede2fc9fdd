package compare

import (
	"context"
	"fmt"
	"math"
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
// at most 64 MiB with 10,000), and the nginx + Lua + lrucache peer's with the same products read
// through it.
type Memory struct {
	Products int     `json:"products"`
	Reads    int64   `json:"reads"`
	Failed   int64   `json:"failed"`
	RSSMiB   float64 `json:"rss_mib"`
	Seconds  float64 `json:"seconds"`
	// BeforeMiB is the edge's resident memory before the first of these reads.
	BeforeMiB float64 `json:"before_mib"`
	// CPUPerReadUS is the edge's and the store's CPU over the reads, per read.
	CPUPerReadUS float64 `json:"cpu_per_read_us,omitempty"`
	// Peer is the same for nginx (master + worker PSS: their resident memory with the pages they
	// share counted once; nginx's and the store's CPU); nil when the peer did not run. RSSRatio is
	// the edge's RSS over nginx's.
	Peer     *MemoryPeer `json:"peer,omitempty"`
	RSSRatio float64     `json:"rss_ratio_to_peer,omitempty"`
}

// MemoryPeer is the peer's side of a Memory row.
type MemoryPeer struct {
	Reads        int64   `json:"reads"`
	Failed       int64   `json:"failed"`
	RSSMiB       float64 `json:"rss_mib"`
	BeforeMiB    float64 `json:"before_mib"`
	CacheItems   int     `json:"cache_items"`
	CPUPerReadUS float64 `json:"cpu_per_read_us,omitempty"`
}

// memory writes products m0000001.. into the store and reads each once through the edge (so each
// is rendered and cached), then reads the edge's VmRSS; then the same reads through the peer's
// lrucache port and nginx's memory (master and worker PSS); once per count in MemoryProducts, in
// increasing order, on the same edge and nginx.
func (r *runner) memory(ctx context.Context) {
	if len(r.cfg.MemoryProducts) == 0 || r.edgeBase == "" {
		return
	}
	pid, ok := r.pidOf["edge"]
	if !ok {
		return
	}
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
		t0 := r.ticksOf("edge", "store")
		reads, failed := readProducts(ctx, r.edgeBase, n)
		m := Memory{Products: n, Reads: reads, Failed: failed, RSSMiB: cpustat.RSSMiB(pid), BeforeMiB: before,
			Seconds: time.Since(start).Seconds(), CPUPerReadUS: perRead(r.ticksOf("edge", "store")-t0, reads)}
		r.logf("memory: %d products cached: edge RSS %.1f MiB (%.1f before; %d reads, %d failed, %.1fs)", n, m.RSSMiB, before, m.Reads, m.Failed, m.Seconds)
		if r.peer != nil {
			pp := r.peer.Pid()
			p := &MemoryPeer{BeforeMiB: cpustat.TreePSSMiB(pp), CacheItems: r.peerCacheItems}
			t0 := r.ticksOf("nginx", "store")
			p.Reads, p.Failed = readProducts(ctx, r.peer.LRUBase, n)
			p.CPUPerReadUS = perRead(r.ticksOf("nginx", "store")-t0, p.Reads)
			p.RSSMiB = cpustat.TreePSSMiB(pp)
			m.Peer = p
			if p.RSSMiB > 0 {
				m.RSSRatio = math.Round(m.RSSMiB/p.RSSMiB*100) / 100
			}
			r.logf("memory: %d products read through nginx + lrucache: RSS %.1f MiB (%.1f before; %d reads, %d failed)", n, p.RSSMiB, p.BeforeMiB, p.Reads, p.Failed)
		}
		r.rep.Memory = append(r.rep.Memory, m)
	}
}

// ticksOf is the CPU clock ticks used so far by the named processes (and their children).
func (r *runner) ticksOf(names ...string) uint64 {
	var t uint64
	for _, n := range names {
		if pid, ok := r.pidOf[n]; ok {
			t += cpustat.ProcTicks(pid)
		}
	}
	return t
}

// perRead is ticks per read in µs, 0 without reads.
func perRead(ticks uint64, reads int64) float64 {
	if reads <= 0 {
		return 0
	}
	us := float64(ticks) * 1e6 / float64(cpustat.TicksPerSecond) / float64(reads)
	return math.Round(us*10) / 10
}

// readProducts reads products m0000001..n once each through base with 32 connections and
// returns the reads and those that failed.
func readProducts(ctx context.Context, base string, n int) (int64, int64) {
	client := &fasthttp.Client{MaxConnsPerHost: 64, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second}
	host := strings.TrimPrefix(base, "http://")
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
	client.CloseIdleConnections()
	return reads.Load(), failed.Load()
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
