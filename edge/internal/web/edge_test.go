//go:build linux

package web_test

import (
	"context"
	"html"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/router"
	"github.com/valyala/fasthttp"

	"flashedge/edge/internal/web"
	"flashedge/shared/httpapi"
)

// TestStorefrontAgainstRunningEdge runs the page's own shopping and flash-sale flow
// (?autotest=buy) against a real running stack instead of the stand-in. It runs only when
// FLASHEDGE_WEB_EDGE names the edge, e.g. after `make run` and creating a live sale:
//
//	FLASHEDGE_WEB_EDGE=http://127.0.0.1:8000 go test -run AgainstRunningEdge ./edge/internal/web/
//
// When the edge serves the page itself (web.Register wired in), Chromium loads it from the edge;
// otherwise the test serves the page on a loopback port and passes /api/ calls to the edge.
func TestStorefrontAgainstRunningEdge(t *testing.T) {
	edge := os.Getenv("FLASHEDGE_WEB_EDGE")
	if edge == "" || testing.Short() {
		t.Skip("set FLASHEDGE_WEB_EDGE to the base URL of a running edge with a live flash sale")
	}
	u, err := url.Parse(edge)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		t.Fatalf("FLASHEDGE_WEB_EDGE=%q: want http://host:port", edge)
	}
	chrome := lookChromium(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	base := strings.TrimSuffix(edge, "/")
	status, body, err := fasthttp.GetTimeout(nil, base+"/", 5*time.Second)
	if err != nil {
		t.Fatalf("GET %s/: %v", base, err)
	}
	if status != fasthttp.StatusOK || !strings.Contains(string(body), "/static/app.js") {
		base = proxyToEdge(t, u.Host)
		t.Logf("the edge does not serve the page yet; serving it at %s with /api/ passed to %s", base, u.Host)
	}
	user := "web" + strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	dom := html.UnescapeString(runChromium(ctx, t, chrome, base, "--virtual-time-budget=30000", "--dump-dom",
		base+"/?autotest=buy&user="+user))
	if got := firstMatch(dom, `autotest: [^<]*`); !strings.HasPrefix(got, "autotest: done order=") {
		t.Fatalf("the page's own flow against %s ended with %q; banner: %q", edge, got,
			firstMatch(dom, `<p id="banner-text">([^<]*)`))
	}
	if keep := os.Getenv("FLASHEDGE_WEB_SCREENSHOTS"); keep != "" {
		runChromium(ctx, t, chrome, base, "--virtual-time-budget=30000", "--hide-scrollbars", "--window-size=1280,900",
			"--screenshot="+keep+"/storefront-edge.png", base+"/?autotest=buy&user="+user+"b")
	}
}

// proxyToEdge serves web.Register's routes on a free loopback port and passes everything else
// to the edge at addr, until the test ends. It returns the base URL.
func proxyToEdge(t *testing.T, addr string) string {
	t.Helper()
	upstream := &fasthttp.HostClient{Addr: addr, ReadTimeout: 15 * time.Second, WriteTimeout: 5 * time.Second}
	r := router.New()
	r.RedirectTrailingSlash = false
	web.Register(r)
	r.NotFound = func(ctx *fasthttp.RequestCtx) {
		req := &ctx.Request
		req.SetHost(addr)
		if err := upstream.Do(req, &ctx.Response); err != nil {
			httpapi.WriteError(ctx, fasthttp.StatusBadGateway, "bad_gateway", err.Error())
		}
	}
	r.HandleMethodNotAllowed = false
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httpapi.NewServer(r.Handler, httpapi.ServerOptions{Name: "storefront-proxy"}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown(); <-done; upstream.CloseIdleConnections() })
	return "http://" + ln.Addr().String()
}
