package chaos

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"flashedge/deploy/stack"
)

// TestRollingRestartWithDrainDelay restarts both order replicas one after the other under load,
// each with a drain delay (FLASHEDGE_DRAIN_DELAY): on SIGTERM a replica reports /health and
// /ready 503 while it keeps serving, the edge's probe takes it out of rotation, then it closes
// and drains. No shopper request may fail.
func TestRollingRestartWithDrainDelay(t *testing.T) {
	st := stack.Start(t, quiet(stack.Options{
		Services:   []string{"catalog", "cart", "order", "edge"},
		Replicas:   map[string]int{"order": 2},
		NoRestart:  true,
		ServiceEnv: map[string]map[string]string{"order": {"FLASHEDGE_DRAIN_DELAY": "1500ms"}},
	}))
	hc := newHTTP(t)
	edge := st.URL("edge", 0)
	ops := st.OpsURL(0) // metrics and dashboard data
	const workers = 4
	users := make([]*client, workers)
	for w := range users {
		users[w] = login(t, hc, edge, fmt.Sprint("rolling-", w))
	}
	l := startLoad(t, workers, 5*time.Millisecond, 3000, func(w, i int) (string, func() reply) {
		return "orders", func() reply { return users[w].call("GET", "/api/v1/orders", nil) }
	})
	time.Sleep(500 * time.Millisecond)
	readyDuring := map[int]map[string]int{}
	for i := range 2 {
		ready := map[string]int{}
		ctx, stop := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Go(func() {
			c := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
			for ctx.Err() == nil {
				k := "refused"
				if resp, err := c.Get(st.URL("order", i) + "/ready"); err == nil {
					k = fmt.Sprint(resp.StatusCode)
					resp.Body.Close()
				}
				ready[k]++
				time.Sleep(20 * time.Millisecond)
			}
		})
		st.Terminate("order", i) // returns once the process has exited
		stop()
		wg.Wait()
		readyDuring[i] = ready
		st.Restart("order", i)
		waitBackend(t, hc, ops, "order", st.Addr("order", i), 10*time.Second, "usable", usable)
	}
	all := l.Stop()
	if bad := firstBad(all, func(s sample) bool { return s.status != 200 }); bad != "" {
		t.Errorf("a request failed during the rolling restart: %s", bad)
	}
	for i, r := range readyDuring {
		if r["503"] == 0 {
			t.Errorf("replica %d never reported /ready 503 while draining: %v", i, r)
		}
	}
	t.Logf("rolling restart of 2 order replicas with a 1.5s drain delay under load: %d order lists, %d failed; "+
		"/ready of the stopping replica during its drain: %v; latency p50 %s p99 %s",
		len(all), len(pick(all, func(s sample) bool { return s.status != 200 })), readyDuring,
		ms(pct(lats(all), 50)), ms(pct(lats(all), 99)))
}
