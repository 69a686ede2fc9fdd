package kvtest_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"flashedge/shared/kv/kvtest"
)

func TestStartPingRestart(t *testing.T) {
	srv := kvtest.Start(t, "--appendonly", "yes", "--appendfsync", "always")
	c := srv.Client(t)
	ctx := context.Background()
	if err := c.Do(ctx, c.B().Set().Key("k").Value("v").Build()).Error(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	before := srv.CommandCalls(t, c, "set")
	if before != 1 {
		t.Fatalf("commandstats set calls = %d, want 1", before)
	}
	srv.Restart()
	c2 := srv.Client(t)
	got, err := c2.Do(ctx, c2.B().Get().Key("k").Build()).ToString()
	if err != nil || got != "v" {
		t.Fatalf("after restart GET k = %q, %v; want v (append-only file replayed)", got, err)
	}
}

func TestClusterSpreadsAndRefusesCrossSlot(t *testing.T) {
	cl := kvtest.StartCluster(t, 3)
	c := cl.Client(t)
	ctx := context.Background()
	// Keys with different hash tags land on different nodes; a script over both is refused
	// there, which a single redis-server would have accepted.
	for i, k := range []string{"{a}x", "{b}x", "{c}x"} {
		if err := c.Do(ctx, c.B().Set().Key(k).Value(fmt.Sprint(i)).Build()).Error(); err != nil {
			t.Fatalf("SET %s: %v", k, err)
		}
	}
	// rueidis' cluster client will not even build such a command; a plain connection to one
	// node shows what the server says.
	one := cl.Nodes[0].Client(t)
	err := one.Do(ctx, one.B().Eval().Script("return redis.call('GET', KEYS[1])").Numkeys(2).Key("{a}x", "{b}x").Build()).Error()
	if err == nil || !strings.Contains(err.Error(), "CROSSSLOT") {
		t.Fatalf("cross-slot EVAL: err %v, want CROSSSLOT", err)
	}
	seen := map[string]bool{}
	for addr, node := range c.Nodes() {
		n, err := node.Do(ctx, node.B().Dbsize().Build()).AsInt64()
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			seen[addr] = true
		}
	}
	if len(seen) < 2 {
		t.Fatalf("3 hash tags landed on %d node(s), want them spread", len(seen))
	}
}

// TestClusterWithReplicasFailover: with a replica per primary, killing a primary (SIGKILL) gets
// its replica promoted, and the same cluster client reads the key again from the new primary.
func TestClusterWithReplicasFailover(t *testing.T) {
	cl := kvtest.StartClusterWithReplicas(t, 3, 1)
	if len(cl.Nodes) != 6 {
		t.Fatalf("%d nodes, want 6", len(cl.Nodes))
	}
	c := cl.Client(t)
	ctx := context.Background()
	if err := c.Do(ctx, c.B().Set().Key("{f}k").Value("v").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	old := cl.PrimaryOf(t, "{f}k")
	// WAIT: the replica has the write before the primary dies (Redis; Dragonfly before 1.40 has
	// no WAIT, see deploy/README.md).
	one := old.Client(t)
	if n, err := one.Do(ctx, one.B().Wait().Numreplicas(1).Timeout(5000).Build()).AsInt64(); err != nil || n != 1 {
		t.Fatalf("WAIT 1 = %d, %v", n, err)
	}
	old.Stop()
	start := time.Now()
	deadline := start.Add(30 * time.Second)
	for {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		got, err := c.Do(cctx, c.B().Get().Key("{f}k").Build()).ToString()
		cancel()
		if err == nil && got == "v" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no answer from the promoted replica within 30s: %q, %v", got, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if now := cl.PrimaryOf(t, "{f}k"); now == old {
		t.Fatalf("the killed node is still the primary")
	}
	t.Logf("failover: the client read the key again %v after the kill", time.Since(start).Round(time.Millisecond))
}
