package load

import (
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Error kinds besides unexpected status codes.
const (
	ErrKindTimeout = "timeout"    // no answer within the request timeout
	ErrKindConn    = "connection" // refused, reset, closed before the answer
	ErrKindOther   = "other"      // anything else the client reported
)

// Row collects the answers of one kind of request (one table row): a latency histogram of every
// request that got an HTTP answer, counts by status code and transport errors by kind. Expected
// statuses (the contract's answers for this request) count as successes; any other status is an
// error of kind "<code>". Safe for concurrent use.
type Row struct {
	// Name is the table label, such as "rush/attempt" or "stress/500".
	Name string
	// Scenario is the scenario that produced it.
	Scenario string

	expected [600]bool
	status   [600]atomic.Int64
	timeouts atomic.Int64
	conns    atomic.Int64
	others   atomic.Int64
	hist     *Histogram

	mu    sync.Mutex
	codes map[string]int64 // unexpected answers by "status code" (the error body's code)

	start, end atomic.Int64 // unix ns of the first request's start and the last answer
}

// NewRow returns a row whose successes are the given status codes.
func NewRow(scenario, name string, expected ...int) *Row {
	r := &Row{Name: name, Scenario: scenario, hist: NewHistogram()}
	for _, c := range expected {
		if c >= 0 && c < len(r.expected) {
			r.expected[c] = true
		}
	}
	return r
}

// Expected reports whether status counts as a success for this row.
func (r *Row) Expected(status int) bool {
	return status >= 0 && status < len(r.expected) && r.expected[status]
}

// Hist is the row's latency histogram.
func (r *Row) Hist() *Histogram { return r.hist }

func (r *Row) span(start, end time.Time) {
	s, e := start.UnixNano(), end.UnixNano()
	for {
		cur := r.start.Load()
		if cur != 0 && cur <= s || r.start.CompareAndSwap(cur, s) {
			break
		}
	}
	for {
		cur := r.end.Load()
		if cur >= e || r.end.CompareAndSwap(cur, e) {
			break
		}
	}
}

// Answer records a request that got an HTTP answer with status after latency d.
func (r *Row) Answer(status int, start time.Time, d time.Duration) {
	if status < 0 || status >= len(r.status) {
		status = 0
	}
	r.status[status].Add(1)
	r.hist.Record(d)
	r.span(start, start.Add(d))
}

// Unexpected notes the error code of an unexpected answer (from its body), so the errors
// column can say "503 service_unavailable" rather than "503". Answer counts the request itself.
func (r *Row) Unexpected(status int, code string) {
	if status < 0 || status >= len(r.status) {
		status = 0
	}
	if code == "" {
		return
	}
	r.mu.Lock()
	if r.codes == nil {
		r.codes = map[string]int64{}
	}
	if len(r.codes) < 50 {
		r.codes[strconv.Itoa(status)+" "+code]++
	}
	r.mu.Unlock()
}

// Fail records a request that got no answer.
func (r *Row) Fail(kind string, start time.Time, d time.Duration) {
	switch kind {
	case ErrKindTimeout:
		r.timeouts.Add(1)
	case ErrKindConn:
		r.conns.Add(1)
	default:
		r.others.Add(1)
	}
	r.span(start, start.Add(d))
}

// Counts returns how many requests were made, how many got an expected answer and how many
// failed (unexpected status or no answer).
func (r *Row) Counts() (requests, ok, failed int64) {
	for c := range r.status {
		n := r.status[c].Load()
		requests += n
		if r.expected[c] {
			ok += n
		}
	}
	nf := r.timeouts.Load() + r.conns.Load() + r.others.Load()
	requests += nf
	return requests, ok, requests - ok
}

// Status returns how many answers had status code c.
func (r *Row) Status(c int) int64 {
	if c < 0 || c >= len(r.status) {
		return 0
	}
	return r.status[c].Load()
}

// answers returns expected answers by status code, errors by kind.
func (r *Row) breakdown() (answers, errs map[string]int64) {
	answers, errs = map[string]int64{}, map[string]int64{}
	r.mu.Lock()
	coded := map[int]int64{}
	for k, n := range r.codes {
		errs[k] = n
		num, _, _ := strings.Cut(k, " ")
		c, _ := strconv.Atoi(num)
		coded[c] += n
	}
	r.mu.Unlock()
	for c := range r.status {
		n := r.status[c].Load()
		if n == 0 {
			continue
		}
		if r.expected[c] {
			answers[strconv.Itoa(c)] = n
		} else if rest := n - coded[c]; rest > 0 {
			errs[strconv.Itoa(c)] = rest
		}
	}
	for kind, n := range map[string]int64{ErrKindTimeout: r.timeouts.Load(), ErrKindConn: r.conns.Load(), ErrKindOther: r.others.Load()} {
		if n > 0 {
			errs[kind] = n
		}
	}
	return answers, errs
}

// Window is the time from the first request's start to the last answer (0 when empty).
func (r *Row) Window() time.Duration {
	s, e := r.start.Load(), r.end.Load()
	if s == 0 || e < s {
		return 0
	}
	return time.Duration(e - s)
}
