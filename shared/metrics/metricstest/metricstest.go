// Package metricstest reads a service's /metrics and /metrics.json in tests: the Prometheus text
// is parsed with the Prometheus parser and every flashedge_ family is checked against the metric
// contract of package metrics.
package metricstest

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/valyala/fasthttp"

	"flashedge/shared/metrics"
)

// Page is one parsed /metrics page, by family name.
type Page map[string]*dto.MetricFamily

// Scrape GETs a /metrics page, parses it with the Prometheus text parser and checks every
// flashedge_ family against the contract in shared/metrics (name, type, label names); any
// failure fails the test.
func Scrape(t testing.TB, url string) Page {
	t.Helper()
	code, body, err := fasthttp.GetTimeout(nil, url, 5*time.Second)
	if err != nil || code != 200 {
		t.Fatalf("GET %s: %d %v", url, code, err)
	}
	fams, err := new(expfmt.TextParser).TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("GET %s does not parse as Prometheus text: %v\n%s", url, err, body)
	}
	contract := map[string]metrics.Spec{}
	for _, s := range metrics.Contract() {
		contract[s.Name] = s
	}
	for name, f := range fams {
		if !strings.HasPrefix(name, "flashedge_") {
			continue
		}
		spec, ok := contract[name]
		if !ok {
			t.Errorf("%s exports %s, which is not in the metrics contract", url, name)
			continue
		}
		// The VictoriaMetrics set behind Registry.Counter and Gauge writes no TYPE lines, so
		// those families parse as untyped.
		if got := strings.ToLower(f.GetType().String()); got != spec.Kind && (got != "untyped" || spec.Kind == "histogram") {
			t.Errorf("%s: %s is a %s, the contract says %s", url, name, got, spec.Kind)
		}
		want := slices.Sorted(slices.Values(spec.Labels))
		for _, m := range f.GetMetric() {
			var got []string
			for _, l := range m.GetLabel() {
				got = append(got, l.GetName())
			}
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("%s: a series of %s has labels %v, the contract says %v", url, name, got, want)
				break
			}
		}
	}
	return fams
}

// Value returns the value of the series of family whose labels are exactly labels (name/value
// pairs): a counter's or gauge's value, a histogram's sample count; -1 when there is none.
func (p Page) Value(family string, labels ...string) float64 {
next:
	for _, m := range p[family].GetMetric() {
		if len(m.GetLabel())*2 != len(labels) {
			continue
		}
		for _, l := range m.GetLabel() {
			i := slices.Index(labels, l.GetName())
			if i < 0 || i%2 != 0 || labels[i+1] != l.GetValue() {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount())
		default:
			return m.GetUntyped().GetValue()
		}
	}
	return -1
}

// Requests returns flashedge_<svc>_requests_total{route,code}.
func (p Page) Requests(svc, route, code string) float64 {
	return p.Value("flashedge_"+svc+"_requests_total", "route", route, "code", code)
}

// Summary is /metrics.json.
type Summary struct {
	Service string `json:"service"`
	Total   uint64 `json:"total_requests"`
	Success uint64 `json:"success_requests"`
	Failed  uint64 `json:"failed_requests"`
	Client  uint64 `json:"client_errors"`
	Server  uint64 `json:"server_errors"`
	Latency struct {
		P50     float64 `json:"p50"`
		P99     float64 `json:"p99"`
		Samples uint64  `json:"samples"`
	} `json:"latency_ms"`
}

// ReadSummary GETs /metrics.json and checks that its counts add up.
func ReadSummary(t testing.TB, url string) Summary {
	t.Helper()
	code, body, err := fasthttp.GetTimeout(nil, url, 5*time.Second)
	if err != nil || code != 200 {
		t.Fatalf("GET %s: %d %v", url, code, err)
	}
	var s Summary
	if err := json.Unmarshal(body, &s); err != nil {
		t.Fatalf("GET %s: %v in %s", url, err, body)
	}
	for _, f := range []string{`"total_requests"`, `"success_requests"`, `"failed_requests"`, `"latency_ms"`, `"p99"`} {
		if !bytes.Contains(body, []byte(f)) {
			t.Errorf("%s lacks %s: %s", url, f, body)
		}
	}
	if s.Total != s.Success+s.Failed || s.Failed != s.Client+s.Server {
		t.Errorf("%s does not add up: %s", url, body)
	}
	return s
}
