package fresh

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	s := []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for _, tt := range []struct {
		p    float64
		want time.Duration
	}{{50, 5}, {99, 10}, {10, 1}, {0, 1}, {100, 10}} {
		if got := Percentile(s, tt.p); got != tt.want {
			t.Errorf("Percentile(1..10, %v) = %v, want %v", tt.p, got, tt.want)
		}
	}
	if got := Percentile(nil, 50); got != 0 {
		t.Errorf("Percentile(nil) = %v, want 0", got)
	}
}

// TestMeasure times a server that shows a write at once against one that shows it 50 ms late
// and one that never does.
func TestMeasure(t *testing.T) {
	var (
		mu      sync.Mutex
		value   string
		written time.Time
	)
	handler := func(delay time.Duration) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			v, at := value, written
			mu.Unlock()
			if time.Since(at) < delay {
				v = "old"
			}
			_, _ = w.Write([]byte(`{"name":"` + v + `"}`))
		}
	}
	now := httptest.NewServer(handler(0))
	defer now.Close()
	late := httptest.NewServer(handler(50 * time.Millisecond))
	defer late.Close()
	never := httptest.NewServer(handler(time.Hour))
	defer never.Close()

	res, err := Measure(context.Background(), Options{
		Updates: 3,
		Update: func(ctx context.Context, i int, marker string) error {
			if !strings.HasPrefix(marker, "fresh-") {
				t.Errorf("marker %q", marker)
			}
			mu.Lock()
			value, written = marker, time.Now()
			mu.Unlock()
			return nil
		},
		Targets:  []Target{{"now", now.URL}, {"late", late.URL}, {"never", never.URL}},
		Deadline: 300 * time.Millisecond,
		Spread:   10 * time.Millisecond,
	})
	if err != nil {
		t.Fatalf("Measure: %v", err)
	}
	if r := res[0]; r.Count != 3 || r.P99MS > 40 {
		t.Errorf("now: %+v, want 3 samples well under 40 ms", r)
	}
	if r := res[1]; r.Count != 3 || r.P50MS < 50 || r.P99MS > 250 {
		t.Errorf("late: %+v, want 3 samples from 50 ms", r)
	}
	if r := res[2]; r.Count != 0 || r.Timeouts != 3 {
		t.Errorf("never: %+v, want 3 timeouts", r)
	}
	for _, r := range res {
		if r.PollMS <= 0 {
			t.Errorf("%s: PollMS %v, want the mean time between reads", r.Name, r.PollMS)
		}
	}
}

// TestSummarize: samples before the reference (negative) sort first and count like others.
func TestSummarize(t *testing.T) {
	r := Summarize("push", []time.Duration{3 * time.Millisecond, -2 * time.Millisecond, time.Millisecond})
	if r.Count != 3 || r.P50MS != 1 || r.MaxMS != 3 || r.Samples[0] != -2*time.Millisecond {
		t.Errorf("Summarize(3ms, -2ms, 1ms) = %+v, want count 3, p50 1 ms, max 3 ms, sorted from -2 ms", r)
	}
}
