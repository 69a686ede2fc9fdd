package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fasthttp/router"
	"github.com/redis/rueidis"
	"github.com/valyala/fasthttp"

	"flashedge/edge/internal/clientaddr"
	"flashedge/edge/internal/connlimit"
	"flashedge/edge/internal/dashboard"
	"flashedge/edge/internal/flashgate"
	"flashedge/edge/internal/gateway"
	"flashedge/edge/internal/guard"
	"flashedge/edge/internal/productcache"
	"flashedge/edge/internal/proxyproto"
	"flashedge/edge/internal/session"
	"flashedge/edge/internal/waitroom"
	"flashedge/edge/internal/web"
	"flashedge/shared/challenge"
	"flashedge/shared/flagenv"
	"flashedge/shared/httpapi"
	"flashedge/shared/kv"
	"flashedge/shared/metrics"
	"flashedge/shared/obs"
	"flashedge/shared/upstream"
	wait "flashedge/shared/waitroom"
)

// config is everything the edge reads from flags and the environment, in one place.
type config struct {
	flagenv.Service        // -addr (FLASHEDGE_EDGE_LISTEN), store, logs, grace, drain
	OpsListen       string // /metrics, /metrics.json, /dashboard: never the public port
	SecureCookie    bool
	// ProxyProtocolFrom: peers whose PROXY protocol header (v1/v2) names the client address.
	ProxyProtocolFrom []netip.Prefix
	// ForwardedFrom: peers whose X-Forwarded-For / Forwarded headers name the client address.
	ForwardedFrom []netip.Prefix
	// MaxConnsPerAddr caps the connections one client address (IPv6: /64) holds open; 0: none.
	MaxConnsPerAddr int
	// BackendQueue bounds the calls waiting for a slot at each backend pool's in-flight limit;
	// 0: none (refused at once). BackendQueueWait is the longest expected wait one is queued for.
	BackendQueue     int
	BackendQueueWait time.Duration
	// BackendMaxInFlight is the ceiling of each backend pool's adaptive in-flight limit; 0: the
	// pool's connection cap (its replicas x connections per replica).
	BackendMaxInFlight int
	// ChallengeTTL is how long a flash-sale challenge minted here can be answered.
	ChallengeTTL time.Duration
	CatalogAddrs []string
	CartAddrs    []string
	OrderAddrs   []string
	AdminToken   string
	SessionKeys  map[string][]byte
	SessionKid   string
	SessionTTL   time.Duration
	IPRate       float64 // attempts+challenges per second per client IP; negative: off
	UserRate     float64 // per user; negative: off
	ShopIPRate   float64 // cache misses of product/catalog reads and cart/order calls per second per client IP; negative: off
	ShopUserRate float64 // cart and order calls per second per user; negative: off
	CacheMB      int64
	// RequestMetrics off leaves out the per-request metrics (make bench measures their cost).
	RequestMetrics bool
	// OrderBatch sends the flash-sale attempts to the order service in batches (upstream's
	// BatchPath); off sends each on its own (make bench compares the two).
	OrderBatch bool
}

// String prints the config with secrets masked, for the start-up log.
func (c config) String() string {
	return fmt.Sprintf("addr=%s ops_addr=%s store={%s} catalog=%v cart=%v order=%v backend_queue=%d backend_queue_wait=%s admin_token=*** session_keys=%d ttl=%s secure_cookie=%v proxy_protocol_from=%v forwarded_from=%v shutdown_grace=%s drain_delay=%s",
		c.Addr, c.OpsListen, c.Store, c.CatalogAddrs, c.CartAddrs, c.OrderAddrs, c.BackendQueue, c.BackendQueueWait, len(c.SessionKeys), c.SessionTTL, c.SecureCookie, c.ProxyProtocolFrom, c.ForwardedFrom, c.Grace, c.DrainDelay)
}

func loadConfig(args []string, getenv func(string) string, out io.Writer) (config, error) {
	var c config
	s := flagenv.New("edge", "FLASHEDGE_", getenv, out)
	svc := s.Service(flagenv.ServiceDefaults{Addr: "127.0.0.1:8000", AccessLogSample: 1000})
	s.String(&c.OpsListen, "ops-addr", "127.0.0.1:8100",
		"internal listen address for /metrics, /metrics.json and /dashboard; keep it off the public network").Env("FLASHEDGE_EDGE_OPS_LISTEN")
	var secure, proxyFrom, fwdFrom, ipRate, userRate, shopIPRate, shopUserRate, metrics string
	s.String(&secure, "secure-cookie", "auto", "mark the session cookie Secure: on, off, or auto (on unless -addr is a loopback address)")
	s.String(&proxyFrom, "proxy-protocol-from", "", "CIDRs of the load balancers whose PROXY protocol header names the client, comma-separated; empty: none")
	s.String(&fwdFrom, "forwarded-from", "", "CIDRs of the proxies whose X-Forwarded-For/Forwarded headers name the client, comma-separated; empty: none")
	s.Int(&c.MaxConnsPerAddr, "max-conns-per-addr", 1024,
		"connections one client address (IPv6: its /64) may hold open; 0 for no cap; raise it behind a balancer that hides client addresses")
	s.Int(&c.BackendQueue, "backend-queue", upstream.DefaultMaxQueued,
		"calls that may wait for a free slot when a backend's in-flight limit is reached, per backend; 0 refuses them at once (503 overloaded)")
	s.Int(&c.BackendMaxInFlight, "backend-max-inflight", 0,
		"the most calls in flight to one backend at once, the ceiling of its adaptive limit; 0: its replicas' connection cap")
	s.Duration(&c.BackendQueueWait, "backend-queue-wait", upstream.DefaultQueueWait,
		"the longest expected wait a call over a backend's in-flight limit is queued for; when the calls ahead would take longer to drain it is refused at once (503 overloaded, Retry-After), and a call that was queued is served")
	s.Duration(&c.ChallengeTTL, "challenge-ttl", challenge.DefaultTTL,
		"how long a flash-sale challenge minted by the edge can be answered").Env("FLASHEDGE_FLASHSALE_CHALLENGE_TTL")
	s.Addrs(&c.CatalogAddrs, "catalog", "127.0.0.1:5001", "catalog replicas, host:port comma-separated").Env("FLASHEDGE_CATALOG_ADDRS")
	s.Addrs(&c.CartAddrs, "cart", "127.0.0.1:5002", "cart replicas, host:port comma-separated").Env("FLASHEDGE_CART_ADDRS")
	s.Addrs(&c.OrderAddrs, "order", "127.0.0.1:5003", "order replicas, host:port comma-separated").Env("FLASHEDGE_ORDER_ADDRS")
	s.Duration(&c.SessionTTL, "session-ttl", 24*time.Hour, "session lifetime")
	s.Int64(&c.CacheMB, "cache-mb", 64, "rendered-body cache size in MiB")
	s.String(&ipRate, "rate-ip", "50", "flash-sale requests per second per client IP at this edge, or off")
	s.String(&userRate, "rate-user", "2", "flash-sale requests per second per user at this edge, or off")
	s.String(&shopIPRate, "rate-shop-ip", "1000", "product reads and catalog pages that miss the cache, and cart and order calls whoever the user, per second per client IP at this edge (burst twice that), or off")
	s.String(&shopUserRate, "rate-shop-user", "300", "cart and order calls per second per user at this edge (burst twice that), or off")
	var orderBatch string
	s.String(&orderBatch, "order-batch", "on", "send flash-sale attempts to the order service in batches, the ones waiting together in one call: on, or off (each on its own call)")
	s.String(&metrics, "metrics", "on", "per-request metrics: on, or off (only to measure what they cost; /metrics and the domain metrics stay)")
	var sessionSecret string
	s.Secret(&c.AdminToken, "FLASHEDGE_ADMIN_TOKEN", "bearer token of the admin routes, at least 16 characters (required)")
	s.Secret(&sessionSecret, "FLASHEDGE_SESSION_SECRET", "session signing keys, kid:secret[,kid:secret...] (required)")
	if err := s.Parse(args); err != nil {
		return c, err
	}
	c.Service = *svc
	if len(c.AdminToken) < 16 {
		return c, errors.New("FLASHEDGE_ADMIN_TOKEN must be set to at least 16 characters (make run generates one)")
	}
	var err error
	if c.SessionKeys, c.SessionKid, err = session.ParseKeys(sessionSecret); err != nil {
		return c, fmt.Errorf("FLASHEDGE_SESSION_SECRET: %w", err)
	}
	if c.IPRate, err = parseRate("rate-ip", ipRate); err != nil {
		return c, err
	}
	if c.UserRate, err = parseRate("rate-user", userRate); err != nil {
		return c, err
	}
	if c.ShopIPRate, err = parseRate("rate-shop-ip", shopIPRate); err != nil {
		return c, err
	}
	if c.ShopUserRate, err = parseRate("rate-shop-user", shopUserRate); err != nil {
		return c, err
	}
	if c.ProxyProtocolFrom, err = clientaddr.ParseCIDRs(proxyFrom); err != nil {
		return c, fmt.Errorf("-proxy-protocol-from: %w", err)
	}
	if c.ForwardedFrom, err = clientaddr.ParseCIDRs(fwdFrom); err != nil {
		return c, fmt.Errorf("-forwarded-from: %w", err)
	}
	if c.SecureCookie, err = secureCookie(secure, c.Addr); err != nil {
		return c, err
	}
	if c.RequestMetrics, err = onOff("metrics", metrics); err != nil {
		return c, err
	}
	if c.OrderBatch, err = onOff("order-batch", orderBatch); err != nil {
		return c, err
	}
	if c.MaxConnsPerAddr < 0 || c.BackendQueue < 0 || c.BackendMaxInFlight < 0 || c.CacheMB <= 0 || c.SessionTTL <= 0 || c.BackendQueueWait <= 0 || c.ChallengeTTL <= 0 {
		return c, errors.New("-max-conns-per-addr, -backend-queue and -backend-max-inflight must be 0 or more; -cache-mb, -session-ttl, -backend-queue-wait and -challenge-ttl positive")
	}
	return c, nil
}

// onOff reads a switch flag: on or off.
func onOff(flag, v string) (bool, error) {
	switch v {
	case "on":
		return true, nil
	case "off":
		return false, nil
	}
	return false, fmt.Errorf("-%s=%q: want on or off", flag, v)
}

// secureCookie decides the cookie's Secure flag: auto turns it on unless the edge listens on
// loopback only (plain HTTP on a developer's machine); anything public is expected to be behind
// HTTPS.
func secureCookie(v, listen string) (bool, error) {
	switch v {
	case "on":
		return true, nil
	case "off":
		return false, nil
	case "auto":
		host, _, err := net.SplitHostPort(listen)
		if err != nil {
			return false, fmt.Errorf("-addr %q: %w", listen, err)
		}
		if host == "localhost" {
			return false, nil
		}
		ip := net.ParseIP(host)
		return ip == nil || !ip.IsLoopback(), nil
	}
	return false, fmt.Errorf("-secure-cookie=%q: want on, off or auto", v)
}

func parseRate(name, v string) (float64, error) {
	if v == "off" {
		return -1, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f <= 0 {
		return 0, fmt.Errorf("-%s=%q: want a positive number of requests per second, or off", name, v)
	}
	return f, nil
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	cfg, log, logCloser, err := flagenv.Start(args, getenv, stdout, loadConfig)
	if err != nil {
		return err
	}
	defer logCloser.Close()

	// The store client delivers invalidations to the caches derived from it; they are set once
	// they exist (the client must exist first).
	var products atomic.Pointer[productcache.Cache]
	var gate atomic.Pointer[flashgate.Gate]
	storeOpts := cfg.Store
	storeOpts.OnInvalidations = func(msgs []rueidis.RedisMessage) {
		if p := products.Load(); p != nil {
			p.Invalidate(msgs)
		}
		if g := gate.Load(); g != nil {
			g.Invalidate(msgs)
		}
	}
	store, err := kv.Open(ctx, storeOpts)
	if err != nil {
		return err
	}
	closeStore := sync.OnceFunc(store.Close)
	defer closeStore()
	pc, err := productcache.New(store, productcache.Options{MaxBytes: cfg.CacheMB << 20})
	if err != nil {
		return err
	}
	defer pc.Close()
	defer closeStore() // before pc.Close: no invalidation may reach a closed cache
	products.Store(pc)

	signer, err := session.NewSigner(cfg.SessionKeys, cfg.SessionKid, cfg.SessionTTL)
	if err != nil {
		return err
	}

	var wg sync.WaitGroup
	defer wg.Wait()
	poolCtx, stopPools := context.WithCancel(context.Background())
	defer stopPools()
	// Each hop's budget is shorter than its caller's, so nothing waits on a call its caller has
	// already given up on: edge -> order 5s > checkout 4s > order -> cart/catalog 1.5s per
	// attempt; edge -> cart 4s > cart request 3s (its prices come from the store); edge -> catalog 3s >
	// catalog store calls 2s.
	budgets := map[string]time.Duration{"catalog": httpapi.EdgeBudgetCatalog, "cart": httpapi.EdgeBudgetCart, "order": httpapi.EdgeBudgetOrder}
	for name, b := range budgets {
		if err := httpapi.CheckBudget("the edge's write timeout (gateway.WriteTimeout)", gateway.WriteTimeout, "the edge's budget for "+name, b); err != nil {
			return err
		}
	}
	reg := metrics.New("edge")
	newPool := func(name string, addrs []string, batchPath string) (*upstream.Pool, error) {
		p, err := upstream.New(upstream.Options{
			Name: name, Addrs: addrs, Timeout: budgets[name], AdaptiveInFlight: true, BatchPath: batchPath,
			// A short queue at the limit: closed-loop shoppers in a burst wait a moment instead
			// of being refused, while a lasting surge is refused at arrival (Options.QueueWait).
			MaxQueued: cfg.BackendQueue, QueueWait: cfg.BackendQueueWait, MaxInFlight: cfg.BackendMaxInFlight,
			OnStateChange: func(name, _ string, _, to string) {
				reg.Counter("flashedge_edge_breaker_transitions_total", "backend", name, "to", to).Inc()
			},
		}, log)
		if err != nil {
			return nil, err
		}
		wg.Add(1)
		go func() { defer wg.Done(); p.Run(poolCtx) }()
		return p, nil
	}
	catalog, err := newPool("catalog", cfg.CatalogAddrs, "")
	if err != nil {
		return err
	}
	defer catalog.Close()
	cart, err := newPool("cart", cfg.CartAddrs, "")
	if err != nil {
		return err
	}
	defer cart.Close()
	// The flash-sale attempts go to the order service in batches (flashgate asks for it).
	orderBatchPath := ""
	if cfg.OrderBatch {
		orderBatchPath = httpapi.BatchPath
	}
	order, err := newPool("order", cfg.OrderAddrs, orderBatchPath)
	if err != nil {
		return err
	}
	defer order.Close()

	guards, err := guard.New(store, log, guard.Options{
		AddrRate: cfg.IPRate, UserRate: cfg.UserRate, ShopAddrRate: cfg.ShopIPRate, ShopUserRate: cfg.ShopUserRate,
		Resolver: clientaddr.New(cfg.ForwardedFrom),
	})
	if err != nil {
		return err
	}
	sealer, err := wait.NewSealer(cfg.SessionKeys, cfg.SessionKid)
	if err != nil {
		return err
	}
	// The queue routes keep address budgets of their own (shoppers poll), off with the others.
	roomOpts := waitroom.Options{}
	if cfg.IPRate < 0 {
		roomOpts.AddrRate = -1
	}
	room, err := waitroom.New(store, signer, sealer, guards, log, roomOpts)
	if err != nil {
		return err
	}
	// Challenges are minted here and verified by the order service with keys from the same secret.
	challenges, err := challenge.NewKeys(cfg.SessionKeys, cfg.SessionKid)
	if err != nil {
		return err
	}
	fg, err := flashgate.New(store, gateway.WithRequestID(order), signer, guards, log, flashgate.Options{Pass: room.Pass, Challenges: challenges, ChallengeTTL: cfg.ChallengeTTL})
	if err != nil {
		return err
	}
	gate.Store(fg)
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-poolCtx.Done():
				return
			case <-t.C:
				guards.Sweep()
				room.Sweep()
			}
		}
	}()

	src := &edgeSource{reg: reg, products: pc, gate: fg, store: store, pools: []*upstream.Pool{catalog, cart, order}, order: order, adminToken: cfg.AdminToken}
	src.register()

	// Logins are free (a demo login: no password), so they are charged to the client address
	// like the flash-sale routes, under the same setting.
	login := guards.Limit(session.NewHandler(signer, session.HandlerOptions{SecureCookie: cfg.SecureCookie}))

	var draining atomic.Bool
	requestMetrics := reg
	if !cfg.RequestMetrics {
		// Only for measuring what the request metrics cost (make bench compares both); the
		// domain metrics and /metrics stay.
		requestMetrics = nil
		log.Warn("per-request metrics are off (-metrics off, FLASHEDGE_METRICS=off)")
	}
	gw, err := gateway.New(gateway.Config{
		Products:  pc,
		Fast:      fg.Fast,
		FastRoute: flashgate.AttemptsRoute,
		Shop:      guards.Shop,
		Extra: func(r *router.Router, admin func(fasthttp.RequestHandler) fasthttp.RequestHandler) {
			fg.Register(r, admin)
			room.Register(r)
			web.Register(r)
		},
		Catalog:    catalog,
		Cart:       cart,
		Order:      order,
		Sessions:   signer,
		Login:      login,
		AdminToken: cfg.AdminToken,
		Log:        log,
		IDs:        obs.NewIDs(),
		Ready: func(ctx context.Context) error {
			return store.Do(ctx, store.B().Ping().Build()).Error()
		},
		Draining:        draining.Load,
		AccessLogSample: cfg.AccessLogSample,
		Metrics:         requestMetrics,
	})
	if err != nil {
		return err
	}
	handler := gw.Handler()
	// Operations get their own listener: the metrics and the dashboard's data (ledger figures,
	// replica addresses and their errors) are for operators, so the public port answers 404.
	ops := httpapi.NewRouter()
	reg.Register(ops)
	dashboard.Register(ops, src, dashboard.Options{})
	opsLn, err := net.Listen("tcp", cfg.OpsListen)
	if err != nil {
		return fmt.Errorf("ops listener (-ops-addr, FLASHEDGE_EDGE_OPS_LISTEN): %w", err)
	}
	log.Info("ops listening", "addr", opsLn.Addr().String())
	opsSrv := httpapi.NewServer(ops.Handler, httpapi.ServerOptions{Name: "edge-ops"}, log)
	opsCtx, stopOps := context.WithCancel(context.Background())
	opsDone := make(chan error, 1)
	go func() { opsDone <- httpapi.Serve(opsCtx, opsSrv, opsLn, time.Second) }()
	// Stopped after the public server: metrics stay readable while requests drain.
	defer func() {
		stopOps()
		if err := <-opsDone; err != nil {
			log.Warn("ops listener", "err", err)
		}
	}()

	srv := httpapi.NewServer(handler, httpapi.ServerOptions{
		Name: "edge", ReadTimeout: gateway.ReadTimeout, WriteTimeout: gateway.WriteTimeout,
	}, log)
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	if len(cfg.ProxyProtocolFrom) > 0 {
		// Connections from the balancers carry the client's address in a PROXY header; from
		// anyone else a header is just a malformed request.
		ln = proxyproto.NewListener(ln, proxyproto.Options{Trusted: cfg.ProxyProtocolFrom, Log: log})
	}
	if cfg.MaxConnsPerAddr > 0 {
		// Outside the PROXY listener: the cap falls on the real client, not the balancer.
		ln = connlimit.New(ln, cfg.MaxConnsPerAddr)
	}
	log.Info("listening", "addr", ln.Addr().String())
	go func() { <-ctx.Done(); draining.Store(true) }()
	err = httpapi.ServeDrain(ctx, srv, ln, cfg.DrainDelay, cfg.Grace)
	log.Info("stopped", "err", err)
	stopPools()
	return err
}
