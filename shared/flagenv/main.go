package flagenv

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"flashedge/shared/obs"
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

// Config is a service binary's config: it embeds Service and describes itself for the start-up
// log with its secrets masked.
type Config interface {
	Shared() Service
	String() string
}

// Start is how every service's run begins: loadConfig(args, getenv, stdout), then the logger of
// its -log-* settings (obs.NewLogger: stdout unless -log-file) with one "starting" line that
// holds the config. Close the returned closer last.
func Start[C Config](args []string, getenv func(string) string, stdout io.Writer,
	loadConfig func([]string, func(string) string, io.Writer) (C, error)) (C, *slog.Logger, io.Closer, error) {
	cfg, err := loadConfig(args, getenv, stdout)
	if err != nil {
		return cfg, nil, nil, err
	}
	log, closer, err := obs.NewLogger(stdout, cfg.Shared().Log)
	if err != nil {
		return cfg, nil, nil, err
	}
	log.Info("starting", "config", cfg.String())
	return cfg, log, closer, nil
}
