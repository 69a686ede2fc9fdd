package load

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"flashedge/bench/internal/nginxpeer"
	"flashedge/shared/kv"
)

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func productPath(id int) string { return fmt.Sprintf("/api/v1/products/%08d", id) }

// workerRand is a worker's own deterministic random source.
func workerRand(seed uint64, worker int) *rand.Rand {
	return rand.New(rand.NewPCG(seed, uint64(worker)+1))
}

// loginAll logs in n shoppers named "<prefix>-u<i>" with up to conc logins in flight and returns
// their session tokens. Every login must succeed.
func loginAll(ctx context.Context, c *Client, cfg Config, row *Row, prefix string, n, conc int) ([]string, error) {
	return loginFrom(ctx, func(int64) *Client { return c }, cfg, row, prefix, n, conc)
}

// loginFrom is loginAll with shopper i logging in through client(i) (its own source address).
func loginFrom(ctx context.Context, client func(i int64) *Client, cfg Config, row *Row, prefix string, n, conc int) ([]string, error) {
	tokens := make([]string, n)
	var done atomic.Int64
	stop := cfg.Progress.Start(row.Name, int64(n), 0, &done, func() int64 { _, _, f := row.Counts(); return f })
	Drive(ctx, Bounds{Requests: int64(n), Concurrency: conc}, &done, func(_ int, i int64, _ time.Time) {
		body := []byte(`{"user":"` + prefix + "-u" + strconv.FormatInt(i, 10) + `"}`)
		client(i).Do(row, Call{Method: "POST", Path: "/api/v1/session", Body: body}, func(status int, b []byte) {
			if status != 200 {
				return
			}
			var out struct {
				Token string `json:"token"`
			}
			if json.Unmarshal(b, &out) == nil {
				tokens[i] = out.Token
			}
		})
	})
	stop()
	missing := 0
	for _, t := range tokens {
		if t == "" {
			missing++
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if missing > 0 {
		rep := row.Snapshot(0)
		return nil, fmt.Errorf("%d of %d logins failed (answers %s, errors %s)", missing, n, formatCounts(rep.Answers), formatCounts(rep.Errors))
	}
	return tokens, nil
}

func (c Config) phaseDuration(def time.Duration) time.Duration {
	if c.Duration > 0 {
		return c.Duration
	}
	return def
}

func (c Config) concurrency(def int) int {
	if c.Concurrency > 0 {
		return c.Concurrency
	}
	return def
}

func (c Config) users(def int) int {
	if c.Users > 0 {
		return c.Users
	}
	return def
}

func (c Config) mode(defConc int) string {
	if c.Rate > 0 {
		return fmt.Sprintf("open loop at %.0f ops/s (up to %d in flight)", c.Rate, c.concurrency(defConc))
	}
	return fmt.Sprintf("closed loop, %d workers", c.concurrency(defConc))
}

// phase runs op under the config's bounds with a progress display and returns the elapsed time.
func phase(ctx context.Context, cfg Config, name string, b Bounds, rows []*Row, op Op) time.Duration {
	var done atomic.Int64
	failed := func() int64 {
		var n int64
		for _, r := range rows {
			_, _, f := r.Counts()
			n += f
		}
		return n
	}
	stop := cfg.Progress.Start(name, b.Requests, b.Duration, &done, failed)
	el, _ := Drive(ctx, b, &done, op)
	stop()
	return el
}

func addRows(rep *Report, el time.Duration, rows ...*Row) {
	for _, r := range rows {
		if n, _, _ := r.Counts(); n > 0 {
			rep.Rows = append(rep.Rows, r.Snapshot(el))
		}
	}
}

// runBrowse reads products: nine reads in ten are GET /api/v1/products/{id} over random ids,
// one in ten a catalog page, each worker following next_cursor from page to page.
func runBrowse(ctx context.Context, cfg Config, rep *Report) error {
	conc := cfg.concurrency(64)
	c := NewClient(cfg.Target, ClientOptions{MaxConns: conc + 8, Timeout: cfg.Timeout})
	defer c.Close()
	product := NewRow(ScenarioBrowse, "browse/product", 200)
	page := NewRow(ScenarioBrowse, "browse/page", 200)
	rands := make([]*rand.Rand, conc)
	cursors := make([]string, conc)
	for w := range rands {
		rands[w] = workerRand(cfg.Seed, w)
	}
	b := Bounds{Requests: cfg.Requests, Duration: cfg.phaseDuration(10 * time.Second), Concurrency: conc, Rate: cfg.Rate}
	fmt.Fprintf(cfg.Out, "browse: %s, %d product ids, bounded by %s\n", cfg.mode(64), cfg.Products, describeBounds(b))
	el := phase(ctx, cfg, "browse", b, []*Row{product, page}, func(w int, _ int64, due time.Time) {
		r := rands[w]
		if r.IntN(10) != 0 {
			c.Do(product, Call{Method: "GET", Path: productPath(1 + r.IntN(cfg.Products)), Start: due}, nil)
			return
		}
		path := "/api/v1/products?limit=20"
		if cursors[w] != "" {
			path += "&cursor=" + url.QueryEscape(cursors[w])
		}
		c.Do(page, Call{Method: "GET", Path: path, Start: due}, func(status int, body []byte) {
			var out struct {
				Next string `json:"next_cursor"`
			}
			cursors[w] = ""
			if status == 200 && json.Unmarshal(body, &out) == nil {
				cursors[w] = out.Next
			}
		})
	})
	addRows(rep, el, product, page)
	return nil
}

func describeBounds(b Bounds) string {
	var parts []string
	if b.Requests > 0 {
		parts = append(parts, fmt.Sprintf("%d operations", b.Requests))
	}
	if b.Duration > 0 {
		parts = append(parts, b.Duration.String())
	}
	return strings.Join(parts, " or ")
}

// CartChoices is how many products each shopper picks among: a cart holds at most this many
// lines (a shopper's cart, not a warehouse: the cart service renders every line with its
// product on each change, so the cost of a PUT grows with the cart), and most PUTs after the
// first few update a line that exists.
const CartChoices = 8

// cartLine is the product a shopper puts in their cart, among CartChoices of their own.
func cartLine(r *rand.Rand, user, products int) int {
	return cartChoice(r.IntN(CartChoices), user, products)
}

// cartChoice is the k-th of a shopper's CartChoices products.
func cartChoice(k, user, products int) int { return 1 + (user*(CartChoices+1)+k)%products }

func quantityBody(q int) []byte { return []byte(`{"quantity":` + strconv.Itoa(q) + `}`) }

// shopperOf returns the shopper a worker acts for on its n-th operation: worker w owns shoppers
// w, w+conc, w+2 conc, ..., so no two workers touch one cart at once.
func shopperOf(w, n, conc, users int) int {
	per := max(1, users/conc)
	return w + conc*(n%per)
}

// runCart logs in the shoppers, then adds or updates cart lines: PUT /api/v1/cart/items/{id}
// with a quantity of 1 to 5.
func runCart(ctx context.Context, cfg Config, rep *Report, runID string) error {
	conc := cfg.concurrency(64)
	users := max(cfg.users(1000), conc)
	c := NewClient(cfg.Target, ClientOptions{MaxConns: conc + 8, Timeout: cfg.Timeout})
	defer c.Close()
	fmt.Fprintf(cfg.Out, "cart: logging in %d shoppers\n", users)
	tokens, err := loginAll(ctx, c, cfg, NewRow(ScenarioCart, "cart/login", 200), runID+"c", users, conc)
	if err != nil {
		return err
	}
	put := NewRow(ScenarioCart, "cart/put", 200)
	rands := make([]*rand.Rand, conc)
	ops := make([]int, conc)
	for w := range rands {
		rands[w] = workerRand(cfg.Seed, w)
	}
	b := Bounds{Requests: cfg.Requests, Duration: cfg.phaseDuration(10 * time.Second), Concurrency: conc, Rate: cfg.Rate}
	fmt.Fprintf(cfg.Out, "cart: %s, %d shoppers, bounded by %s\n", cfg.mode(64), users, describeBounds(b))
	el := phase(ctx, cfg, "cart", b, []*Row{put}, func(w int, _ int64, due time.Time) {
		u := shopperOf(w, ops[w], conc, users)
		ops[w]++
		r := rands[w]
		c.Do(put, Call{Method: "PUT", Path: "/api/v1/cart/items/" + fmt.Sprintf("%08d", cartLine(r, u, cfg.Products)),
			Bearer: tokens[u], Body: quantityBody(1 + r.IntN(5)), Start: due}, nil)
	})
	addRows(rep, el, put)
	return nil
}

// runCheckout: each operation fills a shopper's cart with one to three lines and places the
// order (POST /api/v1/orders with a fresh Idempotency-Key). 409 (out of stock) is an expected
// answer; the shopper then empties those lines.
func runCheckout(ctx context.Context, cfg Config, rep *Report, runID string) error {
	conc := cfg.concurrency(64)
	users := max(cfg.users(1000), conc)
	c := NewClient(cfg.Target, ClientOptions{MaxConns: conc + 8, Timeout: cfg.Timeout})
	defer c.Close()
	fmt.Fprintf(cfg.Out, "checkout: logging in %d shoppers\n", users)
	tokens, err := loginAll(ctx, c, cfg, NewRow(ScenarioCheckout, "checkout/login", 200), runID+"o", users, conc)
	if err != nil {
		return err
	}
	fill := NewRow(ScenarioCheckout, "checkout/cart", 200)
	order := NewRow(ScenarioCheckout, "checkout/order", 201, 409)
	rands := make([]*rand.Rand, conc)
	ops := make([]int, conc)
	for w := range rands {
		rands[w] = workerRand(cfg.Seed, w)
	}
	b := Bounds{Requests: cfg.Requests, Duration: cfg.phaseDuration(10 * time.Second), Concurrency: conc, Rate: cfg.Rate}
	fmt.Fprintf(cfg.Out, "checkout: %s, %d shoppers, bounded by %s\n", cfg.mode(64), users, describeBounds(b))
	el := phase(ctx, cfg, "checkout", b, []*Row{fill, order}, func(w int, i int64, due time.Time) {
		u := shopperOf(w, ops[w], conc, users)
		ops[w]++
		r := rands[w]
		lines := make([]int, 1+r.IntN(3))
		for k := range lines {
			lines[k] = cartLine(r, u, cfg.Products)
			c.Do(fill, Call{Method: "PUT", Path: "/api/v1/cart/items/" + fmt.Sprintf("%08d", lines[k]),
				Bearer: tokens[u], Body: quantityBody(1 + r.IntN(2)), Start: due}, nil)
			due = time.Time{}
		}
		res := c.Do(order, Call{Method: "POST", Path: "/api/v1/orders", Bearer: tokens[u],
			IdempotencyKey: runID + "-o" + strconv.FormatInt(i, 10)}, nil)
		if res.Status == 409 {
			for _, id := range lines {
				c.Do(fill, Call{Method: "PUT", Path: "/api/v1/cart/items/" + fmt.Sprintf("%08d", id), Bearer: tokens[u], Body: quantityBody(0)}, nil)
			}
		}
	})
	addRows(rep, el, fill, order)
	return nil
}

// StressLevel is one level of the stress scenario: N concurrent clients adding to their carts.
type StressLevel struct {
	Clients int `json:"clients"`
	// Adds answered 200, per second of the level, and the share of requests they were.
	Adds        int64   `json:"adds"`
	AddsPS      float64 `json:"adds_per_s"`
	SuccessRate float64 `json:"success_rate"`
	P50US       float64 `json:"p50_us"`
	P99US       float64 `json:"p99_us"`
	// CPUPerAddUS is the CPU time (user + system) of every process of the spawned stack over the
	// level, per successful add; CPUByProcessUS splits it by process and adds "load", the load
	// tool's own share (not in CPUPerAddUS).
	CPUPerAddUS    float64            `json:"cpu_per_add_us,omitempty"`
	CPUByProcessUS map[string]float64 `json:"cpu_by_process_us,omitempty"`
	// StoreCmdsPerAdd counts the store's commands (INFO commandstats, the calls made inside
	// scripts included) per add; StoreScriptsPerAdd the EVALSHA/EVAL.
	StoreCmdsPerAdd    float64 `json:"store_cmds_per_add,omitempty"`
	StoreScriptsPerAdd float64 `json:"store_scripts_per_add,omitempty"`
	// LoadAvg is /proc/loadavg's 1-minute figure at the start and the end of the level.
	LoadAvg [2]float64 `json:"load_avg"`
	// Peer is the same level against the nginx + Lua cart add at the balancer (nginx and the
	// store in its CPU figures), measured right after the project's; nil when it was skipped
	// (PeerSkipped says why).
	Peer        *StressLevel `json:"peer,omitempty"`
	PeerSkipped string       `json:"peer_skipped,omitempty"`
	// Ratios are the project's figures over the peer's: adds/s (above 1 is better), p99 and CPU
	// per add (below 1 is better). Zero when there is no peer.
	AddsRatio float64 `json:"adds_ratio_to_peer,omitempty"`
	P99Ratio  float64 `json:"p99_ratio_to_peer,omitempty"`
	CPURatio  float64 `json:"cpu_ratio_to_peer,omitempty"`
}

// ratio is a / b rounded to two decimals, 0 when either is not positive.
func ratio(a, b float64) float64 {
	if a <= 0 || b <= 0 {
		return 0
	}
	return round2(a / b)
}

// setPeer attaches the peer's level and the ratios.
func (l *StressLevel) setPeer(p StressLevel) {
	l.Peer = &p
	l.AddsRatio = ratio(l.AddsPS, p.AddsPS)
	l.P99Ratio = ratio(l.P99US, p.P99US)
	l.CPURatio = ratio(l.CPUPerAddUS, p.CPUPerAddUS)
}

// WriteStress prints the stress scenario's CPU account, each level's peer under it.
func WriteStress(w io.Writer, levels []StressLevel) {
	fmt.Fprintln(w, "stress: cart adds through the edge, then the same clients against the nginx + Lua cart add at the balancer (peer, same store); "+
		"CPU per add = CPU time of every process on the path over the level / 200 answers (\"load\" is the load tool itself, not in the total)")
	fmt.Fprintf(w, "  %-7s %7s %9s %8s %9s %9s %10s %10s %8s  %s\n", "path", "clients", "adds/s", "success", "p50 ms", "p99 ms", "CPU/add µs", "store cmds", "scripts", "CPU per add by process (µs); load avg")
	line := func(name string, l StressLevel) {
		var parts []string
		for _, p := range slices.Sorted(maps.Keys(l.CPUByProcessUS)) {
			parts = append(parts, fmt.Sprintf("%s %.1f", p, l.CPUByProcessUS[p]))
		}
		fmt.Fprintf(w, "  %-7s %7d %9.0f %7.2f%% %9.2f %9.2f %10.1f %10.2f %8.2f  %s; load %.2f -> %.2f\n", name, l.Clients, l.AddsPS, 100*l.SuccessRate,
			l.P50US/1000, l.P99US/1000, l.CPUPerAddUS, l.StoreCmdsPerAdd, l.StoreScriptsPerAdd, strings.Join(parts, ", "), l.LoadAvg[0], l.LoadAvg[1])
	}
	for _, l := range levels {
		line("edge", l)
		switch {
		case l.Peer != nil:
			line("nginx", *l.Peer)
			fmt.Fprintf(w, "  %-7s %7d  edge / nginx: %.2fx adds/s, %.2fx p99, %.2fx CPU per add\n", "ratio", l.Clients, l.AddsRatio, l.P99Ratio, l.CPURatio)
		case l.PeerSkipped != "":
			fmt.Fprintf(w, "  %-7s %7d  skipped: %s\n", "nginx", l.Clients, l.PeerSkipped)
		}
	}
}

// stressSnap is the counters of one moment of a stress level.
type stressSnap struct {
	admitSnap
	self time.Duration
}

func (c Config) stressSnap(ctx context.Context, store rueidis.Client) stressSnap {
	var procs []string
	if c.CPUByProcess != nil {
		procs = slices.Collect(maps.Keys(c.CPUByProcess()))
	}
	return stressSnap{admitSnap: c.admitSnap(ctx, store, procs), self: selfCPU()}
}

// fill completes l from two snapshots around the level.
func (l *StressLevel) fill(a, b stressSnap, adds int64) {
	l.Adds = adds
	if adds <= 0 {
		return
	}
	per := func(d time.Duration) float64 { return round1(float64(d.Microseconds()) / float64(adds)) }
	if len(b.cpu) > 0 {
		l.CPUByProcessUS = map[string]float64{"load": per(b.self - a.self)}
		var total time.Duration
		for p, t := range b.cpu {
			total += t - a.cpu[p]
			l.CPUByProcessUS[p] = per(t - a.cpu[p])
		}
		l.CPUPerAddUS = per(total)
	}
	if a.storeCountsRead && b.storeCountsRead {
		l.StoreCmdsPerAdd = round2(float64(b.cmds-a.cmds) / float64(adds))
		l.StoreScriptsPerAdd = round2(float64(b.scripts-a.scripts) / float64(adds))
	}
}

// stressCall is the request worker w sends for its k-th product with the given body.
type stressCall func(w, k int, body []byte) Call

// measureStress runs one level: n closed-loop clients (one connection each) adding to their
// carts through c for dur, each picking among its CartChoices products; the CPU figures come
// from cfg.CPUByProcess.
func measureStress(ctx context.Context, cfg Config, store rueidis.Client, c *Client, n int, dur time.Duration, row *Row, call stressCall) (StressLevel, time.Duration) {
	rands := make([]*rand.Rand, n)
	for w := range rands {
		rands[w] = workerRand(cfg.Seed, w)
	}
	lvl := StressLevel{Clients: n}
	lvl.LoadAvg[0] = loadAvg()
	s0 := cfg.stressSnap(ctx, store)
	el := phase(ctx, cfg, row.Name, Bounds{Duration: dur, Concurrency: n}, []*Row{row}, func(w int, _ int64, _ time.Time) {
		r := rands[w]
		c.Do(row, call(w, r.IntN(CartChoices), quantityBodies[r.IntN(5)]), nil)
	})
	s1 := cfg.stressSnap(ctx, store)
	lvl.LoadAvg[1] = loadAvg()
	reqs, ok, _ := row.Counts()
	lvl.fill(s0, s1, ok)
	lvl.AddsPS = math.Round(float64(ok) / el.Seconds())
	if reqs > 0 {
		lvl.SuccessRate = float64(ok) / float64(reqs)
	}
	lvl.P50US, lvl.P99US = us(row.Hist().Quantile(0.5)), us(row.Hist().Quantile(0.99))
	return lvl, el
}

// cartPaths are each worker's CartChoices item paths, built on first use.
type cartPaths struct {
	paths    [][CartChoices]string
	products int
}

func newCartPaths(n, products int) *cartPaths {
	return &cartPaths{paths: make([][CartChoices]string, n), products: products}
}

func (p *cartPaths) path(w, k int) string {
	if p.paths[w][k] == "" {
		p.paths[w][k] = "/api/v1/cart/items/" + fmt.Sprintf("%08d", cartChoice(k, w, p.products))
	}
	return p.paths[w][k]
}

// runStress is the seed's stress test: for each level N, N shoppers log in and N concurrent
// clients (closed loop, one connection each) add to their carts through the edge for the phase
// duration; then the same N clients add to carts at the nginx + Lua peer (started once for the
// scenario, on the same store, naming their shopper in nginxpeer.HeaderUser) for as long. One
// table row per level with its peer and the ratios, and CPU per add by process when the stack
// was spawned.
func runStress(ctx context.Context, cfg Config, rep *Report, runID string) error {
	dur := cfg.phaseDuration(10 * time.Second)
	var store rueidis.Client
	if cfg.StoreAddr != "" {
		sc, err := kv.Open(ctx, kv.Options{Addrs: []string{cfg.StoreAddr}, DisableCache: true})
		if err != nil {
			return fmt.Errorf("store %s: %w", cfg.StoreAddr, err)
		}
		defer sc.Close()
		store = sc
	}
	peer, peerCfg, skipped := startPeer(ctx, cfg, "stress", nginxpeer.Config{})
	if peer != nil {
		defer peer.Stop()
		fmt.Fprintf(cfg.Out, "stress: nginx + Lua cart add at the balancer on %s\n", peer.AdmitBase)
	} else {
		rep.Note(cfg.Out, "stress: no nginx + Lua peer: %s", skipped)
	}
	for _, n := range cfg.Levels {
		if err := ctx.Err(); err != nil {
			return err
		}
		c := NewClient(cfg.Target, ClientOptions{MaxConns: n + 8, Timeout: cfg.Timeout})
		fmt.Fprintf(cfg.Out, "stress: %d concurrent clients: logging in %d shoppers\n", n, n)
		tokens, err := loginAll(ctx, c, cfg, NewRow(ScenarioStress, fmt.Sprintf("stress/%d/login", n), 200), fmt.Sprintf("%ss%d", runID, n), n, min(n, 64))
		if err != nil {
			c.Close()
			return err
		}
		row := NewRow(ScenarioStress, fmt.Sprintf("stress/%d", n), 200)
		paths := newCartPaths(n, cfg.Products)
		fmt.Fprintf(cfg.Out, "stress: %d concurrent clients adding to carts for %s\n", n, dur)
		lvl, el := measureStress(ctx, cfg, store, c, n, dur, row, func(w, k int, body []byte) Call {
			return Call{Method: "PUT", Path: paths.path(w, k), Bearer: tokens[w], Body: body}
		})
		c.Close()
		addRows(rep, el, row)
		if lvl.CPUPerAddUS > 0 {
			rep.Note(cfg.Out, "stress/%d: %.0f us of CPU per successful cart add across every process of the stack (%s over %d adds; the load tool %.0f us more)",
				n, lvl.CPUPerAddUS, cpuParts(lvl.CPUByProcessUS), lvl.Adds, lvl.CPUByProcessUS["load"])
		}
		if peer == nil {
			lvl.PeerSkipped = skipped
			rep.Stress = append(rep.Stress, lvl)
			continue
		}
		pc := NewClient(peer.target, ClientOptions{MaxConns: n + 8, Timeout: cfg.Timeout})
		prow := NewRow(ScenarioStress, fmt.Sprintf("stress-peer/%d", n), 200)
		users := make([]string, n)
		for w := range users {
			users[w] = fmt.Sprintf("%ss%dp-u%d", runID, n, w)
		}
		fmt.Fprintf(cfg.Out, "stress: %d concurrent clients adding to carts at the nginx peer for %s\n", n, dur)
		plvl, pel := measureStress(ctx, peerCfg, store, pc, n, dur, prow, func(w, k int, body []byte) Call {
			return Call{Method: "PUT", Path: paths.path(w, k), Header: [2]string{nginxpeer.HeaderUser, users[w]}, Body: body}
		})
		pc.Close()
		addRows(rep, pel, prow)
		lvl.setPeer(plvl)
		rep.Stress = append(rep.Stress, lvl)
		if store != nil {
			keys := make([]string, n)
			for w, u := range users {
				keys[w] = nginxpeer.CartKey(u)
			}
			store.Do(ctx, store.B().Del().Key(keys...).Build())
		}
	}
	return nil
}

// quantityBodies are the bodies {"quantity":1} to {"quantity":5}, built once.
var quantityBodies = func() [5][]byte {
	var b [5][]byte
	for i := range b {
		b[i] = quantityBody(i + 1)
	}
	return b
}()

func cpuParts(m map[string]float64) string {
	var parts []string
	for _, p := range slices.Sorted(maps.Keys(m)) {
		if p != "load" {
			parts = append(parts, fmt.Sprintf("%s %.0f", p, m[p]))
		}
	}
	return strings.Join(parts, ", ")
}
