package httpapi

import (
	"github.com/fasthttp/router"
	"github.com/valyala/fasthttp"
)

// NewRouter returns the router every flashedge service uses: unknown routes answer 404
// route_not_found and wrong methods 405 method_not_allowed in the contract's JSON shape, no
// redirects are made behind the client's back, and the matched route pattern is saved for the
// request metrics' route label.
func NewRouter() *router.Router {
	r := router.New()
	r.SaveMatchedRoutePath = true
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	r.HandleOPTIONS = false
	r.HandleMethodNotAllowed = true
	r.NotFound = func(ctx *fasthttp.RequestCtx) {
		WriteError(ctx, fasthttp.StatusNotFound, "route_not_found", "no route "+string(ctx.Path()))
	}
	r.MethodNotAllowed = func(ctx *fasthttp.RequestCtx) {
		WriteError(ctx, fasthttp.StatusMethodNotAllowed, "method_not_allowed",
			string(ctx.Method())+" is not allowed here; allowed: "+string(ctx.Response.Header.Peek("Allow")))
	}
	return r
}
