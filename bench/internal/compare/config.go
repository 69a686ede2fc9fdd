// Package compare is `make bench`'s peer comparison: it starts a private store, the project's
// binaries, the bare fasthttp ceiling and the nginx + Lua peer on loopback, runs wrk against
// each row, checks the answers, and prints and saves the table with the ratios and goals.
package compare

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Row names, in the order they run.
const (
	RowCeiling = "ceiling"
	// RowCeilingPost is the ceiling's POST twin: the sold-out row's request (headers, JSON body)
	// answered 410 with the edge's sold-out body.
	RowCeilingPost = "ceiling-post"
	RowEdgeProduct = "edge-product"
	RowEdgeSoldOut = "edge-soldout"
	// RowEdgeNoMetrics is the product read of a second edge started with FLASHEDGE_METRICS=off:
	// what the per-request metrics cost.
	RowEdgeNoMetrics   = "edge-product-nometrics"
	RowNginxProduct    = "nginx-product"
	RowNginxLRUProduct = "nginx-lru-product"
	RowNginxSoldOut    = "nginx-soldout"
	RowNginxLRUSoldOut = "nginx-lru-soldout"
)

// AllRows lists every row in run order.
var AllRows = []string{RowCeiling, RowCeilingPost, RowEdgeProduct, RowEdgeNoMetrics, RowEdgeSoldOut, RowNginxProduct, RowNginxLRUProduct, RowNginxSoldOut, RowNginxLRUSoldOut}

// Config is one comparison run. Zero values take the defaults named on each field.
type Config struct {
	// BinDir holds the project's binaries (ceiling, catalog, edge, ...). Required.
	BinDir string
	// Duration of each measured wrk run. Zero means 10s.
	Duration time.Duration
	// Warmup is an unreported wrk run before each measured one. Zero means none.
	Warmup time.Duration
	// Rounds runs every row this many times, in turn; each row reports its median run.
	// Zero means 1.
	Rounds int
	// Threads and Connections are wrk's -t and -c. Zero means 1 and 64.
	Threads, Connections int
	// Pin pins the servers (and the store) to ServerCPU and wrk to LoadCPU with taskset,
	// when taskset exists and the machine has two CPUs or more.
	Pin                bool
	ServerCPU, LoadCPU string
	// Rows selects rows by name (AllRows). Empty means all.
	Rows []string
	// FreshUpdates is how many product updates the freshness measurement times across the
	// edges. Zero skips the measurement.
	FreshUpdates int
	// FreshPeerUpdates is how many updates time edge 1 against the nginx+lrucache peer (spread
	// over its TTL, about a TTL each). Zero skips that pass.
	FreshPeerUpdates int
	// MemoryProducts are the numbers of distinct products (increasing) the edge caches before its
	// resident memory is read. Empty skips the measurement.
	MemoryProducts []int
	// TTL of the lrucache peer. Zero means 1s.
	TTL time.Duration
	// ProductID is the product every product row reads. Empty means "00000001".
	ProductID string
	// SaleID is the sold-out sale the sold-out rows hit. Empty means "bench-soldout".
	SaleID string
	// WorkDir receives the logs, nginx files and wrk scripts. Empty means a new temporary
	// directory, removed at the end unless Keep.
	WorkDir string
	Keep    bool
	// OutJSON is where the report is written as JSON. Empty means nowhere.
	OutJSON string
}

func (c Config) withDefaults() (Config, error) {
	if c.BinDir == "" {
		return c, fmt.Errorf("compare: BinDir is required")
	}
	if c.Duration == 0 {
		c.Duration = 10 * time.Second
	}
	if c.Rounds <= 0 {
		c.Rounds = 1
	}
	if c.Threads == 0 {
		c.Threads = 1
	}
	if c.Connections == 0 {
		c.Connections = 64
	}
	if c.ServerCPU == "" {
		c.ServerCPU = "0"
	}
	if c.LoadCPU == "" {
		c.LoadCPU = "1"
	}
	if c.TTL == 0 {
		c.TTL = time.Second
	}
	if c.ProductID == "" {
		c.ProductID = "00000001"
	}
	if c.SaleID == "" {
		c.SaleID = "bench-soldout"
	}
	if len(c.Rows) == 0 {
		c.Rows = AllRows
	}
	for _, r := range c.Rows {
		if !slices.Contains(AllRows, r) {
			return c, fmt.Errorf("compare: unknown row %q; rows are %s", r, strings.Join(AllRows, ","))
		}
	}
	return c, nil
}

func (c Config) wants(rows ...string) bool {
	for _, r := range rows {
		if slices.Contains(c.Rows, r) {
			return true
		}
	}
	return false
}
