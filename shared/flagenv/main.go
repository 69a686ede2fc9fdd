package flagenv

import (
	"context"
	"errors"
	"flag"
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
// one kills the process at once. It returns the exit code (ExitCode). A binary's main is
// os.Exit(flagenv.Main("edge", run)).
func Main(name string, run RunFunc) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	context.AfterFunc(ctx, stop)
	return ExitCode(name, run(ctx, os.Args[1:], os.Getenv, os.Stdout), os.Stderr)
}

// ExitCode is the exit code of a run that returned err: 0 for nil and for flag.ErrHelp (-h
// printed the flags, which is a successful run), else 1 after writing "name: err" to stderr.
func ExitCode(name string, err error, stderr io.Writer) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintln(stderr, name+":", err)
	return 1
}
