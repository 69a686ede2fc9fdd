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

func runSlow(ctx context.Context, cfg Config, rep *Report) error {
	lorises, readers := cfg.slowConns(), cfg.slowConns()/40
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err == nil && rl.Cur < uint64(lorises+readers+512) {
		return fmt.Errorf("slow: %d slow connections need more file descriptors than ulimit -n %d: raise it (ulimit -n 8192)", lorises+readers, rl.Cur)
	}
	phaseLen := cfg.phaseDuration(5 * time.Second)
	const shoppers = 8
	src := NewSources(cfg.Target, shopperBase, shoppers, ClientOptions{MaxConns: 4, Timeout: cfg.Timeout})
	defer src.Close()
	shop := func(row *Row) func(w int, i int64, due time.Time) {
		return func(w int, i int64, due time.Time) {
			id := 1 + rand.IntN(cfg.Products)
			src.Client(w%shoppers).Do(row, Call{Method: "GET", Path: productPath(id), Start: due}, nil)
		}
	}
	// Paced: 8 shoppers at 100 reads/s each, far below the edge's capacity, so the p99 measures
	// what the slow clients do to them, not a saturated machine.
	b := Bounds{Duration: phaseLen, Concurrency: shoppers * 4, Rate: shoppers * 100}
	base := NewRow(ScenarioSlow, "slow/baseline", 200)
	el := phase(ctx, cfg, "slow baseline", b, []*Row{base}, shop(base))
	addRows(rep, el, base)

	fmt.Fprintf(cfg.Out, "slow: opening %d slowloris connections and %d slow readers from %d addresses (%d each)\n",
		lorises, readers, (lorises+readers+slowPerAddr-1)/slowPerAddr, slowPerAddr)
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
			// A slowloris reconnects as soon as the edge closes it, as an attacker would: the
			// edge keeps facing lorises connections for the whole measurement.
			for first := true; attackCtx.Err() == nil; first = false {
				c, err := d.DialContext(attackCtx, "tcp4", cfg.Target.Host)
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
	under := NewRow(ScenarioSlow, "slow/under-attack", 200)
	el = phase(ctx, cfg, "slow under attack", Bounds{Duration: 2 * phaseLen, Concurrency: b.Concurrency, Rate: b.Rate}, []*Row{under}, shop(under))
	addRows(rep, el, under)
	edgeFDs := edgeOpenFiles(cfg)
	// The slow readers are closed at the edge's write timeout (10s); give them until then.
	wait := time.NewTimer(5 * time.Second)
	select {
	case <-wait.C:
	case <-ctx.Done():
	}
	stopAttack()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()

	p99b, p99u := base.Hist().Quantile(0.99), under.Hist().Quantile(0.99)
	ratio := float64(p99u) / float64(max(p99b, time.Microsecond))
	rep.Note(cfg.Out, "slow: shoppers' product reads p50/p99 %s/%s at baseline, %s/%s with %d slowloris + %d slow readers open (edge holding %d descriptors): p99 ratio %.2f; goal <= 2x %s",
		base.Hist().Quantile(0.5).Round(time.Microsecond), p99b.Round(time.Microsecond),
		under.Hist().Quantile(0.5).Round(time.Microsecond), p99u.Round(time.Microsecond),
		lorises, readers, edgeFDs, ratio, verdict(ratio <= 2))
	rep.Note(cfg.Out, "slow: slowloris connections closed by the edge after %s; slow readers after %s; %d dials failed",
		closeSummary(lorisClosed, "slowloris connections"), closeSummary(readerClosed, fmt.Sprintf("of %d slow readers", readers)), refusedDial.Load())
	held, cut := capProbe(ctx, cfg, slowCapProbe)
	rep.Note(cfg.Out, "slow: per-address connection cap: %d connections opened from one address: %d held, %d closed by the edge at once (its default cap: 1024)",
		slowCapProbe, held, cut)
	return nil
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

// edgeOpenFiles counts the spawned edge's open descriptors, 0 when unknown.
func edgeOpenFiles(cfg Config) int {
	if cfg.Pids == nil {
		return 0
	}
	pid, ok := cfg.Pids()["edge"]
	if !ok {
		return 0
	}
	return cpustat.OpenFiles(pid)
}
