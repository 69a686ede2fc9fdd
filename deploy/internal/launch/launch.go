package launch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"flashedge/shared/kv/kvserver"
	"flashedge/shared/proc"
)

// Run starts the store (unless an external one is configured) and every planned instance whose
// binary exists, waits until they are ready, prints where to go, and then supervises them until
// ctx ends. It then stops everything in reverse start order; a value on force during that stop
// (the second Ctrl-C) kills what is left at once. environ is the environment the children inherit
// (os.Environ()); the launcher's own variables are set on top of it.
func Run(ctx context.Context, c Config, stdout io.Writer, environ []string, force <-chan os.Signal) error {
	if _, err := c.LoadSecrets(); err != nil {
		return err
	}
	plan := c.Plan()
	width := len("launch")
	for _, in := range plan {
		width = max(width, len(in.Name))
	}
	sup := proc.New(context.Background(), proc.Options{
		Out: stdout, Color: c.Color, TagWidth: width, Grace: c.Grace,
	})
	var closers []io.Closer // closed after every process has stopped
	defer func() {
		stopAll(ctx, sup, force)
		for _, cl := range closers {
			_ = cl.Close()
		}
	}()
	say := func(format string, args ...any) { sup.Printf("launch", format, args...) }
	say("%s", c)

	storeAddr, storeDesc, err := startStore(ctx, c, sup, environ, &closers)
	if err != nil {
		return err
	}
	say("store ready: %s", storeDesc)

	var started []Instance
	skipped := map[string]bool{}
	for _, in := range plan {
		path := filepath.Join(c.BinDir, in.Service)
		if fi, err := os.Stat(path); err != nil || fi.IsDir() {
			if !skipped[in.Service] {
				say("WARNING: skipping %s: no binary at %s (not written or not built yet)", in.Service, path)
				skipped[in.Service] = true
			}
			continue
		}
		if err := checkPortFree(in.Addr, in.Name); err != nil {
			return err
		}
		spec := proc.Spec{Name: in.Name, Path: path, Env: MergeEnv(environ, c.Env(in, storeAddr))}
		if err := sup.Start(spec); err != nil {
			return err
		}
		started = append(started, in)
	}

	start := time.Now()
	var notReady []string
	for _, r := range WaitReady(ctx, started, c.ReadyTimeout) {
		if r.Err != nil {
			notReady = append(notReady, fmt.Sprintf("%s (%s: %v)", r.In.Name, r.In.Addr, r.Err))
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	if len(notReady) > 0 {
		say("WARNING: not ready after %s: %s; still supervising, see their logs above", c.ReadyTimeout, strings.Join(notReady, ", "))
	}
	if c.Balanced() {
		var edges []Instance
		for _, in := range started {
			if in.Service == "edge" {
				edges = append(edges, in)
			}
		}
		if err := checkPortFree(c.BalancerAddr(), "the balancer"); err != nil {
			return err
		}
		if err := StartBalancer(sup, c.DataDir, c.BalancerAddr(), edges); err != nil {
			return err
		}
		if err := WaitBalancer(ctx, c.BalancerAddr(), c.ReadyTimeout); err != nil {
			say("WARNING: %v", err)
		}
	}
	took := time.Since(start)
	if c.Seed > 0 {
		for _, in := range started {
			if in.Service == "edge" {
				if msg, err := SeedDemoSale(ctx, in.Addr, c.AdminToken, time.Now()); err != nil {
					say("demo flash sale not created: %v", err)
				} else {
					say("%s", msg)
				}
				break
			}
		}
	}
	printBanner(say, c, started, storeDesc, took)
	if c.Balanced() {
		say("  balancer        HAProxy on http://%s/ in front of %d edges (health check GET /ready every 500 ms, PROXY protocol v2 to the edges; each edge also answers on its own port)",
			c.BalancerAddr(), c.Replicas["edge"])
	}
	<-ctx.Done()
	return nil
}

// stopAll stops the supervisor; a signal on force while it waits kills every process at once.
func stopAll(ctx context.Context, sup *proc.Supervisor, force <-chan os.Signal) {
	if ctx.Err() != nil {
		sup.Printf("launch", "stopping everything (Ctrl-C again to kill at once)")
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		select {
		case <-force:
			sup.Printf("launch", "second signal: killing every process now")
			sup.KillAll()
		case <-done:
		}
	})
	sup.Stop()
	close(done)
	wg.Wait()
}

// startStore starts and waits for the launcher's store, or waits for the external one.
// It returns the address services use and a sentence for the user.
func startStore(ctx context.Context, c Config, sup *proc.Supervisor, environ []string, closers *[]io.Closer) (addr, desc string, err error) {
	if c.ExternalStore != "" {
		first := strings.TrimSpace(strings.Split(c.ExternalStore, ",")[0])
		if err := waitStore(ctx, first, c.ReadyTimeout, func() string { return "" }); err != nil {
			return "", "", fmt.Errorf("external store (FLASHEDGE_STORE_ADDR): %w", err)
		}
		return c.ExternalStore, "external store " + c.ExternalStore + " (FLASHEDGE_STORE_ADDR); nothing started", nil
	}
	if c.StoreKind == "cluster" {
		return startCluster(ctx, c, sup, environ, closers)
	}
	addr = fmt.Sprintf("%s:%d", c.Host, c.StorePort)
	if err := CheckStorePortFree(ctx, addr); err != nil {
		return "", "", err
	}
	kind, path, args, dir, err := c.StoreCommand(exec.LookPath)
	if err != nil {
		return "", "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	logPath := filepath.Join(c.DataDir, "store.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return "", "", err
	}
	*closers = append(*closers, logFile)
	if err := sup.Start(proc.Spec{Name: "store", Path: path, Args: args, Env: environ, CopyOutput: logFile}); err != nil {
		return "", "", err
	}
	failed := func() string {
		st, _ := sup.Status("store")
		return st.LastExit
	}
	if err := waitStore(ctx, addr, c.ReadyTimeout, failed); err != nil {
		return "", "", fmt.Errorf("%w (and in %s)", err, logPath)
	}
	durability := "append-only file, fsync every second: a machine crash loses at most about 1s of writes"
	if kind == "dragonfly" {
		durability = "snapshot every minute and on shutdown: a crash loses the writes since the last snapshot"
	}
	desc = fmt.Sprintf("%s on %s, data in %s (%s), log in %s", filepath.Base(path), addr, dir, durability, logPath)
	return addr, desc, nil
}

// ClusterNodes is the size of the launcher's Redis Cluster: 3 primaries, each with a replica.
const ClusterNodes = 6

// startCluster starts ClusterNodes redis-servers in cluster mode on StorePort..StorePort+5
// (supervised like every process: a killed node is restarted and rejoins as a replica), each
// with its append-only file and cluster config in DataDir/cluster/<port>, and forms the cluster
// on the first run.
func startCluster(ctx context.Context, c Config, sup *proc.Supervisor, environ []string, closers *[]io.Closer) (addr, desc string, err error) {
	path, err := exec.LookPath("redis-server")
	if err != nil {
		return "", "", errors.New("-store cluster: no redis-server on PATH: `make run` installs it (apt-get install redis-server)")
	}
	logPath := filepath.Join(c.DataDir, "store.log")
	if err := os.MkdirAll(c.DataDir, 0o755); err != nil {
		return "", "", err
	}
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return "", "", err
	}
	*closers = append(*closers, logFile)
	var addrs []string
	for i := range ClusterNodes {
		port := c.StorePort + i
		a := fmt.Sprintf("%s:%d", c.Host, port)
		if err := CheckStorePortFree(ctx, a); err != nil {
			return "", "", err
		}
		dir := filepath.Join(c.DataDir, "cluster", strconv.Itoa(port))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", "", err
		}
		args := kvserver.ServerArgs(c.Host, port, dir, append([]string{"--appendonly", "yes", "--appendfsync", "everysec"}, kvserver.ClusterNodeArgs(0)...)...)
		name := fmt.Sprintf("store-%d", i+1)
		if err := sup.Start(proc.Spec{Name: name, Path: path, Args: args, Env: environ, CopyOutput: logFile}); err != nil {
			return "", "", err
		}
		failed := func() string {
			st, _ := sup.Status(name)
			return st.LastExit
		}
		if err := waitStore(ctx, a, c.ReadyTimeout, failed); err != nil {
			return "", "", fmt.Errorf("%w (and in %s)", err, logPath)
		}
		addrs = append(addrs, a)
	}
	if err := kvserver.EnsureCluster(ctx, addrs, 1); err != nil {
		return "", "", err
	}
	desc = fmt.Sprintf("Redis Cluster of 3 primaries with a replica each on %s:%d-%d (node timeout %s; kill -9 a primary and its replica takes over), data in %s, log in %s",
		c.Host, c.StorePort, c.StorePort+ClusterNodes-1, kvserver.DefaultNodeTimeout, filepath.Join(c.DataDir, "cluster"), logPath)
	return strings.Join(addrs, ","), desc, nil
}

func printBanner(say func(string, ...any), c Config, started []Instance, storeDesc string, took time.Duration) {
	var names []string
	edge, ops := "", ""
	for _, in := range started {
		names = append(names, in.Name+" "+in.Addr)
		if in.Service == "edge" && edge == "" {
			edge, ops = in.Addr, in.OpsAddr
			if c.Balanced() {
				edge = c.BalancerAddr()
			}
		}
	}
	say("flashedge is up (services ready in %s)", took.Round(10*time.Millisecond))
	if edge == "" {
		say("  (no edge running: build edge/cmd/edge and relaunch for the shop)")
	} else {
		port := edge[strings.LastIndexByte(edge, ':')+1:]
		say("  open the shop   http://%s/", edge)
		say("  a product       curl -s localhost:%s/api/v1/products/00000001", port)
		say("  admin update    curl -s -X PUT localhost:%s/api/v1/admin/products/00000001 -H 'Authorization: Bearer %s' -H 'Content-Type: application/json' -d '{\"price\":129000}'", port, c.AdminToken)
		say("  metrics         http://%s/metrics (the edge's internal ops port; every backend serves /metrics on its own port)", ops)
		say("  dashboard       http://%s/dashboard (internal ops port, not the shop's)", ops)
	}
	say("  admin token     %s (FLASHEDGE_ADMIN_TOKEN, kept in %s unless set)", c.AdminToken, filepath.Join(c.DataDir, "secrets"))
	say("  store           %s", storeDesc)
	say("  processes       %s", strings.Join(names, ", "))
	say("  Ctrl-C stops everything; a process that dies is restarted (backoff %s doubling to %s).",
		proc.DefaultMinBackoff, proc.DefaultMaxBackoff)
}
