package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"flashedge/backend/internal/cart"
	"flashedge/shared/flagenv"
	"flashedge/shared/httpapi"
	"flashedge/shared/kv"
	"flashedge/shared/metrics"
	"flashedge/shared/obs"
	"flashedge/shared/product"
	"flashedge/shared/upstream"
)

// config is everything the cart binary is told, from flags and the environment.
type config struct {
	flagenv.Service               // -addr (FLASHEDGE_CART_LISTEN, default 127.0.0.1:5002), store, logs, grace, drain
	CatalogAddrs    []string      // -catalog, FLASHEDGE_CATALOG_ADDRS; catalog replicas, default 127.0.0.1:5001
	Timeout         time.Duration // -timeout: all the work of one request; default 3s
	CallTimeout     time.Duration // -call-timeout: one attempt of a call to the catalog; default 1s
}

// String describes the config for the start-up log (it holds no secret besides the store's,
// which kv.Options masks).
func (c config) String() string {
	return fmt.Sprintf("addr=%s catalog=%v store=[%s] access_log_sample=%d timeout=%s call_timeout=%s shutdown_grace=%s drain_delay=%s",
		c.Addr, c.CatalogAddrs, c.Store, c.AccessLogSample, c.Timeout, c.CallTimeout, c.Grace, c.DrainDelay)
}

func loadConfig(args []string, getenv func(string) string, usage io.Writer) (config, error) {
	var c config
	s := flagenv.New("cart", "FLASHEDGE_", getenv, usage)
	svc := s.Service(flagenv.ServiceDefaults{Addr: "127.0.0.1:5002"})
	s.Addrs(&c.CatalogAddrs, "catalog", "127.0.0.1:5001", "catalog replicas, host:port comma-separated").Env("FLASHEDGE_CATALOG_ADDRS")
	s.Duration(&c.Timeout, "timeout", 3*time.Second, "bound on all the work of one request").Env("FLASHEDGE_CART_TIMEOUT")
	s.Duration(&c.CallTimeout, "call-timeout", time.Second, "bound on one attempt of a call to the catalog").Env("FLASHEDGE_CART_CALL_TIMEOUT")
	if err := s.Parse(args); err != nil {
		return config{}, err
	}
	c.Service = *svc
	if c.Timeout <= 0 || c.CallTimeout <= 0 {
		return config{}, errors.New("-timeout and -call-timeout must be positive")
	}
	if err := httpapi.CheckBudget("the edge's budget for cart (httpapi.EdgeBudgetCart)", httpapi.EdgeBudgetCart, "-timeout", c.Timeout); err != nil {
		return config{}, err
	}
	if err := httpapi.CheckBudget("-timeout", c.Timeout, "-call-timeout", c.CallTimeout); err != nil {
		return config{}, err
	}
	if len(c.CatalogAddrs) == 0 {
		return config{}, errors.New("no catalog address: set FLASHEDGE_CATALOG_ADDRS (host:port[,host:port...])")
	}
	return c, nil
}

// run is the cart service: it reads its config, opens the store and the catalog pool, and
// serves until ctx is cancelled, then drains in-flight requests and returns nil.
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
	store := cart.NewStore(client)

	catalogPool, err := upstream.New(upstream.Options{Name: "catalog", Addrs: cfg.CatalogAddrs, Timeout: cfg.CallTimeout}, log)
	if err != nil {
		return err
	}
	defer catalogPool.Close()
	var wg sync.WaitGroup
	poolCtx, stopPool := context.WithCancel(context.Background())
	wg.Go(func() { catalogPool.Run(poolCtx) })
	defer wg.Wait()
	defer stopPool()

	reg := metrics.New("cart")
	r := httpapi.NewRouter()
	probe := httpapi.Probe{
		Check: func(c context.Context) error {
			if err := store.Ping(c); err != nil {
				return fmt.Errorf("store: %w", err)
			}
			// The catalog is not needed to be ready: its reads fall back to the store.
			return nil
		},
		Draining: func() bool { return ctx.Err() != nil },
	}
	r.GET("/health", probe.Health)
	r.GET("/ready", probe.Ready)
	reg.Register(r)
	// While the catalog is down, product reads are answered from the store it writes to, so
	// carts keep working (prices still have one owner: the catalog's documents).
	catalog := &product.StoreFallback{Catalog: catalogPool, KV: client}
	cart.New(store, catalog, cart.Options{Timeout: cfg.Timeout, Log: log}).Register(r)

	// Metrics outermost, so its time covers every middleware.
	h := reg.Instrument(httpapi.RequestIDs(httpapi.AccessLog(r.Handler, log, cfg.AccessLogSample, httpapi.HeaderUserID), obs.NewIDs()), nil)
	srv := httpapi.NewServer(h, httpapi.ServerOptions{Name: "cart"}, log)
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	log.Info("listening", "addr", ln.Addr().String())
	err = httpapi.ServeDrain(ctx, srv, ln, cfg.DrainDelay, cfg.Grace)
	log.Info("stopped")
	return err
}
