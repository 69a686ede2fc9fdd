package proc

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Ports handed out by FreePort come from [portLow, portLow+portSpan): below Linux's default
// ephemeral range (32768-60999), so an outgoing connection's local port never takes one between
// FreePort and the bind, and low enough that a Redis Cluster node's bus port (port + 10000) lands
// in [22000, 32000), also below that range and outside this one.
const (
	portLow  = 12000
	portSpan = 10000
	// portClaimTTL is how long a claim file keeps a port from other callers. A port still bound
	// after that is refused by the trial bind anyway.
	portClaimTTL = 10 * time.Minute
)

// FreePort returns a loopback TCP port that is free now and that no other FreePort caller, in
// this process or another one on the machine (parallel test packages), has been given in the last
// ten minutes. The claim is a file created with O_EXCL in os.TempDir()/flashedge-ports. Asking the
// kernel for port 0 and closing the listener is not enough: the kernel hands the same port out
// again, and two services of one stack got the same address (CI, 2026-12-03).
func FreePort() (int, error) {
	dir := filepath.Join(os.TempDir(), "flashedge-ports")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return 0, fmt.Errorf("proc: free port: %w", err)
	}
	start := rand.IntN(portSpan)
	for i := range portSpan {
		port := portLow + (start+i)%portSpan
		if !claim(dir, port) {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue // bound by something that did not claim it; keep the claim so nobody retries it soon
		}
		l.Close()
		return port, nil
	}
	return 0, errors.New("proc: free port: every port in the range is claimed or bound")
}

// claim creates dir/<port>, replacing a claim older than portClaimTTL.
func claim(dir string, port int) bool {
	name := filepath.Join(dir, strconv.Itoa(port))
	for range 2 {
		f, err := os.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o666)
		if err == nil {
			f.Close()
			return true
		}
		if !errors.Is(err, os.ErrExist) {
			return false
		}
		st, err := os.Stat(name)
		if err != nil || time.Since(st.ModTime()) < portClaimTTL {
			return false
		}
		os.Remove(name) // stale; two callers may both remove it, and only one O_EXCL create wins
	}
	return false
}

// FreeAddr returns "127.0.0.1:<free port>".
func FreeAddr() (string, error) {
	port, err := FreePort()
	if err != nil {
		return "", err
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), nil
}
