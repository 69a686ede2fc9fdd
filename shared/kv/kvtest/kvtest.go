// Package kvtest starts private redis-server processes on free loopback ports for tests.
// Tests talk to a real server because client tracking, Lua and streams behave as the server
// says, not as a fake would.
package kvtest

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"flashedge/shared/kv"
	"flashedge/shared/kv/kvserver"
)

// Server is one redis-server process owned by a test (a kvserver.Server: the one store helper
// that bench and the launcher use too). Its methods are safe for concurrent use.
type Server struct {
	*kvserver.Server
	tb testing.TB
}

// Start starts a redis-server on a free loopback port with extra config args (for example
// "--appendonly", "yes"), waits until it answers PING and kills it when the test ends.
// It skips the test under -short; it fails the test when redis-server is not installed
// (make test installs it).
func Start(tb testing.TB, args ...string) *Server {
	tb.Helper()
	if testing.Short() {
		tb.Skip("kvtest: skipping store test in -short mode")
	}
	srv, err := kvserver.Start(context.Background(), kvserver.Options{Dir: tb.TempDir(), Args: args})
	if err != nil {
		tb.Fatalf("kvtest: %v", err)
	}
	tb.Cleanup(srv.Kill)
	return &Server{Server: srv, tb: tb}
}

// Pause stops the server process with SIGSTOP: connections stay open and commands queue up
// unanswered, as in a long GC pause, a frozen VM or a slow failover. Resume continues it; the
// test cleanup kills a paused server all the same.
func (s *Server) Pause() { s.signal(syscall.SIGSTOP) }

// Resume continues a server stopped by Pause (SIGCONT).
func (s *Server) Resume() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) {
	s.tb.Helper()
	if !s.Signal(sig) {
		s.tb.Fatalf("kvtest: %v to redis-server on %s: it is not running", sig, s.Addr)
	}
}

// Stop kills the server (SIGKILL: nothing is flushed beyond what its config already fsynced).
// It is idempotent.
func (s *Server) Stop() { s.Kill() }

// Restart kills the server and starts it again on the same port and directory, so
// append-only and snapshot files survive. It fails the test when the server does not come back.
func (s *Server) Restart() {
	s.tb.Helper()
	if err := s.Server.Restart(context.Background()); err != nil {
		s.tb.Fatalf("kvtest: %v", err)
	}
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
