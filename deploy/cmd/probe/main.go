// Command probe is the container health check: it GETs one URL and exits 0 on a 2xx answer,
// 1 otherwise. The service images are distroless (no shell, no curl), so compose's healthcheck
// runs this instead: probe http://127.0.0.1:5001/ready
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"flashedge/shared/flagenv"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "probe:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flagenv.New("probe", "FLASHEDGE_PROBE_", getenv, stdout)
	fs.Synopsis("usage: probe [-timeout 2s] http://host:port/path")
	fs.AllowArgs()
	var timeout time.Duration
	fs.Duration(&timeout, "timeout", 2*time.Second, "give up after this long")
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		return nil // -h printed the flags: a successful exit
	} else if err != nil {
		return err
	}
	if len(fs.Args()) != 1 {
		return errors.New("usage: probe [-timeout 2s] http://host:port/path")
	}
	url := fs.Args()[0]
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("%s: %s %s", url, resp.Status, body)
	}
	fmt.Fprintf(stdout, "%s: %s\n", url, resp.Status)
	return nil
}
