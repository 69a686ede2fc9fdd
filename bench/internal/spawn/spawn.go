// Package spawn starts the whole flashedge stack for a load run: a private redis-server on a
// free loopback port and the catalog, cart, order, worker and edge binaries from a bin directory
// on free loopback ports, wired with the FLASHEDGE_* environment as `make run` wires them, each
// waited for on /ready. Logs go to files in a work directory.
package spawn

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"flashedge/bench/internal/cpustat"
	"flashedge/deploy/wiring"
	"flashedge/shared/kv/kvserver"
	"flashedge/shared/proc"
)

// Services in start order.
var Services = []string{"catalog", "cart", "order", "worker", "edge"}

// Options configure Start.
type Options struct {
	// BinDir holds the binaries. Required.
	BinDir string
	// Dir receives the logs. Required.
	Dir string
	// Seed is FLASHEDGE_SEED_DEMO for the catalog. Zero means 1200.
	Seed int
	// Env is added to every service's environment.
	Env []string
	// ServiceEnv is added to one service's environment, after Env.
	ServiceEnv map[string][]string
	// CPU, when set (a CPU number such as "1"), pins the store and every service to it with
	// taskset. Empty means unpinned.
	CPU string
	// ReadyTimeout bounds the wait for each /ready. Zero means 60s.
	ReadyTimeout time.Duration
	// Logf, when not nil, is told what was started.
	Logf func(format string, a ...any)
}

// Stack is a running stack. Stop it with Stop.
type Stack struct {
	// URL is the edge's base URL, such as "http://127.0.0.1:41234".
	URL string
	// AdminToken is the generated FLASHEDGE_ADMIN_TOKEN.
	AdminToken string
	// Addrs maps each service to its listen address, plus "store" and "edge-ops" (the edge's
	// operations listener: /metrics, /metrics.json).
	Addrs map[string]string
	// Commands lists what was started, with secrets masked, for the report.
	Commands []string

	redis *kvserver.Server
	procs []*proc.Proc
}

func randomString(n int, b64 bool) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	if b64 {
		return base64.RawURLEncoding.EncodeToString(b)
	}
	return hex.EncodeToString(b)
}

// Start starts the store and every service and waits until each answers /ready and the
// catalog's demo seed is readable through the edge. On error everything started is stopped.
func Start(ctx context.Context, o Options) (_ *Stack, err error) {
	if o.BinDir == "" || o.Dir == "" {
		return nil, errors.New("spawn: BinDir and Dir are required")
	}
	if o.Seed == 0 {
		o.Seed = 1200
	}
	if o.ReadyTimeout == 0 {
		o.ReadyTimeout = 60 * time.Second
	}
	logf := o.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	bins := map[string]string{}
	var missing []string
	for _, svc := range Services {
		p, err := proc.Lookup(o.BinDir, svc)
		if err != nil {
			missing = append(missing, svc)
			continue
		}
		bins[svc] = p
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("spawn: %s not built in %s (go build -o %s/ ./edge/cmd/... ./backend/cmd/...)", strings.Join(missing, ", "), o.BinDir, o.BinDir)
	}

	s := &Stack{AdminToken: randomString(24, false), Addrs: map[string]string{}}
	defer func() {
		if err != nil {
			s.Stop()
		}
	}()
	if s.redis, err = kvserver.Start(ctx, kvserver.Options{Dir: o.Dir, CPU: o.CPU}); err != nil {
		return nil, err
	}
	s.Addrs["store"] = s.redis.Addr
	s.Commands = append(s.Commands, strings.Join(s.redis.Argv(), " "))
	logf("store: redis-server on %s", s.redis.Addr)

	for _, svc := range append(Services, "edge-ops") {
		if s.Addrs[svc], err = proc.FreeAddr(); err != nil {
			return nil, err
		}
	}
	w := wiring.Wiring{
		StoreAddr: s.redis.Addr, AdminToken: s.AdminToken, SessionSecret: "k1:" + randomString(36, true),
		Seed: o.Seed, Addrs: map[string]string{"catalog": s.Addrs["catalog"], "cart": s.Addrs["cart"], "order": s.Addrs["order"]},
	}
	for _, svc := range Services {
		// The rush reads the edge's own view of its latency and queues from the ops listener.
		in := wiring.Process{Service: svc, Name: svc + "-1", Addr: s.Addrs[svc]}
		if svc == "edge" {
			in.OpsAddr = s.Addrs["edge-ops"]
		}
		var env []string
		for k, v := range w.Env(in) {
			env = append(env, k+"="+v)
		}
		sort.Strings(env)
		env = append(env, o.Env...)
		env = append(env, o.ServiceEnv[svc]...)
		p, err := proc.Start(proc.Spec{Name: svc, Path: bins[svc], Env: append(os.Environ(), env...), CPU: o.CPU, Log: filepath.Join(o.Dir, svc+".log")})
		if err != nil {
			return nil, err
		}
		s.procs = append(s.procs, p)
		s.Commands = append(s.Commands, strings.Join(mask(env), " ")+" "+bins[svc])
		if err := p.WaitHTTP(ctx, "http://"+s.Addrs[svc]+"/ready", o.ReadyTimeout); err != nil {
			return nil, err
		}
		logf("%s: ready on %s (log %s)", svc, s.Addrs[svc], filepath.Join(o.Dir, svc+".log"))
	}
	s.URL = "http://" + s.Addrs["edge"]
	// The seed writes products in batches; wait for the last one.
	last := fmt.Sprintf("%s/api/v1/products/%08d", s.URL, o.Seed)
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := proc.WaitHTTP(wctx, last, nil); err != nil {
		return nil, fmt.Errorf("spawn: the catalog's demo seed: %w", err)
	}
	return s, nil
}

func mask(env []string) []string {
	out := make([]string, len(env))
	for i, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		if strings.Contains(k, "TOKEN") || strings.Contains(k, "SECRET") {
			v = "***"
		}
		out[i] = k + "=" + v
	}
	return out
}

// Pids returns the process id of every service and of the store ("store"), e.g. to pin them
// to CPUs or read their memory.
func (s *Stack) Pids() map[string]int {
	m := map[string]int{}
	if s.redis != nil {
		m["store"] = s.redis.Pid()
	}
	for _, p := range s.procs {
		m[p.Spec.Name] = p.Pid()
	}
	return m
}

// CPU returns the CPU time (user + system, from /proc) every process of the stack has used so
// far, the store included: the difference over a phase divided by its operations is the cost
// of one operation across all processes.
func (s *Stack) CPU() time.Duration {
	var ticks uint64
	if s.redis != nil {
		ticks += cpustat.ProcTicks(s.redis.Pid())
	}
	for _, p := range s.procs {
		ticks += cpustat.ProcTicks(p.Pid())
	}
	return time.Duration(ticks) * time.Second / cpustat.TicksPerSecond
}

// CPUByProcess is CPU by process: "store" and each service's name.
func (s *Stack) CPUByProcess() map[string]time.Duration {
	out := map[string]time.Duration{}
	if s.redis != nil {
		out["store"] = time.Duration(cpustat.ProcTicks(s.redis.Pid())) * time.Second / cpustat.TicksPerSecond
	}
	for _, p := range s.procs {
		out[p.Spec.Name] += time.Duration(cpustat.ProcTicks(p.Pid())) * time.Second / cpustat.TicksPerSecond
	}
	return out
}

// Stop stops the services in reverse start order, then the store, and waits for each.
// It is idempotent.
func (s *Stack) Stop() {
	for i := len(s.procs) - 1; i >= 0; i-- {
		s.procs[i].Stop(10 * time.Second)
	}
	s.procs = nil
	if s.redis != nil {
		s.redis.Stop(3 * time.Second)
		s.redis = nil
	}
}

// Exited returns the services that are no longer running, with their exit errors.
func (s *Stack) Exited() []string {
	var out []string
	for _, p := range s.procs {
		select {
		case <-p.Done():
			out = append(out, fmt.Sprintf("%s exited: %v", p.Spec.Name, p.ExitErr()))
		default:
		}
	}
	return out
}
