package httpapi_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"flashedge/shared/httpapi"
	"flashedge/shared/obs"
)

type body struct {
	Name string `json:"name"`
}

func serve(t *testing.T, h fasthttp.RequestHandler) *fasthttp.Client {
	t.Helper()
	ln := fasthttputil.NewInmemoryListener()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := httpapi.NewServer(httpapi.RequestIDs(h, obs.NewIDs()), httpapi.ServerOptions{MaxRequestBodySize: 1024}, log)
	go srv.Serve(ln) //nolint:errcheck // ends when the listener closes
	t.Cleanup(func() { _ = srv.Shutdown() })
	return &fasthttp.Client{Dial: func(string) (net.Conn, error) { return ln.Dial() }}
}

func TestServerErrors(t *testing.T) {
	c := serve(t, func(ctx *fasthttp.RequestCtx) {
		switch string(ctx.Path()) {
		case "/panic":
			panic("boom")
		case "/json":
			var b body
			if httpapi.DecodeJSON(ctx, &b) {
				httpapi.WriteJSON(ctx, 200, b)
			}
		}
	})
	tests := []struct {
		name, path, body string
		wantStatus       int
		wantCode         string
	}{
		{"panic becomes 500 JSON", "/panic", "", 500, "internal"},
		{"empty body", "/json", "", 400, "empty_body"},
		{"malformed", "/json", "{", 400, "malformed_json"},
		{"unknown field", "/json", `{"name":"a","price":1}`, 400, "malformed_json"},
		{"trailing data", "/json", `{"name":"a"} {}`, 400, "malformed_json"},
		{"trailing bracket", "/json", `{"name":"a"}]`, 400, "malformed_json"},
		{"trailing space is fine", "/json", "{\"name\":\"a\"}\n ", 200, ""},
		{"too large", "/json", `{"name":"` + strings.Repeat("x", 2000) + `"}`, 413, "body_too_large"},
		{"ok", "/json", `{"name":"a"}`, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			req.SetRequestURI("http://x" + tt.path)
			req.Header.SetMethod("POST")
			req.SetBodyString(tt.body)
			if err := c.DoTimeout(req, resp, 5*time.Second); err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode() != tt.wantStatus {
				t.Fatalf("%s: status %d (%s), want %d", tt.path, resp.StatusCode(), resp.Body(), tt.wantStatus)
			}
			if len(resp.Header.Peek("Server")) != 0 {
				t.Errorf("Server header %q sent", resp.Header.Peek("Server"))
			}
			if tt.wantCode == "" {
				return
			}
			var e httpapi.ErrorBody
			if err := json.Unmarshal(resp.Body(), &e); err != nil || e.Error.Code != tt.wantCode {
				t.Fatalf("%s body %s: want error code %s", tt.path, resp.Body(), tt.wantCode)
			}
		})
	}
}
