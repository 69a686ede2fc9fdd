//go:build linux

package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"html"
	"image/png"
	"io"
	"log/slog"
	"net"
	"net/url"
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

	"flashedge/edge/internal/web"
	"flashedge/shared/httpapi"
	"flashedge/shared/upstream"
)

// TestStorefrontInChromium loads the storefront in a real headless Chromium, against the
// storefront's own routes plus standIn, an in-test stand-in for the JSON API. The page drives
// itself through its buttons (?autotest=buy): load more, product detail, log in, add to cart,
// check out, then a flash-sale purchase with an honestly solved proof of work, polling and
// payment. The test checks the resulting DOM, that every proof-of-work answer really has the
// difficulty's leading zero bits (SHA-256 recomputed here), and that the page wrote nothing to
// the console (CSP violations, failed loads and script errors all land there).
//
// Set FLASHEDGE_WEB_SCREENSHOTS to a folder to keep the screenshots (storefront.png at
// 1280x900 and storefront-mobile.png at 390x844 after the flow, plus a full page and the
// product detail).
func TestStorefrontInChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	chrome := lookChromium(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	const difficulty = 8
	api := newStandIn(difficulty)
	base := startStorefront(t, api)

	t.Run("page shops and buys in a flash sale", func(t *testing.T) {
		dom := runChromium(ctx, t, chrome, base, "--virtual-time-budget=10000", "--dump-dom", base+"/?autotest=buy&user=dom")
		text := html.UnescapeString(dom)
		m := regexp.MustCompile(`autotest: (\S+?)(?: order=([A-Za-z0-9_-]+))?[\s<]`).FindStringSubmatch(text)
		if m == nil || m[1] != "done" {
			t.Fatalf("the page's own flow did not finish: %q\n%s", firstMatch(text, `autotest: [^<]*`), tail(text, 3000))
		}
		orderID := m[2]
		if !strings.HasPrefix(orderID, "FS-") {
			t.Errorf("order shown after paying is %q, want a flash-sale order FS-...", orderID)
		}
		want := []string{
			api.products[0].Name,  // first page
			api.products[29].Name, // second page, from "load more" with next_cursor
			"749.000\u00a0₫",      // the first product's price, formatted by Intl for vi-VN
			"1.039.000\u00a0₫",    // the last one's
			"399.000\u00a0₫",      // the live sale's price
			api.products[0].Description,
			"Sắp hết", "Hết hàng", // stock badges
			"Đang mở bán", "Sắp mở bán", "Hết suất", // sale states
			"Thanh toán thành công",
			`data-order-id="` + orderID + `"`,
		}
		for _, w := range want {
			if !strings.Contains(text, w) {
				t.Errorf("DOM does not contain %q", w)
			}
		}
		if n := strings.Count(text, `<li data-product-id=`); n != len(api.products) {
			t.Errorf("grid has %d product cards, want %d", n, len(api.products))
		}
		if strings.Count(text, "data-order-id=") < 2 {
			t.Error("DOM shows fewer than two orders (cart checkout and flash sale)")
		}

		answers := api.Answers()
		if len(answers) == 0 {
			t.Fatal("the stand-in received no proof-of-work answer")
		}
		for _, a := range answers {
			if got := leadingZeroBits(a.Prefix, a.Nonce); got < a.Difficulty || a.Difficulty != difficulty {
				t.Errorf("answer %q to prefix %q: SHA-256 has %d leading zero bits, want >= %d", a.Nonce, a.Prefix, got, a.Difficulty)
			}
		}
	})

	t.Run("a busy answer is waited out and retried", func(t *testing.T) {
		dom := html.UnescapeString(runChromium(ctx, t, chrome, base, "--virtual-time-budget=15000", "--dump-dom", base+"/?autotest=buy&user=busy1"))
		if got := firstMatch(dom, `autotest: [^<]*`); !strings.HasPrefix(got, "autotest: done order=FS-") {
			t.Fatalf("the page's own flow did not finish after a 429: %q", got)
		}
		keys := api.AttemptKeys("busy1")
		if len(keys) != 2 || keys[0] == keys[1] {
			t.Errorf("attempts sent with Idempotency-Keys %q, want two different ones (429, then a fresh retry)", keys)
		}
	})

	t.Run("a sold-out answer is shown", func(t *testing.T) {
		dom := html.UnescapeString(runChromium(ctx, t, chrome, base, "--virtual-time-budget=10000", "--dump-dom", base+"/?autotest=buy&user=late1"))
		if got := firstMatch(dom, `autotest: [^<]*`); !strings.Contains(got, "Đã hết suất! / Sold out!") {
			t.Errorf("after a 410 sold_out the page said %q, want the sold-out message", got)
		}
		if !strings.Contains(dom, `class="status error"`) {
			t.Error("the sale's status line is not marked as an error")
		}
	})

	t.Run("maintenance message in the banner", func(t *testing.T) {
		api.maintenance.Store(true)
		defer api.maintenance.Store(false)
		dom := html.UnescapeString(runChromium(ctx, t, chrome, base, "--virtual-time-budget=5000", "--dump-dom", base+"/"))
		banner := firstMatch(dom, `(?s)<div id="banner"[^>]*>(.*?)</div>`)
		if !strings.Contains(banner, upstream.MaintenanceMessage) || strings.Contains(firstMatch(dom, `<div id="banner"[^>]*>`), "hidden") {
			t.Errorf("banner %q, want it shown with the maintenance message", banner)
		}
		if !strings.Contains(dom, `id="banner-retry" class="btn btn-light">`) {
			t.Error("the banner offers no retry button")
		}
		if keep := os.Getenv("FLASHEDGE_WEB_SCREENSHOTS"); keep != "" {
			runChromium(ctx, t, chrome, base, "--virtual-time-budget=5000", "--hide-scrollbars", "--window-size=1280,900",
				"--screenshot="+filepath.Join(keep, "storefront-maintenance.png"), base+"/")
		}
	})

	t.Run("proof-of-work solver", func(t *testing.T) {
		type powCase struct {
			Prefix     string `json:"prefix"`
			Difficulty int    `json:"difficulty"`
			Impl       string `json:"impl"`
		}
		cases := []powCase{
			{"any:", 0, "subtle"},
			{"any:", 0, "js"},
			{"fe1:3f9a:", 12, "subtle"},
			{"fe1:3f9a:", 12, "js"},
			{"giá sốc ⚡ ", 10, "subtle"}, // UTF-8, several bytes per character
			{"giá sốc ⚡ ", 10, "js"},
			{"", 16, "subtle"},
			{"a-longer-prefix-that-spans-more-than-one-sha256-block-0123456789abcdef-0123456789abcdef:", 9, "js"},
		}
		q, _ := json.Marshal(cases)
		dom := runChromium(ctx, t, chrome, base, "--virtual-time-budget=30000", "--dump-dom",
			base+"/?autotest=pow&cases="+url.QueryEscape(string(q)))
		raw := firstMatch(dom, `data-result="([^"]*)"`)
		var got []struct {
			powCase
			Nonce string `json:"nonce"`
			Tries int    `json:"tries"`
		}
		if err := json.Unmarshal([]byte(html.UnescapeString(raw)), &got); err != nil || len(got) != len(cases) {
			t.Fatalf("solver results %q (%v), want %d of them; page said %q", raw, err, len(cases), firstMatch(dom, `autotest: [^<]*`))
		}
		for i, g := range got {
			c := cases[i]
			n, err := strconv.Atoi(g.Nonce)
			switch {
			case err != nil || strconv.Itoa(n) != g.Nonce:
				t.Errorf("%+v: nonce %q is not a decimal counter", c, g.Nonce)
				continue
			case g.Impl != c.Impl:
				t.Errorf("%+v: solved with %q, want %q (WebCrypto is available on loopback)", c, g.Impl, c.Impl)
			case g.Tries != n+1:
				t.Errorf("%+v: %d tries for nonce %d, want %d", c, g.Tries, n, n+1)
			}
			if z := leadingZeroBits(c.Prefix, g.Nonce); z < c.Difficulty {
				t.Errorf("%+v: nonce %s gives %d leading zero bits, want >= %d", c, g.Nonce, z, c.Difficulty)
			}
			for smaller := 0; smaller < n; smaller++ {
				if leadingZeroBits(c.Prefix, strconv.Itoa(smaller)) >= c.Difficulty {
					t.Errorf("%+v: nonce %d, but %d already qualifies: the solver skipped it", c, n, smaller)
					break
				}
			}
		}
	})

	t.Run("screenshots", func(t *testing.T) {
		keep := os.Getenv("FLASHEDGE_WEB_SCREENSHOTS")
		type shot struct {
			file          string
			width, height int
			path          string
		}
		shots := []shot{
			{"storefront.png", 1280, 900, "/?autotest=buy&user=shot1"},
			{"storefront-mobile.png", 390, 844, "/?autotest=buy&user=shot2"},
		}
		if keep != "" { // more views for a person to look at
			shots = append(shots,
				shot{"storefront-full.png", 1280, 2600, "/"},
				shot{"storefront-detail.png", 1280, 900, "/#p/00000003"},
				shot{"storefront-detail-mobile.png", 390, 844, "/#p/00000003"},
				shot{"storefront-won.png", 1280, 900, "/?autotest=buy&user=shot3&stop=won"})
		}
		for _, shot := range shots {
			file := filepath.Join(t.TempDir(), shot.file)
			runChromium(ctx, t, chrome, base, "--virtual-time-budget=10000", "--hide-scrollbars",
				"--window-size="+strconv.Itoa(shot.width)+","+strconv.Itoa(shot.height),
				"--screenshot="+file, base+shot.path)
			b, err := os.ReadFile(file)
			if err != nil {
				t.Fatalf("no screenshot: %v", err)
			}
			cfg, err := png.DecodeConfig(bytes.NewReader(b))
			if err != nil || cfg.Width != shot.width || cfg.Height != shot.height {
				t.Errorf("%s: %dx%d (%v), want a %dx%d PNG", shot.file, cfg.Width, cfg.Height, err, shot.width, shot.height)
			}
			if keep != "" {
				if err := os.WriteFile(filepath.Join(keep, shot.file), b, 0o644); err != nil {
					t.Errorf("keeping %s: %v", shot.file, err)
				}
			}
		}
	})

	for _, p := range api.Problems() {
		t.Errorf("the page broke the contract: %s", p)
	}
}

func lookChromium(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium not on PATH: run `make test`, which installs it, or apt-get install chromium")
	}
	return bin
}

// startStorefront serves web.Register's routes and the stand-in API on a free loopback port
// until the test ends, and returns the base URL.
func startStorefront(t *testing.T, api *standIn) string {
	t.Helper()
	r := router.New()
	r.RedirectTrailingSlash = false
	web.Register(r)
	api.register(r)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httpapi.NewServer(api.Handler(r.Handler), httpapi.ServerOptions{Name: "storefront-test"}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown(); <-done })
	return "http://" + ln.Addr().String()
}

// runChromium runs one headless Chromium with args and returns its standard output. It fails
// the test when Chromium fails and for every console message from origin: Chromium 156 logs
// all console messages at INFO without their level, and the page writes nothing to the console
// in normal use, so any such line is a script error, a CSP violation or a failed load.
func runChromium(ctx context.Context, t *testing.T, bin, origin string, args ...string) string {
	t.Helper()
	all := append([]string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + t.TempDir(), "--enable-logging=stderr", "--v=0",
	}, args...)
	cmd := exec.CommandContext(ctx, bin, all...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// Chromium starts helper processes; its own process group lets the test stop all of them.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // helpers that outlived the browser
	}
	if err != nil {
		t.Fatalf("chromium %s: %v\n%s", args[len(args)-1], err, tail(stderr.String(), 3000))
	}
	for _, line := range strings.Split(stderr.String(), "\n") {
		if strings.Contains(line, ":CONSOLE") && strings.Contains(line, origin) {
			t.Errorf("console message from the page: %s", line)
		}
	}
	return stdout.String()
}

func firstMatch(s, pattern string) string {
	m := regexp.MustCompile(pattern).FindStringSubmatch(s)
	switch len(m) {
	case 0:
		return ""
	case 1:
		return m[0]
	default:
		return m[1]
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
