package httpcache

import (
	"bufio"
	"bytes"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

var bigBody = []byte(`{"items":[` + strings.Repeat(`{"id":"00000001","name":"Ao thun cotton","price":450000},`, 40) + `{}]}`)

// request reads a GET with the given headers from its wire form into ctx.
func request(tb testing.TB, ctx *fasthttp.RequestCtx, headers ...string) {
	tb.Helper()
	raw := "GET /x HTTP/1.1\r\nHost: edge.test\r\n" + strings.Join(headers, "\r\n")
	if len(headers) > 0 {
		raw += "\r\n"
	}
	if err := ctx.Request.Read(bufio.NewReader(strings.NewReader(raw + "\r\n"))); err != nil {
		tb.Fatal(err)
	}
}

func TestServe(t *testing.T) {
	big, small := New(bigBody, true), New([]byte(`{"id":"1"}`), true)
	if big.Gzip == nil || big.Brotli == nil || small.Gzip != nil || small.Brotli != nil {
		t.Fatalf("compressed copies: big gzip %d br %d, small gzip %d br %d; want both for big only",
			len(big.Gzip), len(big.Brotli), len(small.Gzip), len(small.Brotli))
	}
	tests := []struct {
		name     string
		rep      *Rep
		headers  []string
		status   int
		encoding string
		etag     []byte
		vary     bool
	}{
		{"plain, no compression asked", big, nil, 200, "", big.ETag, true},
		{"brotli preferred", big, []string{"Accept-Encoding: gzip, deflate, br"}, 200, "br", big.etagBrotli, true},
		{"gzip", big, []string{"accept-encoding: gzip"}, 200, "gzip", big.etagGzip, true},
		{"brotli refused by q=0", big, []string{"Accept-Encoding: br;q=0, gzip;q=0.5"}, 200, "gzip", big.etagGzip, true},
		{"star", big, []string{"Accept-Encoding: *"}, 200, "br", big.etagBrotli, true},
		{"identity only", big, []string{"Accept-Encoding: identity"}, 200, "", big.ETag, true},
		{"small body never compressed", small, []string{"Accept-Encoding: br, gzip"}, 200, "", small.ETag, false},
		{"304 plain", small, []string{"If-None-Match: " + string(small.ETag)}, 304, "", small.ETag, false},
		{"304 in a list, weak form", small, []string{`If-None-Match: "x", W/` + string(small.ETag)}, 304, "", small.ETag, false},
		{"304 star", small, []string{"If-None-Match: *"}, 304, "", small.ETag, false},
		{"304 brotli", big, []string{"Accept-Encoding: br", "If-None-Match: " + string(big.etagBrotli)}, 304, "", big.etagBrotli, true},
		{"plain tag does not match the brotli copy", big, []string{"Accept-Encoding: br", "If-None-Match: " + string(big.ETag)}, 200, "br", big.etagBrotli, true},
		{"other tag", small, []string{`If-None-Match: "other"`}, 200, "", small.ETag, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ctx fasthttp.RequestCtx
			request(t, &ctx, tt.headers...)
			Serve(&ctx, tt.rep, "application/json", []byte("public, max-age=5"))
			r := &ctx.Response
			if r.StatusCode() != tt.status || string(r.Header.Peek("Content-Encoding")) != tt.encoding ||
				!bytes.Equal(r.Header.Peek("ETag"), tt.etag) || (len(r.Header.Peek("Vary")) > 0) != tt.vary ||
				string(r.Header.Peek("Cache-Control")) != "public, max-age=5" {
				t.Fatalf("headers %q: status %d, encoding %q, etag %s, vary %q, cache %q; want %d, %q, %s, vary %v",
					tt.headers, r.StatusCode(), r.Header.Peek("Content-Encoding"), r.Header.Peek("ETag"), r.Header.Peek("Vary"),
					r.Header.Peek("Cache-Control"), tt.status, tt.encoding, tt.etag, tt.vary)
			}
			if tt.status == 304 {
				if len(r.Body()) != 0 {
					t.Fatalf("304 with a body of %d bytes", len(r.Body()))
				}
				return
			}
			if got := decode(t, tt.encoding, r.Body()); !bytes.Equal(got, tt.rep.Body) {
				t.Fatalf("decoded body differs from the plain body (%d vs %d bytes)", len(got), len(tt.rep.Body))
			}
		})
	}
}

func decode(t *testing.T, encoding string, b []byte) []byte {
	t.Helper()
	var (
		out []byte
		err error
	)
	switch encoding {
	case "gzip":
		out, err = fasthttp.AppendGunzipBytes(nil, b)
	case "br":
		out, err = fasthttp.AppendUnbrotliBytes(nil, b)
	default:
		out = b
	}
	if err != nil {
		t.Fatalf("decode %s: %v", encoding, err)
	}
	return out
}

func TestETagsStableAndDistinct(t *testing.T) {
	a, b, c := New(bigBody, true), New(bytes.Clone(bigBody), true), New(append(bytes.Clone(bigBody), ' '), true)
	if !bytes.Equal(a.ETag, b.ETag) {
		t.Error("the same bytes got different ETags (edges behind one balancer must agree)")
	}
	if bytes.Equal(a.ETag, c.ETag) || bytes.Equal(a.ETag, a.etagGzip) || bytes.Equal(a.etagGzip, a.etagBrotli) {
		t.Error("different bytes or encodings share an ETag")
	}
}

// TestServeAllocs: a 304 and a compressed hit allocate nothing.
func TestServeAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under -race")
	}
	rep := New(bigBody, true)
	cc := []byte("public, max-age=5")
	for _, tt := range []struct {
		name    string
		headers []string
	}{
		{"304", []string{"Accept-Encoding: gzip, br", "If-None-Match: " + string(rep.etagBrotli)}},
		{"brotli hit", []string{"Accept-Encoding: gzip, deflate, br, zstd"}},
		{"gzip hit", []string{"Accept-Encoding: gzip"}},
	} {
		var ctx fasthttp.RequestCtx
		request(t, &ctx, tt.headers...)
		Serve(&ctx, rep, "application/json", cc)
		if n := testing.AllocsPerRun(200, func() {
			ctx.Response.Reset()
			Serve(&ctx, rep, "application/json", cc)
		}); n > 0 {
			t.Errorf("%s: %v allocations per answer, want 0", tt.name, n)
		}
	}
}

func BenchmarkServe(b *testing.B) {
	rep := New(bigBody, true)
	for _, bc := range []struct {
		name    string
		headers []string
	}{
		{"plain", nil},
		{"304", []string{"If-None-Match: " + string(rep.ETag)}},
		{"brotli", []string{"Accept-Encoding: gzip, deflate, br"}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var ctx fasthttp.RequestCtx
			request(b, &ctx, bc.headers...)
			b.ReportAllocs()
			for b.Loop() {
				ctx.Response.Reset()
				Serve(&ctx, rep, "application/json", nil)
			}
		})
	}
}
