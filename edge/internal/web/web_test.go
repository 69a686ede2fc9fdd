package web_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"encoding/xml"
	"io"
	"log/slog"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/router"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"flashedge/edge/internal/web"
	"flashedge/shared/httpapi"
)

// categories are the image names the demo catalog uses (backend/internal/catalog/seed.go).
var categories = []string{
	"ao-thun", "quan-jean", "giay", "noi-com-dien", "noi-chien", "tai-nghe", "dien-thoai", "ca-phe",
	"my-pham", "quat-dien", "balo", "sach", "do-choi", "binh-giu-nhiet", "ban-phim-chuot",
	"do-an-vat", "sua", "dong-ho",
}

// serve runs a router with only the storefront's routes on an in-memory listener until the
// test ends and returns a client for it.
func serve(t *testing.T) *fasthttp.Client {
	t.Helper()
	r := router.New()
	r.RedirectTrailingSlash = false // as the gateway sets it
	web.Register(r)
	ln := fasthttputil.NewInmemoryListener()
	srv := httpapi.NewServer(r.Handler, httpapi.ServerOptions{Name: "web-test"}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown(); <-done })
	return &fasthttp.Client{Dial: func(string) (net.Conn, error) { return ln.Dial() }}
}

type answer struct {
	status  int
	headers map[string]string
	body    []byte
}

func (a answer) header(name string) string { return a.headers[strings.ToLower(name)] }

func do(t *testing.T, c *fasthttp.Client, method, path string, headers ...string) answer {
	t.Helper()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(method)
	req.SetRequestURI("http://edge" + path)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp.SkipBody = method == fasthttp.MethodHead
	if err := c.DoTimeout(req, resp, 5*time.Second); err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	a := answer{status: resp.StatusCode(), headers: map[string]string{}, body: append([]byte(nil), resp.Body()...)}
	for k, v := range resp.Header.All() {
		a.headers[strings.ToLower(string(k))] = string(v)
	}
	return a
}

func TestRegisterServesEmbeddedFiles(t *testing.T) {
	c := serve(t)
	type row struct {
		name, path, contentType, cache, contains string
	}
	rows := []row{
		{"page", "/", "text/html; charset=utf-8", "no-cache", "<title>flashedge"},
		{"script", "/static/app.js", "text/javascript; charset=utf-8", "public, max-age=3600", "solvePow"},
		{"style sheet", "/static/app.css", "text/css; charset=utf-8", "public, max-age=3600", ".grid"},
		{"placeholder", "/img/placeholder.svg", "image/svg+xml", "public, max-age=3600", "<svg"},
		{"icon", "/img/favicon.svg", "image/svg+xml", "public, max-age=3600", "<svg"},
		{"hashed URL query is ignored", "/static/app.css?v=0123", "text/css; charset=utf-8", "public, max-age=3600", ".grid"},
	}
	for _, slug := range categories {
		rows = append(rows, row{"image " + slug, "/img/" + slug + ".svg", "image/svg+xml", "public, max-age=3600", "<svg"})
	}
	for _, tc := range rows {
		t.Run(tc.name, func(t *testing.T) {
			a := do(t, c, fasthttp.MethodGet, tc.path)
			if a.status != fasthttp.StatusOK {
				t.Fatalf("GET %s: status %d, want 200", tc.path, a.status)
			}
			for h, want := range map[string]string{
				"Content-Type":            tc.contentType,
				"Cache-Control":           tc.cache,
				"Content-Security-Policy": web.ContentSecurityPolicy,
				"X-Content-Type-Options":  "nosniff",
			} {
				if got := a.header(h); got != want {
					t.Errorf("GET %s: %s = %q, want %q", tc.path, h, got, want)
				}
			}
			if !regexp.MustCompile(`^"[0-9a-f]{24}"$`).MatchString(a.header("ETag")) {
				t.Errorf("GET %s: ETag = %q, want a quoted content hash", tc.path, a.header("ETag"))
			}
			if !bytes.Contains(a.body, []byte(tc.contains)) {
				t.Errorf("GET %s: body does not contain %q", tc.path, tc.contains)
			}
			head := do(t, c, fasthttp.MethodHead, tc.path)
			if head.status != fasthttp.StatusOK || head.header("Content-Type") != tc.contentType {
				t.Errorf("HEAD %s: status %d type %q, want 200 %q", tc.path, head.status, head.header("Content-Type"), tc.contentType)
			}
		})
	}
}

func TestRegisterRefusesUnknownNamesAndFolders(t *testing.T) {
	c := serve(t)
	for _, path := range []string{
		"/static/nope.js",
		"/static/",
		"/static",
		"/img/",
		"/img",
		"/img/nope.svg",
		"/img/ao-thun.svg/",
		"/static/img/ao-thun.svg", // another folder's file
		"/img/../static/app.js.map",
		"/static/%2e%2e/web.go",
		"/static/..%2fweb.go",
		"/static/../../go.mod",
		"/index.html", // the page is served at / only
		"/assets/index.html",
		"/web.go",
	} {
		t.Run(path, func(t *testing.T) {
			a := do(t, c, fasthttp.MethodGet, path)
			if a.status != fasthttp.StatusNotFound {
				t.Fatalf("GET %s: status %d, want 404 (body %.80q)", path, a.status, a.body)
			}
			if bytes.Contains(a.body, []byte("<a ")) || bytes.Contains(a.body, []byte("app.css")) || bytes.Contains(a.body, []byte("sach.svg")) {
				t.Errorf("GET %s: body looks like a listing: %.200q", path, a.body)
			}
		})
	}
	// Within the storefront's folders the 404 is the contract's JSON error.
	a := do(t, c, fasthttp.MethodGet, "/static/nope.js")
	var e httpapi.ErrorBody
	if err := json.Unmarshal(a.body, &e); err != nil || e.Error.Code != "not_found" || e.Error.Message == "" {
		t.Errorf("GET /static/nope.js: body %q, want {\"error\":{\"code\":\"not_found\",...}}", a.body)
	}
	if a.header("Content-Type") != "application/json" {
		t.Errorf("GET /static/nope.js: Content-Type %q, want application/json", a.header("Content-Type"))
	}
}

func TestRegisterValidatorsAndCompression(t *testing.T) {
	c := serve(t)
	for _, path := range []string{"/", "/static/app.js", "/img/sach.svg"} {
		t.Run(path, func(t *testing.T) {
			plain := do(t, c, fasthttp.MethodGet, path)
			etag := plain.header("ETag")
			for _, inm := range []string{etag, "W/" + etag, `"other", ` + etag, "*"} {
				a := do(t, c, fasthttp.MethodGet, path, "If-None-Match", inm)
				if a.status != fasthttp.StatusNotModified || len(a.body) != 0 {
					t.Errorf("If-None-Match %s: status %d with %d bytes, want 304 and none", inm, a.status, len(a.body))
				}
			}
			if a := do(t, c, fasthttp.MethodGet, path, "If-None-Match", `"stale"`); a.status != fasthttp.StatusOK {
				t.Errorf("If-None-Match \"stale\": status %d, want 200", a.status)
			}

			br := do(t, c, fasthttp.MethodGet, path, "Accept-Encoding", "gzip, br")
			if br.header("Content-Encoding") != "br" || br.header("ETag") == etag {
				t.Fatalf("Accept-Encoding gzip, br: Content-Encoding %q ETag %s, want br with its own ETag", br.header("Content-Encoding"), br.header("ETag"))
			}
			if b, err := fasthttp.AppendUnbrotliBytes(nil, br.body); err != nil || !bytes.Equal(b, plain.body) {
				t.Errorf("brotli body does not decode to the plain body (err %v)", err)
			}
			gz := do(t, c, fasthttp.MethodGet, path, "Accept-Encoding", "gzip")
			if gz.header("Content-Encoding") != "gzip" {
				t.Fatalf("Accept-Encoding gzip: Content-Encoding %q, want gzip", gz.header("Content-Encoding"))
			}
			if gz.header("Vary") != "Accept-Encoding" || plain.header("Vary") != "Accept-Encoding" {
				t.Errorf("Vary = %q and %q, want Accept-Encoding on both", gz.header("Vary"), plain.header("Vary"))
			}
			if gz.header("ETag") == etag {
				t.Errorf("gzip answer shares the ETag %s of the plain one", etag)
			}
			zr, err := gzip.NewReader(bytes.NewReader(gz.body))
			if err != nil {
				t.Fatal(err)
			}
			unzipped, err := io.ReadAll(zr)
			if err != nil || !bytes.Equal(unzipped, plain.body) {
				t.Errorf("gzip body does not inflate to the plain body (err %v)", err)
			}
		})
	}
}

// TestPageFollowsItsPolicy checks what the Content-Security-Policy would otherwise break at run
// time: no inline script, style or handler in the page or the images, and assets named by
// content hash.
func TestPageFollowsItsPolicy(t *testing.T) {
	c := serve(t)
	page := string(do(t, c, fasthttp.MethodGet, "/").body)

	for _, asset := range []string{"/static/app.js", "/static/app.css", "/img/favicon.svg"} {
		etag := strings.Trim(do(t, c, fasthttp.MethodGet, asset).header("ETag"), `"`)
		if !strings.Contains(page, asset+"?v="+etag) {
			t.Errorf("page does not name %s by its content hash %s", asset, etag)
		}
	}
	for _, m := range regexp.MustCompile(`(?s)<script([^>]*)>(.*?)</script>`).FindAllStringSubmatch(page, -1) {
		if !strings.Contains(m[1], "src=") || strings.TrimSpace(m[2]) != "" {
			t.Errorf("inline script in the page: %q", m[0])
		}
	}
	inline := regexp.MustCompile(`(?i)\s(style|on[a-z]+)\s*=`)
	if m := inline.FindString(page); m != "" {
		t.Errorf("page has an inline style or handler attribute %q", m)
	}
	if strings.Contains(page, "<style") || strings.Contains(page, "javascript:") {
		t.Error("page has a <style> element or a javascript: URL")
	}
	if m := regexp.MustCompile(`(?i)(src|href)="(https?:)?//`).FindString(page); m != "" {
		t.Errorf("page loads something from another origin: %q", m)
	}

	js := string(do(t, c, fasthttp.MethodGet, "/static/app.js").body)
	for _, banned := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "eval(", "new Function", "document.write", "console."} {
		if strings.Contains(js, banned) {
			t.Errorf("app.js uses %s", banned)
		}
	}

	for _, name := range append(append([]string{}, categories...), "placeholder", "favicon") {
		body := do(t, c, fasthttp.MethodGet, "/img/"+name+".svg").body
		var root struct {
			XMLName xml.Name
			ViewBox string `xml:"viewBox,attr"`
		}
		if err := xml.Unmarshal(body, &root); err != nil {
			t.Errorf("%s.svg is not well-formed XML: %v", name, err)
			continue
		}
		if root.XMLName.Local != "svg" || root.XMLName.Space != "http://www.w3.org/2000/svg" || root.ViewBox == "" {
			t.Errorf("%s.svg: root %v viewBox %q, want an <svg> in the SVG namespace with a viewBox", name, root.XMLName, root.ViewBox)
		}
		if s := string(body); strings.Contains(s, "<script") || inline.MatchString(s) || strings.Contains(s, "href") {
			t.Errorf("%s.svg has a script, inline style, handler or link", name)
		}
	}
}
