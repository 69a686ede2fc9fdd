// Supervisor: a set of named child processes kept running the way `restart: always` does in a
// compose file. It tags and interleaves their output on one writer, restarts a process that exits
// unexpectedly with exponential backoff, and stops everything in reverse start order when its
// context ends (the stop signal, a grace period, then SIGKILL).

package proc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"time"
)

// Options configures a Supervisor. The zero value works: output to os.Stdout, no colour,
// backoff 200ms doubling to 10s, reset after 30s up, grace 10s.
type Options struct {
	// Out receives every tagged output line. Nil means os.Stdout. Each line is one Write call.
	Out io.Writer
	// Color tags lines with ANSI colours (one per process, in start order).
	Color bool
	// TagWidth pads names to this width so the output columns line up. Zero means 10.
	TagWidth int
	// MinBackoff is the wait before the first restart after a crash. Zero means 200ms.
	MinBackoff time.Duration
	// MaxBackoff caps the doubling backoff. Zero means 10s.
	MaxBackoff time.Duration
	// ResetAfter is how long a process must stay up for its backoff to return to MinBackoff.
	// Zero means 30s.
	ResetAfter time.Duration
	// Grace is how long a process gets between SIGTERM and SIGKILL when stopped. Zero means 10s.
	Grace time.Duration
}

// Defaults for the zero values of Options.
const (
	DefaultTagWidth   = 10
	DefaultMinBackoff = 200 * time.Millisecond
	DefaultMaxBackoff = 10 * time.Second
	DefaultResetAfter = 30 * time.Second
	DefaultGrace      = 10 * time.Second
)

// Status is a snapshot of one process.
type Status struct {
	// Running is true while a child process exists (started and not yet reaped).
	Running bool
	// PID is the running child's pid, 0 when none runs.
	PID int
	// Starts counts successful starts, the first one included.
	Starts int
	// LastExit describes the last exit ("exit status 1", "signal: killed"), empty before any.
	LastExit string
}

// ErrStopped is returned by Start once the supervisor is stopping.
var ErrStopped = errors.New("proc: supervisor is stopping")

// Supervisor owns the processes started through it. Its methods are safe for concurrent use.
type Supervisor struct {
	o      Options
	sink   *sink
	cancel context.CancelFunc
	done   chan struct{} // closed when every process has been stopped

	force     chan struct{} // closed by KillAll
	forceOnce sync.Once

	mu       sync.Mutex
	procs    []*child // in start order
	byName   map[string]*child
	stopping bool
}

// New returns a supervisor that stops every process it started, in reverse start order, when
// ctx ends or Stop is called. Call Stop or Wait before the program exits.
func New(ctx context.Context, o Options) *Supervisor {
	if o.Out == nil {
		o.Out = os.Stdout
	}
	if o.TagWidth == 0 {
		o.TagWidth = DefaultTagWidth
	}
	if o.MinBackoff == 0 {
		o.MinBackoff = DefaultMinBackoff
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = o.MinBackoff
	}
	if o.ResetAfter == 0 {
		o.ResetAfter = DefaultResetAfter
	}
	if o.Grace == 0 {
		o.Grace = DefaultGrace
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &Supervisor{
		o:      o,
		sink:   &sink{out: o.Out},
		cancel: cancel,
		done:   make(chan struct{}),
		force:  make(chan struct{}),
		byName: map[string]*child{},
	}
	go s.watch(ctx)
	return s
}

// watch waits for the end of ctx and then stops the processes, newest first.
func (s *Supervisor) watch(ctx context.Context) {
	defer close(s.done)
	<-ctx.Done()
	s.mu.Lock()
	s.stopping = true
	procs := append([]*child(nil), s.procs...)
	s.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		close(procs[i].stopCh)
		<-procs[i].done
	}
}

// Stop stops every process (reverse start order, SIGTERM, grace, SIGKILL) and waits for them
// and for every goroutine of the supervisor. It is idempotent.
func (s *Supervisor) Stop() {
	s.cancel()
	<-s.done
}

// Wait blocks until the supervisor's context has ended and every process is stopped.
func (s *Supervisor) Wait() { <-s.done }

// Done is closed once every process has been stopped.
func (s *Supervisor) Done() <-chan struct{} { return s.done }

// KillAll sends SIGKILL to every running process now and makes any stop in progress skip the
// rest of its grace period (the "second Ctrl-C"). It does not itself stop restarts: cancel the
// context or call Stop for that.
func (s *Supervisor) KillAll() {
	s.forceOnce.Do(func() { close(s.force) })
	s.mu.Lock()
	procs := append([]*child(nil), s.procs...)
	s.mu.Unlock()
	for _, p := range procs {
		p.signal(syscall.SIGKILL)
	}
}

// Start starts spec's process and supervises it until the supervisor stops. It returns an
// error, and supervises nothing, when the process cannot be started at all (missing binary,
// duplicate name) or the supervisor is stopping.
func (s *Supervisor) Start(spec Spec) error {
	if spec.Name == "" || spec.Path == "" {
		return errors.New("proc: Spec needs a Name and a Path")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		return ErrStopped
	}
	if _, dup := s.byName[spec.Name]; dup {
		return fmt.Errorf("proc: a process named %q is already supervised", spec.Name)
	}
	color := ""
	if s.o.Color {
		color = colors[len(s.procs)%len(colors)]
	}
	p := &child{
		s:         s,
		spec:      spec,
		tag:       newTagger(spec.Name, s.o.TagWidth, color),
		restartCh: make(chan struct{}, 1),
		stopCh:    make(chan struct{}),
		done:      make(chan struct{}),
	}
	p.stdout = &lineWriter{sink: s.sink, tag: &p.tag, copyTo: spec.CopyOutput}
	p.stderr = &lineWriter{sink: s.sink, tag: &p.tag, copyTo: spec.CopyOutput}
	if err := p.start(); err != nil {
		return fmt.Errorf("proc: start %s: %w", spec.Name, err)
	}
	s.procs = append(s.procs, p)
	s.byName[spec.Name] = p
	go p.loop()
	return nil
}

// Printf writes one tagged line under name (which need not be a supervised process), so the
// launcher's own messages interleave cleanly with the children's output.
func (s *Supervisor) Printf(name, format string, args ...any) {
	color := ""
	if s.o.Color {
		color = "1"
	}
	t := newTagger(name, s.o.TagWidth, color)
	s.sink.writeLine(t.prefix, fmt.Appendf(nil, format, args...), t.suffix, nil)
}

func (s *Supervisor) lookup(name string) (*child, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.byName[name]
	if !ok {
		return nil, fmt.Errorf("proc: no process named %q", name)
	}
	return p, nil
}

// Kill sends SIGKILL to the named process (a crash, for fault tests). Unless its Spec says
// NoRestart, the supervisor restarts it after the backoff.
func (s *Supervisor) Kill(name string) error {
	p, err := s.lookup(name)
	if err != nil {
		return err
	}
	if !p.signal(syscall.SIGKILL) {
		return fmt.Errorf("proc: %s is not running", name)
	}
	return nil
}

// Terminate sends SIGTERM to the named process (a graceful stop, for drain tests). Unless its
// Spec says NoRestart, the supervisor restarts it after the backoff, as after any other exit.
func (s *Supervisor) Terminate(name string) error {
	p, err := s.lookup(name)
	if err != nil {
		return err
	}
	if !p.signal(syscall.SIGTERM) {
		return fmt.Errorf("proc: %s is not running", name)
	}
	return nil
}

// Restart stops the named process gracefully if it runs and starts it again at once, resetting
// its backoff. It also starts a process that is down (NoRestart, or waiting out a backoff).
// It returns before the new process has started: poll Status or the process's own health.
func (s *Supervisor) Restart(name string) error {
	p, err := s.lookup(name)
	if err != nil {
		return err
	}
	select {
	case p.restartCh <- struct{}{}:
	default: // a restart is already pending
	}
	return nil
}

// Status reports the named process's state.
func (s *Supervisor) Status(name string) (Status, error) {
	p, err := s.lookup(name)
	if err != nil {
		return Status{}, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	st := Status{Starts: p.starts, LastExit: p.lastExit}
	if p.cur != nil && !p.reaped {
		st.Running, st.PID = true, p.cur.Pid()
	}
	return st, nil
}

// child is one supervised process; loop is its only owner goroutine.
type child struct {
	s              *Supervisor
	spec           Spec
	tag            tagger
	stdout, stderr *lineWriter
	restartCh      chan struct{}
	stopCh         chan struct{} // closed by the supervisor to stop the process for good
	done           chan struct{} // closed when loop has returned and the child is reaped

	mu        sync.Mutex
	cur       *Proc         // the current process, nil before the first start
	exited    chan struct{} // closed when the current process has been reaped and its output flushed
	reaped    bool
	startedAt time.Time
	starts    int
	lastExit  string
}

// start starts a new process and a goroutine that records its exit. The loop goroutine waits
// for every process it starts (through exited) before it starts another one or returns.
func (p *child) start() error {
	cur, err := start(p.spec, p.stdout, p.stderr)
	if err != nil {
		return err
	}
	exited := make(chan struct{})
	p.mu.Lock()
	p.cur, p.exited, p.reaped = cur, exited, false
	p.startedAt = time.Now()
	p.starts++
	p.mu.Unlock()
	go func() {
		<-cur.Done()
		p.stdout.Flush()
		p.stderr.Flush()
		p.mu.Lock()
		p.reaped, p.lastExit = true, cur.Exited()
		p.mu.Unlock()
		close(exited)
	}()
	return nil
}

// signal sends sig to the current process's group; it reports whether one was running.
func (p *child) signal(sig syscall.Signal) bool {
	p.mu.Lock()
	cur := p.cur
	p.mu.Unlock()
	return cur != nil && cur.Signal(sig)
}

func (p *child) current() (chan struct{}, time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exited, p.startedAt
}

// terminate stops the current process: the stop signal, then SIGKILL after the grace period
// or at once after KillAll. It returns once the process is reaped and its output flushed.
func (p *child) terminate() {
	exited, _ := p.current()
	p.mu.Lock()
	cur := p.cur
	p.mu.Unlock()
	if cur == nil {
		return
	}
	if !cur.stop(p.s.o.Grace, p.s.force) {
		p.s.Printf(p.spec.Name, "[supervisor] still running %s after the stop signal: sending SIGKILL", p.s.o.Grace)
	}
	<-exited
}

// loop keeps the process running until stopCh is closed.
func (p *child) loop() {
	defer close(p.done)
	backoff := p.s.o.MinBackoff
	for {
		exited, startedAt := p.current()
		select {
		case <-p.stopCh:
			p.terminate()
			return
		case <-p.restartCh:
			p.s.Printf(p.spec.Name, "[supervisor] restart requested")
			p.terminate()
			backoff = p.s.o.MinBackoff
		case <-exited:
			if p.waitToRestart(startedAt, &backoff) {
				return
			}
		}
		p.startOrRecordFailure()
	}
}

// waitToRestart runs after the child exited on its own: it waits out the backoff (or, with
// NoRestart, for a Restart call) and reports whether the process is to stay stopped for good.
func (p *child) waitToRestart(startedAt time.Time, backoff *time.Duration) (stop bool) {
	up := time.Since(startedAt).Round(time.Millisecond)
	p.mu.Lock()
	why := p.lastExit
	p.mu.Unlock()
	if up >= p.s.o.ResetAfter {
		*backoff = p.s.o.MinBackoff
	}
	if p.spec.NoRestart {
		p.s.Printf(p.spec.Name, "[supervisor] exited (%s) after %s; not restarting", why, up)
		select {
		case <-p.stopCh:
			return true
		case <-p.restartCh:
			*backoff = p.s.o.MinBackoff
			return false
		}
	}
	p.s.Printf(p.spec.Name, "[supervisor] exited (%s) after %s; restarting in %s", why, up, *backoff)
	t := time.NewTimer(*backoff)
	defer t.Stop()
	select {
	case <-p.stopCh:
		return true
	case <-p.restartCh:
		*backoff = p.s.o.MinBackoff
	case <-t.C:
		*backoff = min(2**backoff, p.s.o.MaxBackoff)
	}
	return false
}

// startOrRecordFailure starts the next child. When even that fails (the binary was removed),
// it records a child that exited at once, so the loop backs off and tries again.
func (p *child) startOrRecordFailure() {
	err := p.start()
	if err == nil {
		return
	}
	exited := make(chan struct{})
	close(exited)
	p.mu.Lock()
	p.exited, p.reaped, p.startedAt = exited, true, time.Now()
	p.lastExit = "start failed: " + err.Error()
	p.mu.Unlock()
}
