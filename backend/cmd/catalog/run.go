package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"flashedge/backend/internal/catalog"
	"flashedge/shared/flagenv"
	"flashedge/shared/httpapi"
	"flashedge/shared/kv"
	"flashedge/shared/metrics"
	"flashedge/shared/obs"
)

// config is everything the catalog binary is told, from flags and the environment.
type config struct {
	flagenv.Service               // -addr (FLASHEDGE_CATALOG_LISTEN, default 127.0.0.1:5001), store, logs, grace, drain
	AdminToken      string        // FLASHEDGE_ADMIN_TOKEN (environment only: flags show in ps); required
	SeedDemo        int           // -seed-demo, FLASHEDGE_SEED_DEMO; products seeded into an empty catalog, 0 = none
	Timeout         time.Duration // -store-timeout: store calls of one request; default 2s
}

// String describes the config for the start-up log, with secrets masked.
func (c config) String() string {
	tok := "unset"
	if c.AdminToken != "" {
		tok = "***"
	}
	return fmt.Sprintf("addr=%s store=[%s] admin_token=%s seed_demo=%d access_log_sample=%d store_timeout=%s shutdown_grace=%s drain_delay=%s",
		c.Addr, c.Store, tok, c.SeedDemo, c.AccessLogSample, c.Timeout, c.Grace, c.DrainDelay)
}

func loadConfig(args []string, getenv func(string) string, usage io.Writer) (config, error) {
	var c config
	s := flagenv.New("catalog", "FLASHEDGE_", getenv, usage)
	svc := s.Service(flagenv.ServiceDefaults{Addr: "127.0.0.1:5001"})
	s.Int(&c.SeedDemo, "seed-demo", 0, "seed this many demo products when the catalog is empty, 0 for none")
	s.Duration(&c.Timeout, "store-timeout", 2*time.Second, "bound on the store calls of one request").Env("FLASHEDGE_CATALOG_STORE_TIMEOUT")
	s.Secret(&c.AdminToken, "FLASHEDGE_ADMIN_TOKEN", "bearer token of the admin routes (required)")
	if err := s.Parse(args); err != nil {
		return config{}, err
	}
	c.Service = *svc
	if c.SeedDemo < 0 {
		return config{}, fmt.Errorf("-seed-demo %d: want 0 or more", c.SeedDemo)
	}
	if c.Timeout <= 0 {
		return config{}, errors.New("-store-timeout must be positive")
	}
	if err := httpapi.CheckBudget("the edge's budget for catalog (httpapi.EdgeBudgetCatalog)", httpapi.EdgeBudgetCatalog, "-store-timeout", c.Timeout); err != nil {
		return config{}, err
	}
	if c.AdminToken == "" {
		return config{}, errors.New("FLASHEDGE_ADMIN_TOKEN is not set: the admin routes need a token (make run generates one)")
	}
	return c, nil
}

// run is the catalog service: it reads its config, opens the store, seeds the demo catalog when
// asked, and serves until ctx is cancelled, then drains in-flight requests and returns nil.
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	cfg, log, logCloser, err := flagenv.Start(args, getenv, stdout, loadConfig)
	if err != nil {
		return err
	}
	defer logCloser.Close()

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
	err = httpapi.ServeDrain(ctx, srv, ln, cfg.DrainDelay, cfg.Grace)
	log.Info("stopped")
	return err
}
