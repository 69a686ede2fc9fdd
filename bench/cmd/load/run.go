package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"flashedge/bench/internal/load"
	"flashedge/bench/internal/spawn"
	"flashedge/shared/flagenv"
)

// config is everything load reads from flags and the environment, in one place.
type config struct {
	URL        string
	AdminToken string
	Spawn      bool
	BinDir     string
	WorkDir    string
	Keep       bool
	JSON       string
	Plot       string
	Progress   string
	Every      time.Duration
	Load       load.Config
}

func loadConfig(args []string, getenv func(string) string, out io.Writer) (config, error) {
	var (
		c          config
		scenarios  string
		levels     string
		difficulty int
		soldOut    time.Duration
		seed       uint64
	)
	fs := flagenv.New("load", "FLASHEDGE_LOAD_", getenv, out)
	fs.Synopsis("usage: load [-spawn -bin bin | -url http://127.0.0.1:8000 -admin-token T] -scenario browse|cart|checkout|rush|stress[,...] [flags]")
	fs.String(&c.URL, "url", "http://127.0.0.1:8000", "the edge's base URL; loopback only (127.0.0.0/8, ::1, localhost)")
	fs.String(&c.AdminToken, "admin-token", "", "the edge's admin token, for the rush").Env("FLASHEDGE_ADMIN_TOKEN")
	fs.Bool(&c.Spawn, "spawn", false, "start a private redis-server and the binaries of -bin on free loopback ports instead of using -url")
	fs.String(&c.BinDir, "bin", "bin", "directory holding catalog, cart, order, worker and edge (with -spawn)")
	fs.String(&c.WorkDir, "workdir", "", "directory for the spawned servers' logs (default: a temporary one)")
	fs.Bool(&c.Keep, "keep", false, "keep the temporary work directory (with -spawn)")
	fs.String(&scenarios, "scenario", "browse", "comma-separated scenarios: "+strings.Join(load.Scenarios, ", "))
	fs.Int64(&c.Load.Requests, "requests", 0, "operations per browse/cart/checkout run (0: bounded by -duration only)")
	fs.Duration(&c.Load.Duration, "duration", 0, "time bound per phase (0: 10s for browse/cart/checkout and each stress level, 5m for the rush's attempts)")
	fs.Int(&c.Load.Concurrency, "concurrency", 0, "closed-loop workers, or open-loop operations in flight (0: 64; rush 256)")
	fs.Float64(&c.Load.Rate, "rate", 0, "open loop: operations per second (0: closed loop)")
	fs.Duration(&c.Load.Timeout, "timeout", 10*time.Second, "per-request timeout")
	fs.Int(&c.Load.Users, "users", 0, "shoppers who log in (0: 1000; rush 20000)")
	fs.Int(&c.Load.Products, "products", 1200, "catalog ids 00000001..N that browse, cart and checkout pick from")
	fs.Uint64(&seed, "seed", 1, "random seed")
	fs.Int64(&c.Load.Attempts, "attempts", 100_000, "rush: total attempts, spread over the users")
	fs.Int64(&c.Load.Stock, "stock", 1000, "rush: units on sale")
	fs.Int(&c.Load.Shards, "shards", 8, "rush: stock shards")
	fs.Int(&c.Load.Limit, "limit", 1, "rush: units per shopper")
	fs.Int(&difficulty, "difficulty", 8, "rush: proof-of-work bits (0: none)")
	fs.String(&c.Load.SaleProduct, "sale-product", "00000001", "rush: the product on sale")
	fs.String(&c.Load.StoreAddr, "store-addr", "", "waitroom: the store's host:port, for its command rate (set by -spawn)").Env("FLASHEDGE_STORE_ADDR")
	fs.Alias("store", "store-addr")
	fs.String(&c.Load.EdgeOpsAddr, "edge-ops-addr", "", "rush: the edge's operations listener (host:port), read for the edge's own latency and queue figures (set by -spawn)")
	fs.String(&c.Load.OrderAddr, "order-addr", "", "rush: the order service's host:port, read for its attempt latency and the attempts forwarded (set by -spawn)")
	fs.String(&c.Load.ServerCPU, "server-cpu", "", "pin the spawned stack (and the admit scenario's nginx peer) to this CPU with taskset; run load itself on another (taskset -c 0 load ... -server-cpu 1)")
	fs.Float64(&c.Load.OverloadBackendCPU, "overload-backend-cpu", 0, "overload: cap the store and the backend services together at this fraction of one CPU (a cgroup CPU quota) so that they bound the capacity and the edge has CPU to refuse the excess; 0: no cap")
	fs.Bool(&c.Load.OverloadEdgeAlone, "overload-edge-alone", false, "overload: the edge alone on the stack's CPU, the backends and the store on the load tool's (capped by -overload-backend-cpu), as an edge on machines of its own")
	fs.Bool(&c.Load.OverloadEdgeWithTool, "overload-edge-with-tool", false, "overload: the edge on the load tool's CPU, the backends and the store alone on the other (default: the tool alone on CPU 0, the whole stack on the other)")
	fs.Bool(&c.Load.SlowSync, "slow-sync", false, "slow: open the slowloris connections all at once (they then reconnect together every read timeout) instead of evenly over one")
	fs.Int(&c.Load.Admit, "admit", 250, "waitroom: admit_per_second of the sale's waiting room")
	fs.Duration(&soldOut, "soldout-duration", 3*time.Second, "rush: closed-loop burst of attempts after the sell-out (0: skip)")
	fs.Int(&c.Load.Bots, "bots", 0, "rush: bot addresses (two bot users each, far above the edge's limits); above 0 the rush runs a baseline round without bots and then a bot-mix round")
	fs.Bool(&c.Load.SolveAhead, "solve-ahead", true, "rush: every shopper fetches and solves a challenge for their first attempt before the attempts begin, as on the sale's page (false: every attempt fetches and solves its challenge in the loop, as before)")
	fs.Duration(&c.Load.TicketTimeout, "ticket-timeout", 30*time.Second, "rush: how long an admitted ticket may stay undecided")
	fs.String(&levels, "levels", "100,500,1000", "stress: concurrent clients per level, comma-separated")
	fs.String(&c.JSON, "json", "", "write the report as JSON to this file")
	fs.String(&c.Plot, "plot", "", "write a latency-by-percentile plot as SVG to this file")
	fs.String(&c.Progress, "progress", load.ProgressAuto, "progress display: auto (a bar on a terminal, lines otherwise), bar, lines, off")
	fs.Duration(&c.Every, "progress-every", 5*time.Second, "interval of progress lines when not on a terminal")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	for _, s := range strings.Split(scenarios, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if !slices.Contains(load.Scenarios, s) {
			return c, fmt.Errorf("-scenario: unknown scenario %q (want %s)", s, strings.Join(load.Scenarios, ", "))
		}
		c.Load.Scenarios = append(c.Load.Scenarios, s)
	}
	for _, s := range strings.Split(levels, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 10_000 {
			return c, fmt.Errorf("-levels: %q is not a number of clients from 1 to 10000", s)
		}
		c.Load.Levels = append(c.Load.Levels, n)
	}
	switch {
	case difficulty < 0 || difficulty > 28:
		return c, fmt.Errorf("-difficulty %d: want 0 to 28 bits", difficulty)
	case difficulty == 0:
		c.Load.Difficulty = -1
	default:
		c.Load.Difficulty = difficulty
	}
	c.Load.SoldOutDuration = soldOut
	if soldOut <= 0 {
		c.Load.SoldOutDuration = -1
	}
	c.Load.Seed = seed
	switch c.Progress {
	case load.ProgressAuto, load.ProgressBar, load.ProgressLines, load.ProgressOff:
	default:
		return c, fmt.Errorf("-progress %q: want auto, bar, lines or off", c.Progress)
	}
	if c.Load.Attempts < 1 || c.Load.Stock < 0 || c.Load.Shards < 1 || c.Load.Limit < 1 || c.Load.Users < 0 || c.Load.Products < 1 {
		return c, errors.New("-attempts, -shards, -limit and -products must be >= 1, -stock and -users >= 0")
	}
	if !c.Spawn {
		for _, u := range []string{c.URL, c.Load.EdgeOpsAddr, c.Load.OrderAddr} {
			if u == "" {
				continue
			}
			if !strings.Contains(u, "://") {
				u = "http://" + u
			}
			if _, err := load.ParseTarget(u); err != nil {
				return c, err
			}
		}
	}
	return c, nil
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	cfg, err := loadConfig(args, getenv, stdout)
	if err != nil {
		return err // flag.ErrHelp after -h: flagenv.Main exits 0
	}
	// The rush's shoppers each keep a connection open from their challenge to their attempts, as
	// a browser on the sale's page does: 20,000 of them need more descriptors than the usual
	// 1,024 or 20,000, here and in the spawned servers, which inherit the limit.
	if n, err := load.RaiseFileLimit(load.WantFiles); err != nil {
		fmt.Fprintf(stdout, "note: open files limited to %d (%v)\n", n, err)
	}
	rep := load.NewReport("load "+strings.Join(args, " "), cfg.URL, cfg.Spawn)
	fmt.Fprintf(stdout, "flashedge load: %s\n", rep.Command)
	fmt.Fprintf(stdout, "machine: %d CPUs (%s), %s/%s, %s; the load generator shares the CPUs with every server it measures\n",
		rep.Machine.CPUs, rep.Machine.CPUModel, rep.Machine.OS, rep.Machine.Arch, rep.Machine.GoVersion)

	if cfg.Spawn {
		dir := cfg.WorkDir
		if dir == "" {
			if dir, err = os.MkdirTemp("", "flashedge-load-*"); err != nil {
				return err
			}
			if !cfg.Keep {
				defer os.RemoveAll(dir)
			}
		} else if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "spawning the stack from %s (logs in %s)\n", cfg.BinDir, dir)
		// The rush and the slow-client scenario give every client its own loopback address, so
		// they run against the edge's default limits; the others send everything from 127.0.0.1.
		limitsOn := onlyRush(cfg.Load.Scenarios)
		edgeEnv := []string{"FLASHEDGE_RATE_IP=off", "FLASHEDGE_RATE_USER=off", "FLASHEDGE_RATE_SHOP_IP=off", "FLASHEDGE_RATE_SHOP_USER=off", "FLASHEDGE_MAX_CONNS_PER_ADDR=0"}
		if limitsOn {
			edgeEnv = nil
		}
		st, err := spawn.Start(ctx, spawn.Options{
			BinDir: cfg.BinDir, Dir: dir, CPU: cfg.Load.ServerCPU,
			ServiceEnv: map[string][]string{"edge": edgeEnv},
			Logf:       func(format string, a ...any) { fmt.Fprintf(stdout, "  "+format+"\n", a...) },
		})
		if err != nil {
			return err
		}
		defer st.Stop()
		cfg.URL, cfg.AdminToken = st.URL, st.AdminToken
		cfg.Load.StoreAddr = st.Addrs["store"]
		cfg.Load.EdgeOpsAddr, cfg.Load.OrderAddr = st.Addrs["edge-ops"], st.Addrs["order"]
		cfg.Load.CPU = st.CPU
		cfg.Load.CPUByProcess = st.CPUByProcess
		cfg.Load.Pids = st.Pids
		rep.Target = st.URL
		for _, c := range st.Commands {
			fmt.Fprintln(stdout, "  started:", c)
		}
		if limitsOn {
			rep.Note(stdout, "the spawned edge runs with its default limits (per address, per user, connections per address): every simulated shopper has its own loopback source address (127.1.0.1 up; bots 127.200.0.1 up)")
		} else {
			rep.Note(stdout, "the spawned edge runs with FLASHEDGE_RATE_IP=off, FLASHEDGE_RATE_USER=off, FLASHEDGE_RATE_SHOP_IP=off, FLASHEDGE_RATE_SHOP_USER=off and FLASHEDGE_MAX_CONNS_PER_ADDR=0: every simulated shopper comes from 127.0.0.1 and a few users carry the load, so the per-IP and shopping limits (and the blacklist) and the per-address connection cap would refuse the run, not measure it")
		}
	} else if slices.Contains(cfg.Load.Scenarios, load.ScenarioWaitRoom) {
		rep.Note(stdout, "waitroom against %s: every simulated shopper comes from 127.0.0.1; start the stack with FLASHEDGE_RATE_IP=off FLASHEDGE_RATE_USER=off, or the edge's rate limits answer 429 and then blacklist the address", cfg.URL)
	}
	target, err := load.ParseTarget(cfg.URL)
	if err != nil {
		return err
	}
	lc := cfg.Load
	lc.Target, lc.AdminToken, lc.Out = target, cfg.AdminToken, stdout
	lc.Progress = &load.Progress{W: stdout, Mode: cfg.Progress, Every: cfg.Every}
	runErr := load.Run(ctx, lc, rep)

	fmt.Fprintln(stdout)
	if len(rep.Rows) > 0 {
		if err := load.WriteTable(stdout, rep.Rows); err != nil {
			return err
		}
	}
	if rep.Rush != nil && len(rep.Rush.Invariants) > 0 {
		fmt.Fprintln(stdout)
		load.WriteRush(stdout, rep.Rush)
	}
	if rep.RushPeer != nil {
		fmt.Fprintln(stdout)
		load.WriteRushPeer(stdout, rep.RushPeer)
	}
	if rep.WaitRoom != nil {
		fmt.Fprintln(stdout)
		load.WriteWaitRoom(stdout, rep.WaitRoom)
	}
	if rep.Admit != nil {
		fmt.Fprintln(stdout)
		load.WriteAdmit(stdout, rep.Admit)
	}
	if len(rep.Stress) > 0 {
		fmt.Fprintln(stdout)
		load.WriteStress(stdout, rep.Stress)
	}
	if rep.Slow != nil {
		fmt.Fprintln(stdout)
		load.WriteSlow(stdout, rep.Slow)
	}
	if runErr != nil {
		rep.Fail("%v", runErr)
	}
	if cfg.JSON != "" {
		if err := load.WriteJSON(cfg.JSON, rep); err != nil {
			return fmt.Errorf("-json: %w", err)
		}
		fmt.Fprintln(stdout, "wrote", cfg.JSON)
	}
	if cfg.Plot != "" {
		if err := load.WritePlot(cfg.Plot, "flashedge load: "+strings.Join(lc.Scenarios, ", "), rep.Rows); err != nil {
			return fmt.Errorf("-plot: %w", err)
		}
		fmt.Fprintln(stdout, "wrote", cfg.Plot)
	}
	if runErr != nil {
		return runErr
	}
	if !rep.OK {
		return fmt.Errorf("%d failure(s): %s", len(rep.Failures), strings.Join(rep.Failures, "; "))
	}
	return nil
}

// onlyRush reports whether the run's scenarios are the rush or the slow clients only (each of
// their clients has a loopback address of its own).
func onlyRush(s []string) bool {
	return len(s) > 0 && !slices.ContainsFunc(s, func(x string) bool { return x != load.ScenarioRush && x != load.ScenarioSlow })
}
