package launch_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"flashedge/deploy/internal/launch"
	"flashedge/deploy/stack"
)

// TestSeedDemoSale creates the demo sale through a real edge once, and leaves a store that has
// sales alone.
func TestSeedDemoSale(t *testing.T) {
	st := stack.Start(t, stack.Options{
		Services:   []string{"catalog", "cart", "order", "edge"},
		ServiceEnv: map[string]map[string]string{"catalog": {"FLASHEDGE_SEED_DEMO": "5"}},
	})
	edge := strings.TrimPrefix(st.URL("edge", 0), "http://")
	msg, err := launch.SeedDemoSale(context.Background(), edge, st.AdminToken(), time.Now())
	if err != nil || !strings.Contains(msg, "live") {
		t.Fatalf("first seed: %q, %v", msg, err)
	}
	resp, err := http.Get(st.URL("edge", 0) + "/api/v1/flash-sales/" + launch.DemoSale)
	if err != nil {
		t.Fatal(err)
	}
	var sale struct{ State string }
	_ = json.NewDecoder(resp.Body).Decode(&sale)
	resp.Body.Close()
	if resp.StatusCode != 200 || sale.State != "live" {
		t.Fatalf("demo sale at the edge: %d %+v, want live", resp.StatusCode, sale)
	}
	msg, err = launch.SeedDemoSale(context.Background(), edge, st.AdminToken(), time.Now())
	if err != nil || !strings.Contains(msg, "already") {
		t.Fatalf("second seed: %q, %v; want it left alone", msg, err)
	}
}
