package flashsale

import (
	"fmt"
	"testing"
	"time"

	"flashedge/shared/keyspace"
	"flashedge/shared/kv/kvtest"
)

// TestRushOnCluster runs a rush against a real 3-node Redis Cluster. A single redis-server
// accepts scripts whose keys span slots; a cluster (and Dragonfly) refuses them, so this is the
// test that proves the slot design: every script's keys share one hash tag, and the stock
// shards really are spread over the nodes.
func TestRushOnCluster(t *testing.T) {
	cl := kvtest.StartCluster(t, 3)
	e := newEnvOn(t, cl.Client(t), Options{StoreTimeout: 10 * time.Second})
	const stock, shards = 30, 8
	e.createSale(saleSpec{id: "cluster", stock: stock, shards: shards, limit: 1})
	stop := e.startWorkers(2, WorkerOptions{Concurrency: 2})
	defer stop()

	users := make([]string, 200)
	for i := range users {
		users[i] = fmt.Sprintf("c%03d", i%80)
	}
	outs := e.rush("cluster", users)
	e.settleAll("cluster", outs, 10*time.Second)
	won := map[string]int{}
	for _, o := range outs {
		if o.ticket != "" && o.final.Status == StatusWon {
			won[o.user]++
			if r := e.do("POST", "/api/v1/flash-sales/cluster/checkout", o.user, "", "", map[string]string{"token": o.final.Token}); r.status != 201 {
				t.Errorf("checkout of %s: %s", o.user, r)
			}
		}
	}
	if len(won) != stock {
		t.Fatalf("%d winners on the cluster, want %d", len(won), stock)
	}
	for u, n := range won {
		if n > 1 {
			t.Errorf("user %s won %d units with limit 1", u, n)
		}
	}
	l := e.checkAtRest("end of the cluster rush", "cluster")
	// The audit found the records on the node that owns the sale's slot (its SCAN is routed by
	// the hash tag) and the orders in the users' slots.
	if l.Audit.Tickets[StatusWon] != stock || l.Audit.Ordered != stock || l.Audit.Claims["o"] != stock {
		t.Errorf("audit on the cluster: %d won tickets, %d orders, %d ordered claims; want %d each",
			l.Audit.Tickets[StatusWon], l.Audit.Ordered, l.Audit.Claims["o"], stock)
	}
	if l.Ordered != stock || l.Remaining != 0 {
		t.Fatalf("ledger %+v", l)
	}
	// The shards sit on more than one node.
	nodes := map[string]bool{}
	for i := range shards {
		key := keyspace.StockShard("cluster", i)
		for addr, node := range e.c.Nodes() {
			if n, _ := node.Do(t.Context(), node.B().Exists().Key(key).Build()).AsInt64(); n == 1 {
				nodes[addr] = true
			}
		}
	}
	if len(nodes) < 2 {
		t.Errorf("the %d stock shards live on %d node(s), want them spread", shards, len(nodes))
	}
}
