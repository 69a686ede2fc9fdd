package main

import (
	"context"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"flashedge/shared/obs/obstest"
	"flashedge/shared/proc"
)

func noEnv(string) string { return "" }

func TestRunFlags(t *testing.T) {
	if err := run(context.Background(), []string{"-h"}, noEnv, io.Discard); err != nil {
		t.Errorf("-h: %v, want nil", err)
	}
	if err := run(context.Background(), []string{"-replicas", "cart=99"}, noEnv, io.Discard); err == nil || !strings.Contains(err.Error(), "1 to 20") {
		t.Errorf("-replicas cart=99: %v", err)
	}
}

// The first SIGINT stops the launcher cleanly: run returns nil and the store it started is gone.
func TestRunStopsOnSIGINT(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server")
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatal("redis-server not on PATH: run `make test`, which installs it")
	}
	port, err := proc.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	store := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	out := &obstest.Buffer{}
	args := []string{"-bin", t.TempDir(), "-data", t.TempDir(), "-store", "redis", "-store-port", strconv.Itoa(port), "-services", "catalog"}
	errc := make(chan error, 1)
	go func() { errc <- run(context.Background(), args, noEnv, out) }()

	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), "flashedge is up") {
		select {
		case err := <-errc:
			t.Fatalf("run returned early: %v\n%s", err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no banner within 30s:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if strings.Contains(out.String(), "\x1b[") {
		t.Errorf("colour codes written to a non-terminal")
	}
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("run after SIGINT: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("run still running 30s after SIGINT:\n%s", out.String())
	}
	if c, err := net.DialTimeout("tcp", store, time.Second); err == nil {
		c.Close()
		t.Errorf("store %s still accepts connections after the launcher returned", store)
	}
	if !strings.Contains(out.String(), "stopping everything") {
		t.Errorf("no stop message:\n%s", out.String())
	}
}
