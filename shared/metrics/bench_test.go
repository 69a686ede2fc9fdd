package metrics

import (
	"bytes"
	"net"
	"testing"
	"time"

	"github.com/fasthttp/router"
	"github.com/valyala/fasthttp"
)

// body is what the bare handler answers: a small product document, as the edge's cache hit.
var benchBody = []byte(`{"id":"00000001","name":"Áo thun","price":199000,"stock_state":"in_stock"}`)

func bareHandler(ctx *fasthttp.RequestCtx) {
	ctx.SetContentType("application/json")
	ctx.SetBody(benchBody)
}

var productRoute = "/api/v1/products/{id}"

func newCtx(path string) *fasthttp.RequestCtx {
	ctx := new(fasthttp.RequestCtx)
	ctx.Request.Header.SetMethod("GET")
	ctx.Request.SetRequestURI(path)
	return ctx
}

func TestInstrumentMakesNoAllocation(t *testing.T) {
	reg := New("edge")
	r := router.New()
	r.GET("/api/v1/orders/{id}", Tag("/api/v1/orders/{id}", bareHandler))
	cases := []struct {
		name string
		h    fasthttp.RequestHandler
		path string
	}{
		{"constant route", reg.Instrument(bareHandler, func(*fasthttp.RequestCtx) string { return productRoute }), "/api/v1/products/1"},
		{"SetRoute before any router", reg.Instrument(func(ctx *fasthttp.RequestCtx) {
			SetRoute(ctx, &productRoute)
			bareHandler(ctx)
		}, nil), "/api/v1/products/1"},
		{"no route is other", reg.Instrument(bareHandler, nil), "/nowhere"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := newCtx(tc.path)
			tc.h(ctx) // the first request of a (route, code) creates its counter
			if n := testing.AllocsPerRun(1000, func() {
				ctx.Response.Reset()
				tc.h(ctx)
			}); n != 0 {
				t.Errorf("%s: %v allocations per request, want 0", tc.name, n)
			}
		})
	}
	// Through the router, the router itself allocates for the {id} parameter; Instrument and
	// Tag must add nothing to that.
	t.Run("tagged route behind the router adds nothing", func(t *testing.T) {
		ctx := newCtx("/api/v1/orders/7")
		run := func(h fasthttp.RequestHandler) float64 {
			h(ctx)
			return testing.AllocsPerRun(1000, func() {
				ctx.Response.Reset()
				ctx.ResetUserValues()
				h(ctx)
			})
		}
		bare, inst := run(r.Handler), run(reg.Instrument(r.Handler, nil))
		if inst != bare {
			t.Errorf("router alone %v allocations, instrumented %v: Instrument must add none", bare, inst)
		}
	})
}

// BenchmarkInstrument compares the bare handler with the instrumented one on an in-memory
// request; the difference is the per-request cost of the metrics.
func BenchmarkInstrument(b *testing.B) {
	reg := New("edge")
	handlers := []struct {
		name string
		h    fasthttp.RequestHandler
	}{
		{"bare", bareHandler},
		{"instrumented", reg.Instrument(bareHandler, func(*fasthttp.RequestCtx) string { return productRoute })},
	}
	for _, hc := range handlers {
		b.Run(hc.name, func(b *testing.B) {
			ctx := newCtx("/api/v1/products/00000001")
			b.ReportAllocs()
			for b.Loop() {
				ctx.Response.Reset()
				hc.h(ctx)
			}
		})
	}
	for _, hc := range handlers {
		b.Run(hc.name+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				ctx := newCtx("/api/v1/products/00000001")
				for pb.Next() {
					ctx.Response.Reset()
					hc.h(ctx)
				}
			})
		})
	}
}

// BenchmarkInstrumentServed runs the same comparison through fasthttp's own connection loop
// (request parsing, the server's clock read, response writing) over an in-memory connection
// that replays pipelined GETs: the per-request cost a real edge pays minus the syscalls, so
// the relative overhead printed here is an upper bound of the overhead on the wire.
func BenchmarkInstrumentServed(b *testing.B) {
	reg := New("edge")
	handlers := []struct {
		name string
		h    fasthttp.RequestHandler
	}{
		{"bare", bareHandler},
		{"instrumented", reg.Instrument(bareHandler, func(*fasthttp.RequestCtx) string { return productRoute })},
	}
	req := []byte("GET /api/v1/products/00000001 HTTP/1.1\r\nHost: edge\r\nUser-Agent: bench\r\n\r\n")
	const batch = 4096
	stream := bytes.Repeat(req, batch)
	for _, hc := range handlers {
		b.Run(hc.name, func(b *testing.B) {
			srv := &fasthttp.Server{Handler: hc.h, NoDefaultServerHeader: true, NoDefaultDate: true}
			b.ReportAllocs()
			b.ResetTimer()
			for done := 0; done < b.N; done += batch {
				k := min(batch, b.N-done)
				c := &replayConn{r: bytes.NewReader(stream[:k*len(req)])}
				if err := srv.ServeConn(c); err != nil {
					b.Fatal(err)
				}
				if c.responses == 0 {
					b.Fatal("no response written")
				}
			}
		})
	}
}

// replayConn is a net.Conn that reads a fixed byte stream and discards what is written.
type replayConn struct {
	r         *bytes.Reader
	responses int
}

func (c *replayConn) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c *replayConn) Write(p []byte) (int, error) { c.responses++; return len(p), nil }
func (c *replayConn) Close() error                { return nil }
func (c *replayConn) LocalAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8000}
}
func (c *replayConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
}
func (c *replayConn) SetDeadline(time.Time) error      { return nil }
func (c *replayConn) SetReadDeadline(time.Time) error  { return nil }
func (c *replayConn) SetWriteDeadline(time.Time) error { return nil }
