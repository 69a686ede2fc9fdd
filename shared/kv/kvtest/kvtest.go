// Package kvtest starts private redis-server processes on free loopback ports for tests.
// Tests talk to a real server because client tracking, Lua and streams behave as the server
// says, not as a fake would.
package kvtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"flashedge/shared/kv"
	"flashedge/shared/kv/kvserver"
)

// Server is one redis-server process owned by a test. Its methods are safe for concurrent use.
type Server struct {
	// Addr is the loopback host:port the server listens on.
	Addr string
	// Dir is the server's working directory (data files, log), removed by the test cleanup.
	Dir string

	tb   testing.TB
	args []string
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Start starts a redis-server on a free loopback port with extra config args (for example
// "--appendonly", "yes"), waits until it answers PING and stops it when the test ends.
// It skips the test under -short; it fails the test when redis-server is not installed
// (make test installs it).
func Start(tb testing.TB, args ...string) *Server {
	tb.Helper()
	if testing.Short() {
		tb.Skip("kvtest: skipping store test in -short mode")
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		tb.Fatal("kvtest: redis-server not on PATH: run `make test`, which installs it, or apt-get install redis-server")
	}
	s := &Server{tb: tb, Dir: tb.TempDir(), args: args}
	var lastErr error
	for range 5 {
		port, err := FreePort()
		if err != nil {
			tb.Fatalf("kvtest: free port: %v", err)
		}
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if lastErr = s.start(); lastErr == nil {
			tb.Cleanup(s.Stop)
			return s
		}
	}
	tb.Fatalf("kvtest: could not start redis-server: %v", lastErr)
	return nil
}

// FreePort asks the kernel for a free loopback TCP port.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (s *Server) start() error {
	_, port, _ := net.SplitHostPort(s.Addr)
	argv := append([]string{
		"--port", port, "--bind", "127.0.0.1", "--save", "", "--dir", s.Dir,
		"--logfile", filepath.Join(s.Dir, "redis.log"), "--daemonize", "no",
		"--protected-mode", "no",
	}, s.args...)
	cmd := exec.Command("redis-server", argv...)
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			log, _ := os.ReadFile(filepath.Join(s.Dir, "redis.log"))
			return fmt.Errorf("redis-server on %s exited: %s", s.Addr, lastLines(string(log), 5))
		default:
		}
		if kvserver.Ping(s.Addr) == nil {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.kill()
	return fmt.Errorf("redis-server on %s did not answer PING within 10s", s.Addr)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

func (s *Server) kill() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// Pause stops the server process with SIGSTOP: connections stay open and commands queue up
// unanswered, as in a long GC pause, a frozen VM or a slow failover. Resume continues it; the
// test cleanup kills a paused server all the same.
func (s *Server) Pause() { s.signal(syscall.SIGSTOP) }

// Resume continues a server stopped by Pause (SIGCONT).
func (s *Server) Resume() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) {
	s.tb.Helper()
	s.mu.Lock()
	cmd := s.cmd
	s.mu.Unlock()
	if cmd == nil {
		s.tb.Fatalf("kvtest: %s is not running", s.Addr)
	}
	if err := cmd.Process.Signal(sig); err != nil {
		s.tb.Fatalf("kvtest: %v to redis-server on %s: %v", sig, s.Addr, err)
	}
}

// Stop kills the server (SIGKILL: nothing is flushed beyond what its config already fsynced).
// It is idempotent.
func (s *Server) Stop() { s.kill() }

// Restart kills the server and starts it again on the same port and directory, so
// append-only and snapshot files survive. It fails the test when the server does not come back.
func (s *Server) Restart() {
	s.tb.Helper()
	s.kill()
	var err error
	for range 50 { // the port may linger briefly after the kill
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.tb.Fatalf("kvtest: restart %s: %v", s.Addr, err)
}

// Options returns kv.Options pointing at this server.
func (s *Server) Options() kv.Options {
	return kv.Options{Addrs: []string{s.Addr}, DialTimeout: 2 * time.Second, ConnWriteTimeout: 3 * time.Second}
}

// Client opens a client to this server, closed when the test ends.
func (s *Server) Client(tb testing.TB) rueidis.Client {
	tb.Helper()
	return s.ClientWith(tb, s.Options())
}

// ClientWith opens a client with the given options (Addrs is filled in when empty),
// closed when the test ends.
func (s *Server) ClientWith(tb testing.TB, o kv.Options) rueidis.Client {
	tb.Helper()
	if len(o.Addrs) == 0 {
		o.Addrs = []string{s.Addr}
	}
	c, err := kv.Open(context.Background(), o)
	if err != nil {
		tb.Fatalf("kvtest: open client: %v", err)
	}
	tb.Cleanup(c.Close)
	return c
}

// CommandCalls returns how many times the server ran the named command (lower case, e.g. "get"),
// read from INFO commandstats. Tests use it to prove a path made no store round trip.
func (s *Server) CommandCalls(tb testing.TB, c rueidis.Client, name string) int64 {
	tb.Helper()
	n, err := kv.CommandCalls(context.Background(), c, name)
	if err != nil {
		tb.Fatalf("kvtest: %v", err)
	}
	return n
}
