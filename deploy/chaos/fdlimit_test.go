package chaos

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"flashedge/deploy/stack"
)

// TestEdgeKeepsAcceptingAfterFDExhaustion runs the edge out of file descriptors (its limit
// lowered with prlimit, then more connections opened than it may hold, from many loopback
// addresses so the per-address cap is not what refuses them) and checks it serves again once
// they close. fasthttp's accept loop returns on "too many open files", which used to leave a
// running edge that never accepted another connection (seen once in a full bot rush).
func TestEdgeKeepsAcceptingAfterFDExhaustion(t *testing.T) {
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		t.Skip("prlimit (util-linux) not installed")
	}
	st := stack.Start(t, quiet(stack.Options{
		Services:   []string{"catalog", "edge"},
		NoRestart:  true,
		ServiceEnv: map[string]map[string]string{"catalog": {"FLASHEDGE_SEED_DEMO": "5"}},
	}))
	hc := newHTTP(t)
	edge := st.URL("edge", 0)
	anon := &client{base: edge, http: hc}
	anon.must(t, "before", 200, "GET", "/api/v1/products/"+pid(1), nil)
	hc.CloseIdleConnections()

	edgePID := st.PID("edge", 0)
	open, err := os.ReadDir("/proc/" + strconv.Itoa(edgePID) + "/fd")
	if err != nil {
		t.Skipf("cannot count the edge's open files: %v", err)
	}
	limit := len(open) + 64
	if out, err := exec.Command(prlimit, "--pid", strconv.Itoa(edgePID), fmt.Sprintf("--nofile=%d:%d", limit, limit)).CombinedOutput(); err != nil {
		t.Skipf("prlimit: %v %s", err, out)
	}

	// Three times the headroom, 8 per address: the edge runs out of descriptors while accepting.
	var conns []net.Conn
	for i := range 3 * 64 {
		d := net.Dialer{Timeout: 2 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 8, byte(i/8/250), byte(1+i/8%250))}}
		c, err := d.Dial("tcp", st.Addr("edge", 0))
		if err != nil {
			continue // the backlog may be full: that is the point
		}
		conns = append(conns, c)
	}
	// Let the accept loop meet EMFILE: it keeps trying while the connections wait in the backlog.
	time.Sleep(500 * time.Millisecond)
	for _, c := range conns {
		c.Close()
	}
	poll(t, "the edge serving again after its descriptors were freed", 30*time.Second, func() error {
		r := anon.call("GET", "/api/v1/products/"+pid(1), nil)
		if r.status != 200 {
			return fmt.Errorf("%s", r)
		}
		return nil
	})
	if _, err := os.Stat("/proc/" + strconv.Itoa(edgePID)); err != nil {
		t.Fatalf("the edge process exited")
	}
	t.Logf("fd exhaustion: edge limited to %d descriptors (%d open before), %d connections opened; served again afterwards", limit, len(open), len(conns))
}
