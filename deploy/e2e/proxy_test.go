package e2e

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"flashedge/deploy/stack"
)

// clientFrom is an HTTP client whose every connection comes from src (a loopback address of
// its own) and is used once, so round robin spreads its requests over the edges.
func clientFrom(src string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 2 * time.Second}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
}

func getStatus(t *testing.T, c *http.Client, url string, header ...string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestRealClientAddressesThroughHAProxy: two edges behind HAProxy with send-proxy-v2. The edges
// trust PROXY headers from HAProxy's address only. A client over its per-address budget is
// limited and then banned on its own real address, while another client behind the same
// HAProxy is untouched; a forged X-Forwarded-For (not trusted by default) and a PROXY header
// sent by an untrusted peer straight to an edge change nothing.
func TestRealClientAddressesThroughHAProxy(t *testing.T) {
	st := stack.Start(t, stack.Options{
		Services: []string{"edge"},
		Replicas: map[string]int{"edge": 2},
		// The launcher's HAProxy (make run -replicas edge=N): PROXY v2 to the edges, which
		// trust its address (launch.BalancerTrust), health checks on /ready.
		Balancer: true,
		ServiceEnv: map[string]map[string]string{"edge": {
			"FLASHEDGE_RATE_IP": "2", // burst 4 per edge; 30 refusals ban
		}},
	})
	base := st.BalancerURL()
	list := base + "/api/v1/flash-sales" // charged to the client's address at every call

	// Both edges up behind HAProxy (health checks pass with the PROXY header on).
	probe := clientFrom("127.0.9.9")
	deadline := time.Now().Add(10 * time.Second)
	for ok := 0; ok < 4; {
		if time.Now().After(deadline) {
			t.Fatal("HAProxy does not route to the edges within 10s")
		}
		if resp, err := probe.Get(base + "/ready"); err == nil && resp.StatusCode == 200 {
			resp.Body.Close()
			ok++
		} else {
			ok = 0
			time.Sleep(50 * time.Millisecond)
		}
	}

	honest, abuser, spoofer := clientFrom("127.0.2.2"), clientFrom("127.0.1.1"), clientFrom("127.0.3.3")
	codes := map[int]int{}
	var last []int
	for range 100 {
		c := getStatus(t, abuser, list)
		codes[c]++
		last = append(last, c)
	}
	// Per edge: 4 in the burst (+ what refilled at 2/s meanwhile), 30 refusals, then banned.
	if codes[200] < 4 || codes[200] > 24 || codes[429] < 40 || codes[403] == 0 {
		t.Fatalf("abuser's answers %v: want a few 200s, then 429s, then 403s (banned at both edges)", codes)
	}
	for _, c := range last[90:] {
		if c != 403 {
			t.Fatalf("abuser's last answers %v: want it banned", last[90:])
		}
	}
	// The honest client shares HAProxy's address with the abuser, but not its budget or ban.
	for i := range 2 {
		if c := getStatus(t, honest, list); c != 200 {
			t.Fatalf("honest client's request %d through HAProxy: %d, want 200", i, c)
		}
	}
	// A forged X-Forwarded-For naming the honest client is not believed (no trusted proxies):
	// the spoofer spends and loses its own budget, not the honest client's.
	spoofed := map[int]int{}
	for range 80 {
		spoofed[getStatus(t, spoofer, list, "X-Forwarded-For", "127.0.2.2")]++
	}
	if spoofed[403] == 0 {
		t.Fatalf("spoofer's answers %v: want it banned on its own address", spoofed)
	}
	for i := range 2 {
		if c := getStatus(t, honest, list); c != 200 {
			t.Fatalf("honest client after the spoofer: request %d answered %d, want 200", i, c)
		}
	}
	// A PROXY header sent straight to an edge by an untrusted peer is a malformed request.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.3.3")}}
	conn, err := d.Dial("tcp", st.Addr("edge", 0))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	conn.Write([]byte("PROXY TCP4 127.0.2.2 127.0.0.1 5555 8000\r\nGET /api/v1/flash-sales HTTP/1.1\r\nHost: x\r\n\r\n"))
	status, _ := bufio.NewReader(conn).ReadString('\n')
	if !strings.Contains(status, " 400 ") {
		t.Fatalf("untrusted PROXY header straight to the edge: %q, want 400", strings.TrimSpace(status))
	}
}
