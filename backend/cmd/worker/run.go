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
	"flashedge/backend/internal/waitroom"
	"flashedge/shared/httpapi"
	"flashedge/shared/kv"
	"flashedge/shared/metrics"
	"flashedge/shared/obs"
)

// config is everything the worker binary is told, from flags and the environment.
type config struct {
	Listen      string            // -listen, FLASHEDGE_WORKER_LISTEN: /health, /ready, /metrics, /metrics.json; empty (default) serves nothing
	Consumer    string            // -consumer, FLASHEDGE_WORKER_CONSUMER: name in the group; default hostname-pid
	Group       string            // -group: the consumer group; default flashsale
	Concurrency int               // -concurrency: consumer loops; default 2
	Batch       int               // -batch: messages per read; default 16
	ClaimIdle   time.Duration     // -claim-idle: take over messages pending this long; default 15s
	SweepEvery  time.Duration     // -sweep-every: expiry sweep period, 0 disables; default 1s
	TrimEvery   time.Duration     // -trim-every: stream trim period, 0 disables; default 10s
	Grace       time.Duration     // -shutdown-grace: the probe server's drain time; default 5s
	Flash       flashsale.Options // flashsale.OptionsFromEnv: FLASHEDGE_FLASHSALE_*
	Store       kv.Options        // kv.OptionsFromEnv: FLASHEDGE_STORE_ADDR, ...
	Log         obs.LogOptions    // -log-format, -log-level, -log-file; FLASHEDGE_LOG_FORMAT, _LEVEL, _FILE
	// AccessLogSample is -access-log-sample, FLASHEDGE_ACCESS_LOG_SAMPLE: log 1 request of the
	// ops server in N (5xx always); default 1.
	AccessLogSample uint64
}

// String describes the config for the start-up log (kv.Options masks the store password).
func (c config) String() string {
	return fmt.Sprintf("listen=%q consumer=%s group=%s concurrency=%d batch=%d claim_idle=%s sweep_every=%s trim_every=%s reservation=%s access_log_sample=%d store=[%s]",
		c.Listen, c.Consumer, c.Group, c.Concurrency, c.Batch, c.ClaimIdle, c.SweepEvery, c.TrimEvery, c.Flash.Reservation, c.AccessLogSample, c.Store)
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
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(usage)
	fs.StringVar(&c.Listen, "listen", getenv("FLASHEDGE_WORKER_LISTEN"), "address for /health, /ready, /metrics and /metrics.json, empty for none (env FLASHEDGE_WORKER_LISTEN)")
	fs.StringVar(&c.Consumer, "consumer", getenv("FLASHEDGE_WORKER_CONSUMER"), "consumer name, unique per live worker; default hostname-pid (env FLASHEDGE_WORKER_CONSUMER)")
	fs.StringVar(&c.Group, "group", flashsale.DefaultGroup, "consumer group on the attempt stream")
	fs.IntVar(&c.Concurrency, "concurrency", flashsale.DefaultConcurrency, "consumer loops, each with its own blocking read")
	fs.IntVar(&c.Batch, "batch", flashsale.DefaultBatch, "messages per read")
	fs.DurationVar(&c.ClaimIdle, "claim-idle", flashsale.DefaultClaimIdle, "take over messages another consumer left pending this long (XAUTOCLAIM)")
	fs.DurationVar(&c.SweepEvery, "sweep-every", flashsale.DefaultSweepEvery, "period of the expiry sweep; 0 disables it")
	fs.DurationVar(&c.TrimEvery, "trim-every", flashsale.DefaultTrimEvery, "period of the stream trim (never below unacknowledged entries); 0 disables it")
	fs.DurationVar(&c.Grace, "shutdown-grace", 5*time.Second, "how long probe requests may finish on shutdown")
	c.Log.RegisterFlags(fs, getenv)
	fs.Uint64Var(&c.AccessLogSample, "access-log-sample", sample, "log one request of the ops server in N, errors always (env FLASHEDGE_ACCESS_LOG_SAMPLE)")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments %q: everything is set by flags", fs.Args())
	}
	if c.Concurrency < 1 || c.Batch < 1 || c.ClaimIdle <= 0 || c.SweepEvery < 0 || c.TrimEvery < 0 || c.Grace <= 0 || c.AccessLogSample == 0 {
		return config{}, errors.New("-concurrency, -batch, -claim-idle, -shutdown-grace and -access-log-sample must be positive; -sweep-every and -trim-every zero or positive")
	}
	// WorkerOptions read zero as "default" and negative as "off".
	if c.SweepEvery == 0 {
		c.SweepEvery = -1
	}
	if c.TrimEvery == 0 {
		c.TrimEvery = -1
	}
	if c.Flash, err = flashsale.OptionsFromEnv(getenv); err != nil {
		return config{}, err
	}
	c.Log.Service = "worker"
	if c.Store, err = kv.OptionsFromEnv(getenv); err != nil {
		return config{}, err
	}
	c.Store.ClientName = "flashedge-worker"
	c.Store.DisableCache = true // the worker reads nothing it could cache
	return c, nil
}

// run is the worker: it reads its config, opens the store, runs the flash-sale worker (and, with
// -listen, a /health and /ready server) until ctx is cancelled, then lets every consumer loop
// finish and acknowledge the messages it holds and returns nil.
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
	log.Info("starting", "config", cfg.String())

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
	if cfg.Listen != "" {
		ln, err := net.Listen("tcp", cfg.Listen)
		if err != nil {
			return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
		}
		probe := httpapi.Probe{
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
		wg.Go(func() { stopOnError(httpapi.Serve(ctx, srv, ln, cfg.Grace)) })
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
