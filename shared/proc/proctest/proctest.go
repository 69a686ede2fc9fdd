// Package proctest holds what tests of process supervision share: a poll with a deadline, the
// stand-in service binary and a plain HTTP GET (obstest.Buffer collects the processes' output).
package proctest

import (
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// WaitFor polls cond every 10 ms until it holds, and fails the test if it still does not after within.
func WaitFor(t testing.TB, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true within %s", what, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// BuildStandin builds the stand-in service (shared/proc/testdata/standin) once into dir under each
// of names and returns dir. The stand-in serves /health and /ready on FLASHEDGE_<NAME>_LISTEN
// like a real binary, and /env/<KEY> shows what it got. Called from TestMain, so it returns errors.
func BuildStandin(dir string, names ...string) error {
	for _, name := range names {
		out, err := exec.Command("go", "build", "-o", filepath.Join(dir, name), "flashedge/shared/proc/testdata/standin").CombinedOutput()
		if err != nil {
			return fmt.Errorf("build standin: %v\n%s", err, out)
		}
	}
	return nil
}

// Get fetches url with a one-second timeout and returns the body of a 200 answer.
func Get(url string) (string, error) {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: status %d", url, resp.StatusCode)
	}
	return string(b), err
}
