// Package stack runs the real flashedge binaries end to end for tests: it builds them once per
// test process, starts a private redis-server (or uses a given store), starts the services on
// free loopback ports through the same supervisor and the same environment wiring as `make run`,
// waits until every one answers /ready, and tears everything down when the test ends.
//
//	bin := stack.Build(t) // optional: Start builds too
//	st := stack.Start(t, stack.Options{Services: []string{"catalog", "edge"}})
//	resp, err := http.Get(st.URL("edge", 0) + "/api/v1/products/00000001")
//	st.Kill("catalog", 0) // SIGKILL; restarted after a short backoff unless NoRestart
//
// Replica indexes are 0-based; a process's log tag is 1-based like the launcher's ("catalog-1"
// is replica 0). Output of every process is kept and printed to the test log when the test fails
// (or streamed live with Options.Verbose or FLASHEDGE_STACK_VERBOSE=1).
package stack

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"flashedge/deploy/internal/launch"
	"flashedge/shared/kv/kvtest"
	"flashedge/shared/proc"
)

// Options says what to run. The zero value runs every service whose binary builds, one replica
// each, on a fresh kvtest redis-server, restarting processes that die.
type Options struct {
	// Services to start ("catalog", "cart", "order", "worker", "edge"); they start in that order
	// whatever the order given. Empty means every service whose binary exists.
	Services []string
	// Replicas per service. Missing or zero means 1.
	Replicas map[string]int
	// Env is added to every process's environment (after the wiring, so it can override it,
	// e.g. FLASHEDGE_ADMIN_TOKEN, which AdminToken then returns).
	Env map[string]string
	// ServiceEnv is added to the processes of one service, after Env.
	ServiceEnv map[string]map[string]string
	// StoreAddr is an existing store to use. Empty starts a kvtest redis-server (Store returns it).
	StoreAddr string
	// StoreArgs are extra redis-server arguments for the kvtest store, e.g. "--appendonly", "yes".
	StoreArgs []string
	// StoreCluster runs the services on a Redis Cluster: 3 primaries with a replica each
	// (kvtest.StartClusterWithReplicas; Cluster returns it), or, with StoreAddr, tells them that
	// address is a cluster. FLASHEDGE_STACK_STORE=cluster in the environment sets it for every
	// stack, which is how `make test` runs the core end-to-end tests a second time on a cluster.
	StoreCluster bool
	// Balancer puts a real HAProxy in front of the edges (launch.StartBalancer: health checks on
	// /ready, PROXY protocol v2 to the edges, which trust it); BalancerURL returns its address.
	Balancer bool
	// NoRestart leaves a process that exits (or is killed) down until Restart is called.
	NoRestart bool
	// RestartBackoff is the first restart delay after a crash (it doubles up to 2s).
	// Zero means 100ms.
	RestartBackoff time.Duration
	// ReadyTimeout bounds the wait for /ready at start and after a restart. Zero means 30s.
	ReadyTimeout time.Duration
	// Grace is how long a process may drain after SIGTERM before SIGKILL. Zero means 5s.
	Grace time.Duration
	// Verbose streams every output line to the test log as it arrives.
	Verbose bool
}

// Stack is a running set of processes owned by one test. Its methods may be called from the
// test's goroutine; they fail the test (Fatal) when something does not work.
type Stack struct {
	tb            testing.TB
	o             Options
	sup           *proc.Supervisor
	store         *kvtest.Server
	cluster       *kvtest.Cluster
	storeAddr     string
	balancer      string
	adminToken    string
	sessionSecret string
	instances     map[string][]launch.Instance // by service
	out           *tail
}

// Start builds the binaries (once per test process), starts the store and the services, waits
// until each answers /ready and registers a cleanup that stops them all (reverse start order,
// SIGTERM then SIGKILL after Grace). It skips the test under -short, as kvtest does.
func Start(tb testing.TB, o Options) *Stack {
	tb.Helper()
	if testing.Short() {
		tb.Skip("stack: skipping end-to-end test in -short mode")
	}
	bin := Build(tb)
	if o.RestartBackoff == 0 {
		o.RestartBackoff = 100 * time.Millisecond
	}
	if o.ReadyTimeout == 0 {
		o.ReadyTimeout = 30 * time.Second
	}
	if o.Grace == 0 {
		o.Grace = 5 * time.Second
	}
	if os.Getenv("FLASHEDGE_STACK_VERBOSE") == "1" {
		o.Verbose = true
	}
	services, err := pickServices(o.Services)
	if err != nil {
		tb.Fatalf("stack: %v", err)
	}

	s := &Stack{tb: tb, o: o, instances: map[string][]launch.Instance{}, out: newTail(2 << 20)}
	if os.Getenv("FLASHEDGE_STACK_STORE") == "cluster" {
		o.StoreCluster = true
	}
	s.storeAddr = o.StoreAddr
	switch {
	case s.storeAddr != "":
	case o.StoreCluster:
		s.cluster = kvtest.StartClusterWithReplicas(tb, 3, 1)
		s.storeAddr = strings.Join(s.cluster.Addrs(), ",")
	default:
		s.store = kvtest.Start(tb, o.StoreArgs...)
		s.storeAddr = s.store.Addr
	}
	s.adminToken = randomHex(24)
	s.sessionSecret = randomB64(48)
	if v := o.Env["FLASHEDGE_ADMIN_TOKEN"]; v != "" {
		s.adminToken = v
	}
	if v := o.Env["FLASHEDGE_SESSION_SECRET"]; v != "" {
		s.sessionSecret = v
	}

	w := launch.Wiring{
		StoreAddr: s.storeAddr, StoreCluster: o.StoreCluster, AdminToken: s.adminToken, SessionSecret: s.sessionSecret,
		LogFormat: "text", Addrs: map[string]string{},
	}
	if o.Balancer {
		launch.BehindBalancer(&w)
	}
	var plan []launch.Instance
	width := 0
	for _, svc := range services {
		n := max(o.Replicas[svc], 1)
		var addrs []string
		for i := range n {
			port, err := proc.FreePort()
			if err != nil {
				tb.Fatalf("stack: free port: %v", err)
			}
			in := launch.Instance{Service: svc, Index: i, Name: fmt.Sprintf("%s-%d", svc, i+1),
				Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
			if svc == "edge" {
				ops, err := proc.FreePort()
				if err != nil {
					tb.Fatalf("stack: free port: %v", err)
				}
				in.OpsAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(ops))
			}
			plan = append(plan, in)
			s.instances[svc] = append(s.instances[svc], in)
			addrs = append(addrs, in.Addr)
			width = max(width, len(in.Name))
		}
		w.Addrs[svc] = strings.Join(addrs, ",")
	}

	var sink io.Writer = s.out
	if o.Verbose {
		sink = io.MultiWriter(s.out, logWriter{tb})
	}
	s.sup = proc.New(context.Background(), proc.Options{
		Out: sink, TagWidth: width, Grace: o.Grace,
		MinBackoff: o.RestartBackoff, MaxBackoff: max(2*time.Second, o.RestartBackoff),
	})
	// Cleanups run last-registered first: stop the processes, then print their output if the
	// test failed (so the output includes their shutdown), and kvtest stops the store after both.
	tb.Cleanup(func() {
		if tb.Failed() && !o.Verbose {
			tb.Logf("stack: output of the processes (last %d bytes kept):\n%s", s.out.max, s.out.String())
		}
	})
	tb.Cleanup(s.sup.Stop)

	base := hermeticEnv(os.Environ())
	for _, in := range plan {
		env := w.Env(in)
		for k, v := range o.Env {
			env[k] = v
		}
		for k, v := range o.ServiceEnv[in.Service] {
			env[k] = v
		}
		spec := proc.Spec{Name: in.Name, Path: filepath.Join(bin, in.Service), Env: launch.MergeEnv(base, env), NoRestart: o.NoRestart}
		if err := s.sup.Start(spec); err != nil {
			tb.Fatalf("stack: %v", err)
		}
		// One at a time: a service that probes its dependencies (the edge) then finds them up,
		// instead of marking them unhealthy until its next probe.
		s.waitReady(in)
	}
	if o.Balancer {
		port, err := proc.FreePort()
		if err != nil {
			tb.Fatalf("stack: free port: %v", err)
		}
		s.balancer = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if err := launch.StartBalancer(s.sup, tb.TempDir(), s.balancer, s.instances["edge"]); err != nil {
			tb.Fatalf("stack: %v", err)
		}
		if err := launch.WaitBalancer(context.Background(), s.balancer, o.ReadyTimeout); err != nil {
			tb.Fatalf("stack: %v", err)
		}
	}
	return s
}

// BalancerURL returns "http://host:port" of the HAProxy in front of the edges (Options.Balancer).
func (s *Stack) BalancerURL() string {
	s.tb.Helper()
	if s.balancer == "" {
		s.tb.Fatalf("stack: no balancer: set Options.Balancer")
	}
	return "http://" + s.balancer
}

// pickServices orders the requested services, or lists every built one when none is named.
func pickServices(want []string) ([]string, error) {
	all := launch.Services()
	if len(want) == 0 {
		var out []string
		for _, svc := range all {
			if buildErr(svc) == nil {
				out = append(out, svc)
			}
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("no service binary built:\n%s", buildLog())
		}
		return out, nil
	}
	var out []string
	for _, svc := range want {
		if !slices.Contains(all, svc) {
			return nil, fmt.Errorf("unknown service %q (known: %s)", svc, strings.Join(all, ", "))
		}
		if err := buildErr(svc); err != nil {
			return nil, err
		}
		if !slices.Contains(out, svc) {
			out = append(out, svc)
		}
	}
	slices.SortFunc(out, func(a, b string) int { return slices.Index(all, a) - slices.Index(all, b) })
	return out, nil
}

// hermeticEnv drops every FLASHEDGE_ variable of the developer's shell, so a test sees only
// what the stack and its Options set.
func hermeticEnv(environ []string) []string {
	var out []string
	for _, kv := range environ {
		if !strings.HasPrefix(kv, "FLASHEDGE_") {
			out = append(out, kv)
		}
	}
	return out
}

func (s *Stack) instance(service string, replica int) launch.Instance {
	s.tb.Helper()
	ins := s.instances[service]
	if replica < 0 || replica >= len(ins) {
		s.tb.Fatalf("stack: %s has %d replica(s) running in this stack; replica %d does not exist", service, len(ins), replica)
	}
	return ins[replica]
}

// Addr returns host:port of a replica (0-based).
func (s *Stack) Addr(service string, replica int) string {
	s.tb.Helper()
	return s.instance(service, replica).Addr
}

// URL returns "http://host:port" of a replica (0-based), without a trailing slash.
func (s *Stack) URL(service string, replica int) string {
	s.tb.Helper()
	return "http://" + s.instance(service, replica).Addr
}

// OpsURL returns the base URL of an edge replica's internal ops listener (/metrics,
// /metrics.json, /dashboard), such as "http://127.0.0.1:41235".
func (s *Stack) OpsURL(replica int) string {
	s.tb.Helper()
	return "http://" + s.instance("edge", replica).OpsAddr
}

// Addrs returns the addresses of every replica of service, as the other services were told.
func (s *Stack) Addrs(service string) []string {
	var out []string
	for _, in := range s.instances[service] {
		out = append(out, in.Addr)
	}
	return out
}

// AdminToken is the FLASHEDGE_ADMIN_TOKEN every process got.
func (s *Stack) AdminToken() string { return s.adminToken }

// SessionSecret is the FLASHEDGE_SESSION_SECRET every process got.
func (s *Stack) SessionSecret() string { return s.sessionSecret }

// Store is the kvtest server the stack started, nil when Options.StoreAddr was given.
func (s *Stack) Store() *kvtest.Server {
	if s.store == nil {
		s.tb.Fatalf("stack: Store: this stack runs on a cluster (Cluster) or an external store, not on its own redis-server")
	}
	return s.store
}

// Cluster is the Redis Cluster the stack started (Options.StoreCluster), nil otherwise.
func (s *Stack) Cluster() *kvtest.Cluster { return s.cluster }

// StoreCluster reports whether the services run on a Redis Cluster.
func (s *Stack) StoreCluster() bool { return s.o.StoreCluster }

// StoreAddr is the store every process was pointed at.
func (s *Stack) StoreAddr() string { return s.storeAddr }

// Output returns what the processes printed so far (the most recent 2 MiB), tagged by process.
func (s *Stack) Output() string { return s.out.String() }

// PID returns the pid of a replica's running process, 0 when it is down.
func (s *Stack) PID(service string, replica int) int {
	s.tb.Helper()
	st, err := s.sup.Status(s.instance(service, replica).Name)
	if err != nil {
		s.tb.Fatalf("stack: %v", err)
	}
	return st.PID
}

// Kill sends SIGKILL to a replica and returns once the process is gone (reaped). Unless
// Options.NoRestart is set, the supervisor starts it again after the backoff; WaitReady waits
// for that.
func (s *Stack) Kill(service string, replica int) {
	s.tb.Helper()
	s.signal(service, replica, true)
}

// Terminate sends SIGTERM to a replica (a graceful stop: it should drain and exit) and returns
// once the process is gone, failing the test if that takes longer than Options.Grace plus 5s.
// Unless Options.NoRestart is set, the supervisor starts it again after the backoff.
func (s *Stack) Terminate(service string, replica int) {
	s.tb.Helper()
	s.signal(service, replica, false)
}

func (s *Stack) signal(service string, replica int, kill bool) {
	s.tb.Helper()
	name := s.instance(service, replica).Name
	st, err := s.sup.Status(name)
	if err != nil || !st.Running {
		s.tb.Fatalf("stack: %s is not running (%v)", name, err)
	}
	if kill {
		err = s.sup.Kill(name)
	} else {
		err = s.sup.Terminate(name)
	}
	if err != nil {
		s.tb.Fatalf("stack: %v", err)
	}
	within := 5 * time.Second
	if !kill {
		within += s.o.Grace
	}
	s.poll(fmt.Sprintf("%s (pid %d) to exit", name, st.PID), within, func() error {
		now, _ := s.sup.Status(name)
		if now.Running && now.PID == st.PID {
			return fmt.Errorf("pid %d still running", st.PID)
		}
		return nil
	})
}

// Restart stops a replica gracefully if it runs, starts it again at once and waits until it
// answers /ready. It also brings back a replica that is down (NoRestart, or in its backoff).
func (s *Stack) Restart(service string, replica int) {
	s.tb.Helper()
	in := s.instance(service, replica)
	before, _ := s.sup.Status(in.Name)
	if err := s.sup.Restart(in.Name); err != nil {
		s.tb.Fatalf("stack: %v", err)
	}
	s.poll(in.Name+" to start again", 10*time.Second+s.o.Grace, func() error {
		now, _ := s.sup.Status(in.Name)
		if now.Starts <= before.Starts || !now.Running {
			return fmt.Errorf("not restarted yet (last exit: %s)", now.LastExit)
		}
		return nil
	})
	s.waitReady(in)
}

// WaitReady waits until a replica answers /ready with 200 (after a Kill with restarts on, for
// example), failing the test after Options.ReadyTimeout.
func (s *Stack) WaitReady(service string, replica int) {
	s.tb.Helper()
	s.waitReady(s.instance(service, replica))
}

func (s *Stack) waitReady(in launch.Instance) {
	s.tb.Helper()
	// With restarts on, a process that is down now may be back after its backoff: only a
	// NoRestart stack gives up at its exit.
	var exited func() string
	if s.o.NoRestart {
		exited = func() string {
			st, _ := s.sup.Status(in.Name)
			if st.Running {
				return ""
			}
			return st.LastExit
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.o.ReadyTimeout)
	defer cancel()
	if err := proc.WaitHTTP(ctx, "http://"+in.Addr+"/ready", exited); err != nil {
		st, _ := s.sup.Status(in.Name)
		s.tb.Fatalf("stack: waited %s for %s /ready: %v (last exit: %q)", s.o.ReadyTimeout, in.Name, err, st.LastExit)
	}
}

// poll calls check until it returns nil, failing the test with check's last error at the deadline.
func (s *Stack) poll(what string, within time.Duration, check func() error) {
	s.tb.Helper()
	deadline := time.Now().Add(within)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			s.tb.Fatalf("stack: waited %s for %s: %v", within, what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func randomB64(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// logWriter streams whole lines (the supervisor writes one line per call) to the test log.
type logWriter struct{ tb testing.TB }

func (w logWriter) Write(p []byte) (int, error) {
	w.tb.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// tail keeps the last max bytes written to it, cut at line boundaries. Safe for concurrent use.
type tail struct {
	mu      sync.Mutex
	max     int
	buf     []byte
	dropped bool
}

func newTail(max int) *tail { return &tail{max: max} }

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		// Keep the newer half: trimming to exactly max on every line would move the whole
		// buffer per line once it is full, and stall the processes writing their logs.
		over := len(t.buf) - t.max/2
		cut := over
		if i := bytes.IndexByte(t.buf[over:], '\n'); i >= 0 {
			cut = over + i + 1
		}
		t.buf = append(t.buf[:0], t.buf[cut:]...)
		t.dropped = true
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.dropped {
		return "[earlier output dropped]\n" + string(t.buf)
	}
	return string(t.buf)
}
