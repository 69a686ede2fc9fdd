package flashsale

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"flashedge/shared/keyspace"
	"flashedge/shared/metrics"
)

type testCounter struct{ n atomic.Int64 }

func (c *testCounter) Inc() { c.n.Add(1) }

// countingMetrics returns Metrics whose every field counts, and a reader of all the counts.
func countingMetrics() (*Metrics, func() map[string]int64) {
	names := []string{"admitted", "sold_out", "busy", "limit", "bad_challenge", "not_started", "ended",
		"won", "lost", "decided_sold_out", "duplicate", "worker_errors", "issued", "consumed", "expired"}
	cs := make([]*testCounter, len(names))
	for i := range cs {
		cs[i] = &testCounter{}
	}
	m := &Metrics{Admitted: cs[0], SoldOut: cs[1], Busy: cs[2], Limit: cs[3], BadChallenge: cs[4],
		NotStarted: cs[5], Ended: cs[6], Won: cs[7], Lost: cs[8], DecidedSoldOut: cs[9], Duplicate: cs[10],
		WorkerErrors: cs[11], TokensIssued: cs[12], TokensConsumed: cs[13], TokensExpired: cs[14]}
	return m, func() map[string]int64 {
		out := map[string]int64{}
		for i, c := range cs {
			if n := c.n.Load(); n != 0 {
				out[names[i]] = n
			}
		}
		return out
	}
}

func sameCounts(got, want map[string]int64) bool {
	if len(got) != len(want) {
		return false
	}
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

// TestMetricsCountEveryOutcome drives every admission decision, every worker result and every
// token event once or more, and checks each counter moved exactly as often.
func TestMetricsCountEveryOutcome(t *testing.T) {
	m, counts := countingMetrics()
	e := newEnv(t, Options{Metrics: m, Difficulty: -1})
	e.createSale(saleSpec{id: "s", stock: 1, shards: 2}) // K=2: two admissions
	e.createSale(saleSpec{id: "soon", stock: 1, shards: 1, startsIn: time.Hour})
	e.createSale(saleSpec{id: "gone", stock: 1, shards: 1, lasts: time.Minute / 2})
	bogus := newID() // a well-formed challenge id no one issued

	id, answer := e.challenge("s", "alice")
	first := map[string]string{"challenge_id": id, "answer": answer}
	alice := admittedTicket(t, e.do("POST", "/api/v1/flash-sales/s/attempts", "alice", "", "a1", first))
	steps := []struct {
		name   string
		r      reply
		status int
	}{
		{"replay", e.do("POST", "/api/v1/flash-sales/s/attempts", "alice", "", "a1", first), 202},
		{"pending", e.attempt("s", "alice", "a2"), 409},
		{"bob admitted", e.attempt("s", "bob", "b1"), 202},
		{"carol busy", e.attempt("s", "carol", "c1"), 429},
		{"unknown challenge", e.do("POST", "/api/v1/flash-sales/s/attempts", "dave", "", "d1", map[string]string{"challenge_id": bogus, "answer": "1"}), 403},
		{"malformed challenge", e.do("POST", "/api/v1/flash-sales/s/attempts", "dave", "", "d2", map[string]string{"challenge_id": "nope", "answer": "1"}), 403},
		{"not started", e.do("POST", "/api/v1/flash-sales/soon/attempts", "dave", "", "d3", map[string]string{"challenge_id": bogus, "answer": "1"}), 425},
		{"ended", e.do("POST", "/api/v1/flash-sales/gone/attempts", "dave", "", "d4", map[string]string{"challenge_id": bogus, "answer": "1"}), 410},
	}
	for _, s := range steps {
		if s.r.status != s.status {
			t.Errorf("%s: %s, want %d", s.name, s.r, s.status)
		}
	}
	if !steps[0].r.replayed {
		t.Errorf("the repeated attempt was not a replay: %s", steps[0].r)
	}
	if err := e.c.Do(context.Background(), e.c.B().Set().Key(keyspace.SoldOut("s")).Value("1").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	if r := e.attempt("s", "erin", "e1"); r.status != 410 {
		t.Errorf("attempt with the sold-out flag set: %s, want 410", r)
	}
	if err := e.c.Do(context.Background(), e.c.B().Del().Key(keyspace.SoldOut("s")).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"admitted": 2, "limit": 1, "busy": 1, "bad_challenge": 2, "not_started": 1, "ended": 1, "sold_out": 1}
	if got := counts(); !sameCounts(got, want) {
		t.Fatalf("after the attempts: counts %v, want %v", got, want)
	}

	// The worker decides both tickets: one wins the unit, the other finds the shards empty.
	// One consumer loop deciding one message at a time, so the tickets are decided in admission
	// order and alice wins.
	stop := e.startWorkers(1, WorkerOptions{Concurrency: 1, Parallel: 1, SweepEvery: -1, TrimEvery: -1})
	pa := e.decided("s", "alice", alice, 5*time.Second)
	want["issued"] = 1
	want["won"], want["decided_sold_out"] = 1, 1
	waitFor(t, 5*time.Second, "both tickets decided and counted", func() bool { return sameCounts(counts(), want) })

	// A redelivered message of a decided ticket is a duplicate.
	if err := e.c.Do(context.Background(), e.c.B().Xadd().Key(keyspace.AttemptStream()).Id("*").FieldValue().
		FieldValue("sale", "s").FieldValue("ticket", alice).FieldValue("user", "alice").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	want["duplicate"] = 1
	waitFor(t, 5*time.Second, "the duplicate counted", func() bool { return sameCounts(counts(), want) })
	stop()

	// The winner pays once: one token consumed.
	if pa.Status != StatusWon {
		t.Fatalf("alice's ticket = %+v, want won (decided first)", pa)
	}
	pay := map[string]string{"token": pa.Token}
	if r := e.do("POST", "/api/v1/flash-sales/s/checkout", "alice", "", "", pay); r.status != 201 {
		t.Fatalf("checkout: %s", r)
	}
	if r := e.do("POST", "/api/v1/flash-sales/s/checkout", "alice", "", "", pay); r.status != 409 {
		t.Fatalf("second checkout: %s, want 409", r)
	}
	want["consumed"] = 1
	if got := counts(); !sameCounts(got, want) {
		t.Fatalf("after checkout: counts %v, want %v", got, want)
	}

	// Another sale whose winner never pays: the sweep expires the token once.
	e.createSale(saleSpec{id: "x", stock: 1, shards: 1})
	ticket := admittedTicket(t, e.attempt("x", "frank", "f1"))
	stop = e.startWorkers(1, WorkerOptions{Concurrency: 1, SweepEvery: -1, TrimEvery: -1})
	if p := e.decided("x", "frank", ticket, 5*time.Second); p.Status != StatusWon {
		t.Fatalf("frank = %+v, want won", p)
	}
	stop()
	e.clock.Advance(e.svc.Options().Reservation + time.Second)
	for range 2 {
		if _, err := e.svc.Sweep(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	want["admitted"]++
	want["issued"]++
	want["won"]++
	want["expired"] = 1
	if got := counts(); !sameCounts(got, want) {
		t.Fatalf("after the expiry: counts %v, want %v", got, want)
	}
}

// TestExportOrder checks the scrape-time families against the ledger they are read from, and
// that the exposition parses.
func TestExportOrder(t *testing.T) {
	e := newEnv(t, Options{Difficulty: -1})
	reg := metrics.New("order")
	e.svc.ExportOrder(reg, ExportOptions{})
	wreg := metrics.New("worker")
	e.svc.ExportWorker(wreg, ExportOptions{})

	fams := scrapeRegistry(t, reg)
	if got := gaugeValue(fams, "flashedge_order_stream_backlog"); got != "0" {
		t.Errorf("backlog with no stream = %s, want 0", got)
	}
	e.createSale(saleSpec{id: "s", stock: 5, shards: 2})
	e.createSale(saleSpec{id: "t", stock: 3, shards: 3})
	for _, u := range []string{"alice", "bob", "carol"} {
		admittedTicket(t, e.attempt("s", u, "k"))
	}
	// The stream and the ledgers are read (and reused) separately: wait until both are fresh.
	waitFor(t, 5*time.Second, "the scrape shows the sales", func() bool {
		fams = scrapeRegistry(t, reg)
		return gaugeValue(fams, `flashedge_sale_queued{sale="s"}`) == "3" &&
			gaugeValue(fams, "flashedge_order_stream_backlog") == "3"
	})
	want := map[string]string{
		"flashedge_order_stream_backlog":                         "3", // no group yet: every entry
		"flashedge_order_stream_pending":                         "0",
		`flashedge_sale_queued{sale="s"}`:                        "3",
		`flashedge_sale_queued{sale="t"}`:                        "0",
		`flashedge_sale_stock{sale="s",shard="0"}`:               "3", // 5 split over 2
		`flashedge_sale_stock{sale="s",shard="1"}`:               "2",
		`flashedge_sale_stock{sale="t",shard="2"}`:               "1",
		`flashedge_sale_events_total{event="admitted",sale="s"}`: "3",
		`flashedge_sale_events_total{event="won",sale="s"}`:      "0",
	}
	for k, v := range want {
		if got := gaugeValue(fams, k); got != v {
			t.Errorf("%s = %s, want %s", k, got, v)
		}
	}

	e.startWorkers(1, WorkerOptions{SweepEvery: -1, TrimEvery: -1})
	waitFor(t, 5*time.Second, "three tickets won", func() bool { return e.ledger("s").Won == 3 })
	// A scrape reuses reads younger than exportReuse: poll until it shows the decisions.
	waitFor(t, 5*time.Second, "the scrape shows the decisions", func() bool {
		fams = scrapeRegistry(t, reg)
		return gaugeValue(fams, `flashedge_sale_queued{sale="s"}`) == "0" && gaugeValue(fams, "flashedge_order_stream_pending") == "0"
	})
	want = map[string]string{
		"flashedge_order_stream_backlog":                         "0",
		"flashedge_order_stream_pending":                         "0",
		`flashedge_sale_queued{sale="s"}`:                        "0",
		`flashedge_sale_events_total{event="won",sale="s"}`:      "3",
		`flashedge_sale_events_total{event="admitted",sale="s"}`: "3",
	}
	for k, v := range want {
		if got := gaugeValue(fams, k); got != v {
			t.Errorf("%s = %s, want %s", k, got, v)
		}
	}
	var stock float64
	for _, m := range fams["flashedge_sale_stock"].GetMetric() {
		if labelOf(m, "sale") == "s" {
			stock += m.GetGauge().GetValue()
		}
	}
	if stock != 2 {
		t.Errorf("stock left in sale s = %v, want 2", stock)
	}
	if got := gaugeValue(scrapeRegistry(t, wreg), "flashedge_worker_consumer_lag"); got != "0" {
		t.Errorf("consumer lag = %s, want 0", got)
	}
}

// TestExportOrderBoundsTheScrape checks a scrape with the store gone returns quickly and
// leaves the store-read series out.
func TestExportOrderBoundsTheScrape(t *testing.T) {
	e := newEnv(t, Options{Difficulty: -1})
	reg := metrics.New("order")
	e.svc.ExportOrder(reg, ExportOptions{Timeout: 100 * time.Millisecond})
	e.createSale(saleSpec{id: "s", stock: 5, shards: 2})
	if fams := scrapeRegistry(t, reg); gaugeValue(fams, `flashedge_sale_queued{sale="s"}`) != "0" {
		t.Fatalf("queued before the store stops: %v", fams["flashedge_sale_queued"])
	}
	e.srv.Stop()
	gone := func(fams map[string]*dto.MetricFamily) bool {
		for _, f := range []string{"flashedge_sale_queued", "flashedge_sale_stock", "flashedge_sale_events_total",
			"flashedge_order_stream_backlog", "flashedge_order_stream_pending"} {
			if fams[f] != nil {
				return false
			}
		}
		return true
	}
	waitFor(t, 5*time.Second, "store-read series left out", func() bool { return gone(scrapeRegistry(t, reg)) })
	start := time.Now()
	fams := scrapeRegistry(t, reg)
	if d := time.Since(start); d > time.Second || !gone(fams) {
		t.Errorf("scrape with the store down took %v (want < 1s) and gave %v", d, fams)
	}
}

// scrapeRegistry writes reg in the text format and parses it, failing the test on a parse error.
func scrapeRegistry(t *testing.T, reg *metrics.Registry) map[string]*dto.MetricFamily {
	t.Helper()
	var b bytes.Buffer
	reg.WritePrometheus(&b)
	fams, err := new(expfmt.TextParser).TextToMetricFamilies(bytes.NewReader(b.Bytes()))
	if err != nil {
		t.Fatalf("exposition does not parse: %v\n%s", err, b.String())
	}
	return fams
}

func labelOf(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// gaugeValue returns the value of the series named like `name{a="x",b="y"}` (labels sorted by
// name) as %g, or "absent".
func gaugeValue(fams map[string]*dto.MetricFamily, series string) string {
	name, _, _ := strings.Cut(series, "{")
	for _, m := range fams[name].GetMetric() {
		var ls []string
		for _, l := range m.GetLabel() {
			ls = append(ls, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
		}
		sort.Strings(ls)
		key := name
		if len(ls) > 0 {
			key += "{" + strings.Join(ls, ",") + "}"
		}
		if key != series {
			continue
		}
		switch {
		case m.Gauge != nil:
			return fmt.Sprintf("%g", m.GetGauge().GetValue())
		case m.Counter != nil:
			return fmt.Sprintf("%g", m.GetCounter().GetValue())
		}
	}
	return "absent"
}
