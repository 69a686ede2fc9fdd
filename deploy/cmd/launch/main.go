// Command launch runs the whole flashedge stack on loopback for `make run`: a store, every
// service (with -replicas), tagged and interleaved logs, restarts with backoff, and a clean stop
// on Ctrl-C (a second Ctrl-C kills at once). Run with -h for the flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"flashedge/deploy/internal/launch"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "launch:", err)
		os.Exit(1)
	}
}

// run handles signals itself rather than through signal.NotifyContext: the first SIGINT or
// SIGTERM starts the ordered stop, and the second one must still reach the launcher to cut that
// stop short.
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	cfg, err := launch.ParseConfig(args, getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	cfg.Color = cfg.Color && isTerminal(stdout)

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	wg.Go(func() {
		select {
		case <-sigs: // the first signal; a second stays in sigs for Run's forced stop
			cancel()
		case <-ctx.Done():
		}
	})
	return launch.Run(ctx, cfg, stdout, os.Environ(), sigs)
}

// isTerminal reports whether w is a character device (colour codes would garble a file or pipe).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
