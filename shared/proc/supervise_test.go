package proc

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"flashedge/shared/obs/obstest"
	"flashedge/shared/proc/proctest"
)

// standin is the path of the stand-in service binary, built once by TestMain.
var standin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "supervise-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	standin = filepath.Join(dir, "standin")
	if err := proctest.BuildStandin(dir, "standin"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// get fetches path from the service at addr.
func get(addr, path string) (string, error) { return proctest.Get("http://" + addr + path) }

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// gone reports whether pid no longer exists (a zombie waiting for init to reap it counts as gone).
func gone(pid int) bool {
	if err := syscall.Kill(pid, 0); err == syscall.ESRCH {
		return true
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	// The state follows the command name in parentheses: "pid (comm) S ...".
	rest := string(stat[bytes.LastIndexByte(stat, ')')+1:])
	return strings.HasPrefix(strings.TrimSpace(rest), "Z")
}

func newSup(t *testing.T, o Options) (*Supervisor, *obstest.Buffer) {
	t.Helper()
	out := &obstest.Buffer{}
	o.Out = out
	s := New(context.Background(), o)
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("supervisor output:\n%s", out.String())
		}
	})
	return s, out
}

func TestLineWriter(t *testing.T) {
	long := strings.Repeat("y", maxLine+10)
	tests := []struct {
		name   string
		writes []string
		want   []string
	}{
		{"one line", []string{"hello\n"}, []string{"hello"}},
		{"two lines in one write", []string{"a\nb\n"}, []string{"a", "b"}},
		{"line split over writes", []string{"he", "ll", "o\nwor", "ld\n"}, []string{"hello", "world"}},
		{"crlf", []string{"dos\r\n"}, []string{"dos"}},
		{"trailing partial flushed", []string{"x\npartial"}, []string{"x", "partial"}},
		{"empty line kept", []string{"\n"}, []string{""}},
		{"overlong line cut", []string{long + "\n"}, []string{long[:maxLine], long[maxLine:]}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, raw bytes.Buffer
			tag := newTagger("svc", 5, "")
			w := &lineWriter{sink: &sink{out: &out}, tag: &tag, copyTo: &raw}
			for _, s := range tc.writes {
				if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
					t.Fatalf("Write(%q) = %d, %v", s, n, err)
				}
			}
			w.Flush()
			var want, wantRaw strings.Builder
			for _, l := range tc.want {
				want.WriteString("svc   | " + l + "\n")
				wantRaw.WriteString(l + "\n")
			}
			if out.String() != want.String() {
				t.Errorf("tagged output\n%.300q\nwant\n%.300q", out.String(), want.String())
			}
			if raw.String() != wantRaw.String() {
				t.Errorf("raw copy\n%.300q\nwant\n%.300q", raw.String(), wantRaw.String())
			}
		})
	}
}

func TestTagColor(t *testing.T) {
	tag := newTagger("cart-1", 8, "33")
	if want := "\x1b[33mcart-1   |\x1b[0m "; tag.prefix != want {
		t.Errorf("coloured prefix %q, want %q", tag.prefix, want)
	}
}

// Two processes printing 300 lines each on stdout and stderr at once: every line arrives whole,
// tagged with its own process's name, and none is lost.
func TestOutputTaggedAndInterleavedWhole(t *testing.T) {
	s, out := newSup(t, Options{TagWidth: 6})
	const n = 300
	for _, name := range []string{"a-1", "b-2"} {
		if err := s.Start(Spec{Name: name, Path: standin, Args: []string{"-name", name, "-lines", strconv.Itoa(n)}, NoRestart: true}); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"a-1", "b-2"} {
		proctest.WaitFor(t, name+" exits", 10*time.Second, func() bool {
			st, _ := s.Status(name)
			return st.Starts == 1 && !st.Running
		})
	}
	line := regexp.MustCompile(`^(a-1|b-2)    \| (?:(a-1|b-2) (out|err) (\d+) x{100}|(a-1|b-2) started pid=\d+|\[supervisor\] exited .*)$`)
	seen := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
		m := line.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("torn or untagged line %q", l)
		}
		if m[2] != "" {
			if m[1] != m[2] {
				t.Fatalf("line of %s tagged %s: %q", m[2], m[1], l)
			}
			seen[m[2]+" "+m[3]+" "+m[4]] = true
		}
	}
	if len(seen) != 2*2*n {
		t.Errorf("saw %d distinct lines, want %d", len(seen), 4*n)
	}
}

func TestCopyOutputAndPartialLine(t *testing.T) {
	var raw obstest.Buffer
	s, out := newSup(t, Options{})
	if err := s.Start(Spec{Name: "p", Path: standin, Args: []string{"-partial"}, NoRestart: true, CopyOutput: &raw}); err != nil {
		t.Fatal(err)
	}
	proctest.WaitFor(t, "p exits", 10*time.Second, func() bool { st, _ := s.Status("p"); return st.Starts == 1 && !st.Running })
	if !strings.Contains(out.String(), "p          | no newline at the end\n") {
		t.Errorf("partial last line missing from output:\n%s", out.String())
	}
	if got := raw.String(); !strings.HasSuffix(got, "first line\nno newline at the end\n") || strings.Contains(got, "|") {
		t.Errorf("raw copy %q: want untagged lines ending with the partial one", got)
	}
}

func TestKilledProcessIsRestarted(t *testing.T) {
	s, _ := newSup(t, Options{MinBackoff: 20 * time.Millisecond})
	addr := freeAddr(t)
	env := append(os.Environ(), "STANDIN_LISTEN="+addr)
	if err := s.Start(Spec{Name: "svc", Path: standin, Env: env}); err != nil {
		t.Fatal(err)
	}
	proctest.WaitFor(t, "svc healthy", 10*time.Second, func() bool { _, err := get(addr, "/health"); return err == nil })
	first, _ := s.Status("svc")

	if err := s.Kill("svc"); err != nil {
		t.Fatal(err)
	}
	proctest.WaitFor(t, "svc restarted", 10*time.Second, func() bool {
		st, _ := s.Status("svc")
		return st.Starts == 2 && st.Running
	})
	proctest.WaitFor(t, "svc healthy again", 10*time.Second, func() bool { _, err := get(addr, "/health"); return err == nil })
	second, _ := s.Status("svc")
	if second.PID == first.PID || !strings.Contains(second.LastExit, "killed") {
		t.Errorf("after kill: status %+v (first %+v), want a new pid and a killed exit", second, first)
	}
	if !gone(first.PID) {
		t.Errorf("killed pid %d still exists", first.PID)
	}

	// A crash from inside (exit status 3) is restarted too.
	_, _ = get(addr, "/crash")
	proctest.WaitFor(t, "svc restarted after crash", 10*time.Second, func() bool {
		st, _ := s.Status("svc")
		return st.Starts == 3 && st.Running
	})
	if st, _ := s.Status("svc"); st.LastExit != "exit status 3" {
		t.Errorf("last exit %q, want exit status 3", st.LastExit)
	}
}

// A process that keeps crashing is restarted with a doubling backoff capped at MaxBackoff.
func TestBackoffDoublesToCap(t *testing.T) {
	s, out := newSup(t, Options{MinBackoff: 10 * time.Millisecond, MaxBackoff: 40 * time.Millisecond})
	if err := s.Start(Spec{Name: "crashy", Path: standin, Args: []string{"-exit", "2"}}); err != nil {
		t.Fatal(err)
	}
	proctest.WaitFor(t, "six starts", 10*time.Second, func() bool { st, _ := s.Status("crashy"); return st.Starts >= 6 })
	var waits []string
	for _, m := range regexp.MustCompile(`restarting in (\S+)`).FindAllStringSubmatch(out.String(), 5) {
		waits = append(waits, m[1])
	}
	if got, want := strings.Join(waits, ","), "10ms,20ms,40ms,40ms,40ms"; got != want {
		t.Errorf("backoffs %s, want %s", got, want)
	}
}

func TestBackoffResetsAfterStayingUp(t *testing.T) {
	s, out := newSup(t, Options{MinBackoff: 10 * time.Millisecond, ResetAfter: 50 * time.Millisecond})
	addr := freeAddr(t)
	if err := s.Start(Spec{Name: "svc", Path: standin, Env: append(os.Environ(), "STANDIN_LISTEN="+addr)}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		// Each run stays up past ResetAfter (the kill waits for health and 60ms), so every
		// restart waits MinBackoff.
		proctest.WaitFor(t, "healthy", 10*time.Second, func() bool { _, err := get(addr, "/health"); return err == nil })
		time.Sleep(60 * time.Millisecond) // stay up longer than ResetAfter, on purpose
		if err := s.Kill("svc"); err != nil {
			t.Fatal(err)
		}
		proctest.WaitFor(t, "restarted", 10*time.Second, func() bool { st, _ := s.Status("svc"); return st.Starts == i+2 })
	}
	if n := strings.Count(out.String(), "restarting in 10ms"); n != 3 {
		t.Errorf("%d restarts waited 10ms, want 3:\n%s", n, out.String())
	}
}

// Stop ends processes newest first, each on SIGTERM, and leaves nothing behind: not the
// children, not a grandchild one of them started.
func TestStopReverseOrderNoOrphans(t *testing.T) {
	s, out := newSup(t, Options{})
	names := []string{"first", "second", "third"}
	for _, name := range names {
		addr := freeAddr(t)
		spec := Spec{Name: name, Path: standin, Args: []string{"-name", name}, Env: append(os.Environ(), "STANDIN_LISTEN="+addr)}
		if name == "third" {
			spec.Args = append(spec.Args, "-spawn")
		}
		if err := s.Start(spec); err != nil {
			t.Fatal(err)
		}
		proctest.WaitFor(t, name+" healthy", 10*time.Second, func() bool { _, err := get(addr, "/health"); return err == nil })
	}
	var pids []int
	for _, name := range names {
		st, _ := s.Status(name)
		pids = append(pids, st.PID)
	}
	m := regexp.MustCompile(`third grandchild pid=(\d+)`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no grandchild pid in output:\n%s", out.String())
	}
	grandchild, _ := strconv.Atoi(m[1])
	pids = append(pids, grandchild)

	start := time.Now()
	s.Stop()
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Stop took %s for processes that exit on SIGTERM", d)
	}
	text := out.String()
	third, second, first := strings.Index(text, "third stopping on terminated"), strings.Index(text, "second stopping on terminated"), strings.Index(text, "first stopping on terminated")
	if third < 0 || second < 0 || first < 0 || third > second || second > first {
		t.Errorf("want third, second, first to stop on SIGTERM in that order:\n%s", text)
	}
	for _, pid := range pids {
		proctest.WaitFor(t, fmt.Sprintf("pid %d gone", pid), 5*time.Second, func() bool { return gone(pid) })
	}
	if err := s.Start(Spec{Name: "late", Path: standin}); err != ErrStopped {
		t.Errorf("Start after Stop: %v, want ErrStopped", err)
	}
}

func TestStopKillsAfterGrace(t *testing.T) {
	s, out := newSup(t, Options{Grace: 200 * time.Millisecond})
	if err := s.Start(Spec{Name: "stubborn", Path: standin, Args: []string{"-ignore-term"}}); err != nil {
		t.Fatal(err)
	}
	proctest.WaitFor(t, "started line", 10*time.Second, func() bool { return strings.Contains(out.String(), "started pid=") })
	st, _ := s.Status("stubborn")
	start := time.Now()
	s.Stop()
	if d := time.Since(start); d < 200*time.Millisecond || d > 5*time.Second {
		t.Errorf("Stop took %s, want the 200ms grace and then a kill", d)
	}
	if !strings.Contains(out.String(), "sending SIGKILL") || !gone(st.PID) {
		t.Errorf("pid %d gone=%v, output:\n%s", st.PID, gone(st.PID), out.String())
	}
}

// KillAll is the second Ctrl-C: a stop waiting out a long grace period ends at once.
func TestKillAllCutsGraceShort(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	out := &obstest.Buffer{}
	s := New(ctx, Options{Out: out, Grace: time.Minute})
	defer s.Stop()
	if err := s.Start(Spec{Name: "stubborn", Path: standin, Args: []string{"-ignore-term"}}); err != nil {
		t.Fatal(err)
	}
	proctest.WaitFor(t, "started line", 10*time.Second, func() bool { return strings.Contains(out.String(), "started pid=") })
	st, _ := s.Status("stubborn")
	start := time.Now()
	cancel()
	select {
	case <-s.Done():
		t.Fatal("stopped at once although the process ignores SIGTERM and the grace is a minute")
	case <-time.After(100 * time.Millisecond): // the stop is waiting out its grace period now
	}
	s.KillAll()
	select {
	case <-s.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("supervisor still stopping 5s after KillAll")
	}
	if d := time.Since(start); d > 5*time.Second || !gone(st.PID) {
		t.Errorf("stopped after %s, pid %d gone=%v", d, st.PID, gone(st.PID))
	}
}

func TestNoRestartThenRestart(t *testing.T) {
	s, _ := newSup(t, Options{})
	addr := freeAddr(t)
	if err := s.Start(Spec{Name: "svc", Path: standin, Env: append(os.Environ(), "STANDIN_LISTEN="+addr), NoRestart: true}); err != nil {
		t.Fatal(err)
	}
	proctest.WaitFor(t, "healthy", 10*time.Second, func() bool { _, err := get(addr, "/health"); return err == nil })
	if err := s.Kill("svc"); err != nil {
		t.Fatal(err)
	}
	proctest.WaitFor(t, "down", 10*time.Second, func() bool { st, _ := s.Status("svc"); return !st.Running })
	if err := s.Kill("svc"); err == nil {
		t.Error("Kill of a stopped process: want an error")
	}
	if st, _ := s.Status("svc"); st.Starts != 1 {
		t.Fatalf("NoRestart process restarted on its own: %+v", st)
	}
	if err := s.Restart("svc"); err != nil {
		t.Fatal(err)
	}
	proctest.WaitFor(t, "healthy after Restart", 10*time.Second, func() bool { _, err := get(addr, "/health"); return err == nil })

	// Restart of a running process stops it gracefully first.
	before, _ := s.Status("svc")
	if err := s.Restart("svc"); err != nil {
		t.Fatal(err)
	}
	proctest.WaitFor(t, "restarted while running", 10*time.Second, func() bool { st, _ := s.Status("svc"); return st.Starts == before.Starts+1 && st.Running })
	if st, _ := s.Status("svc"); st.LastExit != "exit status 0" {
		t.Errorf("graceful restart ended the old process with %q, want exit status 0", st.LastExit)
	}
}

func TestStartErrors(t *testing.T) {
	s, _ := newSup(t, Options{})
	if err := s.Start(Spec{Name: "missing", Path: filepath.Join(t.TempDir(), "nope")}); err == nil {
		t.Error("Start of a missing binary: want an error")
	}
	if _, err := s.Status("missing"); err == nil {
		t.Error("a process that failed to start is supervised")
	}
	if err := s.Start(Spec{Name: "dup", Path: standin, Args: []string{"-exit", "0"}, NoRestart: true}); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(Spec{Name: "dup", Path: standin}); err == nil {
		t.Error("duplicate name: want an error")
	}
	if err := s.Kill("unknown"); err == nil {
		t.Error("Kill of an unknown name: want an error")
	}
}
