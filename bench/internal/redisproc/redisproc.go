// Package redisproc starts a private redis-server on a free loopback port for `make bench`
// (kvtest does the same for tests but needs a testing.TB).
package redisproc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"flashedge/bench/internal/proc"
	"flashedge/shared/kv/kvserver"
)

// Options configures Start.
type Options struct {
	// Dir holds the server's log (no data is saved). Required.
	Dir string
	// CPU pins the server with taskset when not empty.
	CPU string
	// Args are extra redis-server arguments.
	Args []string
}

// Server is a running redis-server. Stop it with Stop.
type Server struct {
	// Addr is its loopback host:port.
	Addr string
	p    *proc.Proc
}

// Start starts redis-server without persistence on a free loopback port and waits until it
// answers PING (up to 10 s). It retries on another port when the first one was taken meanwhile.
func Start(ctx context.Context, o Options) (*Server, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, errors.New("redisproc: redis-server not on PATH (make deps-bench installs it)")
	}
	var lastErr error
	for range 3 {
		port, err := proc.FreePort()
		if err != nil {
			return nil, err
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		args := append([]string{
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
			"--dir", o.Dir, "--logfile", filepath.Join(o.Dir, "redis.log"), "--daemonize", "no",
			"--protected-mode", "no",
		}, o.Args...)
		p, err := proc.Start(proc.Spec{Name: "redis-server", Path: bin, Args: args, CPU: o.CPU})
		if err != nil {
			return nil, err
		}
		if lastErr = waitPing(ctx, p, addr); lastErr == nil {
			return &Server{Addr: addr, p: p}, nil
		}
		p.Stop(time.Second)
	}
	return nil, fmt.Errorf("redisproc: %w", lastErr)
}

// Argv is the command line the server was started with.
func (s *Server) Argv() []string { return s.p.Argv }

// Pid is the server's process id.
func (s *Server) Pid() int { return s.p.Pid() }

// Stop stops the server and waits for it. It is idempotent.
func (s *Server) Stop() { s.p.Stop(3 * time.Second) }

func waitPing(ctx context.Context, p *proc.Proc, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := kvserver.WaitPing(ctx, addr, p.Done()); err != nil {
		return fmt.Errorf("redis-server: %w (exit: %v)", err, p.ExitErr())
	}
	return nil
}
