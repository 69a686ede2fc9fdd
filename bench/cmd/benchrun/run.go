package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"flashedge/bench/internal/compare"
	"flashedge/shared/flagenv"
)

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	var (
		cfg  compare.Config
		rows string
	)
	fs := flagenv.New("benchrun", "FLASHEDGE_BENCH_", getenv, stdout)
	fs.String(&cfg.BinDir, "bin", "bin", "directory holding the built binaries (ceiling, catalog, edge, ...)")
	fs.Duration(&cfg.Duration, "duration", 10*time.Second, "measured wrk run per row (whole seconds)")
	fs.Duration(&cfg.Warmup, "warmup", time.Second, "unreported wrk run before each row (0 for none)")
	fs.Int(&cfg.Rounds, "rounds", 3, "run every row this many times, in turn, and report each row's median run")
	fs.Int(&cfg.Threads, "threads", 1, "wrk threads (-t); wrk gets one CPU of two")
	fs.Int(&cfg.Connections, "connections", 64, "wrk connections (-c)")
	fs.Bool(&cfg.Pin, "pin", true, "pin servers and wrk to different CPUs with taskset when possible")
	fs.String(&cfg.ServerCPU, "server-cpu", "0", "CPU for the servers and the store when pinning")
	fs.String(&cfg.LoadCPU, "load-cpu", "1", "CPU for wrk when pinning")
	fs.String(&rows, "rows", "", "comma-separated rows to run (default all): "+strings.Join(compare.AllRows, ","))
	fs.Int(&cfg.FreshUpdates, "fresh-updates", 400, "product updates timed across the edges by the freshness measurement (0 skips it)")
	fs.Int(&cfg.FreshPeerUpdates, "fresh-peer-updates", 50, "product updates timing edge 1 against the nginx+lrucache peer (about a TTL each; 0 skips)")
	memory := "10000,100000"
	fs.String(&memory, "memory-products", "10000,100000", "distinct products the edge caches before its RSS is read, comma-separated, increasing (empty skips)")
	fs.Duration(&cfg.TTL, "ttl", time.Second, "lrucache TTL of the nginx peer (whole seconds)")
	fs.String(&cfg.ProductID, "product", "00000001", "product the product rows read")
	fs.String(&cfg.SaleID, "sale", "bench-soldout", "sale the sold-out rows hit")
	fs.String(&cfg.WorkDir, "workdir", "", "directory for logs, nginx files and wrk scripts (default: a temporary one)")
	fs.Bool(&cfg.Keep, "keep", false, "keep the temporary work directory")
	fs.String(&cfg.OutJSON, "out", "bench/out/bench.json", "write the report as JSON here (empty: nowhere)")
	if err := fs.Parse(args); err != nil {
		return err // flag.ErrHelp after -h: flagenv.Main exits 0
	}
	if rows != "" {
		for _, r := range strings.Split(rows, ",") {
			if r = strings.TrimSpace(r); r != "" {
				cfg.Rows = append(cfg.Rows, r)
			}
		}
	}
	for _, v := range strings.Split(memory, ",") {
		if v = strings.TrimSpace(v); v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || (len(cfg.MemoryProducts) > 0 && n <= cfg.MemoryProducts[len(cfg.MemoryProducts)-1]) {
			return fmt.Errorf("-memory-products %q: want increasing whole numbers", memory)
		}
		cfg.MemoryProducts = append(cfg.MemoryProducts, n)
	}
	_, err := compare.Run(ctx, cfg, stdout)
	return err
}
