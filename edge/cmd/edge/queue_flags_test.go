package main

import (
	"io"
	"testing"
	"time"

	"flashedge/shared/upstream"
)

// TestBackendQueueConfig: -backend-queue and -backend-queue-wait, from flags and from
// FLASHEDGE_BACKEND_QUEUE*: defaults, 0 = no queue, negatives and a zero wait refused; and
// -challenge-ttl from FLASHEDGE_FLASHSALE_CHALLENGE_TTL.
func TestBackendQueueConfig(t *testing.T) {
	base := map[string]string{
		"FLASHEDGE_ADMIN_TOKEN":    "admin-token-for-tests-0123",
		"FLASHEDGE_SESSION_SECRET": "k1:0123456789abcdef0123456789abcdef",
	}
	load := func(args []string, env map[string]string) (config, error) {
		return loadConfig(args, func(k string) string {
			if v, ok := env[k]; ok {
				return v
			}
			return base[k]
		}, io.Discard)
	}
	c, err := load(nil, nil)
	if err != nil || c.BackendQueue != upstream.DefaultMaxQueued || c.BackendQueueWait != upstream.DefaultQueueWait {
		t.Fatalf("defaults: %d %v (%v)", c.BackendQueue, c.BackendQueueWait, err)
	}
	c, err = load(nil, map[string]string{"FLASHEDGE_BACKEND_QUEUE": "0", "FLASHEDGE_BACKEND_QUEUE_WAIT": "20ms"})
	if err != nil || c.BackendQueue != 0 || c.BackendQueueWait != 20*time.Millisecond {
		t.Fatalf("env 0 and 20ms: %d %v (%v)", c.BackendQueue, c.BackendQueueWait, err)
	}
	c, err = load([]string{"-backend-queue", "7"}, map[string]string{"FLASHEDGE_BACKEND_QUEUE": "0"})
	if err != nil || c.BackendQueue != 7 {
		t.Fatalf("the flag wins over the variable: %d (%v)", c.BackendQueue, err)
	}
	c, err = load(nil, map[string]string{"FLASHEDGE_BACKEND_MAX_INFLIGHT": "8"})
	if err != nil || c.BackendMaxInFlight != 8 {
		t.Fatalf("FLASHEDGE_BACKEND_MAX_INFLIGHT=8: %d (%v)", c.BackendMaxInFlight, err)
	}
	if !c.OrderBatch || !c.RequestMetrics {
		t.Fatalf("defaults: order batches %v, request metrics %v; want both on", c.OrderBatch, c.RequestMetrics)
	}
	c, err = load(nil, map[string]string{"FLASHEDGE_ORDER_BATCH": "off", "FLASHEDGE_METRICS": "off"})
	if err != nil || c.OrderBatch || c.RequestMetrics {
		t.Fatalf("FLASHEDGE_ORDER_BATCH=off FLASHEDGE_METRICS=off: %v %v (%v)", c.OrderBatch, c.RequestMetrics, err)
	}
	// The order service reads the same variable for the challenges it mints itself.
	c, err = load(nil, map[string]string{"FLASHEDGE_FLASHSALE_CHALLENGE_TTL": "90s"})
	if err != nil || c.ChallengeTTL != 90*time.Second {
		t.Fatalf("FLASHEDGE_FLASHSALE_CHALLENGE_TTL=90s: %v (%v)", c.ChallengeTTL, err)
	}
	for _, bad := range []struct {
		args []string
		env  map[string]string
	}{
		{[]string{"-backend-queue", "-1"}, nil},
		{nil, map[string]string{"FLASHEDGE_BACKEND_QUEUE": "-5"}},
		{[]string{"-backend-queue-wait", "0"}, nil},
		{[]string{"-backend-queue-wait", "-1s"}, nil},
		{nil, map[string]string{"FLASHEDGE_BACKEND_QUEUE_WAIT": "soon"}},
		{nil, map[string]string{"FLASHEDGE_BACKEND_QUEUE": "lots"}},
		{[]string{"-challenge-ttl", "0s"}, nil},
		{nil, map[string]string{"FLASHEDGE_BACKEND_MAX_INFLIGHT": "-1"}},
		{[]string{"-order-batch", "yes"}, nil},
		{nil, map[string]string{"FLASHEDGE_METRICS": "1"}},
	} {
		if _, err := load(bad.args, bad.env); err == nil {
			t.Errorf("accepted %v %v", bad.args, bad.env)
		}
	}
}
