package httpapi

import (
	"bufio"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"flashedge/shared/obs"
)

func TestHasRawHeader(t *testing.T) {
	tests := []struct {
		name, headers string
		want          bool
	}{
		{"absent", "Host: a\r\nAccept: */*\r\n", false},
		{"canonical", "Host: a\r\nX-Flashedge-User: bob\r\n", true},
		{"lower case, first line", "x-flashedge-user: bob\r\nHost: a\r\n", true},
		{"upper case", "Host: a\r\nX-FLASHEDGE-USER: bob\r\n", true},
		{"longer name", "Host: a\r\nX-Flashedge-User-Agent: bob\r\n", false},
		{"name as a value", "Host: a\r\nReferer: x-flashedge-user: bob\r\n", false},
		{"prefix of the name", "Host: a\r\nX-Flashedge: bob\r\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h fasthttp.RequestHeader
			if err := h.Read(bufio.NewReader(strings.NewReader("GET / HTTP/1.1\r\n" + tt.headers + "\r\n"))); err != nil {
				t.Fatal(err)
			}
			if got := HasRawHeader(&h, "x-flashedge-user"); got != tt.want {
				t.Errorf("HasRawHeader(%q) = %v, want %v", tt.headers, got, tt.want)
			}
			// Whatever the scan says, it must never miss a header fasthttp itself sees.
			if len(h.Peek("X-Flashedge-User")) > 0 && !HasRawHeader(&h, "x-flashedge-user") {
				t.Errorf("fasthttp sees the header in %q but the scan does not", tt.headers)
			}
		})
	}
	var mem fasthttp.RequestHeader
	mem.Set("Accept", "x")
	if !HasRawHeader(&mem, "x-flashedge-user") {
		t.Error("a header built in memory (no raw bytes) must answer true so callers fall back to Peek/Del")
	}
}

func TestRequestIDsCanonicalKey(t *testing.T) {
	// A client's invalid id is replaced, not joined by a second header.
	var ctx fasthttp.RequestCtx
	if err := ctx.Request.Read(bufio.NewReader(strings.NewReader("GET / HTTP/1.1\r\nHost: a\r\nx-request-id: bad id\r\n\r\n"))); err != nil {
		t.Fatal(err)
	}
	var seen []string
	RequestIDs(func(ctx *fasthttp.RequestCtx) {
		for k, v := range ctx.Request.Header.All() {
			if strings.EqualFold(string(k), "X-Request-ID") {
				seen = append(seen, string(v))
			}
		}
	}, obs.NewIDs())(&ctx)
	if len(seen) != 1 || seen[0] == "bad id" || string(ctx.Response.Header.Peek("X-Request-ID")) != seen[0] {
		t.Errorf("request ids %q, response %q: want one fresh id on both", seen, ctx.Response.Header.Peek("X-Request-ID"))
	}
}
