package load

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/valyala/fasthttp"
)

// ServerView is the servers' own account of the rush's attempt phase, next to the load tool's:
// the edge's latency histogram of the attempt route (handler time: from the request read to the
// answer handed to the connection, the wait for the order service included), the order
// service's for the same route, how many attempts the edge forwarded and how many it answered
// sold out itself, its queue in front of the order service sampled every sampleEvery, and the
// CPU time of this tool and of each server over the phase. Read from the edge's operations
// listener and the order service's /metrics; nil when the tool was not told where they are.
type ServerView struct {
	// EdgeAttempts and the quantiles are the edge's attempt route over the phase (Prometheus
	// buckets 5, 10, 25, 50, 100 ms...: a quantile is interpolated inside its bucket, so it is
	// exact only to the bucket's width); EdgeWithin10MS and EdgeWithin25MS the share answered
	// within those bucket bounds.
	EdgeAttempts   int64   `json:"edge_attempts"`
	EdgeP50US      float64 `json:"edge_attempt_p50_us"`
	EdgeP99US      float64 `json:"edge_attempt_p99_us"`
	EdgeWithin10MS float64 `json:"edge_attempt_within_10ms_pct"`
	EdgeWithin25MS float64 `json:"edge_attempt_within_25ms_pct"`
	// Forwarded is the attempts the order service received (its attempt route's count);
	// EdgeSoldOut the attempts and challenges the edge refused as sold out from its cache.
	Forwarded   int64   `json:"forwarded"`
	OrderP50US  float64 `json:"order_attempt_p50_us"`
	OrderP99US  float64 `json:"order_attempt_p99_us"`
	EdgeSoldOut int64   `json:"edge_sold_out"`
	// EdgeShed is the order-bound calls the edge's limiter refused (503 overloaded).
	EdgeShed int64 `json:"edge_shed"`
	// QueuedMax, InFlightMax and LimitMin are the extremes of the edge's gauges for the order
	// service over the samples; QueuedMean is the mean of the samples taken until the edge's
	// first sold-out refusal (the hot phase).
	QueuedMax   int64   `json:"queued_max"`
	QueuedMean  float64 `json:"queued_mean_hot"`
	InFlightMax int64   `json:"inflight_max"`
	LimitMin    int64   `json:"inflight_limit_min"`
	Samples     int     `json:"samples"`
	// EdgeSoldOutS is the first sample (every sampleEvery) showing the edge refusing sold out,
	// in seconds from the first attempt; -1 when none did.
	EdgeSoldOutS float64 `json:"edge_sold_out_s"`
	// ToolCPUS is this load tool's CPU time over the phase, StackCPUS each server's (store
	// included), PhaseS the phase's wall time: CPU share = CPU / (PhaseS x CPUs).
	ToolCPUS  float64            `json:"tool_cpu_s"`
	StackCPUS map[string]float64 `json:"stack_cpu_s,omitempty"`
	PhaseS    float64            `json:"phase_s"`
}

// sampleEvery is how often the edge's queue gauges are read during the attempt phase.
const sampleEvery = 25 * time.Millisecond

// attemptRoute is the route label of the attempt route in every service's metrics.
const attemptRoute = "/api/v1/flash-sales/{id}/attempts"

// serverProbe reads the servers' metrics around the attempt phase.
type serverProbe struct {
	cfg         Config
	edge, order string // base URLs; empty: not read
	start       time.Time
	edge0       page
	order0      page
	tool0       time.Duration
	stack0      map[string]time.Duration

	mu        sync.Mutex
	v         ServerView
	queuedSum float64
	queuedN   int
	done      chan struct{}
	stop      context.CancelFunc
}

// page is one parsed /metrics page, by family name.
type page map[string]*dto.MetricFamily

func scrape(url string) (page, error) {
	code, body, err := fasthttp.GetTimeout(nil, url, 2*time.Second)
	if err != nil {
		return nil, err
	}
	if code != 200 {
		return nil, fmt.Errorf("GET %s: %d", url, code)
	}
	return new(expfmt.TextParser).TextToMetricFamilies(bytes.NewReader(body))
}

// value returns the sample of family name whose labels include every pair of want (a counter,
// gauge or untyped value), 0 when none.
func (p page) value(name string, want ...string) float64 {
	f := p[name]
	if f == nil {
		return 0
	}
	var sum float64
	for _, m := range f.GetMetric() {
		if !hasLabels(m, want) {
			continue
		}
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Untyped != nil:
			sum += m.Untyped.GetValue()
		}
	}
	return sum
}

func hasLabels(m *dto.Metric, want []string) bool {
	for i := 0; i+1 < len(want); i += 2 {
		found := false
		for _, l := range m.GetLabel() {
			if l.GetName() == want[i] && l.GetValue() == want[i+1] {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// bucket is one cumulative histogram bucket: count of observations <= le seconds.
type bucket struct {
	le    float64
	count float64
}

// buckets returns the cumulative buckets of histogram family name for route (summed over its
// other labels), ascending, +Inf last.
func (p page) buckets(name, route string) []bucket {
	f := p[name]
	if f == nil {
		return nil
	}
	byLE := map[float64]float64{}
	for _, m := range f.GetMetric() {
		if m.Histogram == nil || !hasLabels(m, []string{"route", route}) {
			continue
		}
		inf := false
		for _, b := range m.Histogram.GetBucket() {
			byLE[b.GetUpperBound()] += float64(b.GetCumulativeCount())
			inf = inf || math.IsInf(b.GetUpperBound(), 1)
		}
		if !inf {
			byLE[math.Inf(1)] += float64(m.Histogram.GetSampleCount())
		}
	}
	out := make([]bucket, 0, len(byLE))
	for le, n := range byLE {
		out = append(out, bucket{le, n})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].le < out[j].le })
	return out
}

// deltaBuckets is after - before, bucket by bucket (both from buckets).
func deltaBuckets(before, after []bucket) []bucket {
	prev := map[float64]float64{}
	for _, b := range before {
		prev[b.le] = b.count
	}
	out := make([]bucket, len(after))
	for i, b := range after {
		out[i] = bucket{b.le, b.count - prev[b.le]}
	}
	return out
}

// quantile interpolates quantile q inside the cumulative buckets bs, as Prometheus'
// histogram_quantile does; in the +Inf bucket it answers the highest finite bound.
func quantile(bs []bucket, q float64) time.Duration {
	if len(bs) == 0 || bs[len(bs)-1].count <= 0 {
		return 0
	}
	rank := q * bs[len(bs)-1].count
	lo, below := 0.0, 0.0
	for _, b := range bs {
		if b.count >= rank {
			if math.IsInf(b.le, 1) {
				return time.Duration(lo * float64(time.Second))
			}
			frac := 0.0
			if n := b.count - below; n > 0 {
				frac = (rank - below) / n
			}
			return time.Duration((lo + (b.le-lo)*frac) * float64(time.Second))
		}
		lo, below = b.le, b.count
	}
	return time.Duration(lo * float64(time.Second))
}

// within is the share (percent) of observations at or under le seconds.
func within(bs []bucket, le float64) float64 {
	if len(bs) == 0 || bs[len(bs)-1].count <= 0 {
		return 0
	}
	for _, b := range bs {
		if b.le >= le-1e-12 {
			return math.Round(b.count/bs[len(bs)-1].count*1000) / 10
		}
	}
	return 100
}

// startServerProbe reads the servers' metrics now and samples the edge's queue until stopped;
// nil when the configuration names no edge operations listener.
func startServerProbe(ctx context.Context, cfg Config, start time.Time) *serverProbe {
	if cfg.EdgeOpsAddr == "" {
		return nil
	}
	p := &serverProbe{cfg: cfg, edge: "http://" + cfg.EdgeOpsAddr, start: start, done: make(chan struct{})}
	if cfg.OrderAddr != "" {
		p.order = "http://" + cfg.OrderAddr
	}
	var err error
	if p.edge0, err = scrape(p.edge + "/metrics"); err != nil {
		fmt.Fprintf(cfg.Out, "rush: the edge's metrics at %s are not readable (%v): no server-side figures\n", p.edge, err)
		return nil
	}
	if p.order != "" {
		p.order0, _ = scrape(p.order + "/metrics")
	}
	p.tool0 = selfCPU()
	if cfg.CPUByProcess != nil {
		p.stack0 = cfg.CPUByProcess()
	}
	p.v.EdgeSoldOutS, p.v.LimitMin = -1, math.MaxInt64
	sctx, cancel := context.WithCancel(ctx)
	p.stop = cancel
	go p.sample(sctx)
	return p
}

func (p *serverProbe) sample(ctx context.Context) {
	defer close(p.done)
	t := time.NewTicker(sampleEvery)
	defer t.Stop()
	soldOut0 := p.edge0.value("flashedge_edge_rejections_total", "reason", "sold_out")
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pg, err := scrape(p.edge + "/metrics")
		if err != nil {
			continue
		}
		at := time.Since(p.start).Seconds()
		q := int64(pg.value("flashedge_edge_queued", "backend", "order"))
		f := int64(pg.value("flashedge_edge_inflight", "backend", "order"))
		l := int64(pg.value("flashedge_edge_inflight_limit", "backend", "order"))
		so := pg.value("flashedge_edge_rejections_total", "reason", "sold_out") > soldOut0
		p.mu.Lock()
		p.v.Samples++
		p.v.QueuedMax, p.v.InFlightMax = max(p.v.QueuedMax, q), max(p.v.InFlightMax, f)
		if l > 0 {
			p.v.LimitMin = min(p.v.LimitMin, l)
		}
		if so && p.v.EdgeSoldOutS < 0 {
			p.v.EdgeSoldOutS = round3(at)
		}
		if p.v.EdgeSoldOutS < 0 {
			p.queuedSum += float64(q)
			p.queuedN++
		}
		p.mu.Unlock()
	}
}

// finish stops the sampling and reads the servers' metrics again: the view of the phase.
func (p *serverProbe) finish(phase time.Duration) *ServerView {
	if p == nil {
		return nil
	}
	p.stop()
	<-p.done
	tool := selfCPU() - p.tool0
	var stack map[string]time.Duration
	if p.cfg.CPUByProcess != nil {
		stack = p.cfg.CPUByProcess()
	}
	v := p.v
	if v.LimitMin == math.MaxInt64 {
		v.LimitMin = 0
	}
	if p.queuedN > 0 {
		v.QueuedMean = math.Round(p.queuedSum/float64(p.queuedN)*10) / 10
	}
	v.PhaseS = round3(phase.Seconds())
	v.ToolCPUS = round3(tool.Seconds())
	if stack != nil {
		v.StackCPUS = map[string]float64{}
		for k, c := range stack {
			v.StackCPUS[k] = round3((c - p.stack0[k]).Seconds())
		}
	}
	edge1, err := scrape(p.edge + "/metrics")
	if err != nil {
		return &v
	}
	const edgeHist = "flashedge_edge_request_duration_seconds"
	eb := deltaBuckets(p.edge0.buckets(edgeHist, attemptRoute), edge1.buckets(edgeHist, attemptRoute))
	if len(eb) > 0 {
		v.EdgeAttempts = int64(eb[len(eb)-1].count)
	}
	v.EdgeP50US, v.EdgeP99US = us(quantile(eb, 0.5)), us(quantile(eb, 0.99))
	v.EdgeWithin10MS, v.EdgeWithin25MS = within(eb, 0.01), within(eb, 0.025)
	v.EdgeSoldOut = int64(edge1.value("flashedge_edge_rejections_total", "reason", "sold_out") - p.edge0.value("flashedge_edge_rejections_total", "reason", "sold_out"))
	v.EdgeShed = int64(edge1.value("flashedge_edge_shed_total", "backend", "order") - p.edge0.value("flashedge_edge_shed_total", "backend", "order"))
	if p.order != "" && p.order0 != nil {
		if order1, err := scrape(p.order + "/metrics"); err == nil {
			const orderHist = "flashedge_order_request_duration_seconds"
			ob := deltaBuckets(p.order0.buckets(orderHist, attemptRoute), order1.buckets(orderHist, attemptRoute))
			if len(ob) > 0 {
				v.Forwarded = int64(ob[len(ob)-1].count)
			}
			v.OrderP50US, v.OrderP99US = us(quantile(ob, 0.5)), us(quantile(ob, 0.99))
		}
	}
	return &v
}

// writeServerView prints v (the server side of the attempts row).
func writeServerView(w io.Writer, v *ServerView, cpus int) {
	if v == nil {
		return
	}
	fmt.Fprintf(w, "  server side:          edge attempt route p50 %s, p99 %s over %d answers (%.1f%% within 10ms, %.1f%% within 25ms; Prometheus buckets, handler time); order service p50 %s, p99 %s\n",
		FormatUS(v.EdgeP50US), FormatUS(v.EdgeP99US), v.EdgeAttempts, v.EdgeWithin10MS, v.EdgeWithin25MS, FormatUS(v.OrderP50US), FormatUS(v.OrderP99US))
	fmt.Fprintf(w, "  edge -> order:        %d attempts forwarded, %d refused sold out at the edge (first seen at %s), %d shed; order queue at the edge max %d (mean %.1f before sold out), in flight max %d, limit min %d (%d samples every %s)\n",
		v.Forwarded, v.EdgeSoldOut, secs(v.EdgeSoldOutS), v.EdgeShed, v.QueuedMax, v.QueuedMean, v.InFlightMax, v.LimitMin, v.Samples, sampleEvery)
	keys := make([]string, 0, len(v.StackCPUS))
	for k := range v.StackCPUS {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := ""
	for _, k := range keys {
		parts += " " + k + " " + strconv.FormatFloat(v.StackCPUS[k], 'f', 2, 64) + "s"
	}
	share := func(s float64) float64 {
		if v.PhaseS <= 0 || cpus <= 0 {
			return 0
		}
		return math.Round(s/(v.PhaseS*float64(cpus))*1000) / 10
	}
	fmt.Fprintf(w, "  CPU over the phase:   load tool %.2fs (%.1f%% of %d CPUs over %.2fs);%s\n", v.ToolCPUS, share(v.ToolCPUS), cpus, v.PhaseS, parts)
}
