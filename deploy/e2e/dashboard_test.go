package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"flashedge/deploy/stack"
)

// TestDashboardAfterTraffic loads the real edge's /dashboard in headless chromium after known
// traffic and checks the figures it shows are the live ones, with no console message.
func TestDashboardAfterTraffic(t *testing.T) {
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is not installed: `make test` installs it (Debian package chromium)")
	}
	st := stack.Start(t, stack.Options{
		Services:   []string{"catalog", "cart", "order", "worker", "edge"},
		ServiceEnv: map[string]map[string]string{"catalog": {"FLASHEDGE_SEED_DEMO": "20"}, "edge": {"FLASHEDGE_RATE_IP": "off"}},
	})
	edgeURL := st.URL("edge", 0)
	admin := newClient(t, edgeURL, st.AdminToken())
	now := time.Now().UTC()
	admin.do("POST", "/api/v1/admin/flash-sales", map[string]any{
		"id": "dash", "product_id": "00000003", "price": 10000, "stock": 10, "shards": 2,
		"starts_at": now.Add(-time.Second).Format(time.RFC3339), "ends_at": now.Add(time.Hour).Format(time.RFC3339), "difficulty": 0,
	}).want(t, "create sale", 201, "")
	anon := newClient(t, edgeURL, "")
	for i := range 50 {
		anon.do("GET", fmt.Sprintf("/api/v1/products/%08d", i%10+1), nil).want(t, "product", 200, "")
	}
	for i := range 5 {
		attempt(t, login(t, edgeURL, fmt.Sprintf("dash%d", i)), "dash", "k").want(t, "attempt", 202, "")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dom, console := chromium(ctx, t, bin, st.OpsURL(0)+"/dashboard", "--dump-dom")
	for _, l := range console {
		t.Errorf("console: %s", l)
	}
	for _, id := range []string{"total", "hit-ratio", "p99"} {
		if v := textByID(dom, id); !positiveFigure(v) {
			t.Errorf("#%s = %q, want a figure above zero", id, v)
		}
	}
	if !strings.Contains(dom, `data-sale="dash"`) {
		t.Errorf("the sale is not on the dashboard")
	}
	for _, svc := range []string{"catalog", "cart", "order"} {
		if !strings.Contains(dom, `data-backend="`+svc+` `) {
			t.Errorf("backend %s is not on the dashboard", svc)
		}
	}
	if t.Failed() {
		t.Logf("DOM:\n%s", dom)
	}
	shot := t.TempDir() + "/dashboard.png"
	chromium(ctx, t, bin, st.OpsURL(0)+"/dashboard", "--screenshot="+shot, "--window-size=1280,900", "--hide-scrollbars")
	if fi, err := os.Stat(shot); err != nil || fi.Size() == 0 {
		t.Fatalf("no screenshot: %v", err)
	}
	if data, err := os.ReadFile(shot); err == nil && os.WriteFile("/tmp/dashboard-e2e.png", data, 0o644) == nil {
		t.Logf("screenshot of the live dashboard: /tmp/dashboard-e2e.png")
	}
}

// chromium loads url headless, bounded by ctx, and returns stdout and the page's console lines.
func chromium(ctx context.Context, t *testing.T, bin, url string, extra ...string) (string, []string) {
	t.Helper()
	profile := t.TempDir()
	args := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
		"--user-data-dir=" + profile, "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000"}, extra...)
	cmd := exec.CommandContext(ctx, bin, append(args, url)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, stderr.String())
	}
	var console []string
	for _, line := range strings.Split(stderr.String(), "\n") {
		if strings.Contains(line, ":CONSOLE") {
			console = append(console, line)
		}
	}
	return stdout.String(), console
}

func textByID(dom, id string) string {
	m := regexp.MustCompile(`id="` + regexp.QuoteMeta(id) + `"[^>]*>([^<]*)<`).FindStringSubmatch(dom)
	if m == nil {
		return ""
	}
	return m[1]
}

func positiveFigure(s string) bool {
	s = strings.TrimSpace(strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(s, "%"), " ms"), " s"))
	v, err := strconv.ParseFloat(strings.ReplaceAll(s, ",", ""), 64)
	return err == nil && v > 0
}
