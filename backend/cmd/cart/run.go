package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"flashedge/backend/internal/cart"
	"flashedge/shared/flagenv"
	"flashedge/shared/httpapi"
	"flashedge/shared/kv"
	"flashedge/shared/metrics"
	"flashedge/shared/obs"
)

// config is everything the cart binary is told, from flags and the environment.
type config struct {
	flagenv.Service               // -addr (FLASHEDGE_CART_LISTEN, default 127.0.0.1:5002), store, logs, grace, drain
	Timeout         time.Duration // -timeout: all the work of one request; default 3s
}

// String describes the config for the start-up log (it holds no secret besides the store's,
// which kv.Options masks).
func (c config) String() string {
	return fmt.Sprintf("addr=%s store=[%s] access_log_sample=%d timeout=%s shutdown_grace=%s drain_delay=%s",
		c.Addr, c.Store, c.AccessLogSample, c.Timeout, c.Grace, c.DrainDelay)
}

func loadConfig(args []string, getenv func(string) string, usage io.Writer) (config, error) {
	var c config
	s := flagenv.New("cart", "FLASHEDGE_", getenv, usage)
	// One access-log line per request was a twelfth of an add's CPU in the cart (issue 13); the
	// edge logs its own sample of the same requests, and failures are always logged.
	svc := s.Service(flagenv.ServiceDefaults{Addr: "127.0.0.1:5002", AccessLogSample: 100})
	s.Duration(&c.Timeout, "timeout", 3*time.Second, "bound on all the work of one request").Env("FLASHEDGE_CART_TIMEOUT")
	if err := s.Parse(args); err != nil {
		return config{}, err
	}
	c.Service = *svc
	if c.Timeout <= 0 {
		return config{}, errors.New("-timeout must be positive")
	}
	if err := httpapi.CheckBudget("the edge's budget for cart (httpapi.EdgeBudgetCart)", httpapi.EdgeBudgetCart, "-timeout", c.Timeout); err != nil {
		return config{}, err
	}
	return c, nil
}

// run is the cart service: it reads its config, opens the store, and
// serves until ctx is cancelled, then drains in-flight requests and returns nil.
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	cfg, log, logCloser, err := flagenv.Start(args, getenv, stdout, loadConfig)
	if err != nil {
		return err
	}
	defer logCloser.Close()

	// Names and prices come from the catalog's documents in the store, through the client-side
	// cache, their parses kept until the store's push says a document changed: an add makes no
	// call to the catalog service, and carts keep working while it is down (prices still have
	// one owner: the catalog writes every document).
	prices := &cart.StorePrices{Tracked: true}
	storeOpts := cfg.Store
	storeOpts.OnInvalidations = prices.Invalidate
	client, err := kv.Open(ctx, storeOpts)
	if err != nil {
		return err
	}
	defer client.Close()
	prices.KV = client
	store := cart.NewStore(client)

	reg := metrics.New("cart")
	r := httpapi.NewRouter()
	probe := &httpapi.Probe{
		Check: func(c context.Context) error {
			if err := store.Ping(c); err != nil {
				return fmt.Errorf("store: %w", err)
			}
			return nil
		},
		Draining: func() bool { return ctx.Err() != nil },
	}
	r.GET("/health", probe.Health)
	r.GET("/ready", probe.Ready)
	reg.Register(r)
	cart.New(store, prices, cart.Options{Timeout: cfg.Timeout, Log: log}).Register(r)

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
