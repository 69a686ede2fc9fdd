// Package kvserver holds what every starter of a local store needs, whoever supervises the
// process: the PING probe, the arguments of a Redis Cluster node, and forming a cluster with
// replicas. The launcher (`make run -store cluster`), kvtest (tests) and bench use it, so a store
// is waited for and a cluster formed in one way everywhere.
package kvserver

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"time"
)

// Ping sends one PING to addr and reports whether the answer is PONG. It dials and reads with
// short deadlines (200 ms, 500 ms), so a polling loop stays responsive.
func Ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if err != nil {
		return err
	}
	if !strings.HasPrefix(string(buf[:n]), "+PONG") {
		return fmt.Errorf("unexpected reply %q", buf[:n])
	}
	return nil
}

// WaitPing polls addr until it answers PONG, ctx ends, or exited (may be nil) is closed: the
// store process is gone, which it reports at once instead of waiting out ctx.
func WaitPing(ctx context.Context, addr string, exited <-chan struct{}) error {
	var last error
	for {
		if last = Ping(addr); last == nil {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("the store on %s exited before answering PING", addr)
		case <-ctx.Done():
			return fmt.Errorf("the store on %s did not answer PING: %v", addr, last)
		case <-time.After(10 * time.Millisecond):
		}
	}
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
