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
	"flashedge/backend/internal/saleflags"
	"flashedge/backend/internal/waitroom"
	"flashedge/shared/flagenv"
	"flashedge/shared/httpapi"
	"flashedge/shared/kv"
	"flashedge/shared/metrics"
	"flashedge/shared/obs"
)

// config is everything the worker binary is told, from flags and the environment.
type config struct {
	// Service: -addr (FLASHEDGE_WORKER_LISTEN) serves /health, /ready, /metrics and /metrics.json,
	// empty (the default) serves nothing; store, logs, grace (default 5s), drain.
	flagenv.Service
	Consumer    string            // -consumer, FLASHEDGE_WORKER_CONSUMER: name in the group; default hostname-pid
	Group       string            // -group: the consumer group; default flashsale
	Concurrency int               // -concurrency: consumer loops; default 4
	Batch       int               // -batch: messages per read, decided at once; default 64
	ClaimIdle   time.Duration     // -claim-idle: take over messages pending this long; default 15s
	SweepEvery  time.Duration     // -sweep-every: expiry sweep period, 0 disables; default 1s
	TrimEvery   time.Duration     // -trim-every: stream trim period, 0 disables; default 10s
	Flash       flashsale.Options // saleflags: -flashsale-*, FLASHEDGE_FLASHSALE_*
}

// String describes the config for the start-up log (kv.Options masks the store password).
func (c config) String() string {
	return fmt.Sprintf("addr=%q consumer=%s group=%s concurrency=%d batch=%d claim_idle=%s sweep_every=%s trim_every=%s reservation=%s access_log_sample=%d store=[%s]",
		c.Addr, c.Consumer, c.Group, c.Concurrency, c.Batch, c.ClaimIdle, c.SweepEvery, c.TrimEvery, c.Flash.Reservation, c.AccessLogSample, c.Store)
}

func loadConfig(args []string, getenv func(string) string, usage io.Writer) (config, error) {
	var c config
	s := flagenv.New("worker", "FLASHEDGE_", getenv, usage)
	svc := s.Service(flagenv.ServiceDefaults{Grace: 5 * time.Second})
	s.Alias("listen", "addr")
	s.String(&c.Consumer, "consumer", "", "consumer name, unique per live worker; default hostname-pid").Env("FLASHEDGE_WORKER_CONSUMER")
	s.String(&c.Group, "group", flashsale.DefaultGroup, "consumer group on the attempt stream").Env("FLASHEDGE_WORKER_GROUP")
	s.Int(&c.Concurrency, "concurrency", flashsale.DefaultConcurrency, "consumer loops, each with its own blocking read").Env("FLASHEDGE_WORKER_CONCURRENCY")
	s.Int(&c.Batch, "batch", flashsale.DefaultBatch, "messages per read").Env("FLASHEDGE_WORKER_BATCH")
	s.Duration(&c.ClaimIdle, "claim-idle", flashsale.DefaultClaimIdle, "take over messages another consumer left pending this long (XAUTOCLAIM)").Env("FLASHEDGE_WORKER_CLAIM_IDLE")
	s.Duration(&c.SweepEvery, "sweep-every", flashsale.DefaultSweepEvery, "period of the expiry sweep; 0 disables it").Env("FLASHEDGE_WORKER_SWEEP_EVERY")
	s.Duration(&c.TrimEvery, "trim-every", flashsale.DefaultTrimEvery, "period of the stream trim (never below unacknowledged entries); 0 disables it").Env("FLASHEDGE_WORKER_TRIM_EVERY")
	flash := saleflags.Define(s)
	if err := s.Parse(args); err != nil {
		return config{}, err
	}
	c.Service, c.Flash = *svc, *flash
	if c.Concurrency < 1 || c.Batch < 1 || c.ClaimIdle <= 0 || c.SweepEvery < 0 || c.TrimEvery < 0 {
		return config{}, errors.New("-concurrency, -batch and -claim-idle must be positive; -sweep-every and -trim-every zero or positive")
	}
	// WorkerOptions read zero as "default" and negative as "off".
	if c.SweepEvery == 0 {
		c.SweepEvery = -1
	}
	if c.TrimEvery == 0 {
		c.TrimEvery = -1
	}
	c.Store.DisableCache = true // the worker reads nothing it could cache
	return c, nil
}

// run is the worker: it reads its config, opens the store, runs the flash-sale worker (and, with
// -addr, a /health and /ready server) until ctx is cancelled, then lets every consumer loop
// finish and acknowledge the messages it holds and returns nil.
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
	reg := metrics.New("worker")
	cfg.Flash.Log = log
	cfg.Flash.Metrics = flashsale.NewWorkerMetrics(reg)
	svc, err := flashsale.New(client, cfg.Flash)
	if err != nil {
		return err
	}
	svc.ExportWorker(reg, flashsale.ExportOptions{Group: cfg.Group})
	w, err := flashsale.NewWorker(svc, flashsale.WorkerOptions{
		Group: cfg.Group, Consumer: cfg.Consumer, Concurrency: cfg.Concurrency, Batch: cfg.Batch,
		ClaimIdle: cfg.ClaimIdle, SweepEvery: cfg.SweepEvery, TrimEvery: cfg.TrimEvery, Log: log,
	})
	if err != nil {
		return err
	}
	cfg.Consumer = w.Options().Consumer
	// Every worker replica runs an admitter for the sales' waiting rooms; they agree through the
	// store (see backend/internal/waitroom).
	adm, err := waitroom.NewAdmitter(client, waitroom.Options{Log: log})
	if err != nil {
		return err
	}
	log.Info("consumer", "name", cfg.Consumer)

	// Both the worker and the probe server stop when ctx is cancelled or either fails.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 3)
	stopOnError := func(err error) {
		if err != nil {
			cancel()
		}
		errc <- err
	}
	if cfg.Addr != "" {
		ln, err := net.Listen("tcp", cfg.Addr)
		if err != nil {
			return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
		}
		probe := &httpapi.Probe{
			Check: func(c context.Context) error {
				if err := client.Do(c, client.B().Ping().Build()).Error(); err != nil {
					return fmt.Errorf("store: %w", err)
				}
				return nil
			},
			Draining: func() bool { return ctx.Err() != nil },
		}
		r := httpapi.NewRouter()
		r.GET("/health", probe.Health)
		r.GET("/ready", probe.Ready)
		reg.Register(r)
		h := reg.Instrument(httpapi.RequestIDs(httpapi.AccessLog(r.Handler, log, cfg.AccessLogSample, ""), obs.NewIDs()), nil)
		srv := httpapi.NewServer(h, httpapi.ServerOptions{Name: "worker"}, log)
		log.Info("listening", "addr", ln.Addr().String())
		wg.Go(func() { stopOnError(httpapi.ServeDrain(ctx, srv, ln, cfg.DrainDelay, cfg.Grace)) })
	}
	wg.Go(func() { stopOnError(w.Run(ctx)) })
	wg.Go(func() { stopOnError(adm.Run(ctx)) })
	wg.Wait()
	close(errc)
	for e := range errc {
		if e != nil && !errors.Is(e, context.Canceled) {
			err = errors.Join(err, e)
		}
	}
	log.Info("stopped")
	return err
}
