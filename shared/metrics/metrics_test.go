package metrics

import (
	"bytes"
	"encoding/json"
	"math"
	"net"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/router"
	"github.com/prometheus/common/expfmt"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
)

// serve runs h on an in-memory listener until the test ends and returns a function doing one
// request through a real fasthttp client.
func serve(t *testing.T, h fasthttp.RequestHandler) func(method, path string) (int, []byte) {
	t.Helper()
	ln := fasthttputil.NewInmemoryListener()
	srv := &fasthttp.Server{Handler: h}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ln) }()
	t.Cleanup(func() { srv.Shutdown(); ln.Close(); <-done })
	c := &fasthttp.Client{Dial: func(string) (net.Conn, error) { return ln.Dial() }}
	return func(method, path string) (int, []byte) {
		t.Helper()
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.Header.SetMethod(method)
		req.SetRequestURI("http://test" + path)
		if err := c.DoTimeout(req, resp, 5*time.Second); err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		return resp.StatusCode(), append([]byte(nil), resp.Body()...)
	}
}

// parse parses a whole exposition with the Prometheus text parser and fails on any error.
func parse(t *testing.T, body []byte) map[string]familyView {
	t.Helper()
	var p expfmt.TextParser
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("the exposition does not parse: %v\n%s", err, body)
	}
	out := map[string]familyView{}
	for name, mf := range mfs {
		v := familyView{typ: mf.GetType().String(), series: map[string]float64{}}
		for _, m := range mf.GetMetric() {
			var kv []string
			for _, lp := range m.GetLabel() {
				kv = append(kv, lp.GetName()+"="+lp.GetValue())
			}
			sort.Strings(kv)
			key := strings.Join(kv, ",")
			switch {
			case m.GetCounter() != nil:
				v.series[key] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				v.series[key] = m.GetGauge().GetValue()
			case m.GetUntyped() != nil:
				v.series[key] = m.GetUntyped().GetValue()
			case m.GetHistogram() != nil:
				h := m.GetHistogram()
				v.series[key] = float64(h.GetSampleCount())
				prev := uint64(0)
				for _, b := range h.GetBucket() {
					if b.GetCumulativeCount() < prev {
						t.Errorf("%s{%s}: bucket le=%g count %d below the previous %d", name, key, b.GetUpperBound(), b.GetCumulativeCount(), prev)
					}
					prev = b.GetCumulativeCount()
				}
				bs := h.GetBucket()
				if len(bs) != len(DurationBuckets())+1 || !math.IsInf(bs[len(bs)-1].GetUpperBound(), 1) {
					t.Errorf("%s{%s}: %d buckets, want %d and +Inf last", name, key, len(bs), len(DurationBuckets())+1)
				} else if prev != h.GetSampleCount() {
					t.Errorf("%s{%s}: +Inf bucket %d, _count %d", name, key, prev, h.GetSampleCount())
				}
			}
		}
		out[name] = v
	}
	return out
}

type familyView struct {
	typ    string
	series map[string]float64 // "k=v,k=v" (sorted by the parser) -> value (histograms: count)
}

func TestInstrumentCountsAfterKnownTraffic(t *testing.T) {
	reg := New("edge")
	r := router.New()
	r.SaveMatchedRoutePath = true
	r.GET("/api/v1/products/{id}", func(ctx *fasthttp.RequestCtx) {
		if ctx.UserValue("id") == "404" {
			ctx.SetStatusCode(fasthttp.StatusNotFound)
		}
	})
	r.POST("/api/v1/orders", Tag("/api/v1/orders", func(ctx *fasthttp.RequestCtx) {
		ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
	}))
	reg.Register(r)
	do := serve(t, reg.Instrument(r.Handler, nil))

	traffic := []struct {
		name         string
		method, path string
		n            int
		route, code  string
	}{
		{"product hit", "GET", "/api/v1/products/00000001", 7, "/api/v1/products/{id}", "200"},
		{"other product", "GET", "/api/v1/products/00000002", 3, "/api/v1/products/{id}", "200"},
		{"product missing", "GET", "/api/v1/products/404", 2, "/api/v1/products/{id}", "404"},
		{"order down", "POST", "/api/v1/orders", 4, "/api/v1/orders", "503"},
		{"no route", "GET", "/nope/123", 5, RouteOther, "404"},
		{"wrong method", "DELETE", "/api/v1/orders", 1, RouteOther, "405"},
	}
	want := map[string]float64{}
	perRoute := map[string]float64{}
	for _, tc := range traffic {
		for range tc.n {
			do(tc.method, tc.path)
		}
		want["code="+tc.code+",route="+tc.route] += float64(tc.n)
		perRoute["route="+tc.route] += float64(tc.n)
	}

	status, body := do("GET", "/metrics")
	if status != 200 {
		t.Fatalf("GET /metrics: status %d", status)
	}
	fams := parse(t, body)
	got := fams["flashedge_edge_requests_total"].series
	for k, w := range want {
		if got[k] != w {
			t.Errorf("flashedge_edge_requests_total{%s} = %g, want %g", k, got[k], w)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected series flashedge_edge_requests_total{%s} = %g", k, got[k])
		}
	}
	hist := fams["flashedge_edge_request_duration_seconds"]
	if hist.typ != "HISTOGRAM" {
		t.Fatalf("request duration family type %q, want HISTOGRAM", hist.typ)
	}
	for k, w := range perRoute {
		if hist.series[k] != w {
			t.Errorf("flashedge_edge_request_duration_seconds_count{%s} = %g, want %g", k, hist.series[k], w)
		}
	}
	for _, name := range []string{"process_cpu_seconds_total", "go_goroutines"} {
		if _, ok := fams[name]; !ok {
			t.Errorf("/metrics lacks %s", name)
		}
	}

	// The scrape itself was counted once it finished; the summary sees everything so far.
	status, body = do("GET", "/metrics.json")
	if status != 200 {
		t.Fatalf("GET /metrics.json: status %d: %s", status, body)
	}
	var s map[string]any
	if err := json.Unmarshal(body, &s); err != nil {
		t.Fatalf("/metrics.json is not JSON: %v: %s", err, body)
	}
	for _, k := range []string{"total_requests", "success_requests", "failed_requests", "latency_ms", "uptime_seconds", "client_errors", "server_errors", "service"} {
		if _, ok := s[k]; !ok {
			t.Errorf("/metrics.json lacks %q: %s", k, body)
		}
	}
	var sum Summary
	if err := json.Unmarshal(body, &sum); err != nil {
		t.Fatal(err)
	}
	// 22 requests of the table plus the /metrics scrape; the JSON request is still running.
	if sum.TotalRequests != 23 || sum.SuccessRequests != 7+3+1 || sum.ClientErrors != 2+5+1 || sum.ServerErrors != 4 || sum.FailedRequests != 12 {
		t.Errorf("summary = %+v, want total 23, success 11, client 8, server 4, failed 12", sum)
	}
	if sum.Latency.Samples != 23 || sum.Latency.P50 <= 0 || sum.Latency.P999 < sum.Latency.P99 || sum.Latency.P99 < sum.Latency.P50 {
		t.Errorf("latency = %+v, want 23 samples and 0 < p50 <= p99 <= p999", sum.Latency)
	}
}

func TestExpositionParsesWithEveryKind(t *testing.T) {
	reg := New("order")
	reg.Counter("flashedge_order_admission_total", "decision", "admitted").Add(3)
	reg.Counter("flashedge_order_admission_total", "decision", "sold_out").Inc()
	reg.Counter("flashedge_edge_invalidations_total").Add(2)
	reg.Gauge("flashedge_edge_breaker_state", "backend", "order", "addr", "127.0.0.1:5003").Set(2)
	reg.GaugeFunc("flashedge_order_stream_backlog", func() float64 { return 42 })
	h := reg.Histogram("flashedge_worker_step_seconds", "step", `odd "label" \ value`)
	h.Observe(30 * time.Microsecond)
	h.Observe(2 * time.Millisecond)
	h.Observe(time.Minute)
	reg.GaugeFamily("flashedge_sale_stock", []string{"sale", "shard"}, func(emit Emit) {
		emit(5, "s1", "0")
		emit(0, "s1", "1")
		emit(9, "only one label") // dropped
	})
	reg.CounterFamily("flashedge_sale_events_total", []string{"sale", "event"}, func(emit Emit) {
		emit(10, "s1", "admitted")
	})
	reg.Observe("/x", 200, time.Millisecond)

	var buf bytes.Buffer
	reg.WritePrometheus(&buf)
	fams := parse(t, buf.Bytes())
	checks := []struct {
		family, key string
		want        float64
	}{
		{"flashedge_order_admission_total", "decision=admitted", 3},
		{"flashedge_order_admission_total", "decision=sold_out", 1},
		{"flashedge_edge_invalidations_total", "", 2},
		{"flashedge_edge_breaker_state", "addr=127.0.0.1:5003,backend=order", 2},
		{"flashedge_order_stream_backlog", "", 42},
		{"flashedge_worker_step_seconds", `step=odd "label" \ value`, 3},
		{"flashedge_sale_stock", "sale=s1,shard=0", 5},
		{"flashedge_sale_stock", "sale=s1,shard=1", 0},
		{"flashedge_sale_events_total", "event=admitted,sale=s1", 10},
		{"flashedge_order_requests_total", "code=200,route=/x", 1},
		{"flashedge_order_request_duration_seconds", "route=/x", 1},
	}
	for _, c := range checks {
		f, ok := fams[c.family]
		if !ok {
			t.Errorf("family %s missing", c.family)
			continue
		}
		if got, ok := f.series[c.key]; !ok || got != c.want {
			t.Errorf("%s{%s} = %g (present %v), want %g; series %v", c.family, c.key, got, ok, c.want, f.series)
		}
	}
	if n := len(fams["flashedge_sale_stock"].series); n != 2 {
		t.Errorf("flashedge_sale_stock has %d series, want 2 (the bad emit dropped)", n)
	}
	for fam, typ := range map[string]string{
		"flashedge_worker_step_seconds": "HISTOGRAM", "flashedge_sale_stock": "GAUGE", "flashedge_sale_events_total": "COUNTER",
	} {
		if got := fams[fam].typ; got != typ {
			t.Errorf("%s type %s, want %s", fam, got, typ)
		}
	}
	// The sum is in seconds.
	if !strings.Contains(buf.String(), `flashedge_worker_step_seconds_sum{step="odd \"label\" \\ value"} 60.00203`) {
		t.Errorf("histogram sum not in seconds or label not escaped:\n%s", buf.String())
	}
}

func TestRegistrationMistakesPanic(t *testing.T) {
	cases := []struct {
		name string
		f    func(r *Registry)
	}{
		{"counter without _total", func(r *Registry) { r.Counter("flashedge_x_hits") }},
		{"odd label list", func(r *Registry) { r.Counter("flashedge_x_total", "layer") }},
		{"bad metric name", func(r *Registry) { r.Gauge("flashedge-x") }},
		{"bad label name", func(r *Registry) { r.Gauge("flashedge_x", "la-yer", "v") }},
		{"reserved label", func(r *Registry) { r.Histogram("flashedge_x_seconds", "le", "1") }},
		{"one name two kinds", func(r *Registry) { r.Gauge("flashedge_x"); r.Histogram("flashedge_x") }},
		{"family twice", func(r *Registry) {
			r.GaugeFamily("flashedge_f", nil, func(Emit) {})
			r.GaugeFamily("flashedge_f", nil, func(Emit) {})
		}},
		{"same gauge func twice", func(r *Registry) {
			r.GaugeFunc("flashedge_g", func() float64 { return 0 })
			r.GaugeFunc("flashedge_g", func() float64 { return 0 })
		}},
		{"nil gauge func", func(r *Registry) { r.GaugeFunc("flashedge_g", nil) }},
		{"request counter as gauge", func(r *Registry) { r.Gauge("flashedge_svc_requests_total") }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", tc.name)
				}
			}()
			tc.f(New("svc"))
		})
	}
	t.Run("same counter twice is the same counter", func(t *testing.T) {
		r := New("svc")
		if a, b := r.Counter("flashedge_c_total", "k", "v"), r.Counter("flashedge_c_total", "k", "v"); a != b {
			t.Error("Counter returned two counters for one name and labels")
		}
		if a, b := r.Histogram("flashedge_h_seconds"), r.Histogram("flashedge_h_seconds"); a != b {
			t.Error("Histogram returned two histograms for one name and labels")
		}
	})
	t.Run("bad service name", func(t *testing.T) {
		defer func() {
			if recover() == nil {
				t.Error("New(\"Edge-1\") did not panic")
			}
		}()
		New("Edge-1")
	})
}

func TestRouteLabelsAreBounded(t *testing.T) {
	reg := New("edge")
	for i := range MaxRoutes + 50 {
		reg.Observe("/r/"+string(rune('a'+i%26))+strings.Repeat("x", i), 200, time.Millisecond)
	}
	var buf bytes.Buffer
	reg.WritePrometheus(&buf)
	fams := parse(t, buf.Bytes())
	series := fams["flashedge_edge_requests_total"].series
	if len(series) != MaxRoutes {
		t.Errorf("%d route series, want the cap %d", len(series), MaxRoutes)
	}
	// "other" exists from the start, so MaxRoutes-1 named routes fit and the rest fold into it.
	if got := series["code=200,route=other"]; got != 51 {
		t.Errorf("other = %g, want 51", got)
	}
}

func TestLatencyPercentiles(t *testing.T) {
	reg := New("edge")
	for i := range 1000 {
		d := time.Millisecond
		switch {
		case i >= 998:
			d = 300 * time.Millisecond
		case i >= 980:
			d = 20 * time.Millisecond
		}
		reg.Observe("/x", 200, d)
	}
	l := reg.Summary().Latency
	near := func(name string, got, want float64) {
		if math.Abs(got-want) > want*0.035 {
			t.Errorf("%s = %gms, want %gms within 3.5%%", name, got, want)
		}
	}
	near("p50", l.P50, 1)
	near("p90", l.P90, 1)
	near("p99", l.P99, 20)
	near("p999", l.P999, 300)
	if l.Samples != 1000 || l.WindowSeconds != 60 {
		t.Errorf("samples %d window %gs, want 1000 and 60", l.Samples, l.WindowSeconds)
	}
}

func TestWindowForgetsOldSlots(t *testing.T) {
	var w window
	t0 := time.Unix(1_700_000_000, 0)
	w.record(5*time.Millisecond, t0)
	if _, n := w.quantiles(t0.Add(50*time.Second), []float64{0.5}); n != 1 {
		t.Errorf("50s later: %d samples, want 1", n)
	}
	if _, n := w.quantiles(t0.Add(61*time.Second), []float64{0.5}); n != 0 {
		t.Errorf("61s later: %d samples, want 0", n)
	}
	// Recording into the slot again a full turn later replaces the old data.
	w.record(time.Millisecond, t0.Add(60*time.Second))
	q, n := w.quantiles(t0.Add(60*time.Second), []float64{0.5})
	if n != 1 || math.Abs(q[0]-1) > 0.035 {
		t.Errorf("after a full turn: %d samples, p50 %gms; want 1 sample of 1ms", n, q[0])
	}
}

func TestWindowBuckets(t *testing.T) {
	prev := -1
	for us := int64(0); us < 1<<22; us = us*17/16 + 1 {
		d := time.Duration(us) * time.Microsecond
		i := windowIndex(d)
		if i < prev {
			t.Fatalf("windowIndex(%v) = %d, below the index of a shorter duration %d", d, i, prev)
		}
		prev = i
		mid := windowMid(i) * 1000 // µs
		if us >= windowSub && math.Abs(mid-float64(us)) > float64(us)/32+0.5 {
			t.Fatalf("windowMid(windowIndex(%dµs)) = %gµs: more than 1/32 off", us, mid)
		}
	}
	if i := windowIndex(1000 * time.Hour); i != windowBuckets-1 {
		t.Errorf("a huge duration lands in %d, want the last bucket", i)
	}
	if i := windowIndex(-time.Second); i != 0 {
		t.Errorf("a negative duration lands in %d, want 0", i)
	}
}

func TestConcurrentObserveAndScrape(t *testing.T) {
	reg := New("edge")
	h := reg.Instrument(func(ctx *fasthttp.RequestCtx) {}, func(*fasthttp.RequestCtx) string { return "/x" })
	var wg sync.WaitGroup
	const workers, each = 4, 2000
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var ctx fasthttp.RequestCtx
			for range each {
				h(&ctx)
			}
		}()
	}
	var scrapes int
	for range 20 {
		var buf bytes.Buffer
		reg.WritePrometheus(&buf)
		parse(t, buf.Bytes())
		scrapes++
	}
	wg.Wait()
	if got := reg.Summary().TotalRequests; got != workers*each {
		t.Errorf("total %d, want %d", got, workers*each)
	}
}

func TestDocListsTheContract(t *testing.T) {
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range Contract() {
		name := s.Name
		for _, svc := range Services() {
			name = strings.Replace(name, "flashedge_"+svc+"_request", "flashedge_<svc>_request", 1)
		}
		line := name
		if len(s.Labels) > 0 {
			line += "{" + strings.Join(s.Labels, ",") + "}"
		}
		if !bytes.Contains(doc, []byte("\t"+line+" ")) {
			t.Errorf("doc.go does not list %s", line)
		}
	}
}

func TestBreakerValue(t *testing.T) {
	for state, want := range map[string]float64{"closed": 0, "half-open": 1, "open": 2, "unknown": -1} {
		if got := BreakerValue(state); got != want {
			t.Errorf("BreakerValue(%q) = %g, want %g", state, got, want)
		}
	}
}
