package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"

	"flashedge/backend/internal/catalog"
	"flashedge/shared/httpapi"
	"flashedge/shared/kv"
	"flashedge/shared/metrics"
	"flashedge/shared/obs"
)

// config is everything the catalog binary is told, from flags and the environment.
type config struct {
	Addr       string         // -addr, FLASHEDGE_CATALOG_LISTEN; default 127.0.0.1:5001
	AdminToken string         // FLASHEDGE_ADMIN_TOKEN (environment only: flags show in ps); required
	SeedDemo   int            // -seed-demo, FLASHEDGE_SEED_DEMO; products seeded into an empty catalog, 0 = none
	Store      kv.Options     // kv.OptionsFromEnv: FLASHEDGE_STORE_ADDR, ...
	Log        obs.LogOptions // -log-format, -log-level, -log-file; FLASHEDGE_LOG_FORMAT, _LEVEL, _FILE
	// AccessLogSample is -access-log-sample, FLASHEDGE_ACCESS_LOG_SAMPLE: log 1 request in N
	// (5xx always); default 1.
	AccessLogSample uint64
	Timeout         time.Duration // -store-timeout: store calls of one request; default 2s
	Grace           time.Duration // -shutdown-grace: in-flight requests get this long on shutdown; default 10s
}

// String describes the config for the start-up log, with secrets masked.
func (c config) String() string {
	tok := "unset"
	if c.AdminToken != "" {
		tok = "***"
	}
	return fmt.Sprintf("addr=%s store=[%s] admin_token=%s seed_demo=%d access_log_sample=%d store_timeout=%s shutdown_grace=%s",
		c.Addr, c.Store, tok, c.SeedDemo, c.AccessLogSample, c.Timeout, c.Grace)
}

func loadConfig(args []string, getenv func(string) string, usage io.Writer) (config, error) {
	envOr := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	seedDefault := 0
	if v := getenv("FLASHEDGE_SEED_DEMO"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return config{}, fmt.Errorf("FLASHEDGE_SEED_DEMO=%q: want a whole number of products, 0 for none", v)
		}
		seedDefault = n
	}
	sample, err := strconv.ParseUint(envOr("FLASHEDGE_ACCESS_LOG_SAMPLE", "1"), 10, 64)
	if err != nil || sample == 0 {
		return config{}, fmt.Errorf("FLASHEDGE_ACCESS_LOG_SAMPLE=%q: want a whole number >= 1", getenv("FLASHEDGE_ACCESS_LOG_SAMPLE"))
	}
	var c config
	fs := flag.NewFlagSet("catalog", flag.ContinueOnError)
	fs.SetOutput(usage)
	fs.StringVar(&c.Addr, "addr", envOr("FLASHEDGE_CATALOG_LISTEN", "127.0.0.1:5001"), "listen address (env FLASHEDGE_CATALOG_LISTEN)")
	fs.IntVar(&c.SeedDemo, "seed-demo", seedDefault, "seed this many demo products when the catalog is empty, 0 for none (env FLASHEDGE_SEED_DEMO)")
	c.Log.RegisterFlags(fs, getenv)
	fs.Uint64Var(&c.AccessLogSample, "access-log-sample", sample, "log one request in N, errors always (env FLASHEDGE_ACCESS_LOG_SAMPLE)")
	fs.DurationVar(&c.Timeout, "store-timeout", 2*time.Second, "bound on the store calls of one request")
	fs.DurationVar(&c.Grace, "shutdown-grace", 10*time.Second, "how long in-flight requests may finish on shutdown")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments %q: everything is set by flags", fs.Args())
	}
	if c.SeedDemo < 0 {
		return config{}, fmt.Errorf("-seed-demo %d: want 0 or more", c.SeedDemo)
	}
	if c.Timeout <= 0 || c.Grace <= 0 || c.AccessLogSample == 0 {
		return config{}, errors.New("-store-timeout, -shutdown-grace and -access-log-sample must be positive")
	}
	if err := httpapi.CheckBudget("the edge's budget for catalog (httpapi.EdgeBudgetCatalog)", httpapi.EdgeBudgetCatalog, "-store-timeout", c.Timeout); err != nil {
		return config{}, err
	}
	c.Log.Service = "catalog"
	c.AdminToken = getenv("FLASHEDGE_ADMIN_TOKEN")
	if c.AdminToken == "" {
		return config{}, errors.New("FLASHEDGE_ADMIN_TOKEN is not set: the admin routes need a token (make run generates one)")
	}
	store, err := kv.OptionsFromEnv(getenv)
	if err != nil {
		return config{}, err
	}
	store.ClientName = "flashedge-catalog"
	c.Store = store
	return c, nil
}

// run is the catalog service: it reads its config, opens the store, seeds the demo catalog when
// asked, and serves until ctx is cancelled, then drains in-flight requests and returns nil.
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	cfg, err := loadConfig(args, getenv, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	log, logCloser, err := obs.NewLogger(stdout, cfg.Log)
	if err != nil {
		return err
	}
	defer logCloser.Close()
	log.Info("starting", "config", cfg.String())

	client, err := kv.Open(ctx, cfg.Store)
	if err != nil {
		return err
	}
	defer client.Close()
	store := catalog.NewStore(client)

	if cfg.SeedDemo > 0 {
		sctx, cancel := context.WithTimeout(ctx, time.Minute)
		start := time.Now()
		n, err := store.SeedDemo(sctx, cfg.SeedDemo)
		cancel()
		if err != nil {
			if ctx.Err() != nil { // asked to stop while seeding
				return nil
			}
			return fmt.Errorf("seed the demo catalog: %w", err)
		}
		if n > 0 {
			log.Info("seeded the demo catalog", "products", n, "duration_ms", time.Since(start).Milliseconds())
		} else {
			log.Info("demo catalog not seeded: the catalog is not empty or another process is seeding it")
		}
	}

	reg := metrics.New("catalog")
	h, err := catalog.NewHandler(store, catalog.Options{
		AdminToken: cfg.AdminToken,
		Timeout:    cfg.Timeout,
		Log:        log,
		Draining:   func() bool { return ctx.Err() != nil },
		Metrics:    reg,
	})
	if err != nil {
		return err
	}
	// Metrics outermost, so its time covers every middleware.
	h = reg.Instrument(httpapi.RequestIDs(httpapi.AccessLog(h, log, cfg.AccessLogSample, httpapi.HeaderUserID), obs.NewIDs()), nil)
	srv := httpapi.NewServer(h, httpapi.ServerOptions{Name: "catalog"}, log)

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	log.Info("listening", "addr", ln.Addr().String())
	drain, err := httpapi.DrainDelay(getenv)
	if err != nil {
		return err
	}
	err = httpapi.ServeDrain(ctx, srv, ln, drain, cfg.Grace)
	log.Info("stopped")
	return err
}
