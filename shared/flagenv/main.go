package flagenv

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// RunFunc is a binary's run: everything but the process boundary, so tests call it directly.
type RunFunc func(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error

// Main calls run with the process's arguments, environment and stdout, under a context that the
// first SIGINT or SIGTERM cancels; once it has, the signals' default action is back, so a second
// one kills the process at once. It returns the exit code: 0, or 1 after printing "name: error"
// on stderr. A binary's main is os.Exit(flagenv.Main("edge", run)).
func Main(name string, run RunFunc) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	context.AfterFunc(ctx, stop)
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		return 1
	}
	return 0
}
