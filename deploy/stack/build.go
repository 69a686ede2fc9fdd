package stack

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// The binaries are built once per test process: the build result is process-wide state by
// nature, so it lives in these package variables, written only inside buildOnce.
var (
	buildOnce sync.Once
	built     buildResult
)

type buildResult struct {
	dir  string           // holds one binary per service that built
	errs map[string]error // per service that did not build
	log  string           // compiler output
	err  error            // the build could not run at all
}

// Build compiles every binary under ./edge/cmd and ./backend/cmd into a temporary folder, once
// per test process, and returns the folder. A service whose package does not compile (or does not
// exist yet) is left out: Start fails only the tests that ask for it, with the compiler's words.
// Set FLASHEDGE_STACK_RACE=1 to build the binaries with the race detector.
//
// The folder is named flashedge-stack-<pid>-* in the temp dir; folders of test processes that
// no longer run are removed by the next Build, and Main removes this process's own.
func Build(tb testing.TB) string {
	tb.Helper()
	buildOnce.Do(func() { built = build() })
	if built.err != nil {
		tb.Fatalf("stack: build: %v", built.err)
	}
	return built.dir
}

// Main runs the tests of a package and removes the built binaries afterwards; call it from
// TestMain when the package uses Build or Start: func TestMain(m *testing.M) { stack.Main(m) }.
func Main(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		_ = os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

func buildErr(service string) error {
	if err := built.errs[service]; err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(built.dir, service)); err != nil {
		return fmt.Errorf("stack: no %s binary was built (is there a package at %s?)", service, cmdPath(service))
	}
	return nil
}

func buildLog() string { return built.log }

// cmdPath is the package of a service's binary, relative to the module root.
func cmdPath(service string) string {
	if service == "edge" {
		return "./edge/cmd/edge"
	}
	return "./backend/cmd/" + service
}

// moduleRoot finds the folder holding go.mod: from this file's path when the sources are there
// (always, under go test), else from `go env GOMOD`.
func moduleRoot() (string, error) {
	if _, file, _, ok := runtime.Caller(0); ok {
		root := filepath.Join(filepath.Dir(file), "..", "..")
		if _, err := os.Stat(filepath.Join(root, "go.mod")); err == nil {
			return root, nil
		}
	}
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside the flashedge module (go env GOMOD is empty)")
	}
	return filepath.Dir(gomod), nil
}

// cmdPackages lists the binary packages present: folders under edge/cmd and backend/cmd with
// at least one non-test Go file.
func cmdPackages(root string) map[string]string {
	pkgs := map[string]string{} // binary name -> ./path
	for _, area := range []string{"edge", "backend"} {
		entries, _ := os.ReadDir(filepath.Join(root, area, "cmd"))
		for _, e := range entries {
			if !e.IsDir() {
				continue
			}
			files, _ := filepath.Glob(filepath.Join(root, area, "cmd", e.Name(), "*.go"))
			for _, f := range files {
				if !strings.HasSuffix(f, "_test.go") {
					pkgs[e.Name()] = "./" + area + "/cmd/" + e.Name()
					break
				}
			}
		}
	}
	return pkgs
}

func build() buildResult {
	root, err := moduleRoot()
	if err != nil {
		return buildResult{err: err}
	}
	pruneStale()
	dir, err := os.MkdirTemp("", "flashedge-stack-"+strconv.Itoa(os.Getpid())+"-")
	if err != nil {
		return buildResult{err: err}
	}
	r := buildResult{dir: dir, errs: map[string]error{}}
	pkgs := cmdPackages(root)
	if len(pkgs) == 0 {
		r.err = fmt.Errorf("no binary packages under %s/edge/cmd or %s/backend/cmd", root, root)
		return r
	}
	flags := []string{"build"}
	if os.Getenv("FLASHEDGE_STACK_RACE") == "1" {
		flags = append(flags, "-race")
	}
	goBuild := func(args ...string) (string, error) {
		cmd := exec.Command("go", append(append([]string(nil), flags...), args...)...)
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	var all []string
	for _, p := range pkgs {
		all = append(all, p)
	}
	out, err := goBuild(append([]string{"-o", dir + string(filepath.Separator)}, all...)...)
	r.log = out
	if err == nil {
		return r
	}
	// One package does not compile (another helper may be half way through it): build each
	// alone so the others can still be tested.
	for name, p := range pkgs {
		if out, err := goBuild("-o", filepath.Join(dir, name), p); err != nil {
			r.errs[name] = fmt.Errorf("stack: %s does not build: %v\n%s", p, err, out)
		}
	}
	return r
}

// pruneStale removes build folders left by test processes that have exited.
func pruneStale() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "flashedge-stack-*-*"))
	for _, d := range dirs {
		rest := strings.TrimPrefix(filepath.Base(d), "flashedge-stack-")
		pid, err := strconv.Atoi(rest[:max(strings.IndexByte(rest, '-'), 0)])
		if err != nil || pid <= 0 || pid == os.Getpid() {
			continue
		}
		if syscall.Kill(pid, 0) == syscall.ESRCH {
			_ = os.RemoveAll(d)
		}
	}
}
