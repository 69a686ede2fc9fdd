package compare

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"flashedge/bench/internal/fresh"
	"flashedge/bench/internal/wrkrun"
)

// Report is everything one comparison run measured and how; it is printed and saved as JSON.
type Report struct {
	StartedAt time.Time         `json:"started_at"`
	Machine   Machine           `json:"machine"`
	Tools     map[string]string `json:"tools"`
	Pinning   string            `json:"pinning"`
	Settings  Settings          `json:"settings"`
	WorkDir   string            `json:"work_dir"`
	Servers   []Server          `json:"servers"`
	Rows      []Row             `json:"rows"`
	Peers     []Ratio           `json:"peers"`
	Goals     []Goal            `json:"goals"`
	Freshness *Freshness        `json:"freshness,omitempty"`
	Capacity  *Capacity         `json:"capacity,omitempty"`
	Memory    []Memory          `json:"memory,omitempty"`
	Notes     []string          `json:"notes,omitempty"`
}

// Machine describes where the run happened.
type Machine struct {
	NProc    int    `json:"nproc"`
	CPUModel string `json:"cpu_model"`
	Kernel   string `json:"kernel"`
	GoOSArch string `json:"go_os_arch"`
	Go       string `json:"go"`
}

// Settings are the run's knobs.
type Settings struct {
	Duration    string `json:"duration"`
	Rounds      int    `json:"rounds"`
	Warmup      string `json:"warmup"`
	Threads     int    `json:"wrk_threads"`
	Connections int    `json:"wrk_connections"`
	TTL         string `json:"lrucache_ttl"`
	ProductID   string `json:"product_id"`
	SaleID      string `json:"sale_id"`
}

// Server is a process the run started.
type Server struct {
	Name string   `json:"name"`
	Argv string   `json:"argv"`
	Env  []string `json:"env,omitempty"`
	Log  string   `json:"log,omitempty"`
}

// Row is one wrk measurement.
type Row struct {
	Name           string         `json:"name"`
	Title          string         `json:"title"`
	Skipped        string         `json:"skipped,omitempty"`
	Command        string         `json:"command,omitempty"`
	ProbeStatus    int            `json:"probe_status,omitempty"`
	ProbeBytes     int            `json:"probe_bytes,omitempty"`
	Result         *wrkrun.Result `json:"result,omitempty"`
	Rounds         []Round        `json:"rounds,omitempty"`
	CPU            *CPUUse        `json:"cpu,omitempty"`
	RatioToCeiling *float64       `json:"ratio_to_ceiling,omitempty"`
	// CPURatio is the row's CPU per answer over its ceiling's (CPURatioTo: the GET ceiling for
	// reads, the POST twin for attempts): what a larger machine turns into throughput.
	CPURatio   *float64 `json:"cpu_ratio_to_ceiling,omitempty"`
	CPURatioTo string   `json:"cpu_ratio_to,omitempty"`
	Errors     []string `json:"errors,omitempty"`
	Notes      []string `json:"notes,omitempty"`
}

// Round is one of a row's runs when there were several.
type Round struct {
	RequestsPerS float64 `json:"requests_per_s"`
	P50US        float64 `json:"p50_us"`
	P99US        float64 `json:"p99_us"`
	CPU          *CPUUse `json:"cpu,omitempty"`
}

// CPUUse is how busy the cores were during a run, in percent of one core. ServerCore,
// OtherOnServerCore and LoadCore are set only when pinned.
type CPUUse struct {
	// Servers is the CPU every server process benchrun started (and the store) used.
	Servers float64 `json:"servers_pct"`
	// ServerCore is how busy the servers' core was; OtherOnServerCore the part of it that was
	// not our servers (other processes: the run measured less than a quiet machine gives).
	ServerCore        float64 `json:"server_core_busy_pct,omitempty"`
	OtherOnServerCore float64 `json:"other_on_server_core_pct,omitempty"`
	// LoadCore is how busy wrk's core was (near 100: wrk may be the limit).
	LoadCore float64 `json:"load_core_busy_pct,omitempty"`
	// PerRequestUS is the CPU time (user + system, from /proc) of the processes under test
	// (UnderTest: the server, and the store where the path can touch it) divided by the answers
	// wrk counted, in microseconds. It depends little on how busy the machine is.
	PerRequestUS float64  `json:"cpu_us_per_request,omitempty"`
	UnderTest    []string `json:"under_test,omitempty"`
	// LoadPerRequestUS is wrk's own CPU time per answer, in microseconds.
	LoadPerRequestUS float64 `json:"wrk_cpu_us_per_request,omitempty"`
}

// String formats the use for progress lines.
func (u *CPUUse) String() string {
	if u == nil {
		return ""
	}
	per := ""
	if u.PerRequestUS > 0 {
		per = fmt.Sprintf("; %.2f us CPU per answer (%s)", u.PerRequestUS, strings.Join(u.UnderTest, "+"))
	}
	if u.ServerCore == 0 && u.LoadCore == 0 {
		return fmt.Sprintf("; servers %.0f%% CPU%s", u.Servers, per)
	}
	return fmt.Sprintf("; servers %.0f%% CPU, other processes %.0f%% of the server core, wrk core %.0f%% busy%s",
		u.Servers, u.OtherOnServerCore, u.LoadCore, per)
}

// Ratio compares two rows' requests/s (Value) and CPU per answer (CPU; lower is better).
type Ratio struct {
	Name  string   `json:"name"`
	Title string   `json:"title"`
	Of    string   `json:"of"`
	To    string   `json:"to"`
	Value *float64 `json:"value,omitempty"`
	CPU   *float64 `json:"cpu,omitempty"`
}

// Goal is one target from the tracker, with whether this run met it. Met is nil when a row it
// needs did not run.
type Goal struct {
	Text  string   `json:"text"`
	Value *float64 `json:"value,omitempty"`
	Want  float64  `json:"want"`
	// AtMost: the value must not exceed Want (a cost); otherwise reach it (a rate).
	AtMost bool  `json:"at_most,omitempty"`
	Met    *bool `json:"met,omitempty"`
}

// Freshness is the staleness measurement after product updates.
type Freshness struct {
	// The edges' pass: every edge read while edge 1 takes the updates.
	Updates int            `json:"updates"`
	Method  string         `json:"method,omitempty"`
	Pinning string         `json:"pinning,omitempty"`
	Skipped string         `json:"skipped,omitempty"`
	Results []fresh.Result `json:"results,omitempty"`
	// Push is when the store's invalidation reached a tracking client of benchrun, from the same
	// write answers (negative: before the answer): the store's and the machine's share.
	Push *fresh.Result `json:"push,omitempty"`
	// LoadBefore and LoadAfter are /proc/loadavg (1, 5, 15 min) around the edges' pass.
	LoadBefore string `json:"load_before,omitempty"`
	LoadAfter  string `json:"load_after,omitempty"`
	// The peer's pass: edge 1 against the nginx+lua+lrucache peer, updates spread over its TTL.
	PeerUpdates int            `json:"peer_updates"`
	PeerMethod  string         `json:"peer_method,omitempty"`
	PeerSkipped string         `json:"peer_skipped,omitempty"`
	Peer        []fresh.Result `json:"peer,omitempty"`
}

// FreshGoalMS is issue 11's freshness goal: p99 at every edge.
const FreshGoalMS = 5.0

func (rep *Report) row(name string) *Row {
	for i := range rep.Rows {
		if rep.Rows[i].Name == name && rep.Rows[i].Result != nil && rep.Rows[i].Result.RequestsPerS > 0 {
			return &rep.Rows[i]
		}
	}
	return nil
}

func (rep *Report) ratio(of, to string) *float64 {
	a, b := rep.row(of), rep.row(to)
	if a == nil || b == nil {
		return nil
	}
	v := a.Result.RequestsPerS / b.Result.RequestsPerS
	return &v
}

// cpuRatio is row of's CPU per answer over row to's (lower is better).
func (rep *Report) cpuRatio(of, to string) *float64 {
	a, b := rep.row(of), rep.row(to)
	if a == nil || b == nil || a.CPU == nil || b.CPU == nil || a.CPU.PerRequestUS == 0 || b.CPU.PerRequestUS == 0 {
		return nil
	}
	v := a.CPU.PerRequestUS / b.CPU.PerRequestUS
	return &v
}

// ceilingOf is the ceiling a row's CPU is compared with: the POST twin for the attempt rows.
func ceilingOf(row string) string {
	switch row {
	case RowCeilingPost, RowEdgeSoldOut, RowNginxSoldOut, RowNginxLRUSoldOut:
		return RowCeilingPost
	}
	return RowCeiling
}

// finish computes the ratios and goals from the rows.
func (rep *Report) finish() {
	for i := range rep.Rows {
		if rep.Rows[i].Result != nil {
			to := ceilingOf(rep.Rows[i].Name)
			rep.Rows[i].RatioToCeiling = rep.ratio(rep.Rows[i].Name, to)
			rep.Rows[i].CPURatio, rep.Rows[i].CPURatioTo = rep.cpuRatio(rep.Rows[i].Name, to), to
		}
	}
	rep.Peers = nil
	for _, p := range []struct{ of, to, title string }{
		{RowEdgeProduct, RowNginxProduct, "edge product read / nginx+lua (store read per request)"},
		{RowEdgeProduct, RowNginxLRUProduct, "edge product read / nginx+lua+lrucache"},
		{RowEdgeSoldOut, RowNginxSoldOut, "edge sold-out answer / nginx+lua (store read per request)"},
		{RowEdgeSoldOut, RowNginxLRUSoldOut, "edge sold-out answer / nginx+lua+lrucache"},
		{RowEdgeProduct, RowEdgeNoMetrics, "edge product read with request metrics / without (issue 7: >= 0.95)"},
	} {
		rep.Peers = append(rep.Peers, Ratio{Name: p.of + "/" + p.to, Title: p.title, Of: p.of, To: p.to,
			Value: rep.ratio(p.of, p.to), CPU: rep.cpuRatio(p.of, p.to)})
	}
	rep.Goals = nil
	// Issue 13: CPU per answer, which a bigger machine turns into throughput (lower is better).
	for _, g := range []struct {
		text   string
		of, to string
		want   float64
	}{
		{"edge product read CPU per answer <= 1.15 x ceiling", RowEdgeProduct, RowCeiling, 1.15},
		{"edge product read CPU per answer <= 1.0 x nginx+lua+lrucache", RowEdgeProduct, RowNginxLRUProduct, 1.0},
		{"edge sold-out answer CPU per answer <= 1.2 x POST ceiling", RowEdgeSoldOut, RowCeilingPost, 1.2},
	} {
		goal := Goal{Text: g.text, Want: g.want, Value: rep.cpuRatio(g.of, g.to), AtMost: true}
		if goal.Value != nil {
			met := *goal.Value <= g.want
			goal.Met = &met
		}
		rep.Goals = append(rep.Goals, goal)
	}
	for _, g := range []struct {
		text   string
		of, to string
		want   float64
	}{
		{"edge product read >= 0.9 x ceiling", RowEdgeProduct, RowCeiling, 0.9},
		{"edge sold-out answer >= 0.9 x ceiling", RowEdgeSoldOut, RowCeiling, 0.9},
		{"edge product read >= 3.5 x nginx+lua (store read per request)", RowEdgeProduct, RowNginxProduct, 3.5},
		{"edge sold-out answer >= 3.5 x nginx+lua (store read per request)", RowEdgeSoldOut, RowNginxSoldOut, 3.5},
		{"edge product read >= 1.0 x nginx+lua+lrucache", RowEdgeProduct, RowNginxLRUProduct, 1.0},
		{"edge sold-out answer >= 1.0 x nginx+lua+lrucache", RowEdgeSoldOut, RowNginxLRUSoldOut, 1.0},
		{"edge product read with request metrics >= 0.95 x without", RowEdgeProduct, RowEdgeNoMetrics, 0.95},
	} {
		goal := Goal{Text: g.text, Want: g.want, Value: rep.ratio(g.of, g.to)}
		if goal.Value != nil {
			met := *goal.Value >= g.want
			goal.Met = &met
		}
		rep.Goals = append(rep.Goals, goal)
	}
	for _, m := range rep.Memory {
		if m.Products == 10_000 {
			v, met := m.RSSMiB, m.RSSMiB <= 64 && m.Failed == 0
			rep.Goals = append(rep.Goals, Goal{Text: "edge RSS with 10,000 products cached <= 64 MiB", Value: &v, Want: 64, AtMost: true, Met: &met})
		}
	}
	if c := rep.Capacity; c != nil && c.Skipped == "" && c.MeasuredRPS > 0 {
		v := c.Ratio
		met := len(c.Errors) == 0 && v >= 1-CapacityGoal && v <= 1+CapacityGoal
		rep.Goals = append(rep.Goals, Goal{Text: fmt.Sprintf("capacity model's prediction for %d cores within %.0f %% of the measured throughput (issue 11; ratio measured / predicted)", c.Cores, 100*CapacityGoal),
			Value: &v, Want: 1, Met: &met})
	}
	if f := rep.Freshness; f != nil && len(f.Results) > 0 {
		worst := f.Results[0]
		met := true
		for _, e := range f.Results {
			if e.P99MS > worst.P99MS {
				worst = e
			}
			met = met && e.Count > 0 && e.Timeouts == 0 && e.P99MS <= FreshGoalMS
		}
		v := worst.P99MS
		rep.Goals = append(rep.Goals, Goal{Text: fmt.Sprintf("freshness p99 <= %.0f ms at every one of %d edges (issue 11; load average %s)", FreshGoalMS, len(f.Results), f.LoadAfter),
			Value: &v, Want: FreshGoalMS, AtMost: true, Met: &met})
	}
	if f := rep.Freshness; f != nil && len(f.Peer) == 2 && f.Peer[0].Count > 0 {
		edge, lru := f.Peer[0], f.Peer[1]
		v := edge.P99MS
		met := edge.Timeouts == 0 && (lru.Count == 0 || edge.P99MS < lru.P99MS)
		rep.Goals = append(rep.Goals, Goal{Text: fmt.Sprintf("edge fresher than nginx+lua+lrucache (edge p99 %.1f ms vs %.1f ms)", edge.P99MS, lru.P99MS),
			Value: &v, Want: lru.P99MS, Met: &met})
	}
}

// Print writes the human-readable report.
func (rep *Report) Print(w io.Writer) {
	m := rep.Machine
	fmt.Fprintf(w, "\n== flashedge bench, %s ==\n", rep.StartedAt.Format(time.RFC3339))
	fmt.Fprintf(w, "machine: %d CPUs, %s, Linux %s, %s, %s\n", m.NProc, m.CPUModel, m.Kernel, m.GoOSArch, m.Go)
	fmt.Fprintf(w, "tools:   %s\n", joinTools(rep.Tools))
	fmt.Fprintf(w, "pinning: %s\n", rep.Pinning)
	s := rep.Settings
	fmt.Fprintf(w, "wrk:     -t%d -c%d, %s per row after a %s warm-up, %d round(s); product %s, sale %s\n",
		s.Threads, s.Connections, s.Duration, s.Warmup, s.Rounds, s.ProductID, s.SaleID)
	fmt.Fprintln(w, "servers:")
	for _, sv := range rep.Servers {
		fmt.Fprintf(w, "  %-8s %s\n", sv.Name, sv.Argv)
		if len(sv.Env) > 0 {
			fmt.Fprintf(w, "  %-8s env %s\n", "", strings.Join(sv.Env, " "))
		}
	}
	fmt.Fprintln(w, "\nrows:")
	const rowFmt = "  %-44s %10s %8s %8s %9s %8s %8s %6s %5s %6s %5s  %s\n"
	fmt.Fprintf(w, rowFmt, "row", "requests/s", "p50", "p99", "x ceiling", "cpu/req", "cpu x c", "bytes", "srv%", "other%", "wrk%", "status")
	for _, r := range rep.Rows {
		if r.Result == nil {
			fmt.Fprintf(w, rowFmt, r.Title, "-", "-", "-", "-", "-", "-", "-", "-", "-", "-", "skipped")
			continue
		}
		status := "ok"
		if len(r.Errors) > 0 {
			status = "ERRORS"
		}
		srv, other, load, per := "-", "-", "-", "-"
		if c := r.CPU; c != nil {
			srv = fmt.Sprintf("%.0f", c.Servers)
			if c.PerRequestUS > 0 {
				per = fmt.Sprintf("%.2fus", c.PerRequestUS)
			}
			if c.ServerCore > 0 || c.LoadCore > 0 {
				other, load = fmt.Sprintf("%.0f", c.OtherOnServerCore), fmt.Sprintf("%.0f", c.LoadCore)
			}
		}
		fmt.Fprintf(w, rowFmt, r.Title, fmt.Sprintf("%.0f", r.Result.RequestsPerS), us(r.Result.LatencyUS.P50),
			us(r.Result.LatencyUS.P99), ratio(r.RatioToCeiling), per, ratio(r.CPURatio), fmt.Sprintf("%.0f", r.Result.BytesPerResp), srv, other, load, status)
	}
	fmt.Fprintln(w, "  x ceiling: requests/s over the ceiling's (the POST twin for attempts); cpu/req: CPU time (user+system)")
	fmt.Fprintln(w, "  of the processes under test per answer (the server; the store too for edge and nginx rows);")
	fmt.Fprintln(w, "  cpu x c: that over the ceiling's cpu/req (lower is better; what a larger machine turns into throughput).")
	fmt.Fprintln(w, "  bytes: average answer size on the wire; srv%: CPU of every server started and the store (100 = one core);")
	fmt.Fprintln(w, "  other%: other processes on the server core (should be near 0); wrk%: how busy wrk's core was.")
	if s.Rounds > 1 {
		fmt.Fprintln(w, "  Each row shows its median round among those least disturbed by other processes (other% within 5 of the least).")
	}
	fmt.Fprintln(w)
	for _, r := range rep.Rows {
		switch {
		case r.Skipped != "":
			fmt.Fprintf(w, "  %s skipped: %s\n", r.Name, r.Skipped)
		default:
			fmt.Fprintf(w, "  %s: %s\n", r.Name, r.Command)
			if len(r.Rounds) > 0 {
				var parts []string
				for _, rd := range r.Rounds {
					p := fmt.Sprintf("%.0f", rd.RequestsPerS)
					if rd.CPU != nil && rd.CPU.PerRequestUS > 0 {
						p += fmt.Sprintf(" %.2fus/req", rd.CPU.PerRequestUS)
					}
					if rd.CPU != nil && (rd.CPU.ServerCore > 0 || rd.CPU.LoadCore > 0) {
						p += fmt.Sprintf(" (other %.0f%%)", rd.CPU.OtherOnServerCore)
					}
					parts = append(parts, p)
				}
				fmt.Fprintf(w, "    requests/s by round: %s\n", strings.Join(parts, ", "))
			}
		}
		for _, e := range r.Errors {
			fmt.Fprintf(w, "    ERROR: %s\n", e)
		}
		for _, n := range r.Notes {
			fmt.Fprintf(w, "    note: %s\n", n)
		}
	}
	fmt.Fprintln(w, "\npeers:")
	fmt.Fprintf(w, "  %-70s %9s %9s\n", "", "req/s", "cpu/req")
	for _, p := range rep.Peers {
		fmt.Fprintf(w, "  %-70s %9s %9s\n", p.Title, ratio(p.Value), ratio(p.CPU))
	}
	if c := rep.Capacity; c != nil {
		printCapacity(w, c)
	}
	if f := rep.Freshness; f != nil {
		fmt.Fprintln(w, "\nfreshness after a product update:")
		if f.Skipped != "" {
			fmt.Fprintf(w, "  skipped: %s\n", f.Skipped)
		} else {
			fmt.Fprintf(w, "  %s\n", f.Method)
			fmt.Fprintf(w, "  load average (1, 5, 15 min): %s before, %s after\n", f.LoadBefore, f.LoadAfter)
			printFresh(w, f.Results)
			if p := f.Push; p != nil {
				printFresh(w, []fresh.Result{*p})
			}
		}
		switch {
		case f.PeerSkipped != "":
			fmt.Fprintf(w, "  against the peer: skipped: %s\n", f.PeerSkipped)
		case len(f.Peer) > 0:
			fmt.Fprintf(w, "  against the peer: %s\n", f.PeerMethod)
			printFresh(w, f.Peer)
		}
	}
	if len(rep.Memory) > 0 {
		fmt.Fprintln(w, "\nedge memory (VmRSS) with distinct products cached, each read once through the edge, then through the nginx + Lua + lrucache peer (master + worker PSS: shared pages counted once):")
		for _, m := range rep.Memory {
			fmt.Fprintf(w, "  %7d products: edge %6.1f MiB (%.1f MiB before; %d reads, %d failed; %.1f µs CPU per read, edge + store)\n",
				m.Products, m.RSSMiB, m.BeforeMiB, m.Reads, m.Failed, m.CPUPerReadUS)
			if p := m.Peer; p != nil {
				fmt.Fprintf(w, "  %7s           nginx %6.1f MiB (%.1f MiB before; %d reads, %d failed; %.1f µs CPU per read, nginx + store; lrucache of %d items); edge / nginx %.2fx\n",
					"", p.RSSMiB, p.BeforeMiB, p.Reads, p.Failed, p.CPUPerReadUS, p.CacheItems, m.RSSRatio)
			}
		}
	}
	fmt.Fprintln(w, "\ngoals:")
	for _, g := range rep.Goals {
		state := "n/a (a row did not run)"
		if g.Met != nil {
			state = "NOT met"
			if *g.Met {
				state = "met"
			}
		}
		if g.Value != nil && !strings.HasPrefix(g.Text, "edge fresher") && !strings.HasPrefix(g.Text, "freshness") {
			state = fmt.Sprintf("%s (%.2f)", state, *g.Value)
		}
		fmt.Fprintf(w, "  goal: %s: %s\n", g.Text, state)
	}
	if len(rep.Notes) > 0 {
		fmt.Fprintln(w, "\nnotes:")
		for _, n := range rep.Notes {
			fmt.Fprintf(w, "  %s\n", n)
		}
	}
}

func printFresh(w io.Writer, rs []fresh.Result) {
	for _, r := range rs {
		poll := ""
		if r.PollMS > 0 {
			poll = fmt.Sprintf(", a read every %.2f ms", r.PollMS)
		}
		fmt.Fprintf(w, "  %-44s p50 %7.2f ms  p99 %7.2f ms  max %7.2f ms  (%d samples, %d missed the deadline%s)\n",
			r.Name, r.P50MS, r.P99MS, r.MaxMS, r.Count, r.Timeouts, poll)
	}
}

// WriteJSON saves the report, creating the directory.
func (rep *Report) WriteJSON(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func ratio(v *float64) string {
	if v == nil {
		return "n/a"
	}
	return fmt.Sprintf("%.2fx", *v)
}

func us(v float64) string {
	if v >= 1000 {
		return fmt.Sprintf("%.2fms", v/1000)
	}
	return fmt.Sprintf("%.0fus", v)
}

func joinTools(t map[string]string) string {
	var parts []string
	for _, k := range []string{"wrk", "nginx", "redis-server"} {
		if v, ok := t[k]; ok {
			parts = append(parts, v)
		}
	}
	return strings.Join(parts, "; ")
}

func describeMachine() Machine {
	m := Machine{NProc: runtime.NumCPU(), GoOSArch: runtime.GOOS + "/" + runtime.GOARCH, Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

// toolVersions asks each tool for its version (first line of its output).
func toolVersions() map[string]string {
	out := map[string]string{}
	for _, t := range []struct {
		name string
		args []string
	}{{"wrk", []string{"-v"}}, {"nginx", []string{"-v"}}, {"redis-server", []string{"--version"}}} {
		b, _ := exec.Command(t.name, t.args...).CombinedOutput() // wrk -v exits 1
		if line, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n"); line != "" {
			out[t.name] = line
		}
	}
	return out
}
