package kvtest

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"flashedge/shared/kv"
	"flashedge/shared/kv/kvserver"
)

// Cluster is a real multi-node Redis Cluster on loopback, owned by a test. Sharding bugs (a Lua
// script or a multi-key command across slots) fail on it with CROSSSLOT as they would in
// production, where a single redis-server accepts them; with replicas, killing a primary shows
// what a failover does to the clients.
type Cluster struct {
	// Nodes are the cluster's servers; Nodes[i].Addr are the seed addresses. The first nodes are
	// the primaries as formed (a failover changes roles later), the rest their replicas.
	Nodes []*Server
}

// StartCluster starts n (>= 3) primaries without replicas; see StartClusterWithReplicas.
func StartCluster(tb testing.TB, n int) *Cluster {
	tb.Helper()
	return StartClusterWithReplicas(tb, n, 0)
}

// StartClusterWithReplicas starts primaries (>= 3) redis-server nodes in cluster mode, each with
// replicas replicas, forms the cluster (kvserver.FormCluster: every node cluster_state:ok, every
// replica linked) and stops the nodes when the test ends. The node timeout is
// kvserver.DefaultNodeTimeout (2 s), so a killed primary's replica takes over in a few seconds.
func StartClusterWithReplicas(tb testing.TB, primaries, replicas int) *Cluster {
	tb.Helper()
	if primaries < 3 {
		tb.Fatalf("kvtest: a Redis Cluster needs at least 3 primaries, got %d", primaries)
	}
	if _, err := exec.LookPath("redis-cli"); err != nil {
		tb.Fatal("kvtest: redis-cli not on PATH (it comes with redis-server: `make test` installs it)")
	}
	c := &Cluster{}
	args := append(kvserver.ClusterNodeArgs(0), "--appendonly", "no")
	for range primaries * (1 + replicas) {
		c.Nodes = append(c.Nodes, Start(tb, args...))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := kvserver.FormCluster(ctx, c.Addrs(), replicas); err != nil {
		tb.Fatalf("kvtest: %v", err)
	}
	return c
}

// PrimaryOf returns the node that serves key's slot as primary, as the first live node's
// CLUSTER SLOTS says (after a failover, once the nodes agree, the promoted replica).
func (c *Cluster) PrimaryOf(tb testing.TB, key string) *Server {
	tb.Helper()
	ctx := context.Background()
	for _, n := range c.Nodes {
		if kvserver.Ping(n.Addr) != nil {
			continue // killed
		}
		cl, err := kv.Open(ctx, kv.Options{Addrs: []string{n.Addr}, DisableCache: true})
		if err != nil {
			continue
		}
		slot, err1 := cl.Do(ctx, cl.B().ClusterKeyslot().Key(key).Build()).AsInt64()
		slots, err2 := cl.Do(ctx, cl.B().ClusterSlots().Build()).ToArray()
		cl.Close()
		if err1 != nil || err2 != nil {
			continue
		}
		for _, sl := range slots {
			rng, _ := sl.ToArray()
			if len(rng) < 3 {
				continue
			}
			lo, _ := rng[0].AsInt64()
			hi, _ := rng[1].AsInt64()
			pr, _ := rng[2].ToArray()
			if slot < lo || slot > hi || len(pr) < 2 {
				continue
			}
			host, _ := pr[0].ToString()
			port, _ := pr[1].AsInt64()
			addr := net.JoinHostPort(host, strconv.FormatInt(port, 10))
			for _, m := range c.Nodes {
				if m.Addr == addr {
					return m
				}
			}
		}
	}
	tb.Fatalf("kvtest: no live node knows the primary of %q", key)
	return nil
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
