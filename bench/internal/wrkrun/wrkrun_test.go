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
		{name: "no report line", out: "Running 1s test\nRequests/sec: 1\n", wantErr: "no WRK_REPORT"},
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
