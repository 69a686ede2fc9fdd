package chaos

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"flashedge/deploy/stack"
)

// TestKillCartReplicaUnderLoad: SIGKILL one of two cart replicas while shoppers use their
// carts. Once the edge's health probe has taken the replica out, no request may fail; before
// that, the edge retries a request that found the replica dead on the other one, so failures
// should be rare (they are counted and printed). When the replica is back, the edge must put
// it back into rotation.
func TestKillCartReplicaUnderLoad(t *testing.T) {
	st := stack.Start(t, quiet(stack.Options{
		Services:   []string{"catalog", "cart", "edge"},
		Replicas:   map[string]int{"cart": 2},
		NoRestart:  true,
		ServiceEnv: map[string]map[string]string{"catalog": {"FLASHEDGE_SEED_DEMO": "20"}},
	}))
	hc := newHTTP(t)
	edge := st.URL("edge", 0)
	ops := st.OpsURL(0) // metrics and dashboard data
	const workers = 4
	users := make([]*client, workers)
	for w := range users {
		users[w] = login(t, hc, edge, fmt.Sprintf("kill-cart-%d", w))
	}
	// Each worker alternates an add (PUT) and a cart read (GET), one request per 4ms.
	l := startLoad(t, workers, 4*time.Millisecond, 5000, func(w, i int) (string, func() reply) {
		if i%2 == 0 {
			return "cart-put", func() reply {
				return users[w].call("PUT", "/api/v1/cart/items/"+pid(1+i/2%5), map[string]int{"quantity": 1 + i%3})
			}
		}
		return "cart-get", func() reply { return users[w].call("GET", "/api/v1/cart", nil) }
	})

	victim := st.Addr("cart", 1)
	time.Sleep(time.Second) // a steady baseline
	killAt := time.Now()
	st.Kill("cart", 1)
	noticed := waitBackend(t, hc, ops, "cart", victim, 5*time.Second, "unhealthy", unhealthy)
	time.Sleep(1500 * time.Millisecond) // load on the one replica left
	before := replicaRequests(t, hc, ops, "cart", victim)
	restartAt := time.Now()
	st.Restart("cart", 1)
	back := waitBackend(t, hc, ops, "cart", victim, 5*time.Second, "healthy again", healthy)
	// Its breaker opened on the connections refused before the edge noticed: it closes after
	// its open timeout (5s) and one successful trial request.
	closed := waitBackend(t, hc, ops, "cart", victim, 10*time.Second, "with its breaker closed", usable)
	time.Sleep(500 * time.Millisecond) // load on both again
	all := l.Stop()
	after := replicaRequests(t, hc, ops, "cart", victim)

	early := pick(all, func(s sample) bool { return s.start.Before(noticed) && !s.end().Before(killAt) })
	earlyFailed := pick(early, func(s sample) bool { return !s.ok() })
	late := pick(all, func(s sample) bool { return !s.start.Before(noticed) })
	if bad := firstBad(late, func(s sample) bool { return !s.ok() }); bad != "" {
		t.Errorf("a request failed after the edge had taken the dead replica out: %s\ntimeline from 1s before the kill:%s",
			bad, timeline(all, killAt.Add(-time.Second), 250*time.Millisecond))
	}
	if bad := firstBad(all, func(s sample) bool { return s.end().Before(killAt) && !s.ok() }); bad != "" {
		t.Errorf("a request failed before the fault: %s", bad)
	}
	if bad := firstBad(earlyFailed, func(s sample) bool { return !s.clear503() }); bad != "" {
		t.Errorf("a request that failed before the edge noticed did not get a clear 503: %s", bad)
	}
	down := pick(all, func(s sample) bool { return !s.start.Before(killAt) && s.start.Before(restartAt) })
	if len(down) < 200 {
		t.Errorf("only %d requests while the replica was down: the load did not run", len(down))
	}
	if after <= before {
		t.Errorf("the restarted replica got no request from the edge (%d attempts before the restart, %d after)", before, after)
	}
	okLats := lats(pick(all, func(s sample) bool { return s.ok() }))
	t.Logf("kill -9 1 of 2 cart replicas under load: %d requests (%d while it was down); edge noticed %s after the kill; "+
		"%d requests in flight or sent before it noticed, %d failed (%s); %d requests after it noticed, %d failed; "+
		"healthy again at the edge %s after the restart, breaker closed after %s (%d requests sent to it since); latency p50 %s p99 %s",
		len(all), len(down), noticed.Sub(killAt).Round(time.Millisecond), len(early), len(earlyFailed), statuses(earlyFailed),
		len(late), len(pick(late, func(s sample) bool { return !s.ok() })), back.Sub(restartAt).Round(time.Millisecond),
		closed.Sub(restartAt).Round(time.Millisecond), after-before,
		ms(pct(okLats, 50)), ms(pct(okLats, 99)))
}

// replicaRequests returns how many attempts the edge has sent to one replica, from its
// dashboard data.
func replicaRequests(t testing.TB, hc *http.Client, edge, service, addr string) uint64 {
	t.Helper()
	r := (&client{base: edge, http: hc}).must(t, "dashboard data", 200, "GET", "/dashboard/data.json", nil)
	var d struct {
		Backends []struct {
			Service  string `json:"service"`
			Addr     string `json:"addr"`
			Requests uint64 `json:"requests"`
		} `json:"backends"`
	}
	if err := json.Unmarshal(r.body, &d); err != nil {
		t.Fatalf("dashboard data %.200s: %v", r.body, err)
	}
	for _, b := range d.Backends {
		if b.Service == service && b.Addr == addr {
			return b.Requests
		}
	}
	t.Fatalf("dashboard data has no %s replica %s: %.300s", service, addr, r.body)
	return 0
}
