// Package proc is flashedge's one way to start processes: the launcher (`make run`), the
// end-to-end stack (deploy/stack), the store helper (shared/kv/kvserver, so kvtest) and bench all
// start their children through it.
//
// Start runs one child: in its own process group (a Ctrl-C typed in the terminal reaches only the
// parent, which then stops its children in order), with a Linux parent-death signal (no child
// outlives a parent that dies), optionally pinned to CPUs with taskset, stopped with a signal, a
// grace period, then SIGKILL to the whole group. A Supervisor (supervise.go) keeps a set of named
// children running the way `restart: always` does, with tagged output.
package proc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Spec describes one child process.
type Spec struct {
	// Name identifies the process in errors (and is its output tag under a Supervisor). Required.
	Name string
	// Path is the executable. Required.
	Path string
	// Args are the arguments after the program name.
	Args []string
	// Env is the complete environment (KEY=value). Nil means the parent's own.
	Env []string
	// Dir is the working directory. Empty means the parent's.
	Dir string
	// CPU, when not empty, runs the process under `taskset -c CPU` (a CPU list such as "0").
	// Start fails when taskset is missing; use Taskset to decide first.
	CPU string
	// Output receives stdout and stderr (Start only; a Supervisor tags them onto its Out).
	// Nil discards them, unless Log is set.
	Output io.Writer
	// Log, when set, is a file that stdout and stderr are appended to (Start only), instead of
	// Output; LogTail reads it back for error messages.
	Log string
	// StopSignal asks the process to stop gracefully. Zero means SIGTERM (HAProxy's graceful
	// stop is SIGUSR1: stop accepting, finish what is in flight).
	StopSignal syscall.Signal

	// NoRestart (Supervisor only) makes an exit final: the process stays down until Restart.
	NoRestart bool
	// CopyOutput (Supervisor only), when set, also receives every output line of the process
	// without its tag (for example a log file). The supervisor does not close it.
	CopyOutput io.Writer
}

// Proc is one started child. Its methods are safe for concurrent use.
type Proc struct {
	Spec Spec
	// Argv is the full command line that was started (taskset included).
	Argv []string

	cmd  *exec.Cmd
	done chan struct{}
	err  error // set before done is closed
}

// Taskset returns the path of taskset, or "" when it is not installed.
func Taskset() string {
	p, err := exec.LookPath("taskset")
	if err != nil {
		return ""
	}
	return p
}

// Start starts the process described by s. The caller owns it and must Stop it (or wait for
// Done). A goroutine reaps the child; when it has exited, whatever it left in its process group
// is killed too.
func Start(s Spec) (*Proc, error) {
	return start(s, nil, nil)
}

// start is Start with stdout and stderr given apart (the Supervisor tags them separately); nil
// writers mean Spec.Log or Spec.Output.
func start(s Spec, stdout, stderr io.Writer) (*Proc, error) {
	if s.Name == "" || s.Path == "" {
		return nil, errors.New("proc: Spec needs a Name and a Path")
	}
	argv := append([]string{s.Path}, s.Args...)
	if s.CPU != "" {
		ts := Taskset()
		if ts == "" {
			return nil, fmt.Errorf("%s: taskset not found, cannot pin to CPU %s", s.Name, s.CPU)
		}
		argv = append([]string{ts, "-c", s.CPU}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = s.Env
	cmd.Dir = s.Dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	// A grandchild that keeps the output pipes open must not block the reaping forever.
	cmd.WaitDelay = 2 * time.Second
	var logf *os.File
	switch {
	case s.Log != "":
		f, err := os.OpenFile(s.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("%s: log file: %w", s.Name, err)
		}
		cmd.Stdout, cmd.Stderr, logf = f, f, f
	case stdout != nil:
		cmd.Stdout, cmd.Stderr = stdout, stderr
	case s.Output != nil:
		cmd.Stdout, cmd.Stderr = s.Output, s.Output
	}
	if err := cmd.Start(); err != nil {
		if logf != nil {
			logf.Close()
		}
		return nil, fmt.Errorf("%s: start %s: %w", s.Name, strings.Join(argv, " "), err)
	}
	p := &Proc{Spec: s, Argv: argv, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		if logf != nil {
			logf.Close()
		}
		close(p.done)
	}()
	return p, nil
}

// Pid is the child's process id (taskset execs the program, so it is the program's).
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited and been reaped.
func (p *Proc) Done() <-chan struct{} { return p.done }

// ExitErr waits for the process to exit and returns its exit error (nil for status 0).
func (p *Proc) ExitErr() error {
	<-p.done
	return p.err
}

// Exited reports, without waiting, why the process is gone ("exit status 1", "signal: killed",
// "exit status 0"), or "" while it runs.
func (p *Proc) Exited() string {
	select {
	case <-p.done:
		if p.err == nil {
			return "exit status 0"
		}
		return p.err.Error()
	default:
		return ""
	}
}

// Signal sends sig to the child's process group; it reports whether the child was still running.
func (p *Proc) Signal(sig syscall.Signal) bool {
	select {
	case <-p.done:
		return false
	default:
	}
	// Not yet reaped: the group is ours, or is being reaped this very moment, in which case it
	// is gone and the kill fails with ESRCH.
	_ = syscall.Kill(-p.cmd.Process.Pid, sig)
	return true
}

// Stop sends the stop signal (Spec.StopSignal, default SIGTERM), waits up to grace, then
// SIGKILLs the group and waits. It is idempotent; force, when not nil and closed, cuts the grace
// period short.
func (p *Proc) Stop(grace time.Duration) { p.stop(grace, nil) }

func (p *Proc) stop(grace time.Duration, force <-chan struct{}) bool {
	sig := p.Spec.StopSignal
	if sig == 0 {
		sig = syscall.SIGTERM
	}
	if !p.Signal(sig) {
		return true
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	graceful := true
	select {
	case <-p.done:
		return true
	case <-t.C:
		graceful = false
	case <-force:
	}
	p.Signal(syscall.SIGKILL)
	<-p.done
	return graceful
}

// LogTail returns the last n lines of the process' log file (Spec.Log), for error messages.
func (p *Proc) LogTail(n int) string {
	if p.Spec.Log == "" {
		return ""
	}
	b, err := os.ReadFile(p.Spec.Log)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// WaitHTTP polls url with GET until it answers 200, the process exits (with its log's last
// lines in the error), or timeout passes.
func (p *Proc) WaitHTTP(ctx context.Context, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err := WaitHTTP(ctx, url, p.Exited)
	if err != nil && p.Spec.Log != "" {
		err = fmt.Errorf("%s: %w; last log lines:\n%s", p.Spec.Name, err, p.LogTail(15))
	}
	return err
}

// WaitHTTP polls url with GET until it answers 200 or ctx ends. exited, when not nil, is asked
// after every failed poll whether the process behind url is gone: a non-empty reason ends the
// wait at once instead of at the deadline.
func WaitHTTP(ctx context.Context, url string, exited func() string) error {
	client := &http.Client{Timeout: time.Second}
	var last string
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(b)))
		} else {
			last = err.Error()
		}
		if exited != nil {
			if why := exited(); why != "" {
				return fmt.Errorf("the process exited (%s) before %s answered 200 (last: %s)", why, url, last)
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s did not answer 200 in time (last: %s)", url, last)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// ErrMissing says a binary was not found; callers skip what needs it.
var ErrMissing = errors.New("binary not found")

// Lookup returns dir/name when it is an executable file, else an error wrapping ErrMissing.
func Lookup(dir, name string) (string, error) {
	p := filepath.Join(dir, name)
	st, err := os.Stat(p)
	if err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		return "", fmt.Errorf("%s: %w", p, ErrMissing)
	}
	return p, nil
}
