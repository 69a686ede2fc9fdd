package chaos

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"flashedge/deploy/stack"
	"flashedge/shared/upstream"
)

func TestMain(m *testing.M) { stack.Main(m) }

// newHTTP returns an HTTP client whose idle connections are closed when the test ends.
// Its timeout is above every budget in the system (the longest, edge -> order, is 2 x 5s), so
// a reply that takes longer is a hang the tests must see, not something the client cut short.
func newHTTP(t testing.TB) *http.Client {
	tr := &http.Transport{MaxIdleConns: 512, MaxIdleConnsPerHost: 256, IdleConnTimeout: 30 * time.Second, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Timeout: 15 * time.Second, Transport: tr}
}

// client speaks to one base URL with an optional bearer token. Safe for concurrent use.
// failFast bounds an answer that must not wait on a dead or hung service: such a wait lasts a
// call's budget at the edge (3 to 5 s, httpapi.EdgeBudget*), while failing fast takes
// milliseconds. The bound sits well between the two so a busy CI machine (where a 503's p99
// reached 300 ms with the run queue full) does not trip it; how fast is fast is measured by
// the benchmarks, not asserted here.
const failFast = time.Second

type client struct {
	base  string
	token string
	user  string // the user id the edge gave at login
	http  *http.Client
}

// reply is one answer, or the transport error that took its place. It is safe to keep.
type reply struct {
	status int // 0 when err is set
	header http.Header
	body   []byte
	start  time.Time
	lat    time.Duration
	err    error
}

// errCode returns the contract's error code of a reply, or "" when it has none.
func (r reply) errCode() string {
	var e struct {
		Error struct{ Code, Message string }
	}
	if json.Unmarshal(r.body, &e) != nil {
		return ""
	}
	return e.Error.Code
}

// maintenance reports whether r is the edge's friendly 503: the service_unavailable error with
// the English + Vietnamese message, and Retry-After.
func (r reply) maintenance() bool {
	var e struct {
		Error struct{ Code, Message string }
	}
	return r.status == http.StatusServiceUnavailable && json.Unmarshal(r.body, &e) == nil &&
		e.Error.Code == "service_unavailable" && e.Error.Message == upstream.MaintenanceMessage &&
		r.header.Get("Retry-After") != ""
}

// clear503 reports whether r is a 503 a client can act on: a JSON error with a code and
// message, and Retry-After.
func (r reply) clear503() bool {
	var e struct {
		Error struct{ Code, Message string }
	}
	return r.status == http.StatusServiceUnavailable && json.Unmarshal(r.body, &e) == nil &&
		e.Error.Code != "" && e.Error.Message != "" && r.header.Get("Retry-After") != ""
}

func (r reply) String() string {
	if r.err != nil {
		return fmt.Sprintf("transport error after %s: %v", r.lat.Round(time.Millisecond), r.err)
	}
	return fmt.Sprintf("%d %.300s (after %s)", r.status, r.body, r.lat.Round(time.Millisecond))
}

// call sends one request and never fails the test: a transport error is in the reply.
// headers are name, value pairs.
func (c *client) call(method, path string, body any, headers ...string) reply {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	start := time.Now()
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		return reply{start: start, err: err}
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return reply{start: start, lat: time.Since(start), err: err}
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	r := reply{status: resp.StatusCode, header: resp.Header, body: b, start: start, lat: time.Since(start), err: err}
	if err != nil {
		r.status = 0
	}
	return r
}

// must sends one request from the test goroutine and fails the test unless the status is want.
func (c *client) must(t testing.TB, what string, want int, method, path string, body any, headers ...string) reply {
	t.Helper()
	r := c.call(method, path, body, headers...)
	if r.err != nil || r.status != want {
		t.Fatalf("%s: %s %s: %s, want %d", what, method, path, r, want)
	}
	return r
}

func (r reply) json(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("body %q is not the JSON wanted: %v", r.body, err)
	}
}

// login opens a session at the edge and returns a client carrying its token.
func login(t testing.TB, hc *http.Client, edge, user string) *client {
	t.Helper()
	var s struct {
		Token  string `json:"token"`
		UserID string `json:"user_id"`
	}
	(&client{base: edge, http: hc}).must(t, "login "+user, 200, "POST", "/api/v1/session", map[string]string{"user": user}).json(t, &s)
	if s.Token == "" || s.UserID == "" {
		t.Fatalf("login %s: no token or user id", user)
	}
	return &client{base: edge, token: s.Token, user: s.UserID, http: hc}
}

// poll calls check until it returns nil, failing the test with its last error after within.
// It returns how long it took.
func poll(t testing.TB, what string, within time.Duration, check func() error) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(within)
	for {
		err := check()
		if err == nil {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, within, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// sample is one request of a load run.
type sample struct {
	op string
	reply
}

func (s sample) end() time.Time { return s.start.Add(s.lat) }

// load runs a paced closed loop: workers goroutines, each sending at most one request per
// every (and at most perWorker in all) until Stop. next says what worker w sends as its i-th
// request. The test owns the goroutines through Stop, also registered as a cleanup.
type load struct {
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	mu      sync.Mutex
	samples []sample
	once    sync.Once
	oks     atomic.Int64 // 2xx answers so far
}

// OKs is the number of 2xx answers so far, for tests that wait until the load has done enough
// instead of for a fixed time.
func (l *load) OKs() int64 { return l.oks.Load() }

func startLoad(t testing.TB, workers int, every time.Duration, perWorker int, next func(w, i int) (op string, send func() reply)) *load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{cancel: cancel}
	for w := range workers {
		l.wg.Go(func() {
			var mine []sample
			start := time.Now()
			for i := 0; i < perWorker && ctx.Err() == nil; i++ {
				if wait := time.Until(start.Add(time.Duration(i) * every)); wait > 0 {
					select {
					case <-ctx.Done():
					case <-time.After(wait):
					}
					if ctx.Err() != nil {
						break
					}
				}
				op, send := next(w, i)
				r := send()
				if r.ok() {
					l.oks.Add(1)
				}
				mine = append(mine, sample{op: op, reply: r})
			}
			l.mu.Lock()
			l.samples = append(l.samples, mine...)
			l.mu.Unlock()
		})
	}
	t.Cleanup(func() { l.Stop() })
	return l
}

// Stop ends the load, waits for the requests in flight and returns every sample, by start time.
func (l *load) Stop() []sample {
	l.once.Do(func() {
		l.cancel()
		l.wg.Wait()
		slices.SortFunc(l.samples, func(a, b sample) int { return a.start.Compare(b.start) })
	})
	return l.samples
}

// pick returns the samples for which keep is true.
func pick(ss []sample, keep func(sample) bool) []sample {
	var out []sample
	for _, s := range ss {
		if keep(s) {
			out = append(out, s)
		}
	}
	return out
}

// ok reports a 2xx answer.
func (r reply) ok() bool { return r.err == nil && r.status >= 200 && r.status < 300 }

// served reports an answer below 500: the system did its job, even when the answer is "no"
// (409 out of stock, 422 empty cart).
func served(s sample) bool { return s.err == nil && s.status > 0 && s.status < 500 }

// lats returns the latencies of ss.
func lats(ss []sample) []time.Duration {
	out := make([]time.Duration, len(ss))
	for i, s := range ss {
		out[i] = s.lat
	}
	return out
}

// pct returns the p-th percentile (0 < p <= 100, nearest rank) of ds; 0 when empty.
func pct(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	return s[min(max(rank, 1), len(s))-1]
}

// ms formats a duration in milliseconds with one decimal, for the summary lines.
func ms(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e6, 'f', 1, 64) + "ms" }

// statuses counts the answers by status ("err" for transport errors) as "200:12 503:4".
func statuses(ss []sample) string {
	n := map[string]int{}
	for _, s := range ss {
		k := strconv.Itoa(s.status)
		if s.err != nil {
			k = "err"
		} else if s.status >= 400 {
			if c := s.errCode(); c != "" {
				k += "/" + c
			}
		}
		n[k]++
	}
	keys := make([]string, 0, len(n))
	for k := range n {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s:%d", k, n[k])
	}
	if b.Len() == 0 {
		return "none"
	}
	return b.String()
}

// firstBad returns a description of up to three samples for which bad is true, or "".
func firstBad(ss []sample, bad func(sample) bool) string {
	var out []string
	for _, s := range ss {
		if bad(s) {
			out = append(out, s.op+": "+s.String())
			if len(out) == 3 {
				break
			}
		}
	}
	return strings.Join(out, "; ")
}

// backendState is what the edge's /metrics says of one backend replica: healthy (the last
// probe) and the breaker (0 closed, 1 half-open, 2 open).
type backendState struct {
	healthy, breaker float64
}

var metricLine = regexp.MustCompile(`^(\w+)\{([^}]*)\} (\S+)$`)
var metricLabel = regexp.MustCompile(`(\w+)="([^"]*)"`)

// metric is one sample of a Prometheus text exposition.
type metric struct {
	name   string
	labels map[string]string
	value  float64
}

// scrape reads a /metrics page.
func scrape(hc *http.Client, url string) ([]metric, error) {
	resp, err := hc.Get(url + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("/metrics answered %d", resp.StatusCode)
	}
	var out []metric
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		m := metricLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			continue
		}
		labels := map[string]string{}
		for _, l := range metricLabel.FindAllStringSubmatch(m[2], -1) {
			labels[l[1]] = l[2]
		}
		out = append(out, metric{name: m[1], labels: labels, value: v})
	}
	return out, sc.Err()
}

// edgeCounter returns the value of the edge's metric name whose label key has value val.
func edgeCounter(t testing.TB, hc *http.Client, edge, name, key, val string) float64 {
	t.Helper()
	all, err := scrape(hc, edge)
	if err != nil {
		t.Fatalf("edge metrics: %v", err)
	}
	for _, m := range all {
		if m.name == name && m.labels[key] == val {
			return m.value
		}
	}
	t.Fatalf("edge metrics have no %s{%s=%q}", name, key, val)
	return 0
}

// edgeBackends reads the edge's /metrics and returns the state of every backend replica by
// "service addr".
func edgeBackends(hc *http.Client, edgeURL string) (map[string]backendState, error) {
	ms, err := scrape(hc, edgeURL)
	if err != nil {
		return nil, err
	}
	out := map[string]backendState{}
	for _, m := range ms {
		if m.name != "flashedge_edge_backend_healthy" && m.name != "flashedge_edge_breaker_state" {
			continue
		}
		k := m.labels["backend"] + " " + m.labels["addr"]
		s := out[k]
		if m.name == "flashedge_edge_backend_healthy" {
			s.healthy = m.value
		} else {
			s.breaker = m.value
		}
		out[k] = s
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no backend gauges in the edge's /metrics")
	}
	return out, nil
}

// waitBackend polls the edge's /metrics until the replica's state satisfies want and returns
// when it was first seen so (at most 5ms late).
func waitBackend(t testing.TB, hc *http.Client, edgeURL, service, addr string, within time.Duration, what string, want func(backendState) bool) time.Time {
	t.Helper()
	var seen time.Time
	poll(t, fmt.Sprintf("the edge to see %s %s %s", service, addr, what), within, func() error {
		all, err := edgeBackends(hc, edgeURL)
		if err != nil {
			return err
		}
		s, ok := all[service+" "+addr]
		if !ok {
			return fmt.Errorf("no gauges for %s %s in %v", service, addr, all)
		}
		if !want(s) {
			return fmt.Errorf("state %+v", s)
		}
		seen = time.Now()
		return nil
	})
	return seen
}

func healthy(s backendState) bool   { return s.healthy == 1 }
func unhealthy(s backendState) bool { return s.healthy == 0 }
func usable(s backendState) bool    { return s.healthy == 1 && s.breaker == 0 }
func isOpen(s backendState) bool    { return s.breaker == 2 }
func admits(s backendState) bool    { return s.healthy == 1 && s.breaker != 2 }

// pid formats a product id as the catalog does.
func pid(n int) string { return fmt.Sprintf("%08d", n) }

// timeline describes ss in buckets of d from t0, for debugging: "+0.25s n=40 p50=3ms max=9ms".
func timeline(ss []sample, t0 time.Time, d time.Duration) string {
	var b strings.Builder
	buckets := map[int][]sample{}
	last := 0
	for _, s := range ss {
		i := int(s.start.Sub(t0) / d)
		buckets[i] = append(buckets[i], s)
		last = max(last, i)
	}
	for i := 0; i <= last; i++ {
		bs := buckets[i]
		fmt.Fprintf(&b, "\n  %+.2fs n=%d ok=%d p50=%s max=%s", (time.Duration(i) * d).Seconds(), len(bs),
			len(pick(bs, func(s sample) bool { return s.ok() })), ms(pct(lats(bs), 50)), ms(pct(lats(bs), 100)))
	}
	return b.String()
}

// quiet samples the access logs of every process (errors are always logged). The services'
// default, one line per request, pushes thousands of lines a second through the test's
// process supervisor under load, and the processes then stall writing their logs.
func quiet(o stack.Options) stack.Options {
	env := map[string]string{"FLASHEDGE_ACCESS_LOG_SAMPLE": "1000"}
	for k, v := range o.Env {
		env[k] = v
	}
	o.Env = env
	return o
}
