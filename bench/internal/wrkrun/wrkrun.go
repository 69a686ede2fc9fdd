// Package wrkrun runs wrk with a script that prints a WRK_REPORT line (bench/wrk/*.lua) and
// parses its output.
package wrkrun

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
	// Script is the path of the Lua script (-s). Required.
	Script string
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
	return append(argv, "wrk", "-t"+strconv.Itoa(o.Threads), "-c"+strconv.Itoa(o.Connections),
		"-d"+formatDuration(o.Duration), "-s", o.Script, o.URL)
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
// against wrk's own "Non-2xx or 3xx responses" line.
func Parse(out []byte) (Result, error) {
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
