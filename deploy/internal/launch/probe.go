package launch

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"flashedge/shared/kv/kvserver"
)

// StoreCommand says how to start the launcher's own store: the program, its arguments and the
// folder its data lives in. With kind "auto" it prefers a dragonfly binary on PATH.
func (c Config) StoreCommand(lookPath func(string) (string, error)) (kind, path string, args []string, dir string, err error) {
	port := strconv.Itoa(c.StorePort)
	kind = c.StoreKind
	if kind == "auto" {
		kind = "redis"
		if _, err := lookPath("dragonfly"); err == nil {
			kind = "dragonfly"
		}
	}
	switch kind {
	case "dragonfly":
		if path, err = lookPath("dragonfly"); err != nil {
			return "", "", nil, "", errors.New("-store dragonfly: no dragonfly binary on PATH (get one from https://www.dragonflydb.io/docs/getting-started/binary, or use -store redis)")
		}
		dir = filepath.Join(c.DataDir, "store")
		// Dragonfly has no append-only file: it snapshots, here every minute and on shutdown.
		args = []string{
			"--port", port, "--bind", c.Host, "--dir", dir,
			"--dbfilename", "flashedge", "--snapshot_cron", "* * * * *",
			"--logtostderr",
		}
	case "redis":
		if path, err = lookPath("redis-server"); err != nil {
			return "", "", nil, "", errors.New("no redis-server on PATH: `make run` installs it (apt-get install redis-server), or put a dragonfly binary on PATH")
		}
		dir = filepath.Join(c.DataDir, "redis")
		// Append-only with fsync every second: a crash loses at most about a second of writes.
		args = kvserver.ServerArgs(c.Host, c.StorePort, dir, "--appendonly", "yes", "--appendfsync", "everysec")
	}
	return kind, path, args, dir, nil
}

// CheckStorePortFree fails with advice when something already listens on the store's port.
func CheckStorePortFree(ctx context.Context, addr string) error {
	reply, err := kvserver.Reply(addr)
	if err != nil {
		if checkPortFree(addr, "the store") != nil {
			return fmt.Errorf("%s is taken by a program that does not answer PING: choose another port with -store-port", addr)
		}
		return nil
	}
	if strings.HasPrefix(reply, "+") || strings.HasPrefix(reply, "-") {
		return fmt.Errorf("a Redis-compatible server already answers PING on %s (another `make run`, or a system redis-server): "+
			"stop it, start on another port with -store-port 6380, or use it as it is with FLASHEDGE_STORE_ADDR=%s", addr, addr)
	}
	return fmt.Errorf("%s is taken by a program that does not speak the Redis protocol: choose another port with -store-port", addr)
}

// checkPortFree fails when addr cannot be bound.
func checkPortFree(addr, what string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%s cannot listen on %s: %v (is another `make run` still running? `ss -ltnp | grep %s` shows who holds it; -ports moves a service)",
			what, addr, err, addr[strings.LastIndexByte(addr, ':')+1:])
	}
	return ln.Close()
}

// waitStore waits up to timeout for the store on addr to answer PONG (kvserver.Wait); failed
// reports that the store process gave up (a non-empty reason).
func waitStore(ctx context.Context, addr string, timeout time.Duration, failed func() string) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return kvserver.Wait(ctx, addr, failed)
}

// readyResult is the outcome of polling one instance's /ready.
type readyResult struct {
	In   Instance
	Err  error // nil when ready
	Took time.Duration
}

// WaitReady polls GET /ready of every instance until each answers 200, ctx ends or the timeout
// passes. It returns one result per instance, in order.
func WaitReady(ctx context.Context, ins []Instance, timeout time.Duration) []readyResult {
	start := time.Now()
	deadline := start.Add(timeout)
	client := &http.Client{Timeout: time.Second}
	res := make([]readyResult, len(ins))
	pending := len(ins)
	for i := range res {
		res[i] = readyResult{In: ins[i], Err: errors.New("not polled yet")}
	}
	for pending > 0 {
		for i := range res {
			if res[i].Err == nil {
				continue
			}
			if err := getOK(ctx, client, "http://"+res[i].In.Addr+"/ready"); err != nil {
				res[i].Err = err
				continue
			}
			res[i].Err, res[i].Took = nil, time.Since(start)
			pending--
		}
		if pending == 0 || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return res
		case <-time.After(100 * time.Millisecond):
		}
	}
	return res
}

func getOK(ctx context.Context, c *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}
