package productcache

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"flashedge/shared/keyspace"
	"flashedge/shared/kv"
	"flashedge/shared/kv/kvtest"
	"flashedge/shared/product"
)

// TestOnCluster reads products spread over a real 3-node Redis Cluster: pages gather documents
// from every node in one DoMultiCache, and invalidations arrive from whichever node owns a key.
func TestOnCluster(t *testing.T) {
	cl := kvtest.StartCluster(t, 3)
	writer := cl.Client(t)
	var hook testHook
	o := cl.Options()
	o.OnInvalidations = hook.invalidate
	edge, err := kv.Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	defer edge.Close()
	c, err := New(edge, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	hook.c.Store(c)

	ctx := context.Background()
	put := func(id, name string) {
		t.Helper()
		doc := product.Marshal(product.Doc{ID: id, Name: name, Price: 1000, Currency: "VND"})
		for _, r := range writer.DoMulti(ctx,
			writer.B().Set().Key(keyspace.Product(id)).Value(string(doc)).Build(),
			writer.B().Set().Key(keyspace.ProductStock(id)).Value("20").Build(),
			writer.B().Zadd().Key(keyspace.ProductIndex()).ScoreMember().ScoreMember(0, id).Build(),
		) {
			if err := r.Error(); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := 1; i <= 30; i++ {
		put(fmt.Sprintf("%08d", i), fmt.Sprintf("p%d", i))
	}
	page, err := c.Page(ctx, 30, "")
	if err != nil {
		t.Fatalf("page over the cluster: %v", err)
	}
	for i := 1; i <= 30; i++ {
		if want := fmt.Sprintf(`"name":"p%d"`, i); !contains(page.Body, want) {
			t.Fatalf("page lacks %s", want)
		}
	}
	nodes := map[string]bool{}
	for i := 1; i <= 30; i++ {
		for addr, n := range writer.Nodes() {
			if k, _ := n.Do(ctx, n.B().Exists().Key(keyspace.Product(fmt.Sprintf("%08d", i))).Build()).AsInt64(); k == 1 {
				nodes[addr] = true
			}
		}
	}
	if len(nodes) < 2 {
		t.Fatalf("30 products on %d node(s), want them spread", len(nodes))
	}
	for i := 1; i <= 30; i += 7 {
		id := fmt.Sprintf("%08d", i)
		if _, err := c.Product(ctx, []byte(id)); err != nil {
			t.Fatal(err)
		}
		put(id, "renamed")
		deadline := time.Now().Add(50 * time.Millisecond)
		for {
			rep, err := c.Product(ctx, []byte(id))
			b := bodyOf(rep, err)
			if err == nil && contains(b, `"name":"renamed"`) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("rename of %s not visible within 50ms on the cluster: %s", id, b)
			}
			time.Sleep(200 * time.Microsecond)
		}
	}
}

func contains(b []byte, s string) bool { return strings.Contains(string(b), s) }
