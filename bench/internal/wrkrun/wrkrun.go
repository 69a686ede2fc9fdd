// Package wrkrun runs wrk and parses its output: the WRK_REPORT line a bench/wrk/*.lua script
// prints, or, for a run without a script (a GET with -H headers, wrk's cheapest mode), wrk's own
// summary with --latency.
package wrkrun

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// Options is one wrk run.
type Options struct {
	// Threads is wrk's -t. Zero means 1.
	Threads int
	// Connections is wrk's -c. Zero means 64.
	Connections int
	// Duration is wrk's -d (whole seconds or more). Zero means 10s.
	Duration time.Duration
	// Script is the path of the Lua script (-s). Empty runs wrk without a script: a GET with
	// Headers, parsed from wrk's own summary (no p99.9 then).
	Script string
	// Headers are sent with -H ("Name: value"), for runs without a script.
	Headers []string
	// URL is the target.
	URL string
	// CPU pins wrk with `taskset -c CPU` when not empty.
	CPU string
	// Env is added to wrk's environment (the scripts read FLASHEDGE_BENCH_* from it).
	Env []string
}

func (o Options) withDefaults() Options {
	if o.Threads == 0 {
		o.Threads = 1
	}
	if o.Connections == 0 {
		o.Connections = 64
	}
	if o.Duration == 0 {
		o.Duration = 10 * time.Second
	}
	return o
}

// Argv is the command line Run starts, taskset included.
func (o Options) Argv() []string {
	o = o.withDefaults()
	var argv []string
	if o.CPU != "" {
		argv = append(argv, "taskset", "-c", o.CPU)
	}
	argv = append(argv, "wrk", "-t"+strconv.Itoa(o.Threads), "-c"+strconv.Itoa(o.Connections),
		"-d"+formatDuration(o.Duration))
	for _, h := range o.Headers {
		argv = append(argv, "-H", h)
	}
	if o.Script != "" {
		argv = append(argv, "-s", o.Script)
	} else {
		argv = append(argv, "--latency")
	}
	return append(argv, o.URL)
}

// formatDuration renders d in whole seconds (at least 1), rounding up: the unit wrk takes.
func formatDuration(d time.Duration) string {
	s := int((d + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return strconv.Itoa(s) + "s"
}

// Result is what one run measured.
type Result struct {
	Requests     int64   `json:"requests"`
	DurationSec  float64 `json:"duration_s"`
	RequestsPerS float64 `json:"requests_per_s"`
	Bytes        int64   `json:"bytes"`
	BytesPerResp float64 `json:"bytes_per_response"`
	Non2xx3xx    int64   `json:"non_2xx_3xx"`
	SocketErrors int64   `json:"socket_errors"`
	Timeouts     int64   `json:"timeouts"`
	LatencyUS    Latency `json:"latency_us"`
	// CPUSeconds is wrk's own CPU time (user + system) for the run: the load generator's share
	// of a machine that runs it next to the server.
	CPUSeconds float64 `json:"wrk_cpu_s"`
}

// Latency holds latency statistics in microseconds.
type Latency struct {
	Min   float64 `json:"min"`
	Mean  float64 `json:"mean"`
	Stdev float64 `json:"stdev"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p999"`
	Max   float64 `json:"max"`
}

// Run runs wrk and parses its output. It fails when wrk fails or prints no WRK_REPORT line.
func Run(ctx context.Context, o Options) (Result, string, error) {
	argv := o.Argv()
	if argv[0] == "taskset" {
		p, err := exec.LookPath("taskset")
		if err != nil {
			return Result{}, "", errors.New("wrkrun: taskset not found")
		}
		argv[0] = p
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), o.Env...)
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		return Result{}, out.String(), fmt.Errorf("wrkrun: %s: %w\n%s", strings.Join(argv, " "), err, out.String())
	}
	r, err := Parse(out.Bytes())
	if ps := cmd.ProcessState; ps != nil {
		r.CPUSeconds = (ps.UserTime() + ps.SystemTime()).Seconds()
	}
	return r, out.String(), err
}

type report struct {
	DurationUS    float64 `json:"duration_us"`
	Requests      float64 `json:"requests"`
	Bytes         float64 `json:"bytes"`
	ErrorsConnect float64 `json:"errors_connect"`
	ErrorsRead    float64 `json:"errors_read"`
	ErrorsWrite   float64 `json:"errors_write"`
	ErrorsStatus  float64 `json:"errors_status"`
	ErrorsTimeout float64 `json:"errors_timeout"`
	LatencyUS     Latency `json:"latency_us"`
}

// Parse reads wrk's output: the WRK_REPORT line printed by the script's done function, checked
// against wrk's own "Non-2xx or 3xx responses" line; without that line, wrk's own summary
// (ParseSummary).
func Parse(out []byte) (Result, error) {
	if !bytes.Contains(out, []byte("WRK_REPORT ")) {
		return ParseSummary(out)
	}
	var (
		rep      report
		found    bool
		non2xx   int64
		sawNon2x bool
	)
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if rest, ok := strings.CutPrefix(line, "WRK_REPORT "); ok {
			if err := json.Unmarshal([]byte(rest), &rep); err != nil {
				return Result{}, fmt.Errorf("wrkrun: bad WRK_REPORT line %q: %w", line, err)
			}
			found = true
		}
		if rest, ok := strings.CutPrefix(line, "Non-2xx or 3xx responses:"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(rest), 10, 64)
			if err != nil {
				return Result{}, fmt.Errorf("wrkrun: bad line %q: %w", line, err)
			}
			non2xx, sawNon2x = n, true
		}
	}
	if !found {
		return Result{}, errors.New("wrkrun: no WRK_REPORT line in wrk's output (is the script one of bench/wrk/*.lua?)")
	}
	r := Result{
		Requests:     int64(rep.Requests),
		DurationSec:  rep.DurationUS / 1e6,
		Bytes:        int64(rep.Bytes),
		Non2xx3xx:    int64(rep.ErrorsStatus),
		SocketErrors: int64(rep.ErrorsConnect + rep.ErrorsRead + rep.ErrorsWrite),
		Timeouts:     int64(rep.ErrorsTimeout),
		LatencyUS:    rep.LatencyUS,
	}
	if sawNon2x && non2xx != r.Non2xx3xx {
		return r, fmt.Errorf("wrkrun: wrk printed %d non-2xx/3xx responses but the script counted %d", non2xx, r.Non2xx3xx)
	}
	if r.DurationSec > 0 {
		r.RequestsPerS = float64(r.Requests) / r.DurationSec
	}
	if r.Requests > 0 {
		r.BytesPerResp = float64(r.Bytes) / float64(r.Requests)
	}
	return r, nil
}

// ParseSummary reads wrk's own summary, as printed with --latency and no script: requests,
// duration and bytes from "N requests in T, B read", percentiles from the latency distribution,
// errors from the "Socket errors" and "Non-2xx or 3xx responses" lines. The byte count is
// rounded to two decimals of its unit (under 0.1 byte per answer for runs of 10,000 answers or
// more); p99.9, min and mean are not printed by wrk and stay 0.
func ParseSummary(out []byte) (Result, error) {
	var (
		r     Result
		found bool
	)
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	inDist := false
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		f := strings.Fields(line)
		switch {
		case strings.HasPrefix(line, "Latency Distribution"):
			inDist = true
			continue
		case inDist && len(f) == 2 && strings.HasSuffix(f[0], "%"):
			v, err := parseTime(f[1])
			if err != nil {
				return r, fmt.Errorf("wrkrun: bad line %q: %w", line, err)
			}
			switch f[0] {
			case "50%":
				r.LatencyUS.P50 = v
			case "90%":
				r.LatencyUS.P90 = v
			case "99%":
				r.LatencyUS.P99 = v
			}
			continue
		case len(f) >= 5 && f[0] == "Latency":
			avg, err1 := parseTime(f[1])
			sd, err2 := parseTime(f[2])
			mx, err3 := parseTime(f[3])
			if err := errors.Join(err1, err2, err3); err != nil {
				return r, fmt.Errorf("wrkrun: bad line %q: %w", line, err)
			}
			r.LatencyUS.Mean, r.LatencyUS.Stdev, r.LatencyUS.Max = avg, sd, mx
		case len(f) == 6 && f[1] == "requests" && f[2] == "in":
			n, err1 := strconv.ParseInt(f[0], 10, 64)
			d, err2 := parseTime(strings.TrimSuffix(f[3], ","))
			b, err3 := parseBytes(f[4])
			if err := errors.Join(err1, err2, err3); err != nil {
				return r, fmt.Errorf("wrkrun: bad line %q: %w", line, err)
			}
			r.Requests, r.DurationSec, r.Bytes = n, d/1e6, b
			found = true
		case strings.HasPrefix(line, "Socket errors:"):
			// Socket errors: connect 0, read 0, write 0, timeout 0
			var c, rd, w, to int64
			if _, err := fmt.Sscanf(line, "Socket errors: connect %d, read %d, write %d, timeout %d", &c, &rd, &w, &to); err != nil {
				return r, fmt.Errorf("wrkrun: bad line %q: %w", line, err)
			}
			r.SocketErrors, r.Timeouts = c+rd+w, to
		case strings.HasPrefix(line, "Non-2xx or 3xx responses:"):
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimPrefix(line, "Non-2xx or 3xx responses:")), 10, 64)
			if err != nil {
				return r, fmt.Errorf("wrkrun: bad line %q: %w", line, err)
			}
			r.Non2xx3xx = n
		}
		inDist = false
	}
	if !found {
		return r, errors.New("wrkrun: no \"N requests in T, B read\" line in wrk's output")
	}
	if r.DurationSec > 0 {
		r.RequestsPerS = float64(r.Requests) / r.DurationSec
	}
	if r.Requests > 0 {
		r.BytesPerResp = float64(r.Bytes) / float64(r.Requests)
	}
	return r, nil
}

// parseTime reads wrk's durations ("560.00us", "1.20ms", "10.00s", "1.50m") in microseconds.
func parseTime(s string) (float64, error) {
	for _, u := range []struct {
		suffix string
		us     float64
	}{{"us", 1}, {"ms", 1e3}, {"s", 1e6}, {"m", 60e6}, {"h", 3600e6}} {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return 0, err
			}
			return math.Round(f*u.us*100) / 100, nil // 8.03ms is 8030us, not 8029.999...
		}
	}
	return 0, fmt.Errorf("no time unit in %q", s)
}

// parseBytes reads wrk's sizes ("934.00B", "308.55MB"; binary units).
func parseBytes(s string) (int64, error) {
	v, ok := strings.CutSuffix(s, "B")
	if !ok {
		return 0, fmt.Errorf("no byte unit in %q", s)
	}
	scale := 1.0
	for i, u := range []string{"K", "M", "G", "T", "P"} {
		if w, ok := strings.CutSuffix(v, u); ok {
			v, scale = w, float64(int64(1)<<(10*(i+1)))
			break
		}
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return 0, err
	}
	return int64(f*scale + 0.5), nil
}
