package kvtest

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"flashedge/shared/kv"
)

// Cluster is a real multi-node Redis Cluster of primaries (no replicas) on loopback, owned by a
// test. Sharding bugs (a Lua script or a multi-key command across slots) fail on it with
// CROSSSLOT as they would in production, where a single redis-server accepts them.
type Cluster struct {
	// Nodes are the cluster's servers; Nodes[i].Addr are the seed addresses.
	Nodes []*Server
}

// StartCluster starts n (>= 3) redis-server nodes with cluster mode on, joins them with
// `redis-cli --cluster create`, and waits until every node reports cluster_state:ok. The nodes
// stop when the test ends.
func StartCluster(tb testing.TB, n int) *Cluster {
	tb.Helper()
	if n < 3 {
		tb.Fatalf("kvtest: a Redis Cluster needs at least 3 primaries, got %d", n)
	}
	if _, err := exec.LookPath("redis-cli"); err != nil {
		tb.Fatal("kvtest: redis-cli not on PATH (it comes with redis-server: `make test` installs it)")
	}
	c := &Cluster{}
	for range n {
		c.Nodes = append(c.Nodes, Start(tb, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "2000", "--appendonly", "no"))
	}
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "redis-cli", args...).CombinedOutput(); err != nil {
		tb.Fatalf("kvtest: redis-cli --cluster create: %v\n%s", err, out)
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, node := range c.Nodes {
		cl := node.Client(tb)
		for {
			info, err := cl.Do(context.Background(), cl.B().ClusterInfo().Build()).ToString()
			if err == nil && strings.Contains(info, "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				tb.Fatalf("kvtest: cluster node %s not ok within 20s: %v %s", node.Addr, err, info)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return c
}

// Addrs returns the nodes' addresses.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		out[i] = n.Addr
	}
	return out
}

// Options returns kv.Options for a cluster client of this cluster.
func (c *Cluster) Options() kv.Options {
	return kv.Options{Addrs: c.Addrs(), Cluster: true, DialTimeout: 2 * time.Second, ConnWriteTimeout: 3 * time.Second}
}

// Client opens a cluster client (it fails the test if rueidis does not see a cluster), closed
// when the test ends.
func (c *Cluster) Client(tb testing.TB) rueidis.Client {
	tb.Helper()
	cl, err := kv.Open(context.Background(), c.Options())
	if err != nil {
		tb.Fatalf("kvtest: open cluster client: %v", err)
	}
	tb.Cleanup(cl.Close)
	if cl.Mode() != rueidis.ClientModeCluster {
		tb.Fatalf("kvtest: client mode %v, want cluster", cl.Mode())
	}
	return cl
}

// String names the cluster's nodes.
func (c *Cluster) String() string { return fmt.Sprintf("cluster%v", c.Addrs()) }
