package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"flashedge/bench/internal/ceiling"
	"flashedge/shared/flagenv"
	"flashedge/shared/httpapi"
	"flashedge/shared/obs"
)

type config struct {
	addr        string // listen address, default 127.0.0.1:8090
	logLevel    string // default warn: the ceiling logs nothing per request
	productFile string // file holding the product answer; empty: ceiling.Body
	soldOutFile string // file holding the sold-out answer; empty: ceiling.SoldOutBody
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	var cfg config
	fs := flagenv.New("ceiling", "FLASHEDGE_CEILING_", getenv, stdout)
	fs.String(&cfg.addr, "addr", "127.0.0.1:8090", "listen address (host:port; port 0 picks a free one)")
	fs.String(&cfg.logLevel, "log-level", "warn", "debug, info, warn or error")
	fs.String(&cfg.productFile, "product-body", "", "file with the GET product answer (default: a fixed 170-byte product)")
	fs.String(&cfg.soldOutFile, "soldout-body", "", "file with the POST attempt answer (default: the edge's sold-out shape)")
	if err := fs.Parse(args); err != nil {
		return err // flag.ErrHelp after -h: flagenv.Main exits 0
	}
	var bodies ceiling.Bodies
	for _, f := range []struct {
		path string
		dst  *[]byte
	}{{cfg.productFile, &bodies.Product}, {cfg.soldOutFile, &bodies.SoldOut}} {
		if f.path == "" {
			continue
		}
		b, err := os.ReadFile(f.path)
		if err != nil {
			return err
		}
		*f.dst = b
	}
	log, closer, err := obs.NewLogger(stdout, obs.LogOptions{Level: cfg.logLevel, Service: "ceiling"})
	if err != nil {
		return err
	}
	defer closer.Close()

	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.addr, err)
	}
	// The same server settings as the edge (httpapi defaults) so the comparison is fair.
	srv := httpapi.NewServer(ceiling.New(bodies), httpapi.ServerOptions{Name: "ceiling"}, log)
	fmt.Fprintf(stdout, "ceiling listening on http://%s\n", ln.Addr())
	return httpapi.Serve(ctx, srv, ln, 5*time.Second)
}
