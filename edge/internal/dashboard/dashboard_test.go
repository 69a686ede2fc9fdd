package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/router"
	"github.com/valyala/fasthttp"

	"flashedge/shared/metrics"
	"flashedge/shared/upstream"
)

// fakeSource returns figures that grow on every call, as a busy edge would.
type fakeSource struct {
	reg      *metrics.Registry
	salesErr error

	mu    sync.Mutex
	calls uint64
}

func newFakeSource() *fakeSource { return &fakeSource{reg: metrics.New("edge")} }

// Traffic adds 240 requests per call: 1 in 100 answers 503, 1 in 25 answers 429.
func (f *fakeSource) Traffic() metrics.Summary {
	for i := range 240 {
		code := 200
		switch {
		case i%100 == 0:
			code = 503
		case i%25 == 0:
			code = 429
		}
		f.reg.Observe("/api/v1/products/{id}", code, time.Duration(200+i*20)*time.Microsecond)
	}
	return f.reg.Summary()
}

func (f *fakeSource) Cache() []CacheLayer {
	f.mu.Lock()
	f.calls++
	n := f.calls
	f.mu.Unlock()
	return []CacheLayer{
		{Layer: "body", Hits: 9000 + 200*n, Misses: 1000 + 10*n},
		{Layer: "rueidis", Hits: 600 + 5*n, Misses: 400 + 5*n},
		{Layer: "store", Hits: 390 + 5*n, Misses: 10},
	}
}

func (f *fakeSource) Backends() []Backend {
	return append(append(
		Backends("catalog", []upstream.ReplicaState{{Addr: "127.0.0.1:5001", Healthy: true, Breaker: "closed", Requests: 4200, Failures: 3}}),
		Backends("cart", []upstream.ReplicaState{{Addr: "127.0.0.1:5002", Healthy: true, Breaker: "half-open", Requests: 77, Failures: 9}})...),
		Backends("order", []upstream.ReplicaState{{Addr: "127.0.0.1:5003", Healthy: false, Breaker: "open", Requests: 310, Failures: 120, LastError: "dial tcp: connection refused"}})...)
}

func (f *fakeSource) Sales(ctx context.Context) ([]Sale, error) {
	if f.salesErr != nil {
		return nil, f.salesErr
	}
	return []Sale{
		{ID: "s1", ProductID: "00000007", State: "live", Initial: 100, Shards: []int64{12, 0, 7, 25},
			Admitted: 1234, Queued: 17, Won: 56, Ordered: 40, Expired: 3, Returned: 3},
		{ID: "s2", ProductID: "00000009", State: "upcoming", Initial: 50, Shards: []int64{25, 25}},
	}, nil
}

// serve runs the dashboard, instrumented like the edge, on a loopback port until the test ends.
func serve(t *testing.T, src Source) string {
	t.Helper()
	r := router.New()
	Register(r, src, Options{})
	return serveHandler(t, metrics.New("edge").Instrument(r.Handler, nil))
}

// serveHandler runs h on a loopback port until the test ends and returns its base URL.
func serveHandler(t *testing.T, h fasthttp.RequestHandler) string {
	t.Helper()
	srv := &fasthttp.Server{Handler: h, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ln) }()
	t.Cleanup(func() { srv.Shutdown(); <-done })
	return "http://" + ln.Addr().String()
}

func get(t *testing.T, url string) (int, string, *fasthttp.ResponseHeader) {
	t.Helper()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(url)
	if err := fasthttp.DoTimeout(req, resp, 5*time.Second); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	h := new(fasthttp.ResponseHeader)
	resp.Header.CopyTo(h)
	return resp.StatusCode(), string(resp.Body()), h
}

func TestDataJSON(t *testing.T) {
	cases := []struct {
		name      string
		src       *fakeSource
		wantSales int
		wantErr   string
	}{
		{"all figures", newFakeSource(), 2, ""},
		{"sales fail", &fakeSource{reg: metrics.New("edge"), salesErr: errors.New("store timeout")}, 0, "flash sales unavailable: store timeout"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			base := serve(t, tc.src)
			status, body, h := get(t, base+"/dashboard/data.json")
			if status != 200 || !strings.HasPrefix(string(h.ContentType()), "application/json") {
				t.Fatalf("status %d, content type %q: %s", status, h.ContentType(), body)
			}
			var raw map[string]any
			if err := json.Unmarshal([]byte(body), &raw); err != nil {
				t.Fatalf("not JSON: %v: %s", err, body)
			}
			for _, k := range []string{"now", "traffic", "cache", "backends", "sales"} {
				if _, ok := raw[k]; !ok {
					t.Errorf("data.json lacks %q", k)
				}
			}
			if _, ok := raw["sales"].([]any); !ok {
				t.Errorf("sales is %T, want an array even when empty", raw["sales"])
			}
			var s Snapshot
			if err := json.Unmarshal([]byte(body), &s); err != nil {
				t.Fatal(err)
			}
			if s.Traffic.TotalRequests != 240 || s.Traffic.ServerErrors != 3 || s.Traffic.Latency.P99 <= 0 {
				t.Errorf("traffic = %+v, want 240 requests, 3 server errors and a p99", s.Traffic)
			}
			if len(s.Cache) != 3 || len(s.Backends) != 3 || s.Backends[2].Service != "order" || s.Backends[2].Breaker != "open" {
				t.Errorf("cache %+v backends %+v", s.Cache, s.Backends)
			}
			if len(s.Sales) != tc.wantSales || s.SalesError != tc.wantErr {
				t.Errorf("sales %+v error %q, want %d sales and error %q", s.Sales, s.SalesError, tc.wantSales, tc.wantErr)
			}
		})
	}
}

func TestSalesGetADeadline(t *testing.T) {
	var got time.Duration
	src := salesFunc(func(ctx context.Context) ([]Sale, error) {
		dl, ok := ctx.Deadline()
		if !ok {
			return nil, errors.New("no deadline")
		}
		got = time.Until(dl)
		return nil, nil
	})
	s := New(src, Options{SalesTimeout: 300 * time.Millisecond}).Snapshot(context.Background())
	if s.SalesError != "" || got <= 0 || got > 300*time.Millisecond {
		t.Errorf("Sales saw a deadline %v away (error %q), want within 300ms", got, s.SalesError)
	}
	if s.Cache == nil || s.Backends == nil || s.Sales == nil {
		t.Errorf("nil slices in %+v: the page wants arrays", s)
	}
}

type salesFunc func(ctx context.Context) ([]Sale, error)

func (salesFunc) Traffic() metrics.Summary                    { return metrics.Summary{} }
func (salesFunc) Cache() []CacheLayer                         { return nil }
func (salesFunc) Backends() []Backend                         { return nil }
func (f salesFunc) Sales(ctx context.Context) ([]Sale, error) { return f(ctx) }

func TestPageAndAssets(t *testing.T) {
	base := serve(t, newFakeSource())
	cases := []struct {
		path, contentType, contains string
	}{
		{"/dashboard", "text/html", `<script src="/dashboard/app.js" defer></script>`},
		{"/dashboard/app.js", "text/javascript", `fetch(dataURL`},
		{"/dashboard/app.css", "text/css", `.card`},
	}
	for _, tc := range cases {
		t.Run(tc.path, func(t *testing.T) {
			status, body, h := get(t, base+tc.path)
			if status != 200 || !strings.HasPrefix(string(h.ContentType()), tc.contentType) {
				t.Fatalf("GET %s: status %d, type %q; want 200 %s", tc.path, status, h.ContentType(), tc.contentType)
			}
			if !strings.Contains(body, tc.contains) {
				t.Errorf("GET %s: body lacks %q", tc.path, tc.contains)
			}
			if csp := string(h.Peek("Content-Security-Policy")); !strings.Contains(csp, "default-src 'none'") {
				t.Errorf("GET %s: CSP %q", tc.path, csp)
			}
		})
	}
	// Nothing may come from another origin: no CDN, no web font.
	for _, path := range []string{"/dashboard", "/dashboard/app.js", "/dashboard/app.css"} {
		_, body, _ := get(t, base+path)
		for _, bad := range []string{"http://", "https://", "//cdn", "@import", "url("} {
			if strings.Contains(strings.ReplaceAll(body, "http://www.w3.org/2000/svg", ""), bad) {
				t.Errorf("%s refers to %q: the page must be self-contained", path, bad)
			}
		}
	}
}
