package launch

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"flashedge/deploy/wiring"
	"flashedge/shared/proc"
)

// BalancerTrust is the FLASHEDGE_PROXY_PROTOCOL_FROM given to edges behind the local HAProxy:
// the balancer connects from loopback and names the shopper in a PROXY v2 header.
const BalancerTrust = "127.0.0.1/32"

// BalancerDrainDelay is the FLASHEDGE_DRAIN_DELAY of edges behind the local HAProxy: it takes an
// edge whose /ready answers 503 out after two failed checks 500 ms apart (about 1-1.5 s), so an
// edge keeps serving three seconds after SIGTERM before its listener closes, twice that with room.
const BalancerDrainDelay = 3 * time.Second

// BehindBalancer sets what edges behind the local HAProxy are told: whom to trust for the PROXY
// protocol, and a drain delay longer than the balancer needs to take a draining edge out.
func BehindBalancer(w *wiring.Wiring) {
	w.ProxyProtocolFrom = BalancerTrust
	w.EdgeDrainDelay = BalancerDrainDelay
}

// HAProxyConfig is the configuration of the local load balancer in front of several edges:
// round robin, a health check of GET /ready every 500 ms (two failures take an edge out, two
// successes put it back, so an edge draining with /ready at 503 stops getting new requests), and
// the PROXY protocol (v2) to the edges so their per-address limits see shoppers. Health checks
// go without a PROXY header, which the edge accepts from a trusted peer. A request that could not
// reach an edge (connection refused) goes once to another; a GET or HEAD that got no answer at
// all (an edge closing an idle kept-alive connection as HAProxy reused it) is retried too, other
// methods never (they may have had an effect).
func HAProxyConfig(listen string, edges []Instance) string {
	var b strings.Builder
	fmt.Fprintf(&b, `# Written by the flashedge launcher; regenerated at every start.
global
    maxconn 4096
    # A soft stop (SIGUSR1) lets requests in flight finish, for at most this long.
    hard-stop-after 15s

defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 10s
    option redispatch
    retries 1
    retry-on conn-failure empty-response

frontend shop
    bind %s
    default_backend edges

backend edges
    balance roundrobin
    option httpchk GET /ready
    http-check expect status 200
    http-request disable-l7-retry if !METH_GET
    default-server check inter 500ms fall 2 rise 2 send-proxy-v2
`, listen)
	for _, e := range edges {
		fmt.Fprintf(&b, "    server %s %s\n", e.Name, e.Addr)
	}
	return b.String()
}

// StartBalancer writes HAProxyConfig into dir and starts haproxy under sup as "balancer", with
// SIGUSR1 (HAProxy's graceful stop) as its stop signal. It does not install HAProxy: `make run`
// and `make test` do (Debian's haproxy package).
func StartBalancer(sup *proc.Supervisor, dir, listen string, edges []Instance) error {
	path, err := exec.LookPath("haproxy")
	if err != nil {
		return errors.New("several edges need HAProxy in front: no haproxy on PATH (`make run` and `make test` install Debian's haproxy package)")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	cfg := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfg, []byte(HAProxyConfig(listen, edges)), 0o644); err != nil {
		return err
	}
	if out, err := exec.Command(path, "-c", "-q", "-f", cfg).CombinedOutput(); err != nil {
		return fmt.Errorf("haproxy refuses %s: %v\n%s", cfg, err, out)
	}
	return sup.Start(proc.Spec{Name: "balancer", Path: path, Args: []string{"-db", "-f", cfg}, StopSignal: syscall.SIGUSR1})
}

// WaitBalancer polls GET /ready through the balancer until it answers 200 (an edge behind it
// passed its health check), ctx ends or timeout passes.
func WaitBalancer(ctx context.Context, listen string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	c := &http.Client{Timeout: time.Second}
	var last string
	for {
		resp, err := c.Get("http://" + listen + "/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the balancer on %s did not pass /ready within %s (last: %s)", listen, timeout, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
