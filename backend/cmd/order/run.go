package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"flashedge/backend/internal/flashsale"
	"flashedge/backend/internal/order"
	"flashedge/backend/internal/saleflags"
	"flashedge/shared/challenge"
	"flashedge/shared/flagenv"
	"flashedge/shared/httpapi"
	"flashedge/shared/kv"
	"flashedge/shared/metrics"
	"flashedge/shared/obs"
	"flashedge/shared/product"
	"flashedge/shared/signkey"
	"flashedge/shared/upstream"
)

// config is everything the order binary is told, from flags and the environment.
type config struct {
	flagenv.Service               // -addr (FLASHEDGE_ORDER_LISTEN, default 127.0.0.1:5003), store, logs, grace, drain
	CartAddrs       []string      // -cart, FLASHEDGE_CART_ADDRS; cart replicas, default 127.0.0.1:5002
	CatalogAddrs    []string      // -catalog, FLASHEDGE_CATALOG_ADDRS; catalog replicas, default 127.0.0.1:5001
	CheckoutTimeout time.Duration // -checkout-timeout: all the work of one checkout; default 4s
	PendingTTL      time.Duration // -pending-ttl: how long a running checkout holds its Idempotency-Key; default 30s
	Timeout         time.Duration // -timeout: store calls of the read routes; default 3s
	CallTimeout     time.Duration // -call-timeout: one attempt of a call to cart or catalog; default 1.5s
	AdminToken      string        // FLASHEDGE_ADMIN_TOKEN (environment only): the flash-sale admin routes
	// ChallengeKeys verify the flash-sale challenges the edge mints: derived from
	// FLASHEDGE_SESSION_SECRET (environment only), the secret list the edge is given.
	ChallengeKeys *challenge.Keys
	Flash         flashsale.Options // saleflags: -flashsale-*, FLASHEDGE_FLASHSALE_*
}

// String describes the config for the start-up log (it holds no secret besides the store's,
// which kv.Options masks).
func (c config) String() string {
	return fmt.Sprintf("addr=%s cart=%v catalog=%v store=[%s] access_log_sample=%d checkout_timeout=%s pending_ttl=%s timeout=%s call_timeout=%s shutdown_grace=%s drain_delay=%s",
		c.Addr, c.CartAddrs, c.CatalogAddrs, c.Store, c.AccessLogSample, c.CheckoutTimeout, c.PendingTTL, c.Timeout, c.CallTimeout, c.Grace, c.DrainDelay)
}

func loadConfig(args []string, getenv func(string) string, usage io.Writer) (config, error) {
	var c config
	s := flagenv.New("order", "FLASHEDGE_", getenv, usage)
	// One access-log line per request cost the attempt route a tenth of its CPU (issue 13).
	svc := s.Service(flagenv.ServiceDefaults{Addr: "127.0.0.1:5003", AccessLogSample: 100})
	s.Addrs(&c.CartAddrs, "cart", "127.0.0.1:5002", "cart replicas, host:port comma-separated").Env("FLASHEDGE_CART_ADDRS")
	s.Addrs(&c.CatalogAddrs, "catalog", "127.0.0.1:5001", "catalog replicas, host:port comma-separated").Env("FLASHEDGE_CATALOG_ADDRS")
	s.Duration(&c.CheckoutTimeout, "checkout-timeout", 4*time.Second, "bound on all the work of one checkout").Env("FLASHEDGE_ORDER_CHECKOUT_TIMEOUT")
	s.Duration(&c.PendingTTL, "pending-ttl", 30*time.Second, "how long a running checkout holds its Idempotency-Key (longer than -checkout-timeout)").Env("FLASHEDGE_ORDER_PENDING_TTL")
	s.Duration(&c.Timeout, "timeout", 3*time.Second, "bound on the store calls of the read routes").Env("FLASHEDGE_ORDER_TIMEOUT")
	s.Duration(&c.CallTimeout, "call-timeout", 1500*time.Millisecond, "bound on one attempt of a call to the cart or catalog service").Env("FLASHEDGE_ORDER_CALL_TIMEOUT")
	s.Secret(&c.AdminToken, "FLASHEDGE_ADMIN_TOKEN", "bearer token of the flash-sale admin routes; empty: they answer 401")
	var sessionSecret string
	s.Secret(&sessionSecret, "FLASHEDGE_SESSION_SECRET", "the edge's signing keys, kid:secret[,kid:secret...]: flash-sale challenges are verified with keys derived from them (required)")
	flash := saleflags.Define(s)
	if err := s.Parse(args); err != nil {
		return config{}, err
	}
	keys, kid, err := signkey.Parse(sessionSecret)
	if err != nil {
		return config{}, fmt.Errorf("FLASHEDGE_SESSION_SECRET: %w", err)
	}
	if c.ChallengeKeys, err = challenge.NewKeys(keys, kid); err != nil {
		return config{}, err
	}
	c.Service, c.Flash = *svc, *flash
	if c.CheckoutTimeout <= 0 || c.Timeout <= 0 || c.CallTimeout <= 0 {
		return config{}, errors.New("-checkout-timeout, -timeout and -call-timeout must be positive")
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
	return c, nil
}

// run is the order service: it reads its config, opens the store and the cart and catalog
// pools, and serves until ctx is cancelled, then drains in-flight requests and returns nil.
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
	probe := &httpapi.Probe{
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
	fsOpts := cfg.Flash
	fsOpts.Log = log
	fsOpts.Challenges = cfg.ChallengeKeys
	fsOpts.Metrics = flashsale.NewOrderMetrics(reg)
	sales, err := flashsale.New(client, fsOpts)
	if err != nil {
		return err
	}
	// Stream backlog and the live sales' ledgers, read from the store while /metrics is written.
	sales.ExportOrder(reg, flashsale.ExportOptions{})
	salesHTTP, err := flashsale.NewHandler(sales, flashsale.HandlerOptions{AdminToken: cfg.AdminToken})
	if err != nil {
		return err
	}
	salesHTTP.Register(r)

	// Metrics outermost, so its time covers every middleware.
	h := reg.Instrument(httpapi.RequestIDs(httpapi.AccessLog(r.Handler, log, cfg.AccessLogSample, httpapi.HeaderUserID), obs.NewIDs()), nil)
	srv := httpapi.NewServer(h, httpapi.ServerOptions{Name: "order", Batch: true}, log)
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	log.Info("listening", "addr", ln.Addr().String())
	err = httpapi.ServeDrain(ctx, srv, ln, cfg.DrainDelay, cfg.Grace)
	log.Info("stopped")
	return err
}
