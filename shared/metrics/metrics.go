package metrics

import (
	"bytes"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	vm "github.com/VictoriaMetrics/metrics"
)

// Registry holds one service's metrics: a VictoriaMetrics *Set for counters and gauges, the
// Prometheus-style histograms and scrape-time families this package adds, the per-route request
// statistics Instrument keeps, and the latency window behind the JSON summary.
//
// Create one per service in run() with New and pass it to what registers metrics; there is no
// package-level state. A Registry is safe for concurrent use. Registration methods panic on an
// invalid name or label list: that is a programming error, found by the first test that runs
// the code, like the VictoriaMetrics package itself does.
type Registry struct {
	service string
	prefix  string // "flashedge_<service>_"
	set     *vm.Set
	started time.Time
	buckets *bucketSet

	mu       sync.Mutex
	hists    map[string][]*Histogram // family -> histograms, each family written once with its TYPE
	families []*family               // scrape-time families, sorted by name at write
	names    map[string]string       // family -> kind, to refuse one name with two kinds

	routes     atomic.Pointer[map[string]*routeStats] // copy-on-write; read without locks
	routesMu   sync.Mutex
	routeOrder []*routeStats // for the summary; guarded by routesMu
	other      *routeStats
	lat        window
}

var (
	serviceRe   = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	metricRe    = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	labelNameRe = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
)

// New returns the registry of service, which names the HTTP metrics
// flashedge_<service>_requests_total and flashedge_<service>_request_duration_seconds.
// service is lower case letters, digits and underscores ("edge", "catalog", "worker").
func New(service string) *Registry {
	if !serviceRe.MatchString(service) {
		panic(fmt.Sprintf("metrics: service name %q: want lower case letters, digits and _", service))
	}
	r := &Registry{
		service: service,
		prefix:  "flashedge_" + service + "_",
		set:     vm.NewSet(),
		started: time.Now(),
		buckets: newBucketSet(DurationBuckets()),
		hists:   map[string][]*Histogram{},
		names:   map[string]string{},
	}
	empty := map[string]*routeStats{}
	r.routes.Store(&empty)
	r.names[r.prefix+"requests_total"] = "counter"
	r.names[r.prefix+"request_duration_seconds"] = "histogram"
	r.other = r.routeFor(RouteOther)
	r.set.RegisterMetricsWriter(r.writeExtra)
	return r
}

// Service returns the service name given to New.
func (r *Registry) Service() string { return r.service }

// Set returns the underlying VictoriaMetrics set, for metric types this package does not wrap.
// Metrics added to it appear on /metrics.
func (r *Registry) Set() *vm.Set { return r.set }

// Counter returns the counter name{labels...}, creating it on first use; the same name and
// labels return the same counter. labels are name/value pairs: Counter("x_total", "layer",
// "body"). The name must end in _total. Build counters once at start-up and keep the
// pointer: Inc and Add are a single atomic add.
func (r *Registry) Counter(name string, labels ...string) *vm.Counter {
	if !strings.HasSuffix(name, "_total") {
		panic(fmt.Sprintf("metrics: counter %q: Prometheus counters end in _total", name))
	}
	r.claim(name, "counter")
	return r.set.GetOrCreateCounter(name + braced(labelPairs(name, labels)))
}

// Gauge returns the settable gauge name{labels...} (Set, Inc, Dec, Add), creating it on first use.
func (r *Registry) Gauge(name string, labels ...string) *vm.Gauge {
	r.claim(name, "gauge")
	return r.set.GetOrCreateGauge(name+braced(labelPairs(name, labels)), nil)
}

// GaugeFunc registers the gauge name{labels...} whose value is f(), called at every scrape on
// the scraping goroutine. f must be quick and safe for concurrent use: for a value that needs a
// store round trip, keep it in a Gauge updated by the owner's own loop instead, or bound the
// call with a short timeout. Registering the same name and labels twice panics.
func (r *Registry) GaugeFunc(name string, f func() float64, labels ...string) {
	if f == nil {
		panic(fmt.Sprintf("metrics: gauge %q: nil func", name))
	}
	r.claim(name, "gauge")
	r.set.NewGauge(name+braced(labelPairs(name, labels)), f)
}

// Histogram returns the duration histogram name{labels...} (Prometheus le buckets, see
// DurationBuckets), creating it on first use. The name should end in _seconds.
func (r *Registry) Histogram(name string, labels ...string) *Histogram {
	r.claim(name, "histogram")
	lp := labelPairs(name, labels)
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, h := range r.hists[name] {
		if h.labels == lp {
			return h
		}
	}
	h := newHistogram(name, lp, r.buckets)
	r.hists[name] = append(r.hists[name], h)
	return h
}

// Emit adds one series to a scrape-time family: its value and one value per label name, in the
// order the family declared them. A call with the wrong number of label values is dropped.
type Emit func(value float64, labelValues ...string)

type family struct {
	name, kind string
	labels     []string
	collect    func(Emit)
}

// GaugeFamily registers the gauge family name whose series are only known at scrape time (the
// stock of every shard of every live sale, say): collect is called at each scrape and calls emit
// once per series. The same rules as GaugeFunc apply to collect. Series emitted twice with the
// same label values make an invalid exposition; collect must not do that.
func (r *Registry) GaugeFamily(name string, labelNames []string, collect func(emit Emit)) {
	r.addFamily(name, "gauge", labelNames, collect)
}

// CounterFamily is GaugeFamily for counters whose values live elsewhere (in the store, say).
// The name must end in _total.
func (r *Registry) CounterFamily(name string, labelNames []string, collect func(emit Emit)) {
	if !strings.HasSuffix(name, "_total") {
		panic(fmt.Sprintf("metrics: counter %q: Prometheus counters end in _total", name))
	}
	r.addFamily(name, "counter", labelNames, collect)
}

func (r *Registry) addFamily(name, kind string, labelNames []string, collect func(Emit)) {
	if collect == nil {
		panic(fmt.Sprintf("metrics: family %q: nil collect func", name))
	}
	for _, l := range labelNames {
		if !labelNameRe.MatchString(l) || l == "le" || l == "quantile" {
			panic(fmt.Sprintf("metrics: family %q: bad label name %q", name, l))
		}
	}
	r.claim(name, kind+" family")
	r.mu.Lock()
	defer r.mu.Unlock()
	r.families = append(r.families, &family{name: name, kind: kind, labels: append([]string(nil), labelNames...), collect: collect})
}

// claim records that name is used with kind, and panics when it is invalid or already used
// with another kind (one family, one type: the text format allows nothing else).
func (r *Registry) claim(name, kind string) {
	if !metricRe.MatchString(name) {
		panic(fmt.Sprintf("metrics: %q is not a valid metric name", name))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if k, ok := r.names[name]; ok && (k != kind || strings.HasSuffix(kind, "family")) {
		panic(fmt.Sprintf("metrics: %q is already registered as a %s", name, k))
	}
	r.names[name] = kind
}

// labelPairs renders name/value pairs as `a="x",b="y"` with values escaped.
func labelPairs(metric string, kv []string) string {
	if len(kv)%2 != 0 {
		panic(fmt.Sprintf("metrics: %q: labels must be name/value pairs, got %d strings", metric, len(kv)))
	}
	var b strings.Builder
	for i := 0; i < len(kv); i += 2 {
		if !labelNameRe.MatchString(kv[i]) || strings.HasPrefix(kv[i], "__") || kv[i] == "le" {
			panic(fmt.Sprintf("metrics: %q: bad label name %q", metric, kv[i]))
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(kv[i])
		b.WriteString(`="`)
		b.WriteString(escapeLabel(kv[i+1]))
		b.WriteByte('"')
	}
	return b.String()
}

func braced(pairs string) string {
	if pairs == "" {
		return ""
	}
	return "{" + pairs + "}"
}

// escapeLabel escapes a label value for the text format: backslash, double quote, newline.
func escapeLabel(v string) string {
	if !strings.ContainsAny(v, "\\\"\n") {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '\\':
			b.WriteString(`\\`)
		case '"':
			b.WriteString(`\"`)
		case '\n':
			b.WriteString(`\n`)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// writeExtra writes the histograms and scrape-time families after the Set's own metrics. Every
// family is written in one block with its TYPE line, which histogram_quantile does not need but
// parsers and people do.
func (r *Registry) writeExtra(w io.Writer) {
	r.mu.Lock()
	names := make([]string, 0, len(r.hists))
	for n := range r.hists {
		names = append(names, n)
	}
	sort.Strings(names)
	hists := make([][]*Histogram, len(names))
	for i, n := range names {
		hists[i] = append([]*Histogram(nil), r.hists[n]...)
	}
	fams := append([]*family(nil), r.families...)
	r.mu.Unlock()

	// The request histograms are per route and live with the route stats.
	reqName := r.prefix + "request_duration_seconds"
	routes := r.routeList()
	var bb bytes.Buffer
	buf := make([]byte, 0, 256)
	if len(routes) > 0 {
		bb.WriteString("# TYPE " + reqName + " histogram\n")
		for _, rs := range routes {
			buf = rs.hist.writeTo(&bb, buf)
		}
	}
	for i, n := range names {
		bb.WriteString("# TYPE " + n + " histogram\n")
		sort.Slice(hists[i], func(a, b int) bool { return hists[i][a].labels < hists[i][b].labels })
		for _, h := range hists[i] {
			buf = h.writeTo(&bb, buf)
		}
	}
	sort.Slice(fams, func(a, b int) bool { return fams[a].name < fams[b].name })
	for _, f := range fams {
		bb.WriteString("# TYPE " + f.name + " " + f.kind + "\n")
		f.collect(func(v float64, lv ...string) {
			if len(lv) != len(f.labels) {
				return
			}
			bb.WriteString(f.name)
			if len(lv) > 0 {
				bb.WriteByte('{')
				for i, l := range f.labels {
					if i > 0 {
						bb.WriteByte(',')
					}
					bb.WriteString(l)
					bb.WriteString(`="`)
					bb.WriteString(escapeLabel(lv[i]))
					bb.WriteByte('"')
				}
				bb.WriteByte('}')
			}
			bb.WriteByte(' ')
			bb.Write(strconv.AppendFloat(buf[:0], v, 'g', -1, 64))
			bb.WriteByte('\n')
		})
	}
	w.Write(bb.Bytes())
}

// WritePrometheus writes every metric of the registry, then the process and Go runtime metrics
// (process_*, go_*), in the Prometheus text format.
func (r *Registry) WritePrometheus(w io.Writer) {
	r.set.WritePrometheus(w)
	vm.WriteProcessMetrics(w)
}
