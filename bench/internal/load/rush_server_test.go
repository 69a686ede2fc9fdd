package load

import (
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
)

// TestServerHistogram reads a route's histogram out of a /metrics page, takes the difference of
// two pages and interpolates quantiles inside the buckets as histogram_quantile does.
func TestServerHistogram(t *testing.T) {
	parse := func(text string) page {
		t.Helper()
		p, err := new(expfmt.TextParser).TextToMetricFamilies(strings.NewReader(text))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	const head = "# TYPE flashedge_edge_request_duration_seconds histogram\n"
	row := func(le string, n int) string {
		return `flashedge_edge_request_duration_seconds_bucket{route="/api/v1/flash-sales/{id}/attempts",le="` + le + `"} ` + itoa(n) + "\n"
	}
	other := `flashedge_edge_request_duration_seconds_bucket{route="/other",le="+Inf"} 1000` + "\n"
	before := parse(head + row("0.01", 10) + row("0.025", 10) + row("+Inf", 10) +
		`flashedge_edge_request_duration_seconds_sum{route="/api/v1/flash-sales/{id}/attempts"} 0.01` + "\n" +
		`flashedge_edge_request_duration_seconds_count{route="/api/v1/flash-sales/{id}/attempts"} 10` + "\n" + other)
	// 100 more answers: 90 within 10ms, 8 in (10ms, 25ms], 2 above.
	after := parse(head + row("0.01", 100) + row("0.025", 108) + row("+Inf", 110) +
		`flashedge_edge_request_duration_seconds_sum{route="/api/v1/flash-sales/{id}/attempts"} 1` + "\n" +
		`flashedge_edge_request_duration_seconds_count{route="/api/v1/flash-sales/{id}/attempts"} 110` + "\n" + other)
	const fam = "flashedge_edge_request_duration_seconds"
	d := deltaBuckets(before.buckets(fam, attemptRoute), after.buckets(fam, attemptRoute))
	if n := d[len(d)-1].count; n != 100 {
		t.Fatalf("delta count = %v, want 100 (%v)", n, d)
	}
	cases := []struct {
		q    float64
		want float64 // seconds
	}{
		{0.5, 0.01 * 50 / 90},
		{0.94, 0.01 + 0.015*4/8},
		{0.99, 0.025}, // in +Inf: the highest finite bound
	}
	for _, c := range cases {
		if got := quantile(d, c.q); math.Abs(got.Seconds()-c.want) > 1e-6 {
			t.Errorf("quantile(%v) = %v, want %v", c.q, got, c.want)
		}
	}
	if got := within(d, 0.01); got != 90 {
		t.Errorf("within 10ms = %v%%, want 90%%", got)
	}
	if got := within(d, 0.025); got != 98 {
		t.Errorf("within 25ms = %v%%, want 98%%", got)
	}
	g := parse("flashedge_edge_queued{backend=\"order\"} 7\nflashedge_edge_queued{backend=\"cart\"} 3\n")
	if got := g.value("flashedge_edge_queued", "backend", "order"); got != 7 {
		t.Errorf("queued{order} = %v, want 7", got)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
