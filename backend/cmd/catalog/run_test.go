package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"flashedge/shared/flagenv/flagenvtest"
	"flashedge/shared/kv/kvtest"
	"flashedge/shared/metrics/metricstest"
	"flashedge/shared/obs/obstest"
)

func envFunc(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func get(t *testing.T, url string, header ...string) (int, []byte, string) {
	t.Helper()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(url)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	if err := fasthttp.DoTimeout(req, resp, 2*time.Second); err != nil {
		return 0, nil, ""
	}
	return resp.StatusCode(), append([]byte(nil), resp.Body()...), string(resp.Header.Peek("X-Request-ID"))
}

func TestRunServesSeedsAndStops(t *testing.T) {
	srv := kvtest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &obstest.Buffer{}
	env := envFunc(map[string]string{
		"FLASHEDGE_STORE_ADDR":  srv.Addr,
		"FLASHEDGE_ADMIN_TOKEN": "run-test-token",
		"FLASHEDGE_SEED_DEMO":   "1000",
	})
	errc := make(chan error, 1)
	go func() { errc <- run(ctx, []string{"-addr", "127.0.0.1:0", "-log-format", "json"}, env, out) }()
	stopped := false
	defer func() {
		if !stopped { // a failed check: still stop run and wait for it
			cancel()
			<-errc
		}
	}()

	base := "http://" + obstest.ListenAddr(t, out, errc)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if st, _, _ := get(t, base+"/health"); st == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/health did not answer 200 within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st, b, _ := get(t, base+"/ready"); st != 200 {
		t.Errorf("/ready: status %d %s, want 200", st, b)
	}
	st, b, rid := get(t, base+"/api/v1/products?limit=100")
	var page struct {
		Items      []map[string]any `json:"items"`
		NextCursor string           `json:"next_cursor"`
	}
	if err := json.Unmarshal(b, &page); st != 200 || err != nil || len(page.Items) != 100 || page.NextCursor == "" {
		t.Errorf("first page of the seeded catalog: status %d, %d items, next %q, err %v", st, len(page.Items), page.NextCursor, err)
	}
	if rid == "" {
		t.Error("response has no X-Request-ID")
	}
	if _, _, echoed := get(t, base+"/health", "X-Request-ID", "abc-123"); echoed != "abc-123" {
		t.Errorf("X-Request-ID abc-123 echoed as %q", echoed)
	}
	if st, _, _ := get(t, base+"/api/v1/admin/products/00000001", "Authorization", "Bearer run-test-token"); st != 200 {
		t.Errorf("admin get with the configured token: status %d, want 200", st)
	}

	cancel()
	select {
	case err := <-errc:
		stopped = true
		if err != nil {
			t.Fatalf("run returned %v after cancel, want nil", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("run did not return within 15s of cancel")
	}
	logs := out.String()
	for _, want := range []string{`"msg":"seeded the demo catalog"`, `"products":1000`, `"msg":"request"`, `"msg":"stopped"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %s:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, "run-test-token") {
		t.Error("the admin token appears in the logs")
	}
}

func TestRunRefusesBadConfig(t *testing.T) {
	base := map[string]string{"FLASHEDGE_ADMIN_TOKEN": "t", "FLASHEDGE_STORE_ADDR": "127.0.0.1:1"}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string // in the error
	}{
		{"no admin token", nil, map[string]string{"FLASHEDGE_ADMIN_TOKEN": ""}, "FLASHEDGE_ADMIN_TOKEN"},
		{"bad seed env", nil, map[string]string{"FLASHEDGE_SEED_DEMO": "many"}, "FLASHEDGE_SEED_DEMO"},
		{"negative seed flag", []string{"-seed-demo", "-1"}, nil, "-seed-demo"},
		{"unknown flag", []string{"-colour"}, nil, "colour"},
		{"stray argument", []string{"extra"}, nil, "unexpected arguments"},
		{"bad log level", []string{"-log-level", "loud"}, nil, "log level"},
		{"bad access log sample", nil, map[string]string{"FLASHEDGE_ACCESS_LOG_SAMPLE": "0"}, "FLASHEDGE_ACCESS_LOG_SAMPLE"},
		{"bad store cluster env", nil, map[string]string{"FLASHEDGE_STORE_CLUSTER": "maybe"}, "FLASHEDGE_STORE_CLUSTER"},
		{"store not answering", nil, nil, "127.0.0.1:1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{}
			for k, v := range base {
				env[k] = v
			}
			for k, v := range tt.env {
				env[k] = v
			}
			err := run(context.Background(), tt.args, envFunc(env), &obstest.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("run(%q) = %v, want an error mentioning %q", tt.args, err, tt.want)
			}
		})
	}
}

// TestRunMetrics sends known traffic to a running catalog, then checks /metrics (parsed with
// the Prometheus text parser) for exact counts by route pattern and status, and /metrics.json.
func TestRunMetrics(t *testing.T) {
	srv := kvtest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &obstest.Buffer{}
	env := envFunc(map[string]string{"FLASHEDGE_STORE_ADDR": srv.Addr, "FLASHEDGE_ADMIN_TOKEN": "metrics-token"})
	errc := make(chan error, 1)
	go func() { errc <- run(ctx, []string{"-addr", "127.0.0.1:0", "-log-format", "json"}, env, out) }()
	defer func() { cancel(); <-errc }()
	base := "http://" + obstest.ListenAddr(t, out, errc)

	admin := []string{"Authorization", "Bearer metrics-token"}
	var id string
	for range 2 {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		req.SetRequestURI(base + "/api/v1/admin/products")
		req.Header.SetMethod("POST")
		req.Header.Set(admin[0], admin[1])
		req.SetBodyString(`{"name":"Nón lá","price":120000,"currency":"VND","stock":5}`)
		if err := fasthttp.DoTimeout(req, resp, 5*time.Second); err != nil || resp.StatusCode() != 201 {
			t.Fatalf("create product: %v %d %s", err, resp.StatusCode(), resp.Body())
		}
		var p struct{ ID string }
		_ = json.Unmarshal(resp.Body(), &p)
		id = p.ID
		fasthttp.ReleaseRequest(req)
		fasthttp.ReleaseResponse(resp)
	}
	traffic := []struct {
		path   string
		header []string
		status int
	}{
		{"/api/v1/products/" + id, nil, 200},
		{"/api/v1/products/" + id, nil, 200},
		{"/api/v1/products/" + id, nil, 200},
		{"/api/v1/products/00009999", nil, 404},
		{"/api/v1/products?limit=10", nil, 200},
		{"/api/v1/admin/products/" + id, nil, 401},
		{"/api/v1/admin/products/" + id, admin, 200},
		{"/no/such/route", nil, 404},
	}
	for _, tr := range traffic {
		if st, b, _ := get(t, base+tr.path, tr.header...); st != tr.status {
			t.Fatalf("GET %s: %d %s, want %d", tr.path, st, b, tr.status)
		}
	}

	page := metricstest.Scrape(t, base+"/metrics")
	for _, w := range []struct {
		route, code string
		n           float64
	}{
		{"/api/v1/admin/products", "201", 2},
		{"/api/v1/products/{id}", "200", 3},
		{"/api/v1/products/{id}", "404", 1},
		{"/api/v1/products", "200", 1},
		{"/api/v1/admin/products/{id}", "401", 1},
		{"/api/v1/admin/products/{id}", "200", 1},
		{"other", "404", 1},
	} {
		if got := page.Requests("catalog", w.route, w.code); got != w.n {
			t.Errorf("flashedge_catalog_requests_total{route=%q,code=%q} = %v, want %v", w.route, w.code, got, w.n)
		}
	}
	if got := page.Value("flashedge_catalog_request_duration_seconds", "route", "/api/v1/products/{id}"); got != 4 {
		t.Errorf("request_duration_seconds{route=/api/v1/products/{id}} count = %v, want 4", got)
	}
	patterns := map[string]bool{"/health": true, "/ready": true, "/metrics": true, "/metrics.json": true, "other": true,
		"/api/v1/products": true, "/api/v1/products/{id}": true, "/api/v1/admin/products": true, "/api/v1/admin/products/{id}": true}
	for _, m := range page["flashedge_catalog_requests_total"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "route" && !patterns[l.GetValue()] {
				t.Errorf("route label %q is not a route pattern", l.GetValue())
			}
		}
	}
	for _, f := range []string{"process_cpu_seconds_total", "go_goroutines"} {
		if page[f] == nil {
			t.Errorf("/metrics lacks %s", f)
		}
	}
	s := metricstest.ReadSummary(t, base+"/metrics.json")
	if s.Service != "catalog" || s.Client != 3 || s.Server != 0 || s.Success < 8 || s.Latency.Samples < 11 {
		t.Errorf("/metrics.json = %+v, want service catalog, 3 client errors, 0 server errors, >= 8 successes, >= 11 samples", s)
	}
}

// TestRunAccessLog checks the access log: one line per request with its fields, the sample
// rate of FLASHEDGE_ACCESS_LOG_SAMPLE, and -log-file.
func TestRunAccessLog(t *testing.T) {
	srv := kvtest.Start(t)
	file := t.TempDir() + "/catalog.log"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	env := envFunc(map[string]string{"FLASHEDGE_STORE_ADDR": srv.Addr, "FLASHEDGE_ADMIN_TOKEN": "t",
		"FLASHEDGE_ACCESS_LOG_SAMPLE": "3", "FLASHEDGE_LOG_FORMAT": "json"})
	out := &obstest.Buffer{}
	errc := make(chan error, 1)
	go func() { errc <- run(ctx, []string{"-addr", "127.0.0.1:0", "-log-file", file}, env, out) }()
	var addr string
	deadline := time.Now().Add(15 * time.Second)
	for addr == "" {
		b, _ := os.ReadFile(file)
		for _, line := range strings.Split(string(b), "\n") {
			var rec struct{ Msg, Addr string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "listening" {
				addr = rec.Addr
			}
		}
		select {
		case err := <-errc:
			t.Fatalf("run returned early: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("no listening line in the log file within 15s")
		}
	}
	for i := range 6 {
		if st, _, _ := get(t, "http://"+addr+"/api/v1/products/00000042", "X-Request-ID", fmt.Sprintf("rid-%d", i),
			"X-Flashedge-User", "u-7"); st != 404 {
			t.Fatalf("GET: %d, want 404", st)
		}
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("run: %v", err)
	}
	if out.String() != "" {
		t.Errorf("with -log-file, stdout got %q", out.String())
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var lines []map[string]any
	for _, line := range strings.Split(string(b), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == "request" {
			lines = append(lines, rec)
		}
	}
	if len(lines) != 2 {
		t.Fatalf("%d request lines for 6 requests sampled 1 in 3, want 2:\n%s", len(lines), b)
	}
	for _, rec := range lines {
		for _, k := range []string{"method", "path", "status", "duration_ms", "request_id", "user_id", "service"} {
			if rec[k] == nil {
				t.Errorf("request line lacks %s: %v", k, rec)
			}
		}
		if rec["user_id"] != "u-7" || !strings.HasPrefix(fmt.Sprint(rec["request_id"]), "rid-") || rec["service"] != "catalog" {
			t.Errorf("request line %v: want user_id u-7, the client's request id, service catalog", rec)
		}
	}
}

func TestServiceFlags(t *testing.T) {
	flagenvtest.CheckService(t, "catalog", map[string]string{"FLASHEDGE_ADMIN_TOKEN": "admin-token-for-tests-0123"}, loadConfig, run)
}
