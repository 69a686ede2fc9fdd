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

func TestHeaderSetScan(t *testing.T) {
	set := NewHeaderSet("x-flashedge-user", "x-request-id", "if-none-match", "idempotency-key")
	tests := []struct {
		name, headers string
		want          [4]string // "-" for absent
		repeated      uint16
	}{
		{"none", "Accept: */*\r\n", [4]string{"-", "-", "-", "-"}, 0},
		{"all, any case", "x-FlashEdge-User: bob\r\nX-Request-Id: r1\r\nIf-None-Match: \"e\"\r\nIDEMPOTENCY-KEY: k\r\n",
			[4]string{"bob", "r1", `"e"`, "k"}, 0},
		{"blanks around values", "X-Request-ID:   r2 \t\r\nIf-None-Match:\"e\"\r\n", [4]string{"-", "r2", `"e"`, "-"}, 0},
		{"empty value is present", "X-Flashedge-User:\r\nAccept: a\r\n", [4]string{"", "-", "-", "-"}, 0},
		{"first of two", "X-Request-ID: one\r\nX-Request-ID: two\r\n", [4]string{"-", "one", "-", "-"}, 1 << 1},
		{"repeats reported", "Idempotency-Key: a\r\nIf-None-Match: x\r\nidempotency-key:\r\nIDEMPOTENCY-KEY: c\r\nX-Request-ID: r\r\n", [4]string{"-", "r", "x", "a"}, 1 << 3},
		{"same first letter, other names", "If-Match: x\r\nIf-Modified-Since: y\r\nIdempotency: z\r\n", [4]string{"-", "-", "-", "-"}, 0},
		{"longer name", "X-Flashedge-User-Agent: bob\r\nX-Request-IDs: r\r\n", [4]string{"-", "-", "-", "-"}, 0},
		{"name as a value", "Referer: x-flashedge-user: bob\r\n", [4]string{"-", "-", "-", "-"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h fasthttp.RequestHeader
			if err := h.Read(bufio.NewReader(strings.NewReader("GET / HTTP/1.1\r\nHost: h\r\n" + tt.headers + "\r\n"))); err != nil {
				t.Fatal(err)
			}
			vals := make([][]byte, set.Len())
			if got := set.Scan(&h, vals); got != tt.repeated {
				t.Errorf("repeated %b, want %b", got, tt.repeated)
			}
			for i, n := range set.names {
				got := "-"
				if vals[i] != nil {
					got = string(vals[i])
				}
				if got != tt.want[i] {
					t.Errorf("%s in %q = %q, want %q", n, tt.headers, got, tt.want[i])
				}
				// It must never miss a header fasthttp itself sees (the user header is dropped on
				// the scan's word).
				if h.Peek(n) != nil && vals[i] == nil {
					t.Errorf("fasthttp sees %s in %q but the scan does not", n, tt.headers)
				}
			}
		})
	}
	var mem fasthttp.RequestHeader
	mem.Set("X-Request-ID", "m1")
	vals := make([][]byte, set.Len())
	set.Scan(&mem, vals)
	if string(vals[1]) != "m1" || vals[0] != nil {
		t.Errorf("a header built in memory: got %q, want the Peek fallback", vals)
	}
}

func TestHeaderSetScanAllocs(t *testing.T) {
	set := NewHeaderSet("x-flashedge-user", "x-request-id", "if-none-match")
	var h fasthttp.RequestHeader
	if err := h.Read(bufio.NewReader(strings.NewReader("GET / HTTP/1.1\r\nHost: a\r\nIf-None-Match: \"e\"\r\n\r\n"))); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() {
		var vals [3][]byte
		set.Scan(&h, vals[:])
	}); n != 0 {
		t.Fatalf("Scan allocates %v times, want 0", n)
	}
}
