package load

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"flashedge/bench/internal/cpustat"
	"flashedge/bench/internal/nginxpeer"
)

// ScenarioSlow measures slow clients (issue 15): shoppers reading products get a baseline p99,
// then 2,000 slowloris connections (a request line and headers sent one byte a second, each
// reopened when the edge closes it) and 50 slow readers (catalog pages pipelined in batches,
// answers read a few bytes a second) are opened from many
// loopback addresses, so the edge's per-address connection cap is not what stops them; the
// shoppers' p99 meanwhile is compared with the baseline (goal: at most 2x), and the tool
// records when the edge closed each slow connection (goal: the slowloris ones at its read
// timeout, 5s; the slow readers at its write timeout, 10s).
const ScenarioSlow = "slow"

// slowBase is where the slow clients' addresses start: 127.50.0.1 up, 10 connections each.
const (
	slowBase    = 127<<24 | 50<<16 | 1
	slowPerAddr = 10
	// slowReadTimeout is the edge's read timeout (gateway.ReadTimeout), after which it closes a
	// slowloris connection.
	slowReadTimeout = 5 * time.Second
)

// SlowReport is the slow scenario's account: the edge's round and the nginx peer's.
type SlowReport struct {
	Method string      `json:"method"`
	Rounds []SlowRound `json:"rounds"`
	// CapHeld and CapCut are the per-address cap probe at the edge: of CapProbe connections
	// from one address, those held and those closed at once.
	CapProbe int `json:"cap_probe"`
	CapHeld  int `json:"cap_held"`
	CapCut   int `json:"cap_cut"`
}

// SlowRound is one server's shoppers at baseline and under the attack.
type SlowRound struct {
	Name string `json:"name"`
	// Shoppers' product reads: p50 and p99 at baseline and with the slow clients open, and the
	// ratio of the p99s (goal for the edge: <= 2).
	BaseP50US   float64 `json:"baseline_p50_us"`
	BaseP99US   float64 `json:"baseline_p99_us"`
	AttackP50US float64 `json:"attack_p50_us"`
	AttackP99US float64 `json:"attack_p99_us"`
	P99Ratio    float64 `json:"p99_ratio"`
	// CPU time of the server's processes (every process of the spawned stack; nginx and the
	// store) per shopper's read answered 200, at baseline and under the attack (the attack's own
	// cost included: that is what holding the slow clients costs per useful answer).
	BaseCPUPerReadUS   float64 `json:"baseline_cpu_per_read_us,omitempty"`
	AttackCPUPerReadUS float64 `json:"attack_cpu_per_read_us,omitempty"`
	// When the server closed the slow connections, and the dials that failed.
	LorisClosed  string `json:"slowloris_closed"`
	ReaderClosed string `json:"slow_readers_closed"`
	DialsFailed  int64  `json:"dials_failed"`
	// OpenFiles is the server's descriptors under the attack (0: unknown).
	OpenFiles int        `json:"open_files,omitempty"`
	LoadAvg   [2]float64 `json:"load_avg"`
	Skipped   string     `json:"skipped,omitempty"`
}

// WriteSlow prints the slow scenario's rounds and the ratios.
func WriteSlow(w io.Writer, sr *SlowReport) {
	fmt.Fprintln(w, "slow clients:", sr.Method)
	fmt.Fprintf(w, "  %-26s %9s %9s %9s %9s %7s %11s %11s  %s\n", "server", "base p50", "base p99", "atk p50", "atk p99", "ratio", "CPU/read µs", "atk CPU µs", "closed; load avg")
	for _, r := range sr.Rounds {
		if r.Skipped != "" {
			fmt.Fprintf(w, "  %-26s skipped: %s\n", r.Name, r.Skipped)
			continue
		}
		fmt.Fprintf(w, "  %-26s %9.2f %9.2f %9.2f %9.2f %6.2fx %11.1f %11.1f  slowloris %s; slow readers %s; %d dials failed; load %.2f -> %.2f\n",
			r.Name, r.BaseP50US/1000, r.BaseP99US/1000, r.AttackP50US/1000, r.AttackP99US/1000, r.P99Ratio, r.BaseCPUPerReadUS, r.AttackCPUPerReadUS,
			r.LorisClosed, r.ReaderClosed, r.DialsFailed, r.LoadAvg[0], r.LoadAvg[1])
	}
	fmt.Fprintln(w, "  (ms; ratio = attacked p99 / baseline p99, goal <= 2x for the edge; CPU per shopper's read answered, the attack's cost included)")
	if sr.CapProbe > 0 {
		fmt.Fprintf(w, "  edge per-address cap: %d connections from one address: %d held, %d closed at once\n", sr.CapProbe, sr.CapHeld, sr.CapCut)
	}
}

// slowTarget is what one round attacks: where the shoppers read products, what a slow reader
// pipelines, and the processes whose CPU is counted.
type slowTarget struct {
	name   string
	target Target
	cpu    func() map[string]time.Duration
	pid    func() int
}

func runSlow(ctx context.Context, cfg Config, rep *Report) error {
	lorises, readers := cfg.slowConns(), cfg.slowConns()/40
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err == nil && rl.Cur < uint64(lorises+readers+512) {
		return fmt.Errorf("slow: %d slow connections need more file descriptors than ulimit -n %d: raise it (ulimit -n 8192)", lorises+readers, rl.Cur)
	}
	sr := &SlowReport{Method: fmt.Sprintf("8 shoppers read products at 800/s for %s (baseline), then for twice that with %d slowloris connections (reopened when closed) and %d slow readers "+
		"open from %d loopback addresses (%d each); the edge, then the nginx + Lua + lrucache product read (1 s TTL, client_header_timeout 5s and send_timeout 10s like the edge's read and "+
		"write timeouts; its catalog pages, which the slow readers ask for, are rendered from one MGET and kept in the lrucache)",
		cfg.phaseDuration(5*time.Second), lorises, readers, (lorises+readers+slowPerAddr-1)/slowPerAddr, slowPerAddr)}
	rep.Slow = sr
	edge := slowTarget{name: "edge", target: cfg.Target, cpu: cfg.CPUByProcess,
		pid: func() int {
			if cfg.Pids == nil {
				return 0
			}
			return cfg.Pids()["edge"]
		}}
	round, err := slowRound(ctx, cfg, rep, edge, lorises, readers)
	if err != nil {
		return err
	}
	sr.Rounds = append(sr.Rounds, round)
	rep.Note(cfg.Out, "slow: edge: shoppers' product reads p50/p99 %.2f/%.2f ms at baseline, %.2f/%.2f ms with %d slowloris + %d slow readers open (edge holding %d descriptors): p99 ratio %.2f; goal <= 2x %s",
		round.BaseP50US/1000, round.BaseP99US/1000, round.AttackP50US/1000, round.AttackP99US/1000, lorises, readers, round.OpenFiles, round.P99Ratio, verdict(round.P99Ratio <= 2))
	rep.Note(cfg.Out, "slow: edge: slowloris connections closed after %s; slow readers after %s; %d dials failed", round.LorisClosed, round.ReaderClosed, round.DialsFailed)
	sr.CapProbe = slowCapProbe
	sr.CapHeld, sr.CapCut = capProbe(ctx, cfg, slowCapProbe)
	rep.Note(cfg.Out, "slow: per-address connection cap: %d connections opened from one address: %d held, %d closed by the edge at once (its default cap: 1024)",
		slowCapProbe, sr.CapHeld, sr.CapCut)

	peer, _, skipped := startPeer(ctx, cfg, "slow", nginxpeer.Config{})
	if peer == nil {
		sr.Rounds = append(sr.Rounds, SlowRound{Name: "nginx + Lua + lrucache", Skipped: skipped})
		rep.Note(cfg.Out, "slow: no nginx + Lua peer: %s", skipped)
		return nil
	}
	defer peer.Stop()
	fmt.Fprintf(cfg.Out, "slow: the same attack against the nginx + Lua + lrucache product read on %s\n", peer.LRUBase)
	pr, err := slowRound(ctx, cfg, rep, slowTarget{name: "nginx + Lua + lrucache", target: peer.lru, cpu: peer.cpu(cfg), pid: peer.Pid}, lorises, readers)
	if err != nil {
		return err
	}
	sr.Rounds = append(sr.Rounds, pr)
	rep.Note(cfg.Out, "slow: nginx: shoppers' p99 %.2f ms at baseline, %.2f ms under the attack: ratio %.2f (the edge's %.2f); slowloris closed after %s; slow readers after %s",
		pr.BaseP99US/1000, pr.AttackP99US/1000, pr.P99Ratio, round.P99Ratio, pr.LorisClosed, pr.ReaderClosed)
	return nil
}

// cpuSum is the total of a CPU-by-process reading (0 when cpu is nil).
func cpuSum(cpu func() map[string]time.Duration) time.Duration {
	if cpu == nil {
		return 0
	}
	var t time.Duration
	for _, d := range cpu() {
		t += d
	}
	return t
}

// perRead is d per answered read in µs, 0 without reads or CPU figures.
func perRead(d time.Duration, reads int64) float64 {
	if reads <= 0 || d <= 0 {
		return 0
	}
	return round1(float64(d.Microseconds()) / float64(reads))
}

// slowRound measures the shoppers at baseline, opens the slow clients against t, measures the
// shoppers again and records when t closed the slow connections.
func slowRound(ctx context.Context, cfg Config, rep *Report, t slowTarget, lorises, readers int) (SlowRound, error) {
	round := SlowRound{Name: t.name}
	round.LoadAvg[0] = loadAvg()
	phaseLen := cfg.phaseDuration(5 * time.Second)
	const shoppers = 8
	src := NewSources(t.target, shopperBase, shoppers, ClientOptions{MaxConns: 4, Timeout: cfg.Timeout})
	defer src.Close()
	shop := func(row *Row) func(w int, i int64, due time.Time) {
		return func(w int, i int64, due time.Time) {
			id := 1 + rand.IntN(cfg.Products)
			src.Client(w%shoppers).Do(row, Call{Method: "GET", Path: productPath(id), Start: due}, nil)
		}
	}
	prefix := "slow/"
	if t.name != "edge" {
		prefix = "slow-peer/"
	}
	// Paced: 8 shoppers at 100 reads/s each, far below the server's capacity, so the p99 measures
	// what the slow clients do to them, not a saturated machine.
	b := Bounds{Duration: phaseLen, Concurrency: shoppers * 4, Rate: shoppers * 100}
	base := NewRow(ScenarioSlow, prefix+"baseline", 200)
	c0 := cpuSum(t.cpu)
	el := phase(ctx, cfg, prefix+"baseline", b, []*Row{base}, shop(base))
	round.BaseCPUPerReadUS = perRead(cpuSum(t.cpu)-c0, base.Status(200))
	addRows(rep, el, base)

	fmt.Fprintf(cfg.Out, "slow: opening %d slowloris connections and %d slow readers against %s from %d addresses (%d each)\n",
		lorises, readers, t.name, (lorises+readers+slowPerAddr-1)/slowPerAddr, slowPerAddr)
	attackCtx, stopAttack := context.WithCancel(ctx)
	defer stopAttack()
	var wg sync.WaitGroup
	var (
		mu                        sync.Mutex
		lorisClosed, readerClosed []time.Duration
		dialed, refusedDial       atomic.Int64
	)
	note := func(to *[]time.Duration, d time.Duration) {
		if d > 0 {
			mu.Lock()
			*to = append(*to, d)
			mu.Unlock()
		}
	}
	for k := range lorises + readers {
		wg.Go(func() {
			// The slowloris connections are opened evenly over one read timeout, as a lasting
			// attack keeps them: all at once, every one would time out and reconnect in the same
			// instant, every 5s, and the shoppers would measure that burst of 2,000 closes and
			// dials rather than what holding the connections costs (SlowSync keeps the burst).
			if k < lorises && !cfg.SlowSync {
				if sleepCtx(attackCtx, time.Duration(k)*slowReadTimeout/time.Duration(lorises)) != nil {
					return
				}
			}
			ip := SourceAddr(slowBase, k/slowPerAddr)
			d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: ip}}
			// A slowloris reconnects as soon as the server closes it, as an attacker would: the
			// server keeps facing lorises connections for the whole measurement.
			for first := true; attackCtx.Err() == nil; first = false {
				c, err := d.DialContext(attackCtx, "tcp4", t.target.Host)
				if first {
					dialed.Add(1)
				}
				if err != nil {
					refusedDial.Add(1)
					if sleepCtx(attackCtx, 100*time.Millisecond) != nil {
						return
					}
					continue
				}
				opened := time.Now()
				if k < lorises {
					note(&lorisClosed, slowloris(attackCtx, c, opened))
					c.Close()
					continue
				}
				note(&readerClosed, slowReader(attackCtx, c, opened))
				c.Close()
				return
			}
		})
	}
	for dialed.Load() < int64(lorises+readers) && ctx.Err() == nil {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second) // the connections are open and trickling
	under := NewRow(ScenarioSlow, prefix+"under-attack", 200)
	c1 := cpuSum(t.cpu)
	el = phase(ctx, cfg, prefix+"under attack", Bounds{Duration: 2 * phaseLen, Concurrency: b.Concurrency, Rate: b.Rate}, []*Row{under}, shop(under))
	round.AttackCPUPerReadUS = perRead(cpuSum(t.cpu)-c1, under.Status(200))
	addRows(rep, el, under)
	if pid := t.pid(); pid > 0 {
		round.OpenFiles = cpustat.OpenFiles(pid)
	}
	// The slow readers are closed at the server's write timeout (10s); give them until then.
	wait := time.NewTimer(5 * time.Second)
	select {
	case <-wait.C:
	case <-ctx.Done():
	}
	stopAttack()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if err := ctx.Err(); err != nil {
		return round, err
	}
	p99b, p99u := base.Hist().Quantile(0.99), under.Hist().Quantile(0.99)
	round.BaseP50US, round.BaseP99US = us(base.Hist().Quantile(0.5)), us(p99b)
	round.AttackP50US, round.AttackP99US = us(under.Hist().Quantile(0.5)), us(p99u)
	round.P99Ratio = round2(float64(p99u) / float64(max(p99b, time.Microsecond)))
	round.LorisClosed = closeSummary(lorisClosed, "slowloris connections")
	round.ReaderClosed = closeSummary(readerClosed, fmt.Sprintf("of %d slow readers", readers))
	round.DialsFailed = refusedDial.Load()
	round.LoadAvg[1] = loadAvg()
	return round, nil
}

// slowCapProbe is how many connections capProbe opens from one address: more than the edge's
// default per-address cap (1024).
const slowCapProbe = 1100

// capProbe opens n idle connections from one loopback address of its own and counts those the
// edge keeps open and those it closes at once (over its per-address cap); it closes them all.
func capProbe(ctx context.Context, cfg Config, n int) (held, cut int) {
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: SourceAddr(slowBase|1<<16, 0)}}
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range n {
		c, err := d.DialContext(ctx, "tcp4", cfg.Target.Host)
		if err != nil {
			cut++
			continue
		}
		conns = append(conns, c)
	}
	// A connection over the cap is closed as soon as it is accepted: its read ends at once. One
	// the edge holds stays silent until the deadline (an idle connection, far below any timeout).
	var wg sync.WaitGroup
	var open atomic.Int64
	deadline := time.Now().Add(time.Second)
	for _, c := range conns {
		wg.Go(func() {
			c.SetReadDeadline(deadline)
			if _, err := c.Read(make([]byte, 1)); err != nil {
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					open.Add(1)
				}
			}
		})
	}
	wg.Wait()
	held = int(open.Load())
	return held, n - held
}

func (c Config) slowConns() int {
	if c.Users > 0 {
		return c.Users
	}
	return 2000
}

// slowloris sends a request's first bytes, then one more header byte a second, until the edge
// closes the connection (or ctx ends: 0 returned); it returns when the edge closed it.
func slowloris(ctx context.Context, c net.Conn, opened time.Time) time.Duration {
	closed := watchClose(c, opened)
	if _, err := io.WriteString(c, "GET /api/v1/products/00000001 HTTP/1.1\r\nHost: edge\r\nX-Slow: "); err != nil {
		return time.Since(opened)
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case d := <-closed:
			return d
		case <-ctx.Done():
			return 0
		case <-t.C:
			c.SetWriteDeadline(time.Now().Add(time.Second))
			c.Write([]byte{'a'})
		}
	}
}

// slowReaderBatch is how many catalog pages a slow reader asks for at a time: their answers
// (tens of KiB each) are more than the socket buffers on both sides hold, so the edge's write
// blocks until its write timeout.
const slowReaderBatch = 256

// slowReader pipelines catalog pages, a batch of slowReaderBatch requests a second, and reads
// their answers a few bytes a second from a small receive buffer, so the edge's writes block once
// the socket buffers are full; it returns when the edge closed the connection (a write then
// fails), 0 when ctx ended first. The requests go out in one write per batch: a loop of small
// writes costs this process a core while the buffers fill (megabytes of 60-byte writes), and
// the shoppers measured beside it would then wait for the generator, not the edge.
func slowReader(ctx context.Context, c net.Conn, opened time.Time) time.Duration {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetReadBuffer(2048)
	}
	closed := make(chan time.Duration, 1)
	go func() {
		batch := bytes.Repeat([]byte("GET /api/v1/products?limit=100 HTTP/1.1\r\nHost: edge\r\n\r\n"), slowReaderBatch)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			c.SetWriteDeadline(time.Now().Add(time.Second))
			if _, err := c.Write(batch); err != nil {
				if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
					closed <- time.Since(opened)
					return
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	buf := make([]byte, 16)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case d := <-closed:
			return d
		case <-ctx.Done():
			return 0
		case <-t.C:
			c.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
			c.Read(buf)
		}
	}
}

// watchClose reads c until the peer closes it (any answer is read and dropped) and sends the
// time since opened.
func watchClose(c net.Conn, opened time.Time) <-chan time.Duration {
	ch := make(chan time.Duration, 1)
	go func() {
		_, _ = io.Copy(io.Discard, c)
		ch <- time.Since(opened)
	}()
	return ch
}

// closeSummary describes the times after which the edge closed connections.
func closeSummary(ds []time.Duration, what string) string {
	if len(ds) == 0 {
		return "none closed"
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	q := func(p float64) time.Duration {
		return ds[min(len(ds)-1, int(p*float64(len(ds))))].Round(10 * time.Millisecond)
	}
	return fmt.Sprintf("min %s, p50 %s, max %s (%d %s)", ds[0].Round(10*time.Millisecond), q(0.5), ds[len(ds)-1].Round(10*time.Millisecond), len(ds), what)
}
