package monitoring

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"gopkg.in/yaml.v3"

	"flashedge/shared/metrics"
)

// servicePorts are the ports the services serve /metrics on (compose.yaml, the launcher, k8s):
// the edge's is its internal ops port, not the shop's.
var servicePorts = map[string]string{"edge": "8100", "catalog": "5001", "cart": "5002", "order": "5003", "worker": "5004"}

type promConfig struct {
	Global struct {
		ScrapeInterval     string            `yaml:"scrape_interval"`
		ScrapeTimeout      string            `yaml:"scrape_timeout"`
		EvaluationInterval string            `yaml:"evaluation_interval"`
		ExternalLabels     map[string]string `yaml:"external_labels"`
	} `yaml:"global"`
	ScrapeConfigs []struct {
		JobName       string `yaml:"job_name"`
		MetricsPath   string `yaml:"metrics_path"`
		StaticConfigs []struct {
			Targets []string          `yaml:"targets"`
			Labels  map[string]string `yaml:"labels"`
		} `yaml:"static_configs"`
	} `yaml:"scrape_configs"`
}

func TestPrometheusConfig(t *testing.T) {
	raw, err := os.ReadFile("prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	var c promConfig
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true) // a misspelt key is a key Prometheus would refuse
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("prometheus.yml: %v", err)
	}
	interval, err1 := time.ParseDuration(c.Global.ScrapeInterval)
	timeout, err2 := time.ParseDuration(c.Global.ScrapeTimeout)
	if err1 != nil || err2 != nil || timeout >= interval {
		t.Errorf("scrape_interval %q, scrape_timeout %q: want durations with the timeout below the interval", c.Global.ScrapeInterval, c.Global.ScrapeTimeout)
	}
	jobs := map[string]bool{}
	scraped := map[string]string{} // service -> target
	for _, sc := range c.ScrapeConfigs {
		if jobs[sc.JobName] {
			t.Errorf("job %q twice", sc.JobName)
		}
		jobs[sc.JobName] = true
		if sc.MetricsPath != "/metrics" {
			t.Errorf("job %s: metrics_path %q, want /metrics", sc.JobName, sc.MetricsPath)
		}
		for _, st := range sc.StaticConfigs {
			svc := st.Labels["service"]
			for _, target := range st.Targets {
				_, port, err := net.SplitHostPort(target)
				if err != nil {
					t.Errorf("job %s: target %q: %v", sc.JobName, target, err)
					continue
				}
				if want, ok := servicePorts[svc]; !ok || port != want {
					t.Errorf("job %s: target %q labelled service=%q: want a flashedge service on its port %s", sc.JobName, target, svc, want)
				}
				scraped[svc] = target
			}
		}
	}
	for _, svc := range metrics.Services() {
		if _, ok := scraped[svc]; !ok {
			t.Errorf("no scrape target for the %s service", svc)
		}
	}
}

type grafanaDashboard struct {
	UID           string         `json:"uid"`
	Title         string         `json:"title"`
	SchemaVersion int            `json:"schemaVersion"`
	Panels        []grafanaPanel `json:"panels"`
	Templating    struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Definition string          `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
}

type grafanaPanel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
	GridPos struct{ H, W, X, Y int } `json:"gridPos"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
	Panels []grafanaPanel `json:"panels"`
}

// allowedSeries is every series name a flashedge /metrics can carry: the contract, the process
// and Go runtime metrics of a real Registry's exposition, and Prometheus' own "up".
func allowedSeries(t *testing.T) map[string]bool {
	t.Helper()
	ok := map[string]bool{"up": true}
	for _, n := range metrics.SeriesNames() {
		ok[n] = true
	}
	var buf bytes.Buffer
	metrics.New("edge").WritePrometheus(&buf)
	var p expfmt.TextParser
	mfs, err := p.TextToMetricFamilies(&buf)
	if err != nil {
		t.Fatalf("a Registry's exposition does not parse: %v", err)
	}
	for name, mf := range mfs {
		ok[name] = true
		switch mf.GetType().String() {
		case "HISTOGRAM":
			ok[name+"_bucket"], ok[name+"_sum"], ok[name+"_count"] = true, true, true
		case "SUMMARY":
			ok[name+"_sum"], ok[name+"_count"] = true, true
		}
	}
	return ok
}

func TestGrafanaDashboard(t *testing.T) {
	raw, err := os.ReadFile("grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d grafanaDashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("grafana-dashboard.json: %v", err)
	}
	if d.UID == "" || d.Title == "" || d.SchemaVersion < 30 {
		t.Errorf("uid %q title %q schemaVersion %d: want all set (schema 30+)", d.UID, d.Title, d.SchemaVersion)
	}
	allowed := allowedSeries(t)
	used := map[string]bool{}
	check := func(where, expr string) {
		names, err := metricNames(expr)
		if err != nil {
			t.Errorf("%s: %q: %v", where, expr, err)
			return
		}
		if len(names) == 0 {
			t.Errorf("%s: %q names no metric", where, expr)
		}
		for _, n := range names {
			if !allowed[n] {
				t.Errorf("%s: %q uses %s, which no flashedge service exports (see shared/metrics/doc.go)", where, expr, n)
			}
			used[n] = true
		}
	}

	ids := map[int]bool{}
	var walk func(ps []grafanaPanel)
	walk = func(ps []grafanaPanel) {
		for _, p := range ps {
			where := fmt.Sprintf("panel %d %q", p.ID, p.Title)
			if ids[p.ID] {
				t.Errorf("%s: id used twice", where)
			}
			ids[p.ID] = true
			if p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X+p.GridPos.W > 24 {
				t.Errorf("%s: gridPos %+v outside the 24-column grid", where, p.GridPos)
			}
			if p.Type != "row" {
				if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
					t.Errorf("%s: datasource %+v, want the ${datasource} variable", where, p.Datasource)
				}
				if len(p.Targets) == 0 {
					t.Errorf("%s: no query", where)
				}
			}
			for _, tg := range p.Targets {
				check(where+" target "+tg.RefID, tg.Expr)
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)

	labelValues := regexp.MustCompile(`^label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)$`)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct{ Query string }
		if err := json.Unmarshal(v.Query, &q); err != nil {
			t.Errorf("variable %s: query: %v", v.Name, err)
			continue
		}
		m := labelValues.FindStringSubmatch(q.Query)
		if m == nil || q.Query != v.Definition {
			t.Errorf("variable %s: query %q (definition %q): want label_values(metric, label) in both", v.Name, q.Query, v.Definition)
			continue
		}
		check("variable "+v.Name, m[1])
	}

	// Every family of the contract is on the dashboard, so a metric the services add shows up.
	for _, s := range metrics.Contract() {
		found := used[s.Name]
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			found = found || used[s.Name+suffix]
		}
		if !found {
			t.Errorf("no panel shows %s", s.Name)
		}
	}
}

// grouping keywords take a parenthesised list of label names, not metrics.
var groupingKeywords = []string{"by", "without", "on", "ignoring", "group_left", "group_right"}

var operatorKeywords = []string{"and", "or", "unless", "bool", "atan2"}

// aggregations may put a grouping between their name and their parenthesis: sum by (x) (...).
var aggregations = []string{"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
	"bottomk", "topk", "quantile", "limitk", "limit_ratio"}

// metricNames returns the metric names a PromQL expression selects: identifiers that are not
// functions, keywords, label names in a grouping or inside {} matchers, range durations,
// numbers, strings or Grafana $variables.
func metricNames(expr string) ([]string, error) {
	var out []string
	isIdentStart := func(c byte) bool { return c == '_' || c == ':' || (c|0x20 >= 'a' && c|0x20 <= 'z') }
	isIdent := func(c byte) bool { return isIdentStart(c) || (c >= '0' && c <= '9') }
	skipSpace := func(i int) int {
		for i < len(expr) && (expr[i] == ' ' || expr[i] == '\t' || expr[i] == '\n') {
			i++
		}
		return i
	}
	// skipTo returns the index just past the closer matching the opener at i, honouring strings.
	skipTo := func(i int, open, close byte) (int, error) {
		depth := 0
		for ; i < len(expr); i++ {
			switch c := expr[i]; c {
			case '"', '\'', '`':
				j := i + 1
				for j < len(expr) && expr[j] != c {
					if expr[j] == '\\' && c != '`' {
						j++
					}
					j++
				}
				i = j
			case open:
				depth++
			case close:
				depth--
				if depth == 0 {
					return i + 1, nil
				}
			}
		}
		return 0, fmt.Errorf("unbalanced %c", open)
	}
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '{':
			j, err := skipTo(i, '{', '}')
			if err != nil {
				return nil, err
			}
			i = j
		case c == '[':
			j, err := skipTo(i, '[', ']')
			if err != nil {
				return nil, err
			}
			i = j
		case c == '"' || c == '\'' || c == '`':
			j := i + 1
			for j < len(expr) && expr[j] != c {
				if expr[j] == '\\' && c != '`' {
					j++
				}
				j++
			}
			if j >= len(expr) {
				return nil, fmt.Errorf("unterminated string")
			}
			i = j + 1
		case c == '$':
			i++
			for i < len(expr) && isIdent(expr[i]) {
				i++
			}
		case c >= '0' && c <= '9' || c == '.' && i+1 < len(expr) && expr[i+1] >= '0' && expr[i+1] <= '9':
			for i < len(expr) && (expr[i] >= '0' && expr[i] <= '9' || expr[i] == '.') {
				i++
			}
			if i < len(expr) && (expr[i] == 'e' || expr[i] == 'E') {
				i++
				if i < len(expr) && (expr[i] == '+' || expr[i] == '-') {
					i++
				}
				for i < len(expr) && expr[i] >= '0' && expr[i] <= '9' {
					i++
				}
			}
		case isIdentStart(c):
			j := i
			for j < len(expr) && isIdent(expr[j]) {
				j++
			}
			ident := expr[i:j]
			next := skipSpace(j)
			switch {
			case slices.Contains(groupingKeywords, strings.ToLower(ident)):
				if next < len(expr) && expr[next] == '(' {
					k, err := skipTo(next, '(', ')')
					if err != nil {
						return nil, err
					}
					j = k
				}
			case strings.ToLower(ident) == "offset":
				// offset 5m: the duration is not a metric
				j = next
				for j < len(expr) && (isIdent(expr[j]) || expr[j] == '-') {
					j++
				}
			case slices.Contains(operatorKeywords, strings.ToLower(ident)),
				slices.Contains(aggregations, strings.ToLower(ident)):
			case next < len(expr) && expr[next] == '(':
				// a function call; its arguments are scanned as the loop goes on
			default:
				out = append(out, ident)
			}
			i = j
		default:
			i++
		}
	}
	return out, nil
}

func TestMetricNames(t *testing.T) {
	cases := []struct {
		expr string
		want []string
	}{
		{`up`, []string{"up"}},
		{`sum by (route) (rate(flashedge_edge_requests_total{code=~"5..",route!="x"}[$__rate_interval]))`, []string{"flashedge_edge_requests_total"}},
		{`histogram_quantile(0.99, sum by (le) (rate(a_bucket[5m]))) / clamp_min(b, 1e-9)`, []string{"a_bucket", "b"}},
		{`sum(rate(a[1m])) by (job) > bool 0.5 and on (job) c offset 5m`, []string{"a", "c"}},
		{`max by (sale, shard) (flashedge_sale_stock{sale=~"$sale"})`, []string{"flashedge_sale_stock"}},
		{`label_replace(x, "dst", "$1", "src", "(.*)")`, []string{"x"}},
	}
	for _, tc := range cases {
		got, err := metricNames(tc.expr)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("metricNames(%q) = %v, %v; want %v", tc.expr, got, err, tc.want)
		}
	}
	for _, bad := range []string{`a{b="c"`, `rate(a[5m)`} {
		if _, err := metricNames(bad); err == nil {
			t.Errorf("metricNames(%q): no error for an unbalanced expression", bad)
		}
	}
}
