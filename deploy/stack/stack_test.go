package stack

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) { Main(m) }

func do(t *testing.T, method, url, token, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The real catalog (two replicas) and edge binaries: wiring, a write through the edge read back
// at the edge, and a killed catalog replica brought back by the supervisor.
func TestCatalogAndEdge(t *testing.T) {
	st := Start(t, Options{Services: []string{"edge", "catalog"}, Replicas: map[string]int{"catalog": 2}})
	if st.Store() == nil || st.StoreAddr() != st.Store().Addr {
		t.Fatalf("store %v addr %s: want the kvtest server", st.Store(), st.StoreAddr())
	}
	if got := st.Addrs("catalog"); len(got) != 2 || got[0] == got[1] {
		t.Fatalf("catalog addrs %v: want two distinct", got)
	}
	for _, svc := range []string{"edge", "catalog"} {
		if code, body := do(t, "GET", st.URL(svc, 0)+"/health", "", ""); code != 200 {
			t.Errorf("%s /health: %d %s", svc, code, body)
		}
	}

	code, body := do(t, "POST", st.URL("edge", 0)+"/api/v1/admin/products", st.AdminToken(),
		`{"name":"Stack test kettle","description":"boils","price":250000,"stock":5}`)
	if code != http.StatusCreated {
		t.Fatalf("create through the edge: %d %s", code, body)
	}
	var p struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal([]byte(body), &p); err != nil || p.ID == "" {
		t.Fatalf("create answer %s: %v", body, err)
	}
	code, body = do(t, "GET", st.URL("edge", 0)+"/api/v1/products/"+p.ID, "", "")
	if code != 200 || !strings.Contains(body, "Stack test kettle") {
		t.Errorf("read at the edge: %d %s", code, body)
	}
	if code, _ := do(t, "POST", st.URL("catalog", 1)+"/api/v1/admin/products", "wrong-token-0123456789", `{"name":"x","price":1,"stock":1}`); code != http.StatusUnauthorized {
		t.Errorf("catalog with a wrong admin token: %d, want 401", code)
	}

	before := st.PID("catalog", 0)
	killedAt := time.Now()
	st.Kill("catalog", 0)
	st.WaitReady("catalog", 0)
	t.Logf("catalog-1 killed with SIGKILL: ready again after %s (restart backoff 100ms)", time.Since(killedAt).Round(time.Millisecond))
	if after := st.PID("catalog", 0); after == 0 || after == before {
		t.Errorf("catalog-1 pid %d -> %d: want a new process", before, after)
	}
	if !strings.Contains(st.Output(), "catalog-1 | [supervisor] exited (signal: killed)") {
		t.Errorf("output lacks the supervisor's line about the kill")
	}
	code, body = do(t, "GET", st.URL("catalog", 0)+"/api/v1/products/"+p.ID, "", "")
	if code != 200 || !strings.Contains(body, "Stack test kettle") {
		t.Errorf("restarted catalog reads the product: %d %s", code, body)
	}
}

// With NoRestart a killed process stays down until Restart; Terminate is a graceful stop.
func TestNoRestartTerminateRestart(t *testing.T) {
	st := Start(t, Options{Services: []string{"catalog"}, NoRestart: true, Env: map[string]string{"FLASHEDGE_ADMIN_TOKEN": "a-token-given-by-the-test"}})
	if st.AdminToken() != "a-token-given-by-the-test" {
		t.Errorf("AdminToken %q: want the one from Options.Env", st.AdminToken())
	}
	st.Kill("catalog", 0)
	if pid := st.PID("catalog", 0); pid != 0 {
		t.Fatalf("killed catalog still has pid %d", pid)
	}
	// Staying down can only be shown by waiting: several backoffs' worth.
	time.Sleep(500 * time.Millisecond)
	if pid := st.PID("catalog", 0); pid != 0 {
		t.Fatalf("NoRestart catalog came back by itself as pid %d", pid)
	}
	if _, err := http.Get(st.URL("catalog", 0) + "/health"); err == nil {
		t.Fatalf("a killed catalog answers /health")
	}

	st.Restart("catalog", 0)
	st.Terminate("catalog", 0)
	if !strings.Contains(st.Output(), "catalog-1 | [supervisor] exited (exit status 0)") {
		t.Errorf("SIGTERM did not end the catalog cleanly:\n%s", st.Output())
	}
	st.Restart("catalog", 0)
	if code, _ := do(t, "GET", st.URL("catalog", 0)+"/ready", "", ""); code != 200 {
		t.Errorf("after Restart /ready = %d", code)
	}
}

func TestUnknownOrMissingService(t *testing.T) {
	if testing.Short() {
		t.Skip("builds every binary")
	}
	Build(t)
	if _, err := pickServices([]string{"payments"}); err == nil || !strings.Contains(err.Error(), "unknown service") {
		t.Errorf("unknown service: %v", err)
	}
	if _, err := pickServices([]string{"catalog", "catalog"}); err != nil {
		t.Errorf("a service named twice: %v", err)
	}
	all, err := pickServices(nil)
	if err != nil || len(all) == 0 {
		t.Fatalf("default services %v: %v", all, err)
	}
	if all[0] != "catalog" {
		t.Errorf("default services %v: want catalog first", all)
	}
}

func TestTail(t *testing.T) {
	tl := newTail(20)
	for i := range 10 {
		fmt.Fprintf(tl, "line %d\n", i)
	}
	got := tl.String()
	if !strings.HasPrefix(got, "[earlier output dropped]\n") || !strings.HasSuffix(got, "line 8\nline 9\n") || strings.Contains(got, "line 5") {
		t.Errorf("tail %q", got)
	}
}

func TestHermeticEnv(t *testing.T) {
	got := hermeticEnv([]string{"PATH=/bin", "FLASHEDGE_STORE_ADDR=prod:6379", "HOME=/root"})
	if strings.Join(got, " ") != "PATH=/bin HOME=/root" {
		t.Errorf("hermeticEnv kept %v", got)
	}
}
