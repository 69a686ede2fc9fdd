// Package proc runs the servers `make bench` measures as child processes: optionally pinned to a
// CPU with taskset, output captured to a log file, readiness polled over HTTP, stopped with
// SIGTERM and, past a grace period, SIGKILL.
package proc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Spec describes one child process.
type Spec struct {
	// Name appears in errors and notes.
	Name string
	// Path is the executable.
	Path string
	// Args are its arguments (without the program name).
	Args []string
	// Env is added to the parent's environment; later entries win.
	Env []string
	// CPU, when not empty, runs the process under `taskset -c CPU` (a CPU list such as "0").
	// Start fails when taskset is missing; use Taskset to decide first.
	CPU string
	// Log receives stdout and stderr. Empty means they are discarded.
	Log string
	// Dir is the working directory. Empty means the parent's.
	Dir string
}

// Proc is a started child. Its methods are safe for concurrent use.
type Proc struct {
	Spec Spec
	// Argv is the full command line that was started (taskset included).
	Argv []string

	cmd  *exec.Cmd
	done chan struct{}
	err  error // set before done is closed
	logf *os.File
}

// Taskset returns the path of taskset, or "" when it is not installed.
func Taskset() string {
	p, err := exec.LookPath("taskset")
	if err != nil {
		return ""
	}
	return p
}

// Start starts the process. The caller owns it and must call Stop.
func Start(s Spec) (*Proc, error) {
	argv := append([]string{s.Path}, s.Args...)
	if s.CPU != "" {
		ts := Taskset()
		if ts == "" {
			return nil, fmt.Errorf("%s: taskset not found, cannot pin to CPU %s", s.Name, s.CPU)
		}
		argv = append([]string{ts, "-c", s.CPU}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), s.Env...)
	cmd.Dir = s.Dir
	// Own process group: a Ctrl-C on the terminal reaches benchrun, which then stops its
	// children in order instead of all of them dying at once. Pdeathsig kills the child if
	// benchrun itself is killed, so no server outlives it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p := &Proc{Spec: s, Argv: argv, cmd: cmd, done: make(chan struct{})}
	if s.Log != "" {
		f, err := os.OpenFile(s.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("%s: log file: %w", s.Name, err)
		}
		cmd.Stdout, cmd.Stderr, p.logf = f, f, f
	}
	if err := cmd.Start(); err != nil {
		if p.logf != nil {
			p.logf.Close()
		}
		return nil, fmt.Errorf("%s: start %s: %w", s.Name, strings.Join(argv, " "), err)
	}
	go func() {
		p.err = cmd.Wait()
		if p.logf != nil {
			p.logf.Close()
		}
		close(p.done)
	}()
	return p, nil
}

// Pid is the child's process id (taskset execs the program, so it is the program's).
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// ExitErr is the process' exit error; valid once Done is closed.
func (p *Proc) ExitErr() error {
	<-p.done
	return p.err
}

// Stop sends SIGTERM, waits up to grace, then SIGKILLs and waits. It is idempotent.
func (p *Proc) Stop(grace time.Duration) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// LogTail returns the last n lines of the process' log file, for error messages.
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

// WaitHTTP polls url with GET until it answers 200, the process exits, or timeout passes.
func (p *Proc) WaitHTTP(ctx context.Context, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	var last string
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
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
		select {
		case <-p.done:
			return fmt.Errorf("%s exited before %s answered 200 (%v); last log lines:\n%s", p.Spec.Name, url, p.err, p.LogTail(15))
		case <-ctx.Done():
			return fmt.Errorf("%s: %s did not answer 200 within %s (last: %s); last log lines:\n%s", p.Spec.Name, url, timeout, last, p.LogTail(15))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// WaitTCP polls addr until it accepts a connection, the process exits, or timeout passes.
func (p *Proc) WaitTCP(ctx context.Context, addr string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited before %s accepted connections (%v); last log lines:\n%s", p.Spec.Name, addr, p.err, p.LogTail(15))
		case <-ctx.Done():
			return fmt.Errorf("%s: %s accepted no connection within %s: %w", p.Spec.Name, addr, timeout, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// FreePort asks the kernel for a free loopback TCP port.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// FreeAddr returns "127.0.0.1:<free port>".
func FreeAddr() (string, error) {
	port, err := FreePort()
	if err != nil {
		return "", err
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), nil
}

// ErrMissing says a binary was not found; callers skip what needs it.
var ErrMissing = errors.New("binary not found")

// Lookup returns dir/name when it is an executable file, else ErrMissing.
func Lookup(dir, name string) (string, error) {
	p := filepath.Join(dir, name)
	st, err := os.Stat(p)
	if err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		return "", fmt.Errorf("%s: %w", p, ErrMissing)
	}
	return p, nil
}

// RSSMiB returns the resident memory (VmRSS) of process pid in MiB, 0 when it cannot be read.
func RSSMiB(pid int) float64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			return kb / 1024
		}
	}
	return 0
}
