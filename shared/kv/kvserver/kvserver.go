// Package kvserver is the one store helper: it starts a private redis-server on a free loopback
// port (Start, through shared/proc) and waits until it answers (Wait), gives the command line of a
// server and of a Redis Cluster node, and forms a cluster with replicas. kvtest (tests), bench
// and the launcher (`make run`, which supervises its store and waits for it here) use it, so a
// store is started, waited for and a cluster formed in one way everywhere.
package kvserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"flashedge/shared/proc"
)

// Ping sends one PING to addr and reports whether the answer is PONG. It dials and reads with
// short deadlines (200 ms, 500 ms), so a polling loop stays responsive.
func Ping(addr string) error {
	reply, err := Reply(addr)
	if err != nil {
		return err
	}
	if reply != "+PONG" {
		return fmt.Errorf("unexpected reply %q", reply)
	}
	return nil
}

// Reply sends one PING to addr and returns the first line of the answer ("+PONG"; "-LOADING..."
// while a store replays its files; anything else from a program that is not a store).
func Reply(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return "", err
	}
	buf := make([]byte, 256)
	n, err := c.Read(buf)
	if n == 0 && err != nil {
		return "", err
	}
	line, _, _ := strings.Cut(string(buf[:n]), "\n")
	return strings.TrimSpace(line), nil
}

// Wait polls PING on addr until the answer is PONG (a store replaying its append-only file
// answers -LOADING first) or ctx ends. exited, when not nil, is asked after every failed poll
// whether the store process is gone: a non-empty reason ends the wait at once.
func Wait(ctx context.Context, addr string, exited func() string) error {
	var last error
	for {
		if last = Ping(addr); last == nil {
			return nil
		}
		if exited != nil {
			if why := exited(); why != "" {
				return fmt.Errorf("the store on %s exited (%s) before answering PING", addr, why)
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the store on %s did not answer PING in time: %v", addr, last)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// ServerArgs is the redis-server command line of a server on host:port with its working
// directory dir, in the foreground, followed by extra (persistence, cluster mode, a log file...).
func ServerArgs(host string, port int, dir string, extra ...string) []string {
	return append([]string{"--port", strconv.Itoa(port), "--bind", host, "--dir", dir,
		"--daemonize", "no", "--protected-mode", "no"}, extra...)
}

// Options configures Start.
type Options struct {
	// Dir is the server's working directory (data files, redis.log). Required.
	Dir string
	// Args are extra redis-server arguments, e.g. "--appendonly", "yes". Without them nothing is
	// persisted.
	Args []string
	// CPU pins the server with taskset when not empty (bench).
	CPU string
}

// Server is a redis-server started by Start. Its methods are safe for concurrent use.
type Server struct {
	// Addr is the loopback host:port the server listens on.
	Addr string
	// Dir is its working directory.
	Dir string

	o    Options
	port int
	mu   sync.Mutex
	p    *proc.Proc
}

// Start starts redis-server on a free loopback port, with snapshots off unless o.Args turn
// them on, and waits until it answers PING (up to 10 s). It tries another port when the first
// one was taken meanwhile. The caller owns the server and must Kill or Stop it.
func Start(ctx context.Context, o Options) (*Server, error) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		return nil, errors.New("kvserver: redis-server not on PATH: `make test` installs it (apt-get install redis-server)")
	}
	if o.Dir == "" {
		return nil, errors.New("kvserver: Options.Dir is required")
	}
	var lastErr error
	for range 5 {
		port, err := proc.FreePort()
		if err != nil {
			return nil, err
		}
		s := &Server{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Dir: o.Dir, o: o, port: port}
		if lastErr = s.start(ctx); lastErr == nil {
			return s, nil
		}
	}
	return nil, fmt.Errorf("kvserver: could not start redis-server: %w", lastErr)
}

func (s *Server) start(ctx context.Context) error {
	args := ServerArgs("127.0.0.1", s.port, s.Dir, append([]string{"--save", "", "--logfile", filepath.Join(s.Dir, "redis.log")}, s.o.Args...)...)
	p, err := proc.Start(proc.Spec{Name: "redis-server " + s.Addr, Path: "redis-server", Args: args, CPU: s.o.CPU})
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.p = p
	s.mu.Unlock()
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := Wait(wctx, s.Addr, p.Exited); err != nil {
		p.Signal(syscall.SIGKILL)
		<-p.Done()
		log, _ := os.ReadFile(filepath.Join(s.Dir, "redis.log"))
		return fmt.Errorf("%w; redis.log ends: %s", err, lastLines(string(log), 5))
	}
	return nil
}

func (s *Server) cur() *proc.Proc {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.p
}

// Argv is the command line the server was started with.
func (s *Server) Argv() []string { return s.cur().Argv }

// Pid is the server's process id.
func (s *Server) Pid() int { return s.cur().Pid() }

// Signal sends sig to the server (SIGSTOP pauses it, SIGCONT resumes it); it reports whether
// the server was running.
func (s *Server) Signal(sig syscall.Signal) bool { return s.cur().Signal(sig) }

// Kill stops the server with SIGKILL (nothing is flushed beyond what its config already
// fsynced) and waits for it. It is idempotent.
func (s *Server) Kill() {
	p := s.cur()
	p.Signal(syscall.SIGKILL)
	<-p.Done()
}

// Stop stops the server with SIGTERM (it saves what its config says), SIGKILL after grace.
func (s *Server) Stop(grace time.Duration) { s.cur().Stop(grace) }

// Restart kills the server and starts it again on the same port and directory, so append-only
// and snapshot files survive; it retries while the port lingers after the kill.
func (s *Server) Restart(ctx context.Context) error {
	s.Kill()
	var err error
	for range 50 {
		if err = s.start(ctx); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("kvserver: restart %s: %w", s.Addr, err)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// DefaultNodeTimeout is the cluster-node-timeout of ClusterNodeArgs: how long a primary may be
// unreachable before its replica is promoted. Production (deploy/k8s/store.yaml) uses 5 s.
const DefaultNodeTimeout = 2 * time.Second

// ClusterNodeArgs are the redis-server arguments of a cluster node whose cluster state lives in
// its working directory, with the given node timeout (zero means DefaultNodeTimeout).
func ClusterNodeArgs(nodeTimeout time.Duration) []string {
	if nodeTimeout <= 0 {
		nodeTimeout = DefaultNodeTimeout
	}
	return []string{"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
		"--cluster-node-timeout", fmt.Sprint(nodeTimeout.Milliseconds())}
}

// FormCluster joins nodes started with ClusterNodeArgs into one cluster with `redis-cli
// --cluster create`: the first len(addrs)/(replicas+1) addresses become primaries, the others
// their replicas. It then waits until every node reports cluster_state:ok and every replica's
// link to its primary is up, so the first write is already replicated.
func FormCluster(ctx context.Context, addrs []string, replicas int) error {
	if _, err := exec.LookPath("redis-cli"); err != nil {
		return fmt.Errorf("kvserver: redis-cli not on PATH (it comes with Debian's redis-tools, which redis-server installs)")
	}
	if len(addrs) < 3*(replicas+1) {
		return fmt.Errorf("kvserver: a cluster of 3 primaries with %d replica(s) each needs %d nodes, got %d", replicas, 3*(replicas+1), len(addrs))
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", fmt.Sprint(replicas), "--cluster-yes")
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(cctx, "redis-cli", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("kvserver: redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, a := range addrs {
		if err := waitInfo(cctx, a, "cluster", "info", "cluster_state:ok"); err != nil {
			return err
		}
		role, err := cli(cctx, a, "info", "replication")
		if err != nil {
			return err
		}
		if strings.Contains(role, "role:slave") {
			if err := waitInfo(cctx, a, "info", "replication", "master_link_status:up"); err != nil {
				return err
			}
		}
	}
	return nil
}

// waitInfo polls `redis-cli -h host -p port a b` on addr until its output contains want.
func waitInfo(ctx context.Context, addr, a, b, want string) error {
	for {
		out, err := cli(ctx, addr, a, b)
		if err == nil && strings.Contains(out, want) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kvserver: %s: no %q in %s %s: %v", addr, want, a, b, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func cli(ctx context.Context, addr string, args ...string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	out, err := exec.CommandContext(ctx, "redis-cli", append([]string{"-h", host, "-p", port}, args...)...).Output()
	return string(out), err
}

// EnsureCluster forms the cluster on addrs (FormCluster) unless its nodes already know each other
// from an earlier run (their cluster config files survived), in which case it waits until every
// node reports cluster_state:ok again.
func EnsureCluster(ctx context.Context, addrs []string, replicas int) error {
	info, err := cli(ctx, addrs[0], "cluster", "info")
	if err != nil {
		return fmt.Errorf("kvserver: cluster info on %s: %w", addrs[0], err)
	}
	if strings.Contains(info, "cluster_known_nodes:1\r") || strings.Contains(info, "cluster_known_nodes:1\n") {
		return FormCluster(ctx, addrs, replicas)
	}
	cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for _, a := range addrs {
		if err := waitInfo(cctx, a, "cluster", "info", "cluster_state:ok"); err != nil {
			return err
		}
	}
	return nil
}
