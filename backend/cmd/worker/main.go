// Command worker decides flash-sale attempts: it consumes the attempt stream in a consumer group,
// claims units from the stock shards, writes results and seckill tokens, and sweeps expired
// reservations back into stock. Run any number of replicas. See run for flags and environment.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	context.AfterFunc(ctx, stop) // after the first signal, a second one kills the process
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}
