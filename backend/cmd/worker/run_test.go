package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"flashedge/backend/internal/flashsale"
	"flashedge/shared/challenge"
	"flashedge/shared/flagenv/flagenvtest"
	"flashedge/shared/keyspace"
	"flashedge/shared/kv/kvtest"
	"flashedge/shared/metrics/metricstest"
	"flashedge/shared/obs/obstest"
)

func TestLoadConfig(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string
		check   func(t *testing.T, c config)
	}{
		{name: "defaults", check: func(t *testing.T, c config) {
			if c.Addr != "" || c.Group != "flashsale" || c.Concurrency != flashsale.DefaultConcurrency || c.ClaimIdle != 15*time.Second ||
				c.SweepEvery != time.Second || c.Store.Addrs[0] != "127.0.0.1:6379" {
				t.Errorf("defaults = %+v", c)
			}
		}},
		{name: "env and flags", args: []string{"-consumer", "w1", "-sweep-every", "0", "-claim-idle", "2s"},
			env: map[string]string{"FLASHEDGE_WORKER_LISTEN": "127.0.0.1:0", "FLASHEDGE_FLASHSALE_RESERVATION": "90s",
				"FLASHEDGE_FLASHSALE_DIFFICULTY": "0"},
			check: func(t *testing.T, c config) {
				if c.Addr != "127.0.0.1:0" || c.Consumer != "w1" || c.SweepEvery >= 0 || c.ClaimIdle != 2*time.Second ||
					c.Flash.Reservation != 90*time.Second || c.Flash.Difficulty != -1 {
					t.Errorf("config = %+v", c)
				}
			}},
		{name: "bad concurrency", args: []string{"-concurrency", "0"}, wantErr: "must be positive"},
		{name: "bad access log sample", env: map[string]string{"FLASHEDGE_ACCESS_LOG_SAMPLE": "none"}, wantErr: "FLASHEDGE_ACCESS_LOG_SAMPLE"},
		{name: "stray argument", args: []string{"extra"}, wantErr: "unexpected arguments"},
		{name: "bad reservation", env: map[string]string{"FLASHEDGE_FLASHSALE_RESERVATION": "soon"}, wantErr: "FLASHEDGE_FLASHSALE_RESERVATION"},
		{name: "bad k", env: map[string]string{"FLASHEDGE_FLASHSALE_K": "0.5"}, wantErr: "FLASHEDGE_FLASHSALE_K"},
		{name: "bad store", env: map[string]string{"FLASHEDGE_STORE_CLUSTER": "maybe"}, wantErr: "FLASHEDGE_STORE_CLUSTER"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var usage bytes.Buffer
			c, err := loadConfig(tt.args, func(k string) string { return tt.env[k] }, &usage)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("err = %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("loadConfig: %v", err)
			}
			tt.check(t, c)
		})
	}
}

// TestRun starts the binary's run against a private store, checks its probes, lets it decide an
// attempt, then stops it and expects a clean return.
func TestRun(t *testing.T) {
	srv := kvtest.Start(t)
	env := map[string]string{
		"FLASHEDGE_STORE_ADDR":            srv.Addr,
		"FLASHEDGE_WORKER_LISTEN":         "127.0.0.1:0",
		"FLASHEDGE_LOG_FORMAT":            "json",
		"FLASHEDGE_FLASHSALE_K":           "2",
		"FLASHEDGE_WORKER_CONSUMER":       "run-test",
		"FLASHEDGE_FLASHSALE_RESERVATION": "1m",
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &obstest.Buffer{}
	errc := make(chan error, 1)
	go func() { errc <- run(ctx, []string{"-claim-idle", "1s"}, func(k string) string { return env[k] }, out) }()

	addr := ""
	deadline := time.Now().Add(15 * time.Second)
	for addr == "" {
		for _, line := range strings.Split(out.String(), "\n") {
			var rec struct{ Msg, Addr string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "listening" {
				addr = rec.Addr
			}
		}
		select {
		case err := <-errc:
			t.Fatalf("run returned early: %v\n%s", err, out)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no listening line:\n%s", out)
		}
	}
	for _, path := range []string{"/health", "/ready"} {
		code, body, err := fasthttp.GetTimeout(nil, "http://"+addr+path, 5*time.Second)
		if err != nil || code != 200 {
			t.Errorf("GET %s = %d %s %v", path, code, body, err)
		}
	}

	// An attempt admitted by the order-service side is decided by the running binary.
	c := srv.Client(t)
	keys := challenge.RandomKeys() // the edge's, which mints the challenges
	svc, err := flashsale.New(c, flashsale.Options{Difficulty: -1, Challenges: keys})
	if err != nil {
		t.Fatal(err)
	}
	bg := context.Background()
	if err := c.Do(bg, c.B().Set().Key(keyspace.Product("p1")).Value(`{"id":"p1","name":"Phone"}`).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	stock, price, shards := int64(1), int64(100), 2
	now := time.Now().UTC()
	if _, _, err := svc.CreateSale(bg, flashsale.SaleInput{ProductID: "p1", Price: &price, Stock: &stock, Shards: &shards,
		StartsAt: now.Add(-time.Minute).Format(time.RFC3339), EndsAt: now.Add(time.Hour).Format(time.RFC3339),
		ID: ptr("s1")}); err != nil {
		t.Fatal(err)
	}
	ch, err := keys.Issue("s1", "alice", 0, time.Now().Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	ans, err := svc.Attempt(bg, flashsale.AttemptInput{User: "alice", SaleID: "s1", ChallengeID: ch.ID,
		Answer: challenge.Solve(ch.ID, ch.Difficulty), IdempotencyKey: "k"})
	if err != nil || ans.Outcome != flashsale.OutcomeAdmitted {
		t.Fatalf("attempt = %+v, %v", ans, err)
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		r, err := svc.GetResult(bg, "alice", "s1", ans.Ticket)
		if err != nil {
			t.Fatal(err)
		}
		if r.Status == flashsale.StatusWon {
			break
		}
		if r.Status != flashsale.StatusQueued || time.Now().After(deadline) {
			t.Fatalf("ticket = %+v, want won within 10s\n%s", r, out)
		}
		time.Sleep(10 * time.Millisecond)
	}

	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("run returned %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return within 10s of cancel")
	}
	if !strings.Contains(out.String(), `"msg":"stopped"`) {
		t.Errorf("no stopped line in the log:\n%s", out)
	}
}

func ptr[T any](v T) *T { return &v }

// TestRunMetrics lets the running worker decide known attempts (a win, a sold-out, a
// redelivered duplicate, a malformed message) and expire the winner's reservation, then checks
// its /metrics (parsed with the Prometheus text parser) and /metrics.json on the ops port.
func TestRunMetrics(t *testing.T) {
	srv := kvtest.Start(t)
	env := map[string]string{
		"FLASHEDGE_STORE_ADDR":            srv.Addr,
		"FLASHEDGE_WORKER_LISTEN":         "127.0.0.1:0",
		"FLASHEDGE_LOG_FORMAT":            "json",
		"FLASHEDGE_WORKER_CONSUMER":       "metrics-test",
		"FLASHEDGE_FLASHSALE_RESERVATION": "300ms",
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &obstest.Buffer{}
	errc := make(chan error, 1)
	go func() {
		errc <- run(ctx, []string{"-sweep-every", "20ms"}, func(k string) string { return env[k] }, out)
	}()
	stopped := false
	defer func() {
		if !stopped {
			cancel()
			<-errc
		}
	}()
	addr := ""
	deadline := time.Now().Add(15 * time.Second)
	for addr == "" {
		for _, line := range strings.Split(out.String(), "\n") {
			var rec struct{ Msg, Addr string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "listening" {
				addr = rec.Addr
			}
		}
		select {
		case err := <-errc:
			t.Fatalf("run returned early: %v\n%s", err, out)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no listening line:\n%s", out)
		}
	}
	base := "http://" + addr
	for path, want := range map[string]int{"/health": 200, "/ready": 200, "/nope": 404} {
		if code, body, err := fasthttp.GetTimeout(nil, base+path, 5*time.Second); err != nil || code != want {
			t.Fatalf("GET %s = %d %s %v, want %d", path, code, body, err, want)
		}
	}

	// Two attempts for one unit: one wins, the other finds the shards empty.
	c := srv.Client(t)
	keys := challenge.RandomKeys() // the edge's, which mints the challenges
	svc, err := flashsale.New(c, flashsale.Options{Difficulty: -1, Challenges: keys})
	if err != nil {
		t.Fatal(err)
	}
	bg := context.Background()
	if err := c.Do(bg, c.B().Set().Key(keyspace.Product("p1")).Value(`{"id":"p1","name":"Phone"}`).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	stock, price, shards := int64(1), int64(100), 2
	now := time.Now().UTC()
	if _, _, err := svc.CreateSale(bg, flashsale.SaleInput{ID: ptr("s1"), ProductID: "p1", Price: &price, Stock: &stock, Shards: &shards,
		StartsAt: now.Add(-time.Minute).Format(time.RFC3339), EndsAt: now.Add(time.Hour).Format(time.RFC3339)}); err != nil {
		t.Fatal(err)
	}
	tickets := map[string]string{}
	for _, user := range []string{"alice", "bob"} {
		ch, err := keys.Issue("s1", user, 0, time.Now().Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		ans, err := svc.Attempt(bg, flashsale.AttemptInput{User: user, SaleID: "s1", ChallengeID: ch.ID,
			Answer: challenge.Solve(ch.ID, ch.Difficulty), IdempotencyKey: "k"})
		if err != nil || ans.Outcome != flashsale.OutcomeAdmitted {
			t.Fatalf("attempt of %s = %+v, %v", user, ans, err)
		}
		tickets[user] = ans.Ticket
	}
	winner := ""
	deadline = time.Now().Add(10 * time.Second)
	for user, ticket := range tickets {
		for {
			r, err := svc.GetResult(bg, user, "s1", ticket)
			if err != nil {
				t.Fatal(err)
			}
			if r.Status == flashsale.StatusWon {
				winner = user
			}
			if r.Status != flashsale.StatusQueued {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s's ticket not decided within 10s\n%s", user, out)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if winner == "" {
		t.Fatal("nobody won the unit")
	}
	// A redelivered message of a decided ticket, and a malformed one.
	for _, fields := range [][]string{{"sale", "s1", "ticket", tickets[winner], "user", winner}, {"sale", "s1", "ticket", "zz"}} {
		cmd := c.B().Xadd().Key(keyspace.AttemptStream()).Id("*").FieldValue()
		for i := 0; i < len(fields); i += 2 {
			cmd = cmd.FieldValue(fields[i], fields[i+1])
		}
		if err := c.Do(bg, cmd.Build()).Error(); err != nil {
			t.Fatal(err)
		}
	}

	// The winner never pays: the sweeper expires the reservation after 300ms.
	want := map[string]float64{
		"won": 1, "lost": 0, "sold_out": 1, "duplicate": 1, "errors": 1,
		"issued": 1, "consumed": 0, "expired": 1, "lag": 0,
	}
	var got map[string]float64
	var page metricstest.Page
	deadline = time.Now().Add(10 * time.Second)
	for {
		page = metricstest.Scrape(t, base+"/metrics")
		got = map[string]float64{"errors": page.Value("flashedge_worker_errors_total"), "lag": page.Value("flashedge_worker_consumer_lag")}
		for _, r := range []string{"won", "lost", "sold_out", "duplicate"} {
			got[r] = page.Value("flashedge_worker_processed_total", "result", r)
		}
		for _, e := range []string{"issued", "consumed", "expired"} {
			got[e] = page.Value("flashedge_sale_tokens_total", "event", e)
		}
		if fmt.Sprint(got) == fmt.Sprint(want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("worker metrics %v, want %v\n%s", got, want, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, w := range []struct {
		route, code string
		n           float64
	}{{"/health", "200", 1}, {"/ready", "200", 1}, {"other", "404", 1}} {
		if got := page.Requests("worker", w.route, w.code); got != w.n {
			t.Errorf("flashedge_worker_requests_total{route=%q,code=%q} = %v, want %v", w.route, w.code, got, w.n)
		}
	}
	if page.Requests("worker", "/metrics", "200") < 1 {
		t.Error("the scrapes are not counted under route /metrics")
	}
	if s := metricstest.ReadSummary(t, base+"/metrics.json"); s.Service != "worker" || s.Client != 1 || s.Server != 0 || s.Success < 3 {
		t.Errorf("/metrics.json = %+v, want service worker, one client error, >= 3 successes", s)
	}

	cancel()
	stopped = true
	if err := <-errc; err != nil {
		t.Errorf("run returned %v, want nil", err)
	}
	var logged bool
	for _, line := range strings.Split(out.String(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == "request" && rec["path"] == "/nope" &&
			rec["status"] == float64(404) && rec["request_id"] != nil && rec["service"] == "worker" {
			logged = true
		}
	}
	if !logged {
		t.Errorf("no access-log line for GET /nope:\n%s", out)
	}
}

func TestServiceFlags(t *testing.T) { flagenvtest.CheckService(t, "worker", nil, loadConfig, run) }
