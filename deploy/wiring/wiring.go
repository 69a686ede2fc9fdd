// Package wiring writes, in one place, the FLASHEDGE_* variables that tie flashedge's processes
// together: where the store is (and whether it is a cluster), the shared secrets, each process's
// listen address and the address lists of the services it calls. The launcher (`make run`), the
// end-to-end stack (deploy/stack) and bench (bench/internal/spawn) start processes with it.
package wiring

import (
	"strconv"
	"strings"
	"time"
)

// Process is one process of a service.
type Process struct {
	Service string
	// Index is the replica index, 0-based; Name carries it 1-based ("cart-1" is index 0).
	Index int
	Name  string
	Addr  string // host:port it listens on
	// OpsAddr is the edge's internal listener for /metrics and /dashboard (FLASHEDGE_EDGE_OPS_LISTEN);
	// empty for other services.
	OpsAddr string
}

// Wiring is what every process is told about the store and the other services. The launcher,
// the deploy/stack test harness and bench all build process environments from it, so tests and
// benchmarks run the binaries exactly as `make run` does.
type Wiring struct {
	StoreAddr string
	// StoreCluster sets FLASHEDGE_STORE_CLUSTER=true: StoreAddr are seeds of a Redis Cluster and
	// a service refuses to start on anything else.
	StoreCluster  bool
	AdminToken    string
	SessionSecret string
	// LogFormat is FLASHEDGE_LOG_FORMAT; empty leaves it unset.
	LogFormat string
	// Seed is FLASHEDGE_SEED_DEMO for replica 0 of the catalog; 0 leaves it unset.
	Seed int
	// Addrs maps a service to the comma-separated addresses of its replicas.
	Addrs map[string]string
	// ProxyProtocolFrom is FLASHEDGE_PROXY_PROTOCOL_FROM for edges (the balancer's address);
	// empty leaves it unset.
	ProxyProtocolFrom string
	// EdgeDrainDelay is FLASHEDGE_DRAIN_DELAY for edges: after SIGTERM an edge answers /ready
	// 503 and keeps serving this long, so the balancer in front takes it out of rotation before
	// its listener closes. Zero leaves it unset (no delay).
	EdgeDrainDelay time.Duration
}

// Env returns the FLASHEDGE_* variables for in.
func (w Wiring) Env(in Process) map[string]string {
	env := map[string]string{
		"FLASHEDGE_STORE_ADDR":                                 w.StoreAddr,
		"FLASHEDGE_ADMIN_TOKEN":                                w.AdminToken,
		"FLASHEDGE_SESSION_SECRET":                             w.SessionSecret,
		"FLASHEDGE_CATALOG_ADDRS":                              w.Addrs["catalog"],
		"FLASHEDGE_CART_ADDRS":                                 w.Addrs["cart"],
		"FLASHEDGE_ORDER_ADDRS":                                w.Addrs["order"],
		"FLASHEDGE_" + strings.ToUpper(in.Service) + "_LISTEN": in.Addr,
	}
	if in.OpsAddr != "" {
		env["FLASHEDGE_EDGE_OPS_LISTEN"] = in.OpsAddr
	}
	if w.StoreCluster {
		env["FLASHEDGE_STORE_CLUSTER"] = "true"
	}
	if in.Service == "edge" && w.ProxyProtocolFrom != "" {
		env["FLASHEDGE_PROXY_PROTOCOL_FROM"] = w.ProxyProtocolFrom
	}
	if in.Service == "edge" && w.EdgeDrainDelay > 0 {
		env["FLASHEDGE_DRAIN_DELAY"] = w.EdgeDrainDelay.String()
	}
	if w.LogFormat != "" {
		env["FLASHEDGE_LOG_FORMAT"] = w.LogFormat
	}
	// One replica seeds, so two do not race to fill an empty store.
	if in.Service == "catalog" && in.Index == 0 && w.Seed > 0 {
		env["FLASHEDGE_SEED_DEMO"] = strconv.Itoa(w.Seed)
	}
	return env
}
