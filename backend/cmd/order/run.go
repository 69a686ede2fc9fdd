package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"flashedge/backend/internal/flashsale"
	"flashedge/backend/internal/order"
	"flashedge/shared/httpapi"
	"flashedge/shared/kv"
	"flashedge/shared/metrics"
	"flashedge/shared/obs"
	"flashedge/shared/product"
	"flashedge/shared/upstream"
)

// config is everything the order binary is told, from flags and the environment.
type config struct {
	Addr            string         // -addr, FLASHEDGE_ORDER_LISTEN; default 127.0.0.1:5003
	CartAddrs       []string       // -cart, FLASHEDGE_CART_ADDRS; cart replicas, default 127.0.0.1:5002
	CatalogAddrs    []string       // -catalog, FLASHEDGE_CATALOG_ADDRS; catalog replicas, default 127.0.0.1:5001
	Store           kv.Options     // kv.OptionsFromEnv: FLASHEDGE_STORE_ADDR, ...
	Log             obs.LogOptions // -log-format, -log-level, -log-file; FLASHEDGE_LOG_FORMAT, _LEVEL, _FILE
	AccessLogSample uint64         // -access-log-sample, FLASHEDGE_ACCESS_LOG_SAMPLE; log 1 request in N, default 1
	CheckoutTimeout time.Duration  // -checkout-timeout: all the work of one checkout; default 4s
	PendingTTL      time.Duration  // -pending-ttl: how long a running checkout holds its Idempotency-Key; default 30s
	Timeout         time.Duration  // -timeout: store calls of the read routes; default 3s
	CallTimeout     time.Duration  // -call-timeout: one attempt of a call to cart or catalog; default 1.5s
	Grace           time.Duration  // -shutdown-grace: in-flight requests get this long on shutdown; default 10s
}

// String describes the config for the start-up log (it holds no secret besides the store's,
// which kv.Options masks).
func (c config) String() string {
	return fmt.Sprintf("addr=%s cart=%v catalog=%v store=[%s] access_log_sample=%d checkout_timeout=%s pending_ttl=%s timeout=%s call_timeout=%s shutdown_grace=%s",
		c.Addr, c.CartAddrs, c.CatalogAddrs, c.Store, c.AccessLogSample, c.CheckoutTimeout, c.PendingTTL, c.Timeout, c.CallTimeout, c.Grace)
}

func loadConfig(args []string, getenv func(string) string, usage io.Writer) (config, error) {
	envOr := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	sample, err := strconv.ParseUint(envOr("FLASHEDGE_ACCESS_LOG_SAMPLE", "1"), 10, 64)
	if err != nil || sample == 0 {
		return config{}, fmt.Errorf("FLASHEDGE_ACCESS_LOG_SAMPLE=%q: want a whole number >= 1", getenv("FLASHEDGE_ACCESS_LOG_SAMPLE"))
	}
	var c config
	fs := flag.NewFlagSet("order", flag.ContinueOnError)
	fs.SetOutput(usage)
	fs.StringVar(&c.Addr, "addr", envOr("FLASHEDGE_ORDER_LISTEN", "127.0.0.1:5003"), "listen address (env FLASHEDGE_ORDER_LISTEN)")
	cartAddrs := fs.String("cart", envOr("FLASHEDGE_CART_ADDRS", "127.0.0.1:5002"), "cart replicas, host:port comma-separated (env FLASHEDGE_CART_ADDRS)")
	catalogAddrs := fs.String("catalog", envOr("FLASHEDGE_CATALOG_ADDRS", "127.0.0.1:5001"), "catalog replicas, host:port comma-separated (env FLASHEDGE_CATALOG_ADDRS)")
	c.Log.RegisterFlags(fs, getenv)
	fs.Uint64Var(&c.AccessLogSample, "access-log-sample", sample, "log one request in N, errors always (env FLASHEDGE_ACCESS_LOG_SAMPLE)")
	fs.DurationVar(&c.CheckoutTimeout, "checkout-timeout", 4*time.Second, "bound on all the work of one checkout")
	fs.DurationVar(&c.PendingTTL, "pending-ttl", 30*time.Second, "how long a running checkout holds its Idempotency-Key (longer than -checkout-timeout)")
	fs.DurationVar(&c.Timeout, "timeout", 3*time.Second, "bound on the store calls of the read routes")
	fs.DurationVar(&c.CallTimeout, "call-timeout", 1500*time.Millisecond, "bound on one attempt of a call to the cart or catalog service")
	fs.DurationVar(&c.Grace, "shutdown-grace", 10*time.Second, "how long in-flight requests may finish on shutdown")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments %q: everything is set by flags", fs.Args())
	}
	if c.CheckoutTimeout <= 0 || c.Timeout <= 0 || c.CallTimeout <= 0 || c.Grace <= 0 || c.AccessLogSample == 0 {
		return config{}, errors.New("-checkout-timeout, -timeout, -call-timeout, -shutdown-grace and -access-log-sample must be positive")
	}
	for _, l := range []struct {
		outerName string
		outer     time.Duration
		innerName string
		inner     time.Duration
	}{
		{"the edge's budget for order (httpapi.EdgeBudgetOrder)", httpapi.EdgeBudgetOrder, "-checkout-timeout", c.CheckoutTimeout},
		{"the edge's budget for order (httpapi.EdgeBudgetOrder)", httpapi.EdgeBudgetOrder, "-timeout", c.Timeout},
		{"-checkout-timeout", c.CheckoutTimeout, "-call-timeout", c.CallTimeout},
	} {
		if err := httpapi.CheckBudget(l.outerName, l.outer, l.innerName, l.inner); err != nil {
			return config{}, err
		}
	}
	if c.PendingTTL <= c.CheckoutTimeout {
		return config{}, fmt.Errorf("-pending-ttl %s must be longer than -checkout-timeout %s, or a running checkout could lose its Idempotency-Key", c.PendingTTL, c.CheckoutTimeout)
	}
	if c.CartAddrs = kv.ParseAddrs(*cartAddrs); len(c.CartAddrs) == 0 {
		return config{}, errors.New("no cart address: set FLASHEDGE_CART_ADDRS (host:port[,host:port...])")
	}
	if c.CatalogAddrs = kv.ParseAddrs(*catalogAddrs); len(c.CatalogAddrs) == 0 {
		return config{}, errors.New("no catalog address: set FLASHEDGE_CATALOG_ADDRS (host:port[,host:port...])")
	}
	c.Log.Service = "order"
	if c.Store, err = kv.OptionsFromEnv(getenv); err != nil {
		return config{}, err
	}
	c.Store.ClientName = "flashedge-order"
	return c, nil
}

// run is the order service: it reads its config, opens the store and the cart and catalog
// pools, and serves until ctx is cancelled, then drains in-flight requests and returns nil.
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
	store := order.NewStore(client)

	// The pools probe their replicas in goroutines owned here: stopped and waited for on return.
	var wg sync.WaitGroup
	defer wg.Wait()
	poolCtx, stopPools := context.WithCancel(context.Background())
	defer stopPools()
	newPool := func(name string, addrs []string) (*upstream.Pool, error) {
		p, err := upstream.New(upstream.Options{Name: name, Addrs: addrs, Timeout: cfg.CallTimeout}, log)
		if err != nil {
			return nil, err
		}
		wg.Go(func() { p.Run(poolCtx) })
		return p, nil
	}
	cartPool, err := newPool("cart", cfg.CartAddrs)
	if err != nil {
		return err
	}
	defer cartPool.Close()
	catalogPool, err := newPool("catalog", cfg.CatalogAddrs)
	if err != nil {
		return err
	}
	defer catalogPool.Close()

	reg := metrics.New("order")
	// While the catalog is down, product reads are answered from the store it writes to, so
	// checkout keeps working (prices still have one owner: the catalog's documents).
	catalog := &product.StoreFallback{Catalog: catalogPool, KV: client}
	svc, err := order.New(store, cartPool, catalog, order.Options{
		CheckoutTimeout: cfg.CheckoutTimeout,
		PendingTTL:      cfg.PendingTTL,
		Timeout:         cfg.Timeout,
		Log:             log,
	})
	if err != nil {
		return err
	}

	r := httpapi.NewRouter()
	probe := httpapi.Probe{
		Check: func(c context.Context) error {
			if err := store.Ping(c); err != nil {
				return fmt.Errorf("store: %w", err)
			}
			// The catalog is not needed to be ready: its reads fall back to the store.
			if !cartPool.Available() {
				return fmt.Errorf("%s: no replica available", cartPool.Name())
			}
			return nil
		},
		Draining: func() bool { return ctx.Err() != nil },
	}
	r.GET("/health", probe.Health)
	r.GET("/ready", probe.Ready)
	reg.Register(r)
	svc.Register(r)

	// The flash sale's attempts, challenges, tickets and checkout share this router, its
	// middlewares, probes and graceful shutdown; the worker binary decides the attempts.
	fsOpts, err := flashsale.OptionsFromEnv(getenv)
	if err != nil {
		return err
	}
	fsOpts.Log = log
	fsOpts.Metrics = flashsale.NewOrderMetrics(reg)
	sales, err := flashsale.New(client, fsOpts)
	if err != nil {
		return err
	}
	// Stream backlog and the live sales' ledgers, read from the store while /metrics is written.
	sales.ExportOrder(reg, flashsale.ExportOptions{})
	salesHTTP, err := flashsale.NewHandler(sales, flashsale.HandlerOptions{AdminToken: getenv("FLASHEDGE_ADMIN_TOKEN")})
	if err != nil {
		return err
	}
	salesHTTP.Register(r)

	// Metrics outermost, so its time covers every middleware.
	h := reg.Instrument(httpapi.RequestIDs(httpapi.AccessLog(r.Handler, log, cfg.AccessLogSample, httpapi.HeaderUserID), obs.NewIDs()), nil)
	srv := httpapi.NewServer(h, httpapi.ServerOptions{Name: "order"}, log)
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
