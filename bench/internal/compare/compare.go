package compare

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"flashedge/bench/internal/ceiling"
	"flashedge/bench/internal/cpustat"
	"flashedge/bench/internal/fresh"
	"flashedge/bench/internal/nginxpeer"
	"flashedge/bench/internal/wrkrun"
	benchwrk "flashedge/bench/wrk"
	"flashedge/shared/keyspace"
	"flashedge/shared/kv"
	"flashedge/shared/kv/kvserver"
	"flashedge/shared/proc"
	"flashedge/shared/product"
)

// The headers the product rows send (wrk -H, no script) and the sold-out rows' body (the
// soldout.lua script), repeated by the probes.
var (
	productHeaders = map[string]string{"Accept": "application/json"}
	soldOutBody    = `{"challenge_id":"bench","answer":"0"}`
)

// runner holds one comparison run's state; Run owns it.
type runner struct {
	cfg     Config
	out     io.Writer
	rep     *Report
	dir     string
	scripts string
	store   rueidis.Client
	cleanup []func()
	pids    []int          // every server process started, for CPU accounting
	pidOf   map[string]int // the same by name (store, ceiling, edge, nginx, ...)

	adminToken, sessionSecret string
	storeAddr                 string
	ceilingBase               string
	edgeBase                  string
	edgeNoMetricsBase         string
	freshEdgeBases            []string // more edges on the same store, read by the freshness measurement only
	edgeBin                   string
	edgeEnv                   []string // the edge's environment but its listen address
	peer                      *nginxpeer.Peer
	peerCacheItems            int
	sessionToken              string
}

// Run runs the comparison and prints the table to out. It returns the report, and an error
// when a server fails to start or the run cannot go on; missed goals are not errors.
func Run(ctx context.Context, cfg Config, out io.Writer) (*Report, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	r := &runner{cfg: cfg, out: out, rep: &Report{StartedAt: time.Now().UTC()}, pidOf: map[string]int{}}
	defer r.stopAll()
	if err := r.setup(ctx); err != nil {
		return r.rep, err
	}
	r.runRows(ctx)
	if ctx.Err() != nil {
		return r.rep, ctx.Err()
	}
	r.capacity(ctx)
	r.freshness(ctx)
	r.memory(ctx)
	r.rep.finish()
	r.stopAll()
	r.rep.Print(out)
	if cfg.OutJSON != "" {
		if err := r.rep.WriteJSON(cfg.OutJSON); err != nil {
			return r.rep, err
		}
		fmt.Fprintf(out, "\nwrote %s\n", cfg.OutJSON)
	}
	return r.rep, ctx.Err()
}

func (r *runner) logf(format string, a ...any) { fmt.Fprintf(r.out, "# "+format+"\n", a...) }

func (r *runner) note(format string, a ...any) {
	r.rep.Notes = append(r.rep.Notes, fmt.Sprintf(format, a...))
	r.logf(format, a...)
}

func (r *runner) stopAll() {
	for i := len(r.cleanup) - 1; i >= 0; i-- {
		r.cleanup[i]()
	}
	r.cleanup = nil
}

func (r *runner) setup(ctx context.Context) error {
	cfg := r.cfg
	r.rep.Machine = describeMachine()
	r.rep.Settings = Settings{Duration: cfg.Duration.String(), Rounds: cfg.Rounds, Warmup: cfg.Warmup.String(), Threads: cfg.Threads,
		Connections: cfg.Connections, TTL: cfg.TTL.String(), ProductID: cfg.ProductID, SaleID: cfg.SaleID}
	if _, err := exec.LookPath("wrk"); err != nil {
		return errors.New("compare: wrk not installed (make deps-bench installs it)")
	}
	r.rep.Tools = toolVersions()

	switch {
	case !cfg.Pin:
		cfg.ServerCPU, cfg.LoadCPU = "", ""
		r.rep.Pinning = "off (-pin=false): the kernel schedules servers and wrk on any CPU"
	case proc.Taskset() == "":
		cfg.ServerCPU, cfg.LoadCPU = "", ""
		r.rep.Pinning = "off: taskset not found; the kernel schedules servers and wrk on any CPU"
	case runtime.NumCPU() < 2:
		cfg.ServerCPU, cfg.LoadCPU = "", ""
		r.rep.Pinning = "off: one CPU only; servers and wrk share it"
	default:
		r.rep.Pinning = fmt.Sprintf("taskset: servers and the store on CPU %s, wrk on CPU %s "+
			"(Go servers see GOMAXPROCS=1; nginx runs one worker)", cfg.ServerCPU, cfg.LoadCPU)
	}
	r.cfg = cfg
	r.logf("pinning: %s", r.rep.Pinning)

	dir := cfg.WorkDir
	if dir == "" {
		d, err := os.MkdirTemp("", "flashedge-bench-")
		if err != nil {
			return err
		}
		dir = d
		if !cfg.Keep {
			r.cleanup = append(r.cleanup, func() { os.RemoveAll(d) })
		}
	}
	r.dir = dir
	r.rep.WorkDir = dir
	r.scripts = filepath.Join(dir, "wrk")
	if err := os.CopyFS(r.scripts, benchwrk.Scripts); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("compare: write wrk scripts: %w", err)
	}
	r.adminToken, r.sessionSecret = randomHex(16), randomHex(32)

	// The store.
	storeDir := filepath.Join(dir, "store")
	if err := os.MkdirAll(storeDir, 0o755); err != nil {
		return err
	}
	srv, err := kvserver.Start(ctx, kvserver.Options{Dir: storeDir, CPU: cfg.ServerCPU})
	if err != nil {
		return fmt.Errorf("compare: store: %w", err)
	}
	r.cleanup = append(r.cleanup, func() { srv.Stop(3 * time.Second) })
	r.pids = append(r.pids, srv.Pid())
	r.pidOf["store"] = srv.Pid()
	r.storeAddr = srv.Addr
	r.rep.Servers = append(r.rep.Servers, Server{Name: "store", Argv: strings.Join(srv.Argv(), " ")})
	r.logf("store: redis-server on %s", srv.Addr)
	store, err := kv.Open(ctx, kv.Options{Addrs: []string{srv.Addr}, DisableCache: true})
	if err != nil {
		return fmt.Errorf("compare: store client: %w", err)
	}
	r.store = store
	r.cleanup = append(r.cleanup, store.Close)

	if cfg.wants(RowEdgeProduct, RowEdgeSoldOut, RowEdgeNoMetrics) || cfg.FreshUpdates > 0 || len(cfg.MemoryProducts) > 0 {
		if err := r.startProject(ctx); err != nil {
			return err
		}
	}
	if err := r.seedStore(ctx); err != nil {
		return err
	}
	if r.edgeBase != "" && cfg.wants(RowEdgeSoldOut, RowCeilingPost) {
		r.prepareEdgeSale(ctx)
	}
	// The ceiling starts last: it answers the edge's own bytes.
	if cfg.wants(RowCeiling, RowCeilingPost) {
		if err := r.startCeiling(ctx); err != nil {
			return err
		}
	}
	if cfg.wants(RowNginxProduct, RowNginxLRUProduct, RowNginxSoldOut, RowNginxLRUSoldOut) || (cfg.FreshUpdates > 0 && r.edgeBase != "") {
		if err := r.startPeer(ctx); err != nil {
			return err
		}
	}
	return nil
}

func (r *runner) startCeiling(ctx context.Context) error {
	bin, err := proc.Lookup(r.cfg.BinDir, "ceiling")
	if err != nil {
		r.note("ceiling: %v: skipping the ceiling row (make build builds it); ratios to the ceiling are n/a", err)
		return nil
	}
	addr, err := proc.FreeAddr()
	if err != nil {
		return err
	}
	args := []string{"-addr", addr}
	// The ceiling answers what the edge answers, byte for byte, so the rows differ only in what
	// the servers do: the product as the edge renders it, the edge's sold-out refusal.
	bodies := []struct{ flag, name, body string }{{"-product-body", "product.json", r.publicProduct(ctx)}}
	if r.edgeBase != "" {
		pr, err := probe(r.soldOutRequest(r.edgeBase))
		if err == nil && pr.Status == http.StatusGone {
			bodies = append(bodies, struct{ flag, name, body string }{"-soldout-body", "soldout.json", pr.Body})
		}
	}
	for _, b := range bodies {
		if b.body == "" {
			r.note("ceiling: no %s answer from the edge to copy; the ceiling answers its default", b.name)
			continue
		}
		path := filepath.Join(r.dir, "ceiling-"+b.name)
		if err := os.WriteFile(path, []byte(b.body), 0o644); err != nil {
			return err
		}
		args = append(args, b.flag, path)
	}
	if _, err := r.startProc(ctx, proc.Spec{Name: "ceiling", Path: bin, Args: args}, "http://"+addr, nil); err != nil {
		return err
	}
	r.ceilingBase = "http://" + addr
	return nil
}

// startProc starts a child pinned to the server CPU with its log in the work dir and waits
// for base+"/ready".
func (r *runner) startProc(ctx context.Context, s proc.Spec, base string, shownEnv []string) (*proc.Proc, error) {
	s.CPU = r.cfg.ServerCPU
	s.Log = filepath.Join(r.dir, s.Name+".log")
	if s.Env != nil {
		s.Env = append(os.Environ(), s.Env...) // the wiring on top of benchrun's own environment
	}
	p, err := proc.Start(s)
	if err != nil {
		return nil, fmt.Errorf("compare: %w", err)
	}
	r.cleanup = append(r.cleanup, func() { p.Stop(10 * time.Second) })
	r.pids = append(r.pids, p.Pid())
	r.pidOf[s.Name] = p.Pid()
	if err := p.WaitHTTP(ctx, base+"/ready", 60*time.Second); err != nil {
		return nil, fmt.Errorf("compare: %w", err)
	}
	r.rep.Servers = append(r.rep.Servers, Server{Name: s.Name, Argv: strings.Join(p.Argv, " "), Env: shownEnv, Log: s.Log})
	r.logf("%s: ready on %s (log %s)", s.Name, base, s.Log)
	return p, nil
}

// startProject starts the store-backed services the edge needs, then the edge. A missing binary
// skips what needs it, with a note.
func (r *runner) startProject(ctx context.Context) error {
	edgeBin, err := proc.Lookup(r.cfg.BinDir, "edge")
	if err != nil {
		r.note("edge: %v: skipping the edge rows and the freshness measurement", err)
		return nil
	}
	common := []string{
		"FLASHEDGE_STORE_ADDR=" + r.storeAddr,
		"FLASHEDGE_ADMIN_TOKEN=" + r.adminToken,
		"FLASHEDGE_SESSION_SECRET=" + r.sessionSecret,
	}
	var addrs []string // FLASHEDGE_<SVC>_ADDRS of the services started so far
	// Backends in dependency order: catalog seeds the demo products; order (when built)
	// creates the flash sale for the sold-out row and may call cart and catalog.
	for _, svc := range []struct{ name, extra string }{
		{"catalog", "FLASHEDGE_SEED_DEMO=1200"},
		{"cart", ""},
		{"order", ""},
	} {
		bin, err := proc.Lookup(r.cfg.BinDir, svc.name)
		if err != nil {
			if svc.name == "catalog" {
				r.note("catalog: %v: the edge runs without it; benchrun seeds product %s itself", err, r.cfg.ProductID)
			} else {
				r.note("%s: not built (%v); not started", svc.name, err)
			}
			continue
		}
		addr, err := proc.FreeAddr()
		if err != nil {
			return err
		}
		up := strings.ToUpper(svc.name)
		env := append(append([]string{}, common...), addrs...)
		env = append(env, "FLASHEDGE_"+up+"_LISTEN="+addr)
		if svc.extra != "" {
			env = append(env, svc.extra)
		}
		if _, err := r.startProc(ctx, proc.Spec{Name: svc.name, Path: bin, Env: env}, "http://"+addr, maskEnv(env)); err != nil {
			return err
		}
		addrs = append(addrs, "FLASHEDGE_"+up+"_ADDRS="+addr)
	}
	addr, err := proc.FreeAddr()
	if err != nil {
		return err
	}
	// The ops listener (metrics, dashboard) is not read by the bench: any free port.
	common = append(common, "FLASHEDGE_EDGE_OPS_LISTEN=127.0.0.1:0")
	// The memory measurement reads 100,000 distinct products from one address: cache misses the
	// per-address shopping budget (1,000/s) would refuse. The rows read one cached product, which
	// no budget charges, so turning it off changes nothing they measure.
	common = append(common, "FLASHEDGE_RATE_SHOP_IP=off")
	env := append(append(append([]string{}, common...), addrs...), "FLASHEDGE_EDGE_LISTEN="+addr)
	if _, err := r.startProc(ctx, proc.Spec{Name: "edge", Path: edgeBin, Env: env}, "http://"+addr, maskEnv(env)); err != nil {
		return err
	}
	r.edgeBase = "http://" + addr
	r.edgeBin, r.edgeEnv = edgeBin, append(append([]string{}, common...), addrs...)
	// Freshness across edges: more edges on the same store, each with its own tracking
	// connection, idle except for the freshness reads (issue 11: p99 <= 5 ms at every edge).
	for i := 2; r.cfg.FreshUpdates > 0 && i <= freshEdges; i++ {
		addr, err := proc.FreeAddr()
		if err != nil {
			return err
		}
		env := append(append(append([]string{}, common...), addrs...), "FLASHEDGE_EDGE_LISTEN="+addr)
		if _, err := r.startProc(ctx, proc.Spec{Name: fmt.Sprintf("edge-%d", i), Path: edgeBin, Env: env}, "http://"+addr, maskEnv(env)); err != nil {
			return err
		}
		r.freshEdgeBases = append(r.freshEdgeBases, "http://"+addr)
	}
	if r.cfg.wants(RowEdgeNoMetrics) {
		addr, err := proc.FreeAddr()
		if err != nil {
			return err
		}
		env := append(append(append([]string{}, common...), addrs...), "FLASHEDGE_EDGE_LISTEN="+addr, "FLASHEDGE_METRICS=off")
		if _, err := r.startProc(ctx, proc.Spec{Name: "edge-nometrics", Path: edgeBin, Env: env}, "http://"+addr, maskEnv(env)); err != nil {
			return err
		}
		r.edgeNoMetricsBase = "http://" + addr
	}
	return nil
}

// seedStore makes sure the product every row reads exists (the catalog's demo seed writes it;
// without a catalog benchrun writes it) and sets the sale's sold-out flag.
func (r *runner) seedStore(ctx context.Context) error {
	id := r.cfg.ProductID
	key := keyspace.Product(id)
	deadline := time.Now().Add(30 * time.Second)
	for {
		n, err := r.store.Do(ctx, r.store.B().Exists().Key(key).Build()).AsInt64()
		if err != nil {
			return fmt.Errorf("compare: store: %w", err)
		}
		if n == 1 {
			break
		}
		if !r.catalogRunning() || time.Now().After(deadline) {
			if r.catalogRunning() {
				r.note("catalog did not seed product %s within 30s; benchrun seeds it", id)
			}
			doc := product.Marshal(product.Doc{ID: id, Name: "Ao thun cotton", Description: "Ao thun 100% cotton, size M",
				Price: 450000, Currency: "VND", Image: "/img/" + id + ".svg"})
			cmds := rueidis.Commands{
				r.store.B().Set().Key(key).Value(string(doc)).Nx().Build(),
				r.store.B().Set().Key(keyspace.ProductStock(id)).Value("500").Nx().Build(),
			}
			for _, res := range r.store.DoMulti(ctx, cmds...) {
				if err := res.Error(); err != nil && !kv.IsNil(err) {
					return fmt.Errorf("compare: seed product: %w", err)
				}
			}
			break
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
	if err := r.store.Do(ctx, r.store.B().Set().Key(keyspace.SoldOut(r.cfg.SaleID)).Value("1").Build()).Error(); err != nil {
		return fmt.Errorf("compare: set sold-out flag: %w", err)
	}
	return nil
}

func (r *runner) catalogRunning() bool {
	for _, s := range r.rep.Servers {
		if s.Name == "catalog" {
			return true
		}
	}
	return false
}

// prepareEdgeSale creates the sold-out sale through the admin API (when the route exists) and
// a session for the attempts. Failures only leave notes: the row's probe decides.
func (r *runner) prepareEdgeSale(ctx context.Context) {
	now := time.Now().UTC()
	sale := map[string]any{
		"id": r.cfg.SaleID, "product_id": r.cfg.ProductID, "price": 1000, "stock": 1, "shards": 1,
		"starts_at": now.Add(-time.Hour).Format(time.RFC3339), "ends_at": now.Add(24 * time.Hour).Format(time.RFC3339),
		"per_user_limit": 1,
	}
	status, body, err := r.call(ctx, http.MethodPost, r.edgeBase+"/api/v1/admin/flash-sales", r.adminToken, sale)
	switch {
	case err != nil:
		r.note("edge sale: create %s: %v", r.cfg.SaleID, err)
	case status/100 != 2:
		r.note("edge sale: create %s answered %d %s", r.cfg.SaleID, status, oneLine(body))
	}
	// The sale's stock is irrelevant: the flag says sold out (set again in case the create
	// reset it).
	if err := r.store.Do(ctx, r.store.B().Set().Key(keyspace.SoldOut(r.cfg.SaleID)).Value("1").Build()).Error(); err != nil {
		r.note("edge sale: set sold-out flag: %v", err)
	}
	status, body, err = r.call(ctx, http.MethodPost, r.edgeBase+"/api/v1/session", "", map[string]string{"user": "bench"})
	if err != nil || status != http.StatusOK {
		r.note("edge session: POST /api/v1/session answered %d %s %v; the sold-out row runs without a token", status, oneLine(body), err)
		return
	}
	var s struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(body, &s); err != nil || s.Token == "" {
		r.note("edge session: no token in %s", oneLine(body))
		return
	}
	r.sessionToken = s.Token
}

func (r *runner) call(ctx context.Context, method, url, bearer string, body any) (int, []byte, error) {
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(b))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, rb, err
}

func (r *runner) startPeer(ctx context.Context) error {
	if err := nginxpeer.Check(nginxpeer.Config{}); err != nil {
		r.note("nginx peer: %v: skipping the nginx rows", err)
		return nil
	}
	dir := filepath.Join(r.dir, "nginx")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// Room in the lrucache for the memory measurement's products beside the rows' own.
	r.peerCacheItems = nginxpeer.DefaultCacheItems
	if n := len(r.cfg.MemoryProducts); n > 0 {
		r.peerCacheItems += r.cfg.MemoryProducts[n-1]
	}
	peer, err := nginxpeer.Start(ctx, nginxpeer.Config{Dir: dir, StoreAddr: r.storeAddr, CPU: r.cfg.ServerCPU, TTL: r.cfg.TTL, CacheItems: r.peerCacheItems})
	if err != nil {
		return fmt.Errorf("compare: %w", err)
	}
	r.cleanup = append(r.cleanup, peer.Stop)
	r.pids = append(r.pids, peer.Pid())
	r.pidOf["nginx"] = peer.Pid()
	r.peer = peer
	r.rep.Servers = append(r.rep.Servers, Server{Name: "nginx", Argv: strings.Join(peer.Argv(), " "), Log: filepath.Join(dir, "error.log")})
	r.logf("nginx: per-request store reads on %s, lrucache (TTL %s) on %s", peer.PlainBase, r.cfg.TTL, peer.LRUBase)
	return nil
}

// rowPlan is how one row is run.
type rowPlan struct {
	name, title string
	base        string // empty: skipped with skip
	skip        string
	req         request
	script      string
	env         []string
	wantStatus  int
	wantBody    string // exact body wanted ("" = any)
	wantPart    string // substring wanted ("" = any)
	// procs are the processes whose CPU time the row charges to its answers: the server under
	// test, and the store where the path can touch it.
	procs []string
}

// soldOutHeaders are the headers of a sold-out attempt, the session token included once known.
func (r *runner) soldOutHeaders() map[string]string {
	h := map[string]string{"Content-Type": "application/json", "Accept": "application/json", "Idempotency-Key": "bench-soldout"}
	if r.sessionToken != "" {
		h["Authorization"] = "Bearer " + r.sessionToken
	}
	return h
}

// soldOutRequest is the attempt every POST row sends to base.
func (r *runner) soldOutRequest(base string) request {
	return request{Method: "POST", URL: base + "/api/v1/flash-sales/" + r.cfg.SaleID + "/attempts", Headers: r.soldOutHeaders(), Body: soldOutBody}
}

func (r *runner) plans(ctx context.Context) []rowPlan {
	productPath := "/api/v1/products/" + r.cfg.ProductID
	want := r.publicProduct(ctx)
	var soldOutEnv []string
	if r.sessionToken != "" {
		soldOutEnv = []string{"FLASHEDGE_BENCH_TOKEN=" + r.sessionToken}
	}
	// Product rows run wrk without a script (wrk's cheapest mode); a POST with a body needs one,
	// soldout.lua, which only sets the request once (no per-request Lua).
	productRow := func(name, title, base string, procs ...string) rowPlan {
		return rowPlan{name: name, title: title, base: base, wantStatus: 200, wantBody: want, procs: procs,
			req: request{Method: "GET", URL: base + productPath, Headers: productHeaders}}
	}
	soldOutRow := func(name, title, base string, procs ...string) rowPlan {
		return rowPlan{name: name, title: title, base: base, script: "soldout.lua", env: soldOutEnv, wantStatus: 410,
			wantPart: `"sold_out"`, req: r.soldOutRequest(base), procs: procs}
	}
	var plainBase, lruBase string
	if r.peer != nil {
		plainBase, lruBase = r.peer.PlainBase, r.peer.LRUBase
	}
	ttl := r.cfg.TTL.String()
	ceilingGet := productRow(RowCeiling, "ceiling: bare fasthttp, same product body", r.ceilingBase, "ceiling")
	if want == "" {
		ceilingGet.wantBody = ceiling.Body
	}
	ceilingPost := soldOutRow(RowCeilingPost, "ceiling: bare fasthttp, POST attempt, 410", r.ceilingBase, "ceiling")
	rows := []rowPlan{
		ceilingGet,
		ceilingPost,
		productRow(RowEdgeProduct, "edge: product read", r.edgeBase, "edge", "store"),
		productRow(RowEdgeNoMetrics, "edge: product read, request metrics off", r.edgeNoMetricsBase, "edge-nometrics", "store"),
		soldOutRow(RowEdgeSoldOut, "edge: sold-out answer (POST, 410)", r.edgeBase, "edge", "store"),
		productRow(RowNginxProduct, "nginx+lua: product, store read per request", plainBase, "nginx", "store"),
		productRow(RowNginxLRUProduct, "nginx+lua+lrucache "+ttl+": product", lruBase, "nginx", "store"),
		soldOutRow(RowNginxSoldOut, "nginx+lua: sold-out, store read per request", plainBase, "nginx", "store"),
		soldOutRow(RowNginxLRUSoldOut, "nginx+lua+lrucache "+ttl+": sold-out", lruBase, "nginx", "store"),
	}
	var out []rowPlan
	for _, p := range rows {
		if !r.cfg.wants(p.name) {
			continue
		}
		if p.base == "" {
			switch {
			case strings.HasPrefix(p.name, "ceiling"):
				p.skip = "ceiling binary not built"
			case strings.HasPrefix(p.name, "edge"):
				p.skip = "edge binary not built"
			default:
				p.skip = "nginx peer not installed"
			}
		}
		out = append(out, p)
	}
	return out
}

// publicProduct is the answer every product row but the ceiling must give: the stored document
// with its stock_state, as the edge renders it.
func (r *runner) publicProduct(ctx context.Context) string {
	id := r.cfg.ProductID
	vals, err := r.store.Do(ctx, r.store.B().Mget().Key(keyspace.Product(id), keyspace.ProductStock(id)).Build()).ToArray()
	if err != nil || len(vals) != 2 {
		return ""
	}
	doc, err := vals[0].ToString()
	if err != nil {
		return ""
	}
	stock, _ := vals[1].ToString()
	b, err := product.AppendPublic(nil, []byte(doc), product.ParseStock(stock))
	if err != nil {
		return ""
	}
	return string(b)
}

func (r *runner) runRows(ctx context.Context) {
	plans := r.plans(ctx)
	rows := make([]Row, len(plans))
	runs := make([][]measured, len(plans))
	probes := make([]probeResult, len(plans))
	for i, p := range plans {
		rows[i] = Row{Name: p.name, Title: p.title, Skipped: p.skip}
	}
	// Rounds run every row in turn, so a slow spell of the machine hits all rows alike.
	for round := range r.cfg.Rounds {
		for i, p := range plans {
			if ctx.Err() != nil {
				return
			}
			row := &rows[i]
			if round == 0 && row.Skipped == "" {
				probes[i] = r.prepareRow(ctx, p, row)
			}
			if row.Skipped != "" {
				if round == 0 {
					r.logf("%s: skipped: %s", p.name, row.Skipped)
				}
				continue
			}
			if res, ok := r.measure(ctx, p, probes[i], row, round); ok {
				runs[i] = append(runs[i], res)
			}
		}
	}
	var busy []string
	for i := range rows {
		if len(runs[i]) == 0 {
			continue
		}
		med := pick(runs[i])
		rows[i].Result, rows[i].CPU = &med.Result, med.cpu
		if len(runs[i]) > 1 {
			for _, m := range runs[i] {
				rows[i].Rounds = append(rows[i].Rounds, Round{RequestsPerS: math.Round(m.RequestsPerS),
					P50US: m.LatencyUS.P50, P99US: m.LatencyUS.P99, CPU: m.cpu})
			}
		}
		if c := med.cpu; c != nil && r.cfg.ServerCPU != "" && c.OtherOnServerCore > 10 {
			busy = append(busy, fmt.Sprintf("%s (%.0f%%)", rows[i].Name, c.OtherOnServerCore))
		}
	}
	r.rep.Rows = rows
	if len(busy) > 0 {
		r.note("other processes used the server core during %s: those rows measured less than a quiet machine gives",
			strings.Join(busy, ", "))
	}
}

// measured is one wrk run with the CPU use seen meanwhile.
type measured struct {
	wrkrun.Result
	cpu *CPUUse
}

// pick chooses the run a row reports: among the runs least disturbed by other processes on the
// server core (within 5 points of the least), the median one by requests/s. Without CPU
// accounting it is the median of all. The choice never looks at the throughput first, so it
// does not favour fast runs; the report keeps every round.
func pick(runs []measured) measured {
	least := math.Inf(1)
	for _, m := range runs {
		if m.cpu == nil || (m.cpu.ServerCore == 0 && m.cpu.LoadCore == 0) {
			return median(runs)
		}
		least = min(least, m.cpu.OtherOnServerCore)
	}
	var calm []measured
	for _, m := range runs {
		if m.cpu.OtherOnServerCore <= least+5 {
			calm = append(calm, m)
		}
	}
	return median(calm)
}

// median returns the run with the median requests/s (the lower middle one for an even count),
// so the latencies shown belong to the same run as the throughput.
func median(runs []measured) measured {
	s := slices.Clone(runs)
	slices.SortFunc(s, func(a, b measured) int { return cmp.Compare(a.RequestsPerS, b.RequestsPerS) })
	return s[(len(s)-1)/2]
}

// cpuSnapshot is the CPU counters at one moment.
type cpuSnapshot struct {
	cpus  map[int]cpustat.CPU
	ours  uint64
	per   map[int]uint64 // ticks by pid
	valid bool
}

func (r *runner) snapshot() cpuSnapshot {
	cpus, err := cpustat.ReadCPUs()
	if err != nil {
		return cpuSnapshot{}
	}
	var ours uint64
	per := make(map[int]uint64, len(r.pids))
	for _, pid := range r.pids {
		t := cpustat.ProcTicks(pid)
		per[pid] = t
		ours += t
	}
	return cpuSnapshot{cpus: cpus, ours: ours, per: per, valid: true}
}

// underTest is the CPU time the named processes used between two snapshots, in seconds.
func (r *runner) underTest(a, b cpuSnapshot, procs []string) (float64, bool) {
	if !a.valid || !b.valid || len(procs) == 0 {
		return 0, false
	}
	var ticks uint64
	for _, name := range procs {
		pid, ok := r.pidOf[name]
		if !ok {
			return 0, false
		}
		ticks += b.per[pid] - a.per[pid]
	}
	return float64(ticks) / cpustat.TicksPerSecond, true
}

// cpuUse compares two snapshots: how busy the server and load cores were, and how much of a
// core the servers (and the store) used.
func (r *runner) cpuUse(a, b cpuSnapshot) *CPUUse {
	if !a.valid || !b.valid {
		return nil
	}
	core := 0
	if n, err := strconv.Atoi(r.cfg.ServerCPU); err == nil {
		core = n
	}
	sa, sb := a.cpus[core], b.cpus[core]
	if sb.Total <= sa.Total {
		return nil
	}
	u := &CPUUse{Servers: 100 * float64(b.ours-a.ours) / float64(sb.Total-sa.Total)}
	if r.cfg.ServerCPU != "" {
		u.ServerCore = cpustat.BusyPercent(sa, sb)
		u.OtherOnServerCore = max(0, u.ServerCore-u.Servers)
		if n, err := strconv.Atoi(r.cfg.LoadCPU); err == nil {
			u.LoadCore = cpustat.BusyPercent(a.cpus[n], b.cpus[n])
		}
	}
	return u
}

// prepareRow probes the row's target once: a wrong status skips the row (a route that does not
// exist yet, say); a wrong body leaves a note. Then it warms the target up.
func (r *runner) prepareRow(ctx context.Context, p rowPlan, row *Row) probeResult {
	pr, err := probe(p.req)
	if err != nil {
		row.Skipped = fmt.Sprintf("probe %s %s failed: %v", p.req.Method, p.req.URL, err)
		return pr
	}
	row.ProbeStatus, row.ProbeBytes = pr.Status, pr.WireBytes
	if pr.Status != p.wantStatus {
		row.Skipped = fmt.Sprintf("%s %s answered %d %s (want %d)", p.req.Method, strings.TrimPrefix(p.req.URL, p.base),
			pr.Status, oneLine([]byte(pr.Body)), p.wantStatus)
		if pr.Status == http.StatusNotFound && p.name == RowEdgeSoldOut {
			row.Skipped += ": the edge has no sold-out route yet"
		}
		return pr
	}
	if p.wantBody != "" && pr.Body != p.wantBody {
		row.Notes = append(row.Notes, fmt.Sprintf("body differs from the expected answer: got %s want %s", oneLine([]byte(pr.Body)), p.wantBody))
	}
	if p.wantPart != "" && !strings.Contains(pr.Body, p.wantPart) {
		row.Notes = append(row.Notes, fmt.Sprintf("body %s lacks %s", oneLine([]byte(pr.Body)), p.wantPart))
	}
	if r.cfg.Warmup > 0 {
		o := r.wrkOptions(p)
		o.Duration = r.cfg.Warmup
		r.logf("%s: warm-up %s", p.name, r.cfg.Warmup)
		if _, _, err := wrkrun.Run(ctx, o); err != nil {
			row.Errors = append(row.Errors, "warm-up: "+err.Error())
		}
	}
	return pr
}

func (r *runner) wrkOptions(p rowPlan) wrkrun.Options {
	o := wrkrun.Options{Threads: r.cfg.Threads, Connections: r.cfg.Connections, Duration: r.cfg.Duration,
		URL: p.req.URL, CPU: r.cfg.LoadCPU, Env: p.env}
	if p.script != "" {
		o.Script = filepath.Join(r.scripts, p.script)
	} else {
		for _, k := range slices.Sorted(maps.Keys(p.req.Headers)) {
			o.Headers = append(o.Headers, k+": "+p.req.Headers[k])
		}
	}
	return o
}

// measure runs wrk once for the row and checks that every answer was the probe's answer.
func (r *runner) measure(ctx context.Context, p rowPlan, pr probeResult, row *Row, round int) (measured, bool) {
	o := r.wrkOptions(p)
	row.Command = shellJoin(o.Argv())
	if len(p.env) > 0 {
		row.Command = strings.Join(maskEnv(p.env), " ") + " " + row.Command
	}
	tag := p.name
	if r.cfg.Rounds > 1 {
		tag = fmt.Sprintf("%s (round %d/%d)", p.name, round+1, r.cfg.Rounds)
	}
	r.logf("%s: %s", tag, row.Command)
	before := r.snapshot()
	res, _, err := wrkrun.Run(ctx, o)
	after := r.snapshot()
	use := r.cpuUse(before, after)
	if sec, ok := r.underTest(before, after, p.procs); ok && use != nil && res.Requests > 0 {
		use.UnderTest = p.procs
		use.PerRequestUS = 1e6 * sec / float64(res.Requests)
		use.LoadPerRequestUS = 1e6 * res.CPUSeconds / float64(res.Requests)
	}
	if err != nil {
		row.Errors = append(row.Errors, err.Error())
		if res.Requests == 0 {
			return measured{}, false
		}
	}
	if res.SocketErrors > 0 || res.Timeouts > 0 {
		row.Errors = append(row.Errors, fmt.Sprintf("%d socket errors, %d timeouts", res.SocketErrors, res.Timeouts))
	}
	switch {
	case p.wantStatus < 400 && res.Non2xx3xx > 0:
		row.Errors = append(row.Errors, fmt.Sprintf("%d of %d answers were not 2xx/3xx", res.Non2xx3xx, res.Requests))
	case p.wantStatus >= 400 && res.Non2xx3xx < res.Requests:
		row.Errors = append(row.Errors, fmt.Sprintf("%d of %d answers were 2xx/3xx, want %d", res.Requests-res.Non2xx3xx, res.Requests, p.wantStatus))
	}
	// Every answer of a run should be the probe's answer; wrk's bytes per response tell when some
	// were not (a 429 or 503 among the 410s, say). wrk also counts the partial answers it read
	// when time ran out, hence the tolerance.
	if diff := math.Abs(res.BytesPerResp - float64(pr.WireBytes)); pr.WireBytes > 0 && diff > math.Max(4, 0.01*float64(pr.WireBytes)) {
		row.Errors = append(row.Errors, fmt.Sprintf("answers average %.1f bytes but the probe's answer has %d: some answers differ from it", res.BytesPerResp, pr.WireBytes))
	}
	if after, err := probe(p.req); err != nil || after.Status != p.wantStatus {
		row.Errors = append(row.Errors, fmt.Sprintf("after the run the probe got %d %v", after.Status, err))
	}
	r.logf("%s: %.0f requests/s, p50 %s, p99 %s%s", tag, res.RequestsPerS, us(res.LatencyUS.P50), us(res.LatencyUS.P99), use)
	return measured{Result: res, cpu: use}, true
}

// freshness times product updates made through the edge's admin API until every edge, and the
// lrucache peer, serve them. Two passes: the edges alone, many updates close together with the
// servers free to use every CPU (wrk is idle by then; in a deployment each edge has cores of its
// own), and a store-side reference (when the invalidation push reaches a tracking client of this
// process); then the first edge against the peer with updates spread over the peer's TTL.
func (r *runner) freshness(ctx context.Context) {
	if r.cfg.FreshUpdates <= 0 {
		return
	}
	f := &Freshness{Updates: r.cfg.FreshUpdates, PeerUpdates: r.cfg.FreshPeerUpdates}
	r.rep.Freshness = f
	if r.edgeBase == "" {
		f.Skipped = "edge binary not built"
		r.logf("freshness: skipped: %s", f.Skipped)
		return
	}
	id := r.cfg.ProductID
	path := "/api/v1/admin/products/" + id
	status, body, err := r.call(ctx, http.MethodPut, r.edgeBase+path, r.adminToken, map[string]string{"name": "bench freshness check"})
	if err != nil || status/100 != 2 {
		f.Skipped = fmt.Sprintf("PUT %s answered %d %s %v", path, status, oneLine(body), err)
		r.logf("freshness: skipped: %s", f.Skipped)
		return
	}
	update := func(ctx context.Context, _ int, marker string) error {
		status, body, err := r.call(ctx, http.MethodPut, r.edgeBase+path, r.adminToken, map[string]string{"name": "bench " + marker})
		if err != nil {
			return err
		}
		if status/100 != 2 {
			return fmt.Errorf("PUT answered %d %s", status, oneLine(body))
		}
		return nil
	}
	edges := []fresh.Target{{Name: fmt.Sprintf("edge 1 of %d (invalidation)", 1+len(r.freshEdgeBases)), URL: r.edgeBase + "/api/v1/products/" + id}}
	for i, base := range r.freshEdgeBases {
		edges = append(edges, fresh.Target{Name: fmt.Sprintf("edge %d of %d (invalidation)", i+2, 1+len(r.freshEdgeBases)), URL: base + "/api/v1/products/" + id})
	}

	f.Pinning = r.unpin("store", "catalog", "edge", "edge-2", "edge-3")
	f.Method = fmt.Sprintf("%d updates of product %s's name with PUT %s (admin API through edge 1, forwarded to the catalog), "+
		"a random pause of up to %s before each; from each 2xx answer until the first GET that shows the new name, every edge read "+
		"continuously (a read every %s after the previous answer) by this process; %s", r.cfg.FreshUpdates, id, path,
		freshSpread, freshPoll, f.Pinning)
	r.logf("freshness: %d updates across %d edges", r.cfg.FreshUpdates, len(edges))
	push := r.pushTracker(ctx, id)
	var acks []time.Time
	f.LoadBefore = loadAverage()
	res, err := fresh.Measure(ctx, fresh.Options{
		Updates: r.cfg.FreshUpdates,
		Update: func(ctx context.Context, i int, marker string) error {
			if push != nil {
				push.arm(ctx)
			}
			err := update(ctx, i, marker)
			acks = append(acks, time.Now())
			if push != nil {
				push.collect(acks[len(acks)-1])
			}
			return err
		},
		Targets:      edges,
		Deadline:     time.Second,
		Spread:       freshSpread,
		PollInterval: freshPoll,
	})
	f.LoadAfter = loadAverage()
	if push != nil {
		push.close()
		ref := fresh.Summarize("store push to a tracking client (reference)", push.samples)
		f.Push = &ref
	}
	if err != nil {
		f.Skipped = err.Error()
		r.logf("freshness: failed: %v", err)
		return
	}
	f.Results = res

	if r.peer == nil || r.cfg.FreshPeerUpdates <= 0 {
		f.PeerSkipped = "nginx peer not installed"
		if r.peer != nil {
			f.PeerSkipped = "-fresh-peer-updates 0"
		}
		return
	}
	f.PeerMethod = fmt.Sprintf("%d updates as above, a random pause of up to %s before each (so updates fall at every phase of the "+
		"peer's %s TTL), edge 1 and the nginx+lua+lrucache peer read continuously", r.cfg.FreshPeerUpdates, r.cfg.TTL+r.cfg.TTL/10, r.cfg.TTL)
	r.logf("freshness: %d updates against the peer (about %s)", r.cfg.FreshPeerUpdates, time.Duration(r.cfg.FreshPeerUpdates)*r.cfg.TTL)
	peer, err := fresh.Measure(ctx, fresh.Options{
		Updates:  r.cfg.FreshPeerUpdates,
		Update:   update,
		Targets:  []fresh.Target{edges[0], {Name: "nginx+lua+lrucache " + r.cfg.TTL.String() + " TTL", URL: r.peer.LRUBase + "/api/v1/products/" + id}},
		Deadline: 3*r.cfg.TTL + time.Second,
		Spread:   r.cfg.TTL + r.cfg.TTL/10,
	})
	if err != nil {
		f.PeerSkipped = err.Error()
		r.logf("freshness against the peer: failed: %v", err)
		return
	}
	f.Peer = peer
}

// The edges' freshness pass: the most pause before an update, and the pause between two reads.
const (
	freshSpread = 20 * time.Millisecond
	freshPoll   = 200 * time.Microsecond
)

// pushWatch is a tracking client of this process reading the updated key before every update,
// so the store pushes it the invalidation as it pushes the edges theirs: the store's share of
// the staleness, measured from the same write answers.
type pushWatch struct {
	client  rueidis.Client
	key     string
	at      atomic.Int64 // unix nanos of the latest push; 0 since the last arm
	samples []time.Duration
	pending time.Time // the answer of the update whose push is awaited
}

func (r *runner) pushTracker(ctx context.Context, id string) *pushWatch {
	w := &pushWatch{key: keyspace.Product(id)}
	c, err := kv.Open(ctx, kv.Options{Addrs: []string{r.storeAddr}, OnInvalidations: func(m []rueidis.RedisMessage) {
		if m != nil {
			w.at.CompareAndSwap(0, time.Now().UnixNano())
		}
	}})
	if err != nil {
		r.note("freshness: no tracking client for the store-side reference: %v", err)
		return nil
	}
	w.client = c
	return w
}

// arm records the previous update's push and reads the key again (tracking is one push per read).
func (w *pushWatch) arm(ctx context.Context) {
	w.take()
	_ = w.client.DoCache(ctx, w.client.B().Get().Key(w.key).Cache(), time.Hour).Error()
	w.at.Store(0)
}

func (w *pushWatch) collect(ack time.Time) { w.pending = ack }

func (w *pushWatch) take() {
	if at := w.at.Load(); at != 0 && !w.pending.IsZero() {
		w.samples = append(w.samples, time.Duration(at-w.pending.UnixNano()))
	}
	w.pending = time.Time{}
}

func (w *pushWatch) close() {
	deadline := time.Now().Add(time.Second)
	for w.at.Load() == 0 && !w.pending.IsZero() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	w.take()
	w.client.Close()
}

// unpin lets the named servers run on every CPU again (taskset -a -p) and says what it did.
func (r *runner) unpin(names ...string) string {
	if r.cfg.ServerCPU == "" {
		return "servers unpinned"
	}
	all := fmt.Sprintf("0-%d", runtime.NumCPU()-1)
	var done []string
	for _, n := range names {
		pid, ok := r.pidOf[n]
		if !ok {
			continue
		}
		if err := exec.Command(proc.Taskset(), "-a", "-p", "-c", all, strconv.Itoa(pid)).Run(); err != nil {
			r.note("freshness: taskset -a -p -c %s %d (%s): %v; it stays on CPU %s", all, pid, n, err, r.cfg.ServerCPU)
			continue
		}
		done = append(done, n)
	}
	return fmt.Sprintf("%s moved from CPU %s to CPUs %s for this pass", strings.Join(done, ", "), r.cfg.ServerCPU, all)
}

// loadAverage is /proc/loadavg's 1, 5 and 15 minute figures ("" when unreadable).
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// freshEdges is how many edges (on one store) the freshness measurement reads.
const freshEdges = 3

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// maskEnv shows an environment with secrets replaced.
func maskEnv(env []string) []string {
	out := make([]string, len(env))
	for i, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		if strings.Contains(k, "TOKEN") || strings.Contains(k, "SECRET") || strings.Contains(k, "PASSWORD") {
			v = "***"
		}
		out[i] = k + "=" + v
	}
	return out
}

// shellJoin shows argv as a shell would need it typed (arguments with spaces quoted).
func shellJoin(argv []string) string {
	out := make([]string, len(argv))
	for i, a := range argv {
		if strings.ContainsAny(a, " \"'") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}

func oneLine(b []byte) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
