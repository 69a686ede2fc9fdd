// Package web serves the shopper-facing storefront: one HTML page, its script and style sheet,
// and the product images, all embedded in the binary so the edge needs no files at run time.
//
// The page talks only to the public JSON API (shared/openapi/openapi.json) of the same origin; it is plain
// HTML, CSS and JavaScript with no framework and nothing fetched from elsewhere, so it works
// offline and under a strict Content-Security-Policy (no inline scripts or styles).
package web

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"path"
	"strings"

	"github.com/fasthttp/router"
	"github.com/valyala/fasthttp"

	"flashedge/edge/internal/httpcache"
	"flashedge/shared/httpapi"
)

// ContentSecurityPolicy is sent with every response of the storefront: everything comes from
// the page's own origin, no inline script or style, no plugins, no framing.
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; " +
	"img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; " +
	"base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// Cache-Control values: the page is revalidated on every load (its ETag makes that a 304), so
// a new deployment shows at once; assets may be kept for an hour, and the page names them with
// a content hash ("?v=") so a changed asset is fetched under a new URL anyway.
const (
	cacheIndex  = "no-cache"
	cacheAssets = "public, max-age=3600"
)

//go:embed assets
var embedded embed.FS

// asset is one file ready to send: its bytes with their ETag and gzip and brotli copies when
// those pay (httpcache), and the headers that depend on the content.
type asset struct {
	rep         *httpcache.Rep
	contentType string
	cache       []byte
}

// Register adds the storefront's routes to r:
//
//	GET|HEAD /                    the page (text/html, no-cache)
//	GET|HEAD /static/{filepath:*} script and style sheet (public, max-age=3600)
//	GET|HEAD /img/{filepath:*}    SVG images (public, max-age=3600)
//
// Every answer carries ContentSecurityPolicy, an ETag (If-None-Match gives 304) and
// X-Content-Type-Options: nosniff. A name that is not an embedded file, a folder included,
// answers the contract's JSON 404: there is no directory listing.
//
// The assets are read and hashed once here; the handlers only look them up and are safe for
// concurrent use.
func Register(r *router.Router) {
	files := load()
	index := files["index.html"]
	delete(files, "index.html")

	serveIndex := func(ctx *fasthttp.RequestCtx) { serve(ctx, index) }
	r.GET("/", serveIndex)
	r.HEAD("/", serveIndex)
	for _, dir := range []string{"static", "img"} {
		h := folder(files, dir)
		r.GET("/"+dir+"/{filepath:*}", h)
		r.HEAD("/"+dir+"/{filepath:*}", h)
	}
}

// folder returns the handler of /<dir>/{filepath:*}: an exact lookup of "<dir>/<filepath>" in
// files, so ".." tricks, folders and anything unknown can only miss.
func folder(files map[string]*asset, dir string) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		name, _ := ctx.UserValue("filepath").(string)
		a, ok := files[dir+"/"+name]
		if !ok || name == "" {
			ctx.Response.Header.Set("Content-Security-Policy", ContentSecurityPolicy)
			httpapi.WriteError(ctx, fasthttp.StatusNotFound, "not_found", "no such file: /"+dir+"/"+name)
			return
		}
		serve(ctx, a)
	}
}

func serve(ctx *fasthttp.RequestCtx, a *asset) {
	h := &ctx.Response.Header
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	ctx.SetStatusCode(fasthttp.StatusOK)
	httpcache.Serve(ctx, a.rep, a.contentType, a.cache)
}

// load reads every embedded file into an asset keyed by its path under assets/ ("index.html",
// "static/app.js", "img/sach.svg") and renders index.html with content-hashed asset URLs.
// The files are part of the binary, so a failure here is a build mistake: it panics.
func load() map[string]*asset {
	root, err := fs.Sub(embedded, "assets")
	if err != nil {
		panic(fmt.Sprintf("web: embedded assets: %v", err))
	}
	files := make(map[string]*asset)
	err = fs.WalkDir(root, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(root, name)
		if err != nil {
			return err
		}
		files[name] = newAsset(name, b, cacheAssets)
		return nil
	})
	if err != nil {
		panic(fmt.Sprintf("web: reading embedded assets: %v", err))
	}
	tmpl, ok := files["index.html"]
	if !ok {
		panic("web: assets/index.html is missing")
	}
	page, err := renderIndex(tmpl.rep.Body, files)
	if err != nil {
		panic(fmt.Sprintf("web: rendering index.html: %v", err))
	}
	files["index.html"] = newAsset("index.html", page, cacheIndex)
	return files
}

// renderIndex executes the page template; {{asset "static/app.js"}} becomes the file's URL with
// a content hash, "/static/app.js?v=<hash>".
func renderIndex(src []byte, files map[string]*asset) ([]byte, error) {
	t, err := template.New("index").Funcs(template.FuncMap{
		"asset": func(name string) (string, error) {
			a, ok := files[name]
			if !ok {
				return "", fmt.Errorf("no asset %q", name)
			}
			return "/" + name + "?v=" + strings.Trim(string(a.rep.ETag), `"`), nil
		},
	}).Parse(string(src))
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := t.Execute(&out, nil); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

func newAsset(name string, body []byte, cache string) *asset {
	ct := contentType(name)
	compress := strings.HasPrefix(ct, "text/") || strings.HasPrefix(ct, "image/svg")
	return &asset{rep: httpcache.New(body, compress), contentType: ct, cache: []byte(cache)}
}

// contentType names the media type by extension, with UTF-8 for text; the table is fixed here
// rather than taken from the system's mime.types so every machine answers alike.
func contentType(name string) string {
	switch path.Ext(name) {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	case ".json":
		return "application/json"
	case ".png":
		return "image/png"
	case ".woff2":
		return "font/woff2"
	}
	return "application/octet-stream"
}
