package dashboard

import (
	"bufio"
	"bytes"
	"context"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fasthttp/router"
	"github.com/valyala/fasthttp"
)

// chromiumPath finds headless chromium or fails the test saying how to get it.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("headless chromium test skipped under -short")
	}
	for _, name := range []string{"chromium", "chromium-browser", "/usr/bin/chromium"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium is not installed: `make test` installs it (Debian package chromium)")
	return ""
}

// chromiumRun is the outcome of one headless chromium run.
type chromiumRun struct {
	stdout  []byte
	console []string // the page's console lines (chromium logs every level as INFO:CONSOLE)
}

// runChromium loads url in a fresh headless chromium with extra flags, bounded by ctx. The
// browser and its helper processes run in their own process group, killed on timeout.
func runChromium(ctx context.Context, t *testing.T, bin, url string, extra ...string) chromiumRun {
	t.Helper()
	profile, err := os.MkdirTemp("", "flashedge-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	// Chromium's helpers may still be writing to the profile for a moment after the main
	// process exits, so the directory is removed best-effort rather than by t.TempDir.
	t.Cleanup(func() { os.RemoveAll(profile) })
	args := append([]string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--user-data-dir=" + profile, "--enable-logging=stderr", "--v=0",
		"--virtual-time-budget=5000",
	}, extra...)
	args = append(args, url)
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	err = cmd.Run()
	t.Logf("chromium %s: %v in %v", strings.Join(extra, " "), err, time.Since(start).Round(time.Millisecond))
	if err != nil {
		t.Fatalf("chromium failed: %v\nstderr:\n%s", err, stderr.String())
	}
	return chromiumRun{stdout: stdout.Bytes(), console: consoleLines(stderr.Bytes())}
}

// consoleLines picks the page's console messages out of chromium's stderr, which is otherwise
// full of its own noise (dbus, gpu, sandbox) that says nothing about the page.
func consoleLines(stderr []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(stderr))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if line := sc.Text(); strings.Contains(line, ":CONSOLE") {
			out = append(out, line)
		}
	}
	return out
}

// field returns the text of the first element with data-field=name inside the part of dom
// that starts at marker and ends at the next element carrying the same attribute as marker.
func field(dom, marker, name string) string {
	i := strings.Index(dom, marker)
	if i < 0 {
		return ""
	}
	part := dom[i+len(marker):]
	attr := marker[:strings.IndexByte(marker, '=')+1]
	if j := strings.Index(part, attr); j >= 0 {
		part = part[:j]
	}
	m := regexp.MustCompile(`data-field="` + regexp.QuoteMeta(name) + `"[^>]*>([^<]*)<`).FindStringSubmatch(part)
	if m == nil {
		return ""
	}
	return m[1]
}

func byID(dom, id string) string {
	m := regexp.MustCompile(`id="` + regexp.QuoteMeta(id) + `"[^>]*>([^<]*)<`).FindStringSubmatch(dom)
	if m == nil {
		return ""
	}
	return m[1]
}

func positive(s string) bool {
	s = strings.TrimSpace(strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(s, "%"), " ms"), " s"))
	v, err := strconv.ParseFloat(strings.ReplaceAll(s, ",", ""), 64)
	return err == nil && v > 0
}

func TestDashboardInHeadlessChromium(t *testing.T) {
	bin := chromiumPath(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	base := serve(t, newFakeSource())

	t.Run("figures are filled in", func(t *testing.T) {
		run := runChromium(ctx, t, bin, base+"/dashboard", "--dump-dom")
		for _, l := range run.console {
			t.Errorf("console: %s", l)
		}
		dom := string(run.stdout)
		if !strings.Contains(dom, `id="conn"`) {
			t.Fatalf("no dashboard in the dumped DOM:\n%s", dom)
		}
		if got := byID(dom, "conn"); got != "live" {
			t.Errorf("connection pill %q, want live", got)
		}
		for _, id := range []string{"rps", "total", "err-rate", "p99", "p50", "hit-ratio", "server-errors"} {
			if got := byID(dom, id); !positive(got) {
				t.Errorf("#%s = %q, want a figure above zero", id, got)
			}
		}
		checks := []struct{ marker, field, want string }{
			{`data-sale="s1"`, "state", "live"},
			{`data-sale="s1"`, "remaining", "44"},
			{`data-sale="s1"`, "admitted", "1,234"},
			{`data-sale="s1"`, "queued", "17"},
			{`data-sale="s1"`, "won", "56"},
			{`data-sale="s1"`, "ordered", "40"},
			{`data-sale="s1"`, "expired", "3"},
			{`data-sale="s1"`, "returned", "3"},
			{`data-sale="s2"`, "state", "upcoming"},
			{`data-sale="s2"`, "remaining", "50"},
			{`data-backend="catalog 127.0.0.1:5001"`, "health", "healthy"},
			{`data-backend="catalog 127.0.0.1:5001"`, "breaker", "closed"},
			{`data-backend="cart 127.0.0.1:5002"`, "breaker", "half-open"},
			{`data-backend="order 127.0.0.1:5003"`, "health", "down"},
			{`data-backend="order 127.0.0.1:5003"`, "breaker", "open"},
		}
		for _, c := range checks {
			if got := field(dom, c.marker, c.field); got != c.want {
				t.Errorf("[%s] %s = %q, want %q", c.marker, c.field, got, c.want)
			}
		}
		for _, layer := range []string{"body", "rueidis", "store"} {
			marker := `data-layer="` + layer + `"`
			if got := field(dom, marker, "ratio"); !positive(got) {
				t.Errorf("cache layer %s ratio %q, want a percentage above zero", layer, got)
			}
			if got := field(dom, marker, "hits"); !positive(got) {
				t.Errorf("cache layer %s hits %q, want above zero", layer, got)
			}
		}
		if n := strings.Count(dom, `class="fill"`); n != 3+2 {
			t.Errorf("%d non-empty shard bars drawn, want 5 (s1 has one empty shard of four, s2 two full)", n)
		}
		if t.Failed() {
			t.Logf("dumped DOM:\n%s", dom)
		}
	})

	t.Run("screenshot", func(t *testing.T) {
		shot := filepath.Join(t.TempDir(), "dashboard.png")
		run := runChromium(ctx, t, bin, base+"/dashboard", "--screenshot="+shot, "--window-size=1280,900", "--hide-scrollbars")
		for _, l := range run.console {
			t.Errorf("console: %s", l)
		}
		f, err := os.Open(shot)
		if err != nil {
			t.Fatalf("no screenshot: %v", err)
		}
		defer f.Close()
		img, err := png.Decode(f)
		if err != nil {
			t.Fatalf("screenshot is not a PNG: %v", err)
		}
		if b := img.Bounds(); b.Dx() != 1280 || b.Dy() != 900 {
			t.Errorf("screenshot is %dx%d, want 1280x900", b.Dx(), b.Dy())
		}
		t.Logf("screenshot: %s", shot)
		if data, err := os.ReadFile(shot); err == nil {
			if err := os.WriteFile("/tmp/dashboard.png", data, 0o644); err == nil {
				t.Logf("copied to /tmp/dashboard.png")
			}
		}
	})

	// The console check above would pass vacuously if chromium stopped reporting console
	// messages; a page that logs an error and throws must be caught.
	t.Run("console errors are seen", func(t *testing.T) {
		r := router.New()
		r.GET("/broken", func(ctx *fasthttp.RequestCtx) {
			ctx.SetContentType("text/html; charset=utf-8")
			ctx.SetBodyString(`<!doctype html><html><body><p id="p">x</p><script>console.error("boom"); null.f;</script></body></html>`)
		})
		bad := serveHandler(t, r.Handler)
		run := runChromium(ctx, t, bin, bad+"/broken", "--dump-dom")
		joined := strings.Join(run.console, "\n")
		if !strings.Contains(joined, `"boom"`) || !strings.Contains(joined, "Uncaught TypeError") {
			t.Errorf("the console error and the exception were not seen; console lines:\n%s", joined)
		}
	})
}
