package launch

import (
	"io"
	"testing"
)

// TestEdgesBehindBalancerEnv: edges behind the local HAProxy trust its PROXY header and drain
// longer than its checks need to take them out; a lone edge gets neither.
func TestEdgesBehindBalancerEnv(t *testing.T) {
	for _, tc := range []struct {
		name      string
		args      []string
		trust     string
		drain     string
		wantEdges int
	}{
		{"three edges behind HAProxy", []string{"-replicas", "edge=3"}, BalancerTrust, BalancerDrainDelay.String(), 3},
		{"one edge alone", nil, "", "", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConfig(tc.args, envOf(nil), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			edges := 0
			for _, in := range c.Plan() {
				if in.Service != "edge" {
					continue
				}
				edges++
				env := c.Env(in, "127.0.0.1:6379")
				if got := env["FLASHEDGE_PROXY_PROTOCOL_FROM"]; got != tc.trust {
					t.Errorf("%s: FLASHEDGE_PROXY_PROTOCOL_FROM=%q, want %q", in.Name, got, tc.trust)
				}
				if got := env["FLASHEDGE_DRAIN_DELAY"]; got != tc.drain {
					t.Errorf("%s: FLASHEDGE_DRAIN_DELAY=%q, want %q", in.Name, got, tc.drain)
				}
			}
			if edges != tc.wantEdges {
				t.Errorf("%d edges planned, want %d", edges, tc.wantEdges)
			}
		})
	}
}
