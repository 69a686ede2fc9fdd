// Package nginxpeer renders and runs the nginx + Lua peer (bench/nginx) that `make bench`
// compares the edge with: Debian's nginx with libnginx-mod-http-lua, lua-nginx-redis and
// lua-resty-lrucache, reading the same store keys as the edge.
package nginxpeer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"text/template"
	"time"

	benchnginx "flashedge/bench/nginx"
	"flashedge/shared/keyspace"
	"flashedge/shared/proc"
	"flashedge/shared/product"
)

// Default install locations of Debian's packages.
const (
	DefaultModulesDir = "/usr/share/nginx/modules"
	DefaultLuaDir     = "/usr/share/lua/5.1"
)

// Config configures the peer.
type Config struct {
	// Dir is the nginx prefix: nginx.conf, peer.lua, pid, error log and temp files go there.
	// Required; it must exist.
	Dir string
	// StoreAddr is the store's host:port. Required.
	StoreAddr string
	// CPU pins nginx (master with taskset, worker with worker_cpu_affinity) when it is a single
	// CPU number such as "0". Empty means unpinned.
	CPU string
	// TTL is the lrucache TTL of the cached port. Zero means 1s.
	TTL time.Duration
	// ModulesDir holds ndk_http_module.so and ngx_http_lua_module.so. Empty means DefaultModulesDir.
	ModulesDir string
	// LuaDir holds nginx/redis.lua and resty/lrucache.lua. Empty means DefaultLuaDir.
	LuaDir string
	// CacheItems is the lrucache's capacity in entries (products and sales). Zero means
	// DefaultCacheItems.
	CacheItems int
	// WorkerConnections is nginx' worker_connections: the connections it can hold, each slot
	// allocated at start. Zero means DefaultWorkerConnections.
	WorkerConnections int
}

// DefaultWorkerConnections is the peer's default worker_connections.
const DefaultWorkerConnections = 4096

// DefaultCacheItems is the lrucache's default capacity.
const DefaultCacheItems = 10_000

func (c Config) withDefaults() Config {
	if c.TTL == 0 {
		c.TTL = time.Second
	}
	if c.ModulesDir == "" {
		c.ModulesDir = DefaultModulesDir
	}
	if c.LuaDir == "" {
		c.LuaDir = DefaultLuaDir
	}
	if c.CacheItems <= 0 {
		c.CacheItems = DefaultCacheItems
	}
	if c.WorkerConnections <= 0 {
		c.WorkerConnections = DefaultWorkerConnections
	}
	return c
}

// Check reports what is missing to run the peer (nil when nothing), naming the Debian package.
func Check(c Config) error {
	c = c.withDefaults()
	if _, err := exec.LookPath("nginx"); err != nil {
		return errors.New("nginx not installed (apt-get install nginx; make deps-bench does it)")
	}
	need := []struct{ path, pkg string }{
		{filepath.Join(c.ModulesDir, "ndk_http_module.so"), "libnginx-mod-http-ndk"},
		{filepath.Join(c.ModulesDir, "ngx_http_lua_module.so"), "libnginx-mod-http-lua"},
		{filepath.Join(c.LuaDir, "nginx", "redis.lua"), "lua-nginx-redis"},
	}
	for _, n := range need {
		if _, err := os.Stat(n.path); err != nil {
			return fmt.Errorf("%s missing (apt-get install %s)", n.path, n.pkg)
		}
	}
	if !exists(filepath.Join(c.LuaDir, "resty", "lrucache.lua")) && !exists(filepath.Join(c.LuaDir, "resty", "lrucache", "init.lua")) {
		return fmt.Errorf("resty/lrucache.lua missing under %s (apt-get install lua-resty-lrucache)", c.LuaDir)
	}
	return nil
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// The write peer's keys: AdmitStockKey(sale) holds the units its script decrements (seed it
// before a run); admitted attempts are appended to AdmitStream; AdmitUsersKey(sale) is the set
// of users admitted (kept only when the attempt names its user in HeaderUser); CartKey(user) is
// a cart hash (product id -> quantity, as keyspace.Cart). All are the peer's own, apart from the
// project's keys, so the project's worker never reads them; the sold-out flag is the sale's
// keyspace.SoldOut key and the prices are the catalog's product documents, as at the edge.
const (
	AdmitStockPrefix = "bench:nginx:stock:"
	AdmitUsersPrefix = "bench:nginx:users:"
	AdmitStream      = "bench:nginx:attempts"
	CartPrefix       = "bench:nginx:cart:{u:"
)

// HeaderUser names the shopper of a cart add or an attempt sent to the write peer: the peer has
// no sessions (the balancer is taken to have checked one), so the load tool says who it is.
const HeaderUser = "X-Bench-User"

// AdmitStockKey is the stock key the admission peer decrements for sale.
func AdmitStockKey(sale string) string { return AdmitStockPrefix + sale }

// AdmitUsersKey is the set of the users the admission peer admitted to sale.
func AdmitUsersKey(sale string) string { return AdmitUsersPrefix + sale }

// CartKey is the peer's cart of user.
func CartKey(user string) string { return CartPrefix + user + "}" }

// Peer is a running nginx. Stop it with Stop.
type Peer struct {
	// PlainBase is the base URL (http://host:port) of the server that reads the store on every
	// request; LRUBase of the one with lrucache in front; AdmitBase of the one that admits
	// attempts (POST /api/v1/flash-sales/{id}/attempts: sold-out check and decrement in one
	// script, then XADD; 202, 410, or 409 for a user named in HeaderUser already admitted) and
	// adds to carts (PUT /api/v1/cart/items/{id} with {"quantity":n} for the user named in
	// HeaderUser: 200 with the cart as JSON and its total).
	PlainBase, LRUBase, AdmitBase string
	// ConfPath is the rendered nginx.conf.
	ConfPath string
	p        *proc.Proc
}

// Argv is nginx' command line.
func (p *Peer) Argv() []string { return p.p.Argv }

// Pid is the nginx master's process id (its worker is its child).
func (p *Peer) Pid() int { return p.p.Pid() }

// Stop stops nginx (SIGTERM: fast shutdown) and waits for it.
func (p *Peer) Stop() { p.p.Stop(5 * time.Second) }

type confData struct {
	User, ModulesDir, LuaDir, Dir, CPUMask string
	StoreHost                              string
	StorePort, PlainPort, LRUPort          int
	AdmitPort                              int
	AdmitStockPrefix, AdmitStream          string
	AdmitUsersPrefix, CartPrefix           string
	TTL, CacheItems, WorkerConnections     int
	ProductPrefix, ProductSuffix           string
	StockPrefix, StockSuffix               string
	SoldOutPrefix, SoldOutSuffix           string
	LowStock                               int
}

// Render writes nginx.conf and peer.lua into c.Dir for the three ports and returns the conf path.
func Render(c Config, plainPort, lruPort, admitPort int) (string, error) {
	c = c.withDefaults()
	host, portStr, err := net.SplitHostPort(c.StoreAddr)
	if err != nil {
		return "", fmt.Errorf("nginxpeer: store address %q: %w", c.StoreAddr, err)
	}
	storePort, err := strconv.Atoi(portStr)
	if err != nil {
		return "", fmt.Errorf("nginxpeer: store port %q: %w", portStr, err)
	}
	ttl := int(c.TTL / time.Second)
	if ttl < 1 || c.TTL%time.Second != 0 {
		return "", fmt.Errorf("nginxpeer: TTL %s: want whole seconds", c.TTL)
	}
	d := confData{
		ModulesDir: c.ModulesDir, LuaDir: c.LuaDir, Dir: c.Dir, StoreHost: host, StorePort: storePort,
		PlainPort: plainPort, LRUPort: lruPort, AdmitPort: admitPort, TTL: ttl, LowStock: product.LowStock,
		AdmitStockPrefix: AdmitStockPrefix, AdmitStream: AdmitStream, AdmitUsersPrefix: AdmitUsersPrefix, CartPrefix: CartPrefix,
		CacheItems: c.CacheItems, WorkerConnections: c.WorkerConnections,
		CPUMask: cpuMask(c.CPU),
	}
	d.ProductPrefix, d.ProductSuffix = split(keyspace.Product)
	d.StockPrefix, d.StockSuffix = split(keyspace.ProductStock)
	d.SoldOutPrefix, d.SoldOutSuffix = split(keyspace.SoldOut)
	if os.Geteuid() == 0 {
		// A root master would run its worker as nobody, who cannot read Dir; nginx ignores the
		// directive (with a warning) for other users, who run the worker as themselves anyway.
		if u, err := user.Current(); err == nil {
			d.User = u.Username
		}
	}
	tmplText, err := benchnginx.Files.ReadFile("nginx.conf.tmpl")
	if err != nil {
		return "", err
	}
	t, err := template.New("nginx.conf").Option("missingkey=error").Parse(string(tmplText))
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, d); err != nil {
		return "", err
	}
	lua, err := benchnginx.Files.ReadFile("peer.lua")
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Join(c.Dir, "tmp"), 0o755); err != nil {
		return "", err
	}
	conf := filepath.Join(c.Dir, "nginx.conf")
	if err := os.WriteFile(conf, buf.Bytes(), 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(c.Dir, "peer.lua"), lua, 0o644); err != nil {
		return "", err
	}
	return conf, nil
}

// split returns what a key format puts before and after the id; the Lua side concatenates.
func split(key func(string) string) (string, string) {
	const marker = "\x00"
	pre, post, _ := strings.Cut(key(marker), marker)
	return pre, post
}

// cpuMask turns a single CPU number into nginx' worker_cpu_affinity bit mask ("0" -> "1",
// "2" -> "100"); anything else gives "" (no directive).
func cpuMask(cpu string) string {
	n, err := strconv.Atoi(cpu)
	if err != nil || n < 0 || n > 63 {
		return ""
	}
	return "1" + strings.Repeat("0", n)
}

// Start renders the configuration, starts nginx in the foreground on three free loopback ports
// and waits until each answers /ready.
func Start(ctx context.Context, c Config) (*Peer, error) {
	c = c.withDefaults()
	if err := Check(c); err != nil {
		return nil, err
	}
	plain, err := proc.FreePort()
	if err != nil {
		return nil, err
	}
	lru, err := proc.FreePort()
	if err != nil {
		return nil, err
	}
	admit, err := proc.FreePort()
	if err != nil {
		return nil, err
	}
	conf, err := Render(c, plain, lru, admit)
	if err != nil {
		return nil, err
	}
	p, err := proc.Start(proc.Spec{
		Name: "nginx", Path: mustLook("nginx"), CPU: c.CPU, Log: filepath.Join(c.Dir, "stderr.log"),
		Args: []string{"-p", c.Dir, "-c", conf, "-e", filepath.Join(c.Dir, "error.log"), "-g", "daemon off;"},
	})
	if err != nil {
		return nil, err
	}
	peer := &Peer{
		PlainBase: "http://127.0.0.1:" + strconv.Itoa(plain),
		LRUBase:   "http://127.0.0.1:" + strconv.Itoa(lru),
		AdmitBase: "http://127.0.0.1:" + strconv.Itoa(admit),
		ConfPath:  conf, p: p,
	}
	for _, base := range []string{peer.PlainBase, peer.LRUBase, peer.AdmitBase} {
		if err := p.WaitHTTP(ctx, base+"/ready", 10*time.Second); err != nil {
			p.Stop(2 * time.Second)
			errLog, _ := os.ReadFile(filepath.Join(c.Dir, "error.log"))
			return nil, fmt.Errorf("nginxpeer: %w\nerror.log:\n%s", err, errLog)
		}
	}
	return peer, nil
}

func mustLook(name string) string {
	p, err := exec.LookPath(name)
	if err != nil {
		return name
	}
	return p
}
