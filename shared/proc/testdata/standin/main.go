// Command standin stands in for a flashedge service in the deploy tests: a real child process
// that prints lines, serves /health and /ready, crashes on request and reacts to SIGTERM in
// ways the tests choose. It lives under testdata so `go build ./...` and `make build` skip it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "standin:", err)
		os.Exit(1)
	}
}

func run() error {
	name := flag.String("name", "standin", "name printed on every line")
	lines := flag.Int("lines", 0, "print this many numbered lines on stdout and on stderr, then exit 0")
	exit := flag.Int("exit", -1, "exit at once with this status (after the start line)")
	partial := flag.Bool("partial", false, "end with a line that has no newline, then exit 0")
	ignoreTerm := flag.Bool("ignore-term", false, "ignore SIGTERM (the supervisor must SIGKILL)")
	spawn := flag.Bool("spawn", false, "start a long sleep child in the same process group")
	listenEnv := flag.String("listen-env", "", "environment variable holding host:port to serve on "+
		"(default STANDIN_LISTEN, or FLASHEDGE_<PROGRAM NAME>_LISTEN when that is unset, so a copy "+
		"named catalog reads FLASHEDGE_CATALOG_LISTEN like the real service)")
	flag.Parse()
	if *listenEnv == "" {
		*listenEnv = "STANDIN_LISTEN"
		if os.Getenv(*listenEnv) == "" {
			*listenEnv = "FLASHEDGE_" + strings.ToUpper(filepath.Base(os.Args[0])) + "_LISTEN"
		}
	}

	// Signals are set up before the started line: a supervisor that stops the process as soon as
	// it reads the line must find SIGTERM already ignored (with -ignore-term) or handled.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	if *ignoreTerm {
		signal.Ignore(syscall.SIGTERM)
	}
	fmt.Printf("%s started pid=%d\n", *name, os.Getpid())
	if *spawn {
		c := exec.Command("sleep", "1000")
		if err := c.Start(); err != nil {
			return err
		}
		fmt.Printf("%s grandchild pid=%d\n", *name, c.Process.Pid)
	}
	if *exit >= 0 {
		os.Exit(*exit)
	}
	if *lines > 0 {
		pad := strings.Repeat("x", 100)
		for i := range *lines {
			fmt.Fprintf(os.Stdout, "%s out %d %s\n", *name, i, pad)
			fmt.Fprintf(os.Stderr, "%s err %d %s\n", *name, i, pad)
		}
		return nil
	}
	if *partial {
		fmt.Print("first line\nno newline at the end")
		return nil
	}

	srv := &http.Server{ReadHeaderTimeout: time.Second}
	if addr := os.Getenv(*listenEnv); addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return err
		}
		mux := http.NewServeMux()
		ok := func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, `{"status":"ok"}`) }
		mux.HandleFunc("/health", ok)
		mux.HandleFunc("/ready", ok)
		mux.HandleFunc("/env/{key}", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, os.Getenv(r.PathValue("key")))
		})
		mux.HandleFunc("/crash", func(http.ResponseWriter, *http.Request) {
			fmt.Printf("%s crashing\n", *name)
			os.Exit(3)
		})
		srv.Handler = mux
		go func() { _ = srv.Serve(ln) }()
		fmt.Printf("%s listening on %s\n", *name, ln.Addr())
	}
	sig := <-sigs
	fmt.Printf("%s stopping on %v\n", *name, sig)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
