package wrkrun

import (
	"strings"
	"testing"
	"time"
)

const sample = `Running 2s test @ http://127.0.0.1:18090/api/v1/flash-sales/x/attempts
  1 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   273.02us  730.37us   8.16ms   92.24%
  100538 requests in 1.10s, 22.44MB read
  Non-2xx or 3xx responses: 100538
Requests/sec:  91392.20
WRK_REPORT {"duration_us":2000000,"requests":100538,"bytes":23525892,"errors_connect":1,"errors_read":2,"errors_write":0,"errors_status":100538,"errors_timeout":3,"latency_us":{"min":12,"mean":273.0,"stdev":730.4,"p50":70,"p90":349,"p99":3752,"p999":5722,"max":8158}}
`

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		out     string
		wantErr string
		check   func(t *testing.T, r Result)
	}{
		{name: "full", out: sample, check: func(t *testing.T, r Result) {
			if r.Requests != 100538 || r.RequestsPerS != 50269 || r.Non2xx3xx != 100538 ||
				r.SocketErrors != 3 || r.Timeouts != 3 || r.LatencyUS.P50 != 70 || r.LatencyUS.P99 != 3752 {
				t.Errorf("Parse = %+v", r)
			}
			if r.BytesPerResp < 233 || r.BytesPerResp > 235 {
				t.Errorf("BytesPerResp = %v, want about 234", r.BytesPerResp)
			}
		}},
		{name: "no report line", out: "Running 1s test\nRequests/sec: 1\n", wantErr: "requests in"},
		{name: "bad json", out: "WRK_REPORT {nope\n", wantErr: "bad WRK_REPORT"},
		{name: "counts disagree", out: strings.Replace(sample, "responses: 100538", "responses: 7", 1), wantErr: "non-2xx"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Parse([]byte(tt.out))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Parse error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			tt.check(t, r)
		})
	}
}

func TestArgv(t *testing.T) {
	tests := []struct {
		name string
		o    Options
		want string
	}{
		{"defaults", Options{Script: "p.lua", URL: "http://x/"}, "wrk -t1 -c64 -d10s -s p.lua http://x/"},
		{"no script", Options{URL: "http://x/", Headers: []string{"Accept: application/json"}}, "wrk -t1 -c64 -d10s -H Accept: application/json --latency http://x/"},
		{"pinned, sub-second rounds up", Options{Script: "p.lua", URL: "u", CPU: "1", Threads: 2, Connections: 8, Duration: 300 * time.Millisecond},
			"taskset -c 1 wrk -t2 -c8 -d1s -s p.lua u"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := strings.Join(tt.o.Argv(), " "); got != tt.want {
				t.Errorf("Argv() = %q, want %q", got, tt.want)
			}
		})
	}
}

const summary = `Running 10s test @ http://127.0.0.1:8090/api/v1/products/1
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   583.21us  207.30us   8.03ms   90.12%
    Req/Sec   110.21k     5.12k  118.00k    79.00%
  Latency Distribution
     50%  560.00us
     75%  650.00us
     90%  760.00us
     99%    1.20ms
  1000000 requests in 10.00s, 400.00MB read
  Socket errors: connect 1, read 2, write 0, timeout 4
  Non-2xx or 3xx responses: 12
Requests/sec: 100000.00
Transfer/sec:     40.00MB
`

func TestParseSummary(t *testing.T) {
	r, err := Parse([]byte(summary))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := Result{Requests: 1_000_000, DurationSec: 10, RequestsPerS: 100_000, Bytes: 400 << 20, BytesPerResp: 419.4304,
		Non2xx3xx: 12, SocketErrors: 3, Timeouts: 4,
		LatencyUS: Latency{Mean: 583.21, Stdev: 207.3, Max: 8030, P50: 560, P90: 760, P99: 1200}}
	if r != want {
		t.Errorf("Parse(summary) =\n%+v\nwant\n%+v", r, want)
	}
	if _, err := Parse([]byte("Running 1s test\n")); err == nil {
		t.Error("Parse of a summary without the requests line: no error")
	}
	for in, want := range map[string]int64{"934.00B": 934, "1.50KB": 1536, "2.00GB": 2 << 30} {
		if got, err := parseBytes(in); err != nil || got != want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
}
