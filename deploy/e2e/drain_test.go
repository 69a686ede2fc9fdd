package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"flashedge/deploy/stack"
)

// TestEdgeDrainBehindBalancer stops one of two edges behind the real HAProxy with SIGTERM while
// shoppers read products through the balancer: the edge answers /ready 503 at once and keeps
// serving (its drain delay, launch.BalancerDrainDelay), HAProxy's health checks take it out and
// it stops receiving requests, requests in flight complete (some started through the balancer
// before the signal, some sent straight to the edge during the drain and still unfinished when
// its listener closed), and then it exits. The decision: shoppers see no error at all, not even
// a retryable one, because nothing reaches a closed edge (the balancer takes it out first; a
// connection it could not make goes to the other edge) and nothing in flight is cut.
func TestEdgeDrainBehindBalancer(t *testing.T) {
	st := stack.Start(t, stack.Options{
		Services:  []string{"catalog", "edge"},
		Replicas:  map[string]int{"edge": 2},
		Balancer:  true,
		NoRestart: true,
		Grace:     20 * time.Second, // the supervisor's SIGKILL must not cut the drain short
		ServiceEnv: map[string]map[string]string{
			"catalog": {"FLASHEDGE_SEED_DEMO": "10"},
			"edge":    {"FLASHEDGE_RATE_IP": "off"},
		},
	})
	lb := strings.TrimPrefix(st.BalancerURL(), "http://")
	edgeAddr, ops := st.Addr("edge", 0), st.OpsURL(0)
	// Request ids carry a random prefix per process: they tell which edge answered.
	first := newClient(t, st.URL("edge", 0), "").do("GET", "/api/v1/products/00000001", nil).want(t, "read at edge 1", 200, "")
	prefix, _, _ := strings.Cut(first.header.Get("X-Request-ID"), "-")
	if prefix == "" {
		t.Fatalf("edge 1 answered without a request id: %v", first.header)
	}

	// Steady load through the balancer: half the shoppers keep connections alive, half open
	// one per request; each pauses 3 ms between reads and stops at 5,000.
	var (
		mu     sync.Mutex
		codes  = map[int]int{}
		errs   []string
		ok     atomic.Int64
		stop   = make(chan struct{})
		wg     sync.WaitGroup
		loadOK = func() int64 { return ok.Load() }
	)
	for w := range 6 {
		wg.Go(func() {
			c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: w%2 == 1}}
			defer c.CloseIdleConnections()
			url := fmt.Sprintf("http://%s/api/v1/products/%08d", lb, w%5+1)
			for range 5000 {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := c.Get(url)
				mu.Lock()
				if err != nil {
					errs = append(errs, err.Error())
				} else {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					codes[resp.StatusCode]++
					if resp.StatusCode == http.StatusOK {
						ok.Add(1)
					}
				}
				mu.Unlock()
				time.Sleep(3 * time.Millisecond)
			}
		})
	}
	stopLoad := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopLoad()
	poll(t, "edge 1 serving part of the load", 15*time.Second, func() error {
		if n, err := productReads(ops); err != nil || n < 20 {
			return fmt.Errorf("edge 1 served %d product reads (%v)", n, err)
		}
		return nil
	})

	// Requests in flight through the balancer: headers and half a body sent before the signal.
	var viaLB []*trickle
	for i := range 8 {
		viaLB = append(viaLB, startTrickle(t, lb, fmt.Sprintf("drain-lb-%d", i)))
	}
	pid := st.PID("edge", 0)
	start := time.Now()
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM edge 1 (pid %d): %v", pid, err)
	}
	direct := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	poll(t, "edge 1 answering /ready 503 after SIGTERM", 5*time.Second, func() error {
		resp, err := direct.Get("http://" + edgeAddr + "/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable {
			return fmt.Errorf("/ready %d", resp.StatusCode)
		}
		return nil
	})
	notReady := time.Since(start)

	// HAProxy takes it out: edge 1's count of product reads stops moving while the load, served
	// by edge 2, goes on. Its listener must still be open then (the drain delay outlasts the
	// balancer's checks).
	var lastReads, lastOK int64 = -1, loadOK()
	poll(t, "HAProxy to stop sending reads to the draining edge", 10*time.Second, func() error {
		time.Sleep(300 * time.Millisecond)
		n, err := productReads(ops)
		if err != nil {
			return err
		}
		moved := n != lastReads
		prevOK := lastOK
		lastReads, lastOK = n, loadOK()
		if moved || lastOK <= prevOK {
			return fmt.Errorf("edge 1 reads %d (moved: %v), load answers %d -> %d", n, moved, prevOK, lastOK)
		}
		return nil
	})
	takenOut := time.Since(start)
	if c, err := net.DialTimeout("tcp", edgeAddr, time.Second); err != nil {
		t.Fatalf("edge 1 closed its listener (%v) before HAProxy took it out (%v after SIGTERM): the drain delay is too short", err, takenOut)
	} else {
		c.Close()
	}
	// Requests in flight at the edge itself when its listener closes.
	var atEdge []*trickle
	for i := range 3 {
		atEdge = append(atEdge, startTrickle(t, edgeAddr, fmt.Sprintf("drain-edge-%d", i)))
	}
	servedByEdge1 := 0
	for i, tr := range viaLB {
		id := tr.finish(t, fmt.Sprintf("request %d through the balancer, in flight since before SIGTERM", i))
		if strings.HasPrefix(id, prefix+"-") {
			servedByEdge1++
		}
	}
	poll(t, "edge 1 to close its listener", 15*time.Second, func() error {
		c, err := net.DialTimeout("tcp", edgeAddr, time.Second)
		if err == nil {
			c.Close()
			return fmt.Errorf("still accepting")
		}
		return nil
	})
	closed := time.Since(start)
	for i, tr := range atEdge {
		if id := tr.finish(t, fmt.Sprintf("request %d at edge 1, in flight when its listener closed", i)); !strings.HasPrefix(id, prefix+"-") {
			t.Errorf("request %d sent to edge 1 answered with request id %s, not edge 1's prefix %s", i, id, prefix)
		}
	}
	poll(t, "edge 1 to exit", 25*time.Second, func() error {
		if p := st.PID("edge", 0); p != 0 {
			return fmt.Errorf("pid %d running", p)
		}
		return nil
	})
	exited := time.Since(start)
	after := loadOK()
	poll(t, "the load to go on after edge 1 exited", 10*time.Second, func() error {
		if loadOK() < after+50 {
			return fmt.Errorf("%d answers since", loadOK()-after)
		}
		return nil
	})
	stopLoad()

	mu.Lock()
	defer mu.Unlock()
	t.Logf("after SIGTERM: /ready 503 within %v, out of HAProxy's rotation by %v, listener closed at %v, exited at %v; "+
		"load answers %v, transport errors %d; %d of 8 in-flight requests through the balancer were at edge 1",
		notReady.Round(time.Millisecond), takenOut.Round(time.Millisecond), closed.Round(time.Millisecond), exited.Round(time.Millisecond),
		codes, len(errs), servedByEdge1)
	if len(errs) > 0 {
		t.Errorf("%d shopper requests failed during the drain, first: %s", len(errs), errs[0])
	}
	for code, n := range codes {
		if code != http.StatusOK {
			t.Errorf("%d shopper reads answered %d during the drain, want only 200", n, code)
		}
	}
}

// productReads is the edge's count of product reads answered, from its ops listener.
func productReads(ops string) (int64, error) {
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Get(ops + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, `flashedge_edge_requests_total{route="/api/v1/products/{id}"`) {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return 0, fmt.Errorf("metric line %q: %w", line, err)
		}
		n += int64(v)
	}
	return n, nil
}

// trickle is a POST /api/v1/session sent in two parts: headers and half the body at start, the
// rest at finish, so the request is in flight in between.
type trickle struct {
	conn net.Conn
	rest string
}

func startTrickle(t *testing.T, addr, user string) *trickle {
	t.Helper()
	body := fmt.Sprintf(`{"user":%q}`, user)
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	head := fmt.Sprintf("POST /api/v1/session HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		addr, len(body), body[:len(body)/2])
	if _, err := io.WriteString(c, head); err != nil {
		t.Fatalf("write to %s: %v", addr, err)
	}
	return &trickle{conn: c, rest: body[len(body)/2:]}
}

// finish sends the rest of the body, wants a 200 session and returns its request id.
func (tr *trickle) finish(t *testing.T, what string) string {
	t.Helper()
	_ = tr.conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(tr.conn, tr.rest); err != nil {
		t.Fatalf("%s: write the rest of the body: %v", what, err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(tr.conn), nil)
	if err != nil {
		t.Fatalf("%s: no answer: %v", what, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `"token"`) {
		t.Fatalf("%s: %d %s, want 200 with a session", what, resp.StatusCode, b)
	}
	return resp.Header.Get("X-Request-ID")
}
