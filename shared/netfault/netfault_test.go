package netfault_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"flashedge/shared/netfault"
)

// startEcho serves a line echo on a free loopback port until the test ends.
func startEcho(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			})
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

func dial(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c, bufio.NewReader(c)
}

func roundTrip(c net.Conn, r *bufio.Reader, msg string, wait time.Duration) (string, error) {
	_ = c.SetDeadline(time.Now().Add(wait))
	if _, err := io.WriteString(c, msg+"\n"); err != nil {
		return "", err
	}
	line, err := r.ReadString('\n')
	return line, err
}

func TestProxyForwardsAndInjectsFaults(t *testing.T) {
	px := netfault.Start(t, startEcho(t))

	c, r := dial(t, px.Addr())
	if got, err := roundTrip(c, r, "hello", 2*time.Second); err != nil || got != "hello\n" {
		t.Fatalf("plain round trip = %q, %v; want hello", got, err)
	}

	t.Run("latency", func(t *testing.T) {
		const d = 60 * time.Millisecond
		px.SetLatency(d)
		defer px.SetLatency(0)
		start := time.Now()
		if got, err := roundTrip(c, r, "slow", 2*time.Second); err != nil || got != "slow\n" {
			t.Fatalf("round trip with latency = %q, %v", got, err)
		}
		if el := time.Since(start); el < 2*d {
			t.Fatalf("round trip with %s latency each way took %s; want at least %s", d, el, 2*d)
		}
	})

	t.Run("reset", func(t *testing.T) {
		if n := px.ResetConnections(); n != 1 {
			t.Fatalf("ResetConnections reset %d connections; want 1", n)
		}
		if _, err := roundTrip(c, r, "after reset", 2*time.Second); err == nil {
			t.Fatal("round trip on a reset connection succeeded; want an error")
		}
		c2, r2 := dial(t, px.Addr())
		if got, err := roundTrip(c2, r2, "fresh", 2*time.Second); err != nil || got != "fresh\n" {
			t.Fatalf("new connection after reset = %q, %v; want fresh", got, err)
		}
	})

	t.Run("block", func(t *testing.T) {
		c3, r3 := dial(t, px.Addr())
		px.Block(true)
		_, err := roundTrip(c3, r3, "held", 150*time.Millisecond)
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("round trip while blocked: err = %v; want a timeout", err)
		}
		px.Block(false)
		_ = c3.SetDeadline(time.Now().Add(2 * time.Second))
		if got, err := r3.ReadString('\n'); err != nil || got != "held\n" {
			t.Fatalf("after unblocking got %q, %v; want the held bytes", got, err)
		}
	})

	t.Run("target down", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		dead := ln.Addr().String()
		_ = ln.Close()
		px2 := netfault.Start(t, dead)
		// The reset may already arrive while connecting, or on first use.
		c4, err := net.DialTimeout("tcp", px2.Addr(), time.Second)
		if err != nil {
			return
		}
		defer c4.Close()
		if _, err := roundTrip(c4, bufio.NewReader(c4), "nobody", 2*time.Second); err == nil {
			t.Fatal("round trip to a dead target succeeded; want an error")
		}
	})

	px.Close()
	if _, err := net.DialTimeout("tcp", px.Addr(), 200*time.Millisecond); err == nil {
		t.Fatal("dial after Close succeeded; want refused")
	}
}
