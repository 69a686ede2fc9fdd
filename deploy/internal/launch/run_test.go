package launch

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"flashedge/shared/kv/kvserver"
	"flashedge/shared/kv/kvtest"
	"flashedge/shared/obs/obstest"
	"flashedge/shared/proc"
	"flashedge/shared/proc/proctest"
)

// binDir holds copies of the stand-in service named catalog, cart and edge: each serves /health
// and /ready on FLASHEDGE_<NAME>_LISTEN like the real binary, and /env/<KEY> shows what it got.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "launch-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	if err := proctest.BuildStandin(dir, "catalog", "cart", "edge"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func freePort(t *testing.T) int {
	t.Helper()
	p, err := proc.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestStorePortTaken(t *testing.T) {
	srv := kvtest.Start(t)
	err := CheckStorePortFree(context.Background(), srv.Addr)
	if err == nil || !strings.Contains(err.Error(), "-store-port") || !strings.Contains(err.Error(), "already answers PING") {
		t.Errorf("port held by redis: %v, want advice naming -store-port", err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// Accept and stay silent, like a program that does not speak RESP.
	var wg sync.WaitGroup
	defer wg.Wait()
	defer ln.Close()
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	})
	if err := CheckStorePortFree(context.Background(), ln.Addr().String()); err == nil || !strings.Contains(err.Error(), "-store-port") {
		t.Errorf("port held by a non-redis program: %v, want an error naming -store-port", err)
	}

	if err := CheckStorePortFree(context.Background(), fmt.Sprintf("127.0.0.1:%d", freePort(t))); err != nil {
		t.Errorf("free port: %v", err)
	}
}

// startRun runs the launcher in the background and returns its output and a stop function that
// cancels it and returns Run's error.
func startRun(t *testing.T, c Config) (*obstest.Buffer, func() error) {
	t.Helper()
	out := &obstest.Buffer{}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- Run(ctx, c, out, os.Environ(), nil) }()
	var once sync.Once
	var err error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-errc:
			case <-time.After(30 * time.Second):
				err = fmt.Errorf("Run did not return 30s after cancel")
			}
		})
		return err
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("launcher output:\n%s", out.String())
		}
	})
	return out, stop
}

func testConfig(t *testing.T, args ...string) Config {
	t.Helper()
	if testing.Short() {
		t.Skip("starts redis-server")
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatal("redis-server not on PATH: run `make test`, which installs it")
	}
	ports := fmt.Sprintf("catalog=%d,cart=%d,order=%d,worker=%d,edge=%d", freePort(t), freePort(t), freePort(t), freePort(t), freePort(t))
	args = append([]string{
		"-bin", binDir, "-data", t.TempDir(), "-store", "redis", "-store-port", strconv.Itoa(freePort(t)),
		"-ports", ports, "-ops-port", strconv.Itoa(freePort(t)), "-ready-timeout", "20s", "-shutdown-grace", "5s", "-no-color",
	}, args...)
	c, err := ParseConfig(args, envOf(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// pidOf returns the pid the named process printed in its last "started" line.
func pidOf(out, name string) int {
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` +\| \S+ started pid=(\d+)$`)
	all := re.FindAllStringSubmatch(out, -1)
	if len(all) == 0 {
		return 0
	}
	pid, _ := strconv.Atoi(all[len(all)-1][1])
	return pid
}

func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	return err == nil && !strings.HasPrefix(strings.TrimSpace(string(stat[bytes.LastIndexByte(stat, ')')+1:])), "Z")
}

// The launcher against stand-in binaries: the store comes up with append-only persistence,
// missing binaries are skipped, replicas get base+10 ports, every process learns the address
// lists, a killed replica comes back, and cancelling stops everything.
func TestRunEndToEnd(t *testing.T) {
	c := testConfig(t, "-replicas", "cart=2")
	out, stop := startRun(t, c)
	proctest.WaitFor(t, "banner", 30*time.Second, func() bool { return strings.Contains(out.String(), "flashedge is up") })
	text := out.String()

	plan := c.Plan()
	addr := map[string]string{}
	for _, in := range plan {
		addr[in.Name] = in.Addr
	}
	ops := fmt.Sprintf("127.0.0.1:%d", c.OpsPort)
	for _, want := range []string{
		"WARNING: skipping order: no binary", "WARNING: skipping worker: no binary",
		"metrics         http://" + ops + "/metrics", "dashboard       http://" + ops + "/dashboard",
		"open the shop   http://" + addr["edge-1"] + "/",
		"curl -s localhost:" + strconv.Itoa(c.Ports["edge"]) + "/api/v1/products/00000001",
		"Authorization: Bearer " + c.adminTokenFromFile(t),
		"append-only file, fsync every second",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if want := fmt.Sprintf("127.0.0.1:%d", c.Ports["cart"]+10); addr["cart-2"] != want {
		t.Errorf("cart-2 at %s, want %s", addr["cart-2"], want)
	}

	// What the edge was told.
	for key, want := range map[string]string{
		"FLASHEDGE_CART_ADDRS":    addr["cart-1"] + "," + addr["cart-2"],
		"FLASHEDGE_CATALOG_ADDRS": addr["catalog-1"],
		"FLASHEDGE_STORE_ADDR":    fmt.Sprintf("127.0.0.1:%d", c.StorePort),
		"FLASHEDGE_ADMIN_TOKEN":   c.adminTokenFromFile(t),
	} {
		got, err := proctest.Get("http://" + addr["edge-1"] + "/env/" + key)
		if err != nil || got != want {
			t.Errorf("edge %s = %q (%v), want %q", key, got, err, want)
		}
	}
	if got, _ := proctest.Get("http://" + addr["catalog-1"] + "/env/FLASHEDGE_SEED_DEMO"); got != "1200" {
		t.Errorf("catalog FLASHEDGE_SEED_DEMO = %q, want 1200", got)
	}
	if _, err := os.Stat(filepath.Join(c.DataDir, "redis", "appendonlydir")); err != nil {
		t.Errorf("no append-only dir in the store's data folder: %v", err)
	}
	if log, _ := os.ReadFile(filepath.Join(c.DataDir, "store.log")); !strings.Contains(string(log), "Ready to accept connections") {
		t.Errorf("store.log lacks the store's own start-up lines:\n%s", log)
	}

	// A replica killed with SIGKILL is restarted and serves again.
	victim := pidOf(out.String(), "cart-2")
	if victim == 0 {
		t.Fatalf("no start line for cart-2")
	}
	if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	proctest.WaitFor(t, "cart-2 restarted", 10*time.Second, func() bool {
		p := pidOf(out.String(), "cart-2")
		return p != 0 && p != victim
	})
	proctest.WaitFor(t, "cart-2 ready again", 10*time.Second, func() bool { _, err := proctest.Get("http://" + addr["cart-2"] + "/ready"); return err == nil })
	if !strings.Contains(out.String(), "cart-2    | [supervisor] exited (signal: killed)") {
		t.Errorf("no supervisor line about the kill")
	}

	var pids []int
	for _, in := range plan {
		if p := pidOf(out.String(), in.Name); p != 0 {
			pids = append(pids, p)
		}
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	text = out.String()
	if e, ca := strings.Index(text, "edge-1    | standin stopping"), strings.Index(text, "catalog-1 | standin stopping"); e < 0 || ca < 0 || e > ca {
		t.Errorf("want the edge stopped before the catalog (edge at %d, catalog at %d)", e, ca)
	}
	if !strings.Contains(text, "Redis is now ready to exit") {
		t.Errorf("the store did not shut down cleanly")
	}
	for _, p := range pids {
		if alive(p) {
			t.Errorf("pid %d still alive after the launcher returned", p)
		}
	}
	if err := kvserver.Ping(fmt.Sprintf("127.0.0.1:%d", c.StorePort)); err == nil {
		t.Errorf("store still answers after the launcher returned")
	}
}

func (c Config) adminTokenFromFile(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(c.DataDir, "secrets"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`FLASHEDGE_ADMIN_TOKEN=(\S+)`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no admin token in secrets file")
	}
	return string(m[1])
}

// A service port already in use stops the launch with a clear error, and the store it had
// started is stopped again.
func TestRunFailsOnTakenServicePort(t *testing.T) {
	c := testConfig(t, "-services", "catalog")
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", c.Ports["catalog"]))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	out := &obstest.Buffer{}
	err = Run(context.Background(), c, out, os.Environ(), nil)
	if err == nil || !strings.Contains(err.Error(), "catalog-1 cannot listen on") {
		t.Fatalf("Run: %v, want a port-in-use error naming catalog-1", err)
	}
	if perr := kvserver.Ping(fmt.Sprintf("127.0.0.1:%d", c.StorePort)); perr == nil {
		t.Errorf("the store is still running after the failed launch")
	}
}

// With FLASHEDGE_STORE_ADDR the launcher starts no store of its own.
func TestRunExternalStore(t *testing.T) {
	srv := kvtest.Start(t)
	c := testConfig(t, "-services", "catalog")
	c.ExternalStore = srv.Addr
	out, stop := startRun(t, c)
	proctest.WaitFor(t, "banner", 30*time.Second, func() bool { return strings.Contains(out.String(), "flashedge is up") })
	if strings.Contains(out.String(), "store     |") || !strings.Contains(out.String(), "external store "+srv.Addr) {
		t.Errorf("launcher started its own store or did not name the external one:\n%s", out.String())
	}
	got, err := proctest.Get("http://" + c.Plan()[0].Addr + "/env/FLASHEDGE_STORE_ADDR")
	if err != nil || got != srv.Addr {
		t.Errorf("catalog store addr %q (%v), want %s", got, err, srv.Addr)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}
