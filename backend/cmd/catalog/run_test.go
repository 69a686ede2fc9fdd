package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"flashedge/shared/kv/kvtest"
)

// lockedBuffer collects what run writes to stdout while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func envFunc(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// listenAddr polls the JSON log for the "listening" line and returns its address.
func listenAddr(t *testing.T, out *lockedBuffer, errc <-chan error) string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		for _, line := range strings.Split(out.String(), "\n") {
			var rec struct{ Msg, Addr string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "listening" && rec.Addr != "" {
				return rec.Addr
			}
		}
		select {
		case err := <-errc:
			t.Fatalf("run returned before listening: %v\n%s", err, out)
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Fatalf("no listening line within 15s:\n%s", out)
	return ""
}

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
	out := &lockedBuffer{}
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

	base := "http://" + listenAddr(t, out, errc)
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
			err := run(context.Background(), tt.args, envFunc(env), &lockedBuffer{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("run(%q) = %v, want an error mentioning %q", tt.args, err, tt.want)
			}
		})
	}
}
