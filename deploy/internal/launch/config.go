// Package launch is the local launcher behind `make run`: it starts a store on loopback, every
// flashedge service (with replicas on a fixed port scheme) under a supervisor that restarts them,
// waits until they are ready and tells the user where to go.
package launch

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"flashedge/deploy/wiring"
	"flashedge/shared/flagenv"
)

// Services returns the flashedge binaries in start order. Stop runs in the reverse order, so
// the edge stops taking requests before the services behind it go away.
func Services() []string { return []string{"catalog", "cart", "order", "worker", "edge"} }

// DefaultPorts are the base ports of replica 0 of each service (README: The public contract). Replica i listens on
// base + ReplicaStride*i: cart replicas on 5002, 5012, 5022...; the bases differ in their last
// digit, so replicas of different services never collide (up to MaxReplicas).
func DefaultPorts() map[string]int {
	return map[string]int{"edge": 8000, "catalog": 5001, "cart": 5002, "order": 5003, "worker": 5004}
}

// DefaultOpsPort is where edge replica 0 serves /metrics, /metrics.json and /dashboard: an
// internal port, never the shop's.
const DefaultOpsPort = 8100

const (
	// ReplicaStride is the port distance between two replicas of one service.
	ReplicaStride = 10
	// MaxReplicas bounds -replicas so the port scheme stays collision free.
	MaxReplicas = 20
	// DefaultSeed is how many demo products the catalog seeds into an empty store.
	DefaultSeed = 1200
)

// Config is everything the launcher needs, filled from flags and the environment by ParseConfig.
type Config struct {
	// BinDir holds the service binaries (one per name in Services()). Default "bin".
	BinDir string
	// DataDir holds the store's files, its log and the generated secrets. Default ".data".
	DataDir string
	// Host is the loopback address every process binds. Always 127.0.0.1.
	Host string
	// StorePort is where the launcher's own store listens. Default 6379.
	StorePort int
	// StoreKind is "auto" (dragonfly when on PATH, else redis-server), "dragonfly", "redis" or
	// "cluster" (a Redis Cluster of 3 primaries with a replica each on StorePort..StorePort+5).
	StoreKind string
	// ExternalStore, from -store-addr (FLASHEDGE_STORE_ADDR), is a store the launcher uses instead of starting one.
	ExternalStore string
	// Services to start, in start order. Default all of Services().
	Services []string
	// Replicas per service. Default 1 each.
	Replicas map[string]int
	// Ports are the base ports per service. Default DefaultPorts.
	Ports map[string]int
	// OpsPort is the port of edge replica 0's ops listener (/metrics, /dashboard); replica i
	// uses OpsPort+i. Default DefaultOpsPort.
	OpsPort int
	// Seed is FLASHEDGE_SEED_DEMO for the first catalog replica: products to seed into an empty
	// store. Default 1200; 0 seeds nothing.
	Seed int
	// LogFormat is passed to every service as FLASHEDGE_LOG_FORMAT ("text" or "json").
	LogFormat string
	// ReadyTimeout bounds the wait for the store and for every /ready. Default 60s.
	ReadyTimeout time.Duration
	// Grace is how long a process may take to stop after SIGTERM. Default 10s.
	Grace time.Duration
	// AdminToken and SessionSecret come from FLASHEDGE_ADMIN_TOKEN and FLASHEDGE_SESSION_SECRET,
	// or are generated once and kept in DataDir/secrets so sessions survive a relaunch.
	AdminToken    string
	SessionSecret string
	// Color tags output lines with colours (when stdout is a terminal and NO_COLOR is unset).
	Color bool
}

// String describes the configuration with secrets masked.
func (c Config) String() string {
	var reps []string
	for _, s := range c.Services {
		reps = append(reps, fmt.Sprintf("%s=%d", s, c.Replicas[s]))
	}
	return fmt.Sprintf("bin=%s data=%s store=%s replicas=%s admin_token=*** session_secret=***",
		c.BinDir, c.DataDir, c.storeDesc(), strings.Join(reps, ","))
}

func (c Config) storeDesc() string {
	if c.ExternalStore != "" {
		return "external " + c.ExternalStore
	}
	return fmt.Sprintf("%s on %s:%d", c.StoreKind, c.Host, c.StorePort)
}

// ParseConfig reads the command line and the environment (every flag also has a variable:
// FLASHEDGE_LAUNCH_<FLAG>, except -store-addr and -log-format, which share the services' names).
// It does not touch the disk except to make paths absolute; secrets are settled by LoadSecrets.
func ParseConfig(args []string, getenv func(string) string, stderr io.Writer) (Config, error) {
	c := Config{Host: "127.0.0.1", Ports: DefaultPorts(), OpsPort: DefaultOpsPort}
	fs := flagenv.New("launch", "FLASHEDGE_LAUNCH_", getenv, stderr)
	var services, replicas, ports string
	var noColor bool
	fs.String(&c.BinDir, "bin", "bin", "directory holding the service binaries")
	fs.String(&c.DataDir, "data", ".data", "directory for the store's files, its log and generated secrets")
	fs.Int(&c.StorePort, "store-port", 6379, "loopback port of the store the launcher starts")
	fs.String(&c.StoreKind, "store", "auto", "store to start: auto (dragonfly if on PATH, else redis-server), dragonfly, redis, or cluster (Redis Cluster: 3 primaries + 3 replicas on -store-port..+5)")
	fs.String(&c.ExternalStore, "store-addr", "", "an existing store, host:port[,host:port...], to use instead of starting one").Env("FLASHEDGE_STORE_ADDR")
	fs.String(&services, "services", strings.Join(Services(), ","), "services to start, comma-separated")
	fs.String(&replicas, "replicas", "", "replicas per service, e.g. cart=2,order=2 (default 1 each; replica i of a service listens on its base port + "+strconv.Itoa(ReplicaStride)+"*i)")
	fs.String(&ports, "ports", "", "base ports to change, e.g. edge=8080,catalog=6001")
	fs.Int(&c.OpsPort, "ops-port", DefaultOpsPort, "port of edge replica 0's ops listener (/metrics, /dashboard); replica i uses it + i")
	fs.Int(&c.Seed, "seed", DefaultSeed, "demo products the catalog seeds into an empty store (0: none)")
	fs.String(&c.LogFormat, "log-format", "text", "service log format: text or json").Env("FLASHEDGE_LOG_FORMAT")
	fs.Duration(&c.ReadyTimeout, "ready-timeout", 60*time.Second, "how long to wait for the store and every service to be ready")
	fs.Duration(&c.Grace, "shutdown-grace", 10*time.Second, "how long a process may take to stop after SIGTERM before it is killed")
	fs.Alias("grace", "shutdown-grace")
	fs.Bool(&noColor, "no-color", getenv("NO_COLOR") != "", "do not colour the name tags (default when NO_COLOR is set)")
	fs.Secret(&c.AdminToken, "FLASHEDGE_ADMIN_TOKEN", "admin token handed to the services; default: generated once and kept in -data")
	fs.Secret(&c.SessionSecret, "FLASHEDGE_SESSION_SECRET", "session secret handed to the services; default: generated once and kept in -data")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	c.Color = !noColor

	var err error
	if c.Services, err = parseServices(services); err != nil {
		return c, err
	}
	if c.Replicas, err = parseReplicas(replicas, c.Services); err != nil {
		return c, err
	}
	if err := parsePorts(ports, c.Ports); err != nil {
		return c, err
	}
	if c.StorePort <= 0 || c.StorePort+ClusterNodes > 65535 {
		return c, fmt.Errorf("-store-port %d: want 1-%d", c.StorePort, 65535-ClusterNodes)
	}
	if c.OpsPort <= 0 || c.OpsPort+MaxReplicas > 65535 {
		return c, fmt.Errorf("-ops-port %d: want 1-%d", c.OpsPort, 65535-MaxReplicas)
	}
	seen := map[string]string{}
	for _, in := range c.Plan() {
		for _, a := range []string{in.Addr, in.OpsAddr} {
			if a == "" {
				continue
			}
			if other, ok := seen[a]; ok {
				return c, fmt.Errorf("%s and %s would both listen on %s: move one with -ports or -ops-port", other, in.Name, a)
			}
			seen[a] = in.Name
		}
	}
	switch c.StoreKind {
	case "auto", "dragonfly", "redis", "cluster":
	default:
		return c, fmt.Errorf("-store %q: want auto, dragonfly, redis or cluster", c.StoreKind)
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		return c, fmt.Errorf("-log-format %q: want text or json", c.LogFormat)
	}
	if c.Seed < 0 {
		return c, fmt.Errorf("-seed %d: want 0 or more", c.Seed)
	}
	if c.ReadyTimeout <= 0 || c.Grace <= 0 {
		return c, errors.New("-ready-timeout and -shutdown-grace must be positive")
	}
	if addr := strings.TrimSpace(c.ExternalStore); addr != "" {
		for _, a := range strings.Split(addr, ",") {
			if _, _, err := net.SplitHostPort(strings.TrimSpace(a)); err != nil {
				return c, fmt.Errorf("%s %q: want host:port[,host:port...]", fs.Label("store-addr"), addr)
			}
		}
		c.ExternalStore = addr
	}
	if c.BinDir, err = filepath.Abs(c.BinDir); err != nil {
		return c, err
	}
	if c.DataDir, err = filepath.Abs(c.DataDir); err != nil {
		return c, err
	}
	return c, nil
}

func parseServices(s string) ([]string, error) {
	var out []string
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		if !slices.Contains(Services(), name) {
			return nil, fmt.Errorf("-services: unknown service %q (known: %s)", name, strings.Join(Services(), ", "))
		}
		if slices.Contains(out, name) {
			return nil, fmt.Errorf("-services: %q named twice", name)
		}
		out = append(out, name)
	}
	if len(out) == 0 {
		return nil, errors.New("-services: name at least one service")
	}
	// Keep the dependency order whatever order the user typed.
	all := Services()
	slices.SortFunc(out, func(a, b string) int { return slices.Index(all, a) - slices.Index(all, b) })
	return out, nil
}

// parseKV parses "name=value,name=value" with known service names and integer values.
func parseKV(flagName, s string, each func(name string, n int) error) error {
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, val, ok := strings.Cut(item, "=")
		if !ok {
			return fmt.Errorf("-%s: %q is not name=number", flagName, item)
		}
		name = strings.TrimSpace(name)
		if !slices.Contains(Services(), name) {
			return fmt.Errorf("-%s: unknown service %q (known: %s)", flagName, name, strings.Join(Services(), ", "))
		}
		n, err := strconv.Atoi(strings.TrimSpace(val))
		if err != nil {
			return fmt.Errorf("-%s: %q: %q is not a whole number", flagName, item, val)
		}
		if err := each(name, n); err != nil {
			return fmt.Errorf("-%s: %s", flagName, err)
		}
	}
	return nil
}

func parseReplicas(s string, services []string) (map[string]int, error) {
	out := map[string]int{}
	for _, name := range services {
		out[name] = 1
	}
	err := parseKV("replicas", s, func(name string, n int) error {
		if n < 1 || n > MaxReplicas {
			return fmt.Errorf("%s=%d: want 1 to %d replicas", name, n, MaxReplicas)
		}
		if !slices.Contains(services, name) {
			return fmt.Errorf("%s is not among the services started (-services)", name)
		}
		out[name] = n
		return nil
	})
	return out, err
}

func parsePorts(s string, ports map[string]int) error {
	return parseKV("ports", s, func(name string, n int) error {
		if n < 1 || n+ReplicaStride*(MaxReplicas-1) > 65535 {
			return fmt.Errorf("%s=%d: want a port from 1 to %d", name, n, 65535-ReplicaStride*(MaxReplicas-1))
		}
		ports[name] = n
		return nil
	})
}

// Instance is one process of a service (package wiring, shared with bench).
type Instance = wiring.Process

// Plan lists every instance to start, in start order.
func (c Config) Plan() []Instance {
	var out []Instance
	for _, s := range c.Services {
		for i := range c.Replicas[s] {
			base := c.Ports[s]
			if s == "edge" && c.Balanced() {
				base++ // the balancer takes the edge's base port
			}
			in := Instance{
				Service: s,
				Index:   i,
				Name:    fmt.Sprintf("%s-%d", s, i+1),
				Addr:    net.JoinHostPort(c.Host, strconv.Itoa(base+ReplicaStride*i)),
			}
			if s == "edge" {
				in.OpsAddr = net.JoinHostPort(c.Host, strconv.Itoa(c.OpsPort+i))
			}
			out = append(out, in)
		}
	}
	return out
}

// Balanced reports whether several edges run behind the local HAProxy: then the balancer
// listens on the edge's base port (8000) and edge i on base+1+10*i (8001, 8011, 8021...).
func (c Config) Balanced() bool { return c.Replicas["edge"] > 1 }

// BalancerAddr is where the balancer listens when Balanced.
func (c Config) BalancerAddr() string {
	return net.JoinHostPort(c.Host, strconv.Itoa(c.Ports["edge"]))
}

// Addrs returns the comma-separated addresses of every replica of service (empty when the
// service is not started).
func (c Config) Addrs(service string) string {
	var out []string
	for _, in := range c.Plan() {
		if in.Service == service {
			out = append(out, in.Addr)
		}
	}
	return strings.Join(out, ",")
}

// Env returns the variables the launcher sets for in on top of its own environment.
func (c Config) Env(in Instance, storeAddr string) map[string]string {
	w := Wiring{
		StoreAddr: storeAddr, StoreCluster: c.StoreKind == "cluster" && c.ExternalStore == "",
		AdminToken: c.AdminToken, SessionSecret: c.SessionSecret,
		LogFormat: c.LogFormat, Seed: c.Seed, Addrs: map[string]string{},
	}
	if c.Balanced() {
		BehindBalancer(&w)
	}
	for _, s := range c.Services {
		w.Addrs[s] = c.Addrs(s)
	}
	return w.Env(in)
}

// Wiring is the FLASHEDGE_* wiring of every process (package wiring, shared with bench).
type Wiring = wiring.Wiring

// MergeEnv returns base (KEY=value lines) with every key of set replaced or added. Keys of base
// that the launcher owns per instance (listen addresses, address lists) are dropped first, so a
// value left in the user's shell cannot point a replica at the wrong port.
func MergeEnv(base []string, set map[string]string) []string {
	out := make([]string, 0, len(base)+len(set))
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		if _, ok := set[k]; ok {
			continue
		}
		if strings.HasPrefix(k, "FLASHEDGE_") && (strings.HasSuffix(k, "_LISTEN") || strings.HasSuffix(k, "_ADDRS")) {
			continue
		}
		out = append(out, kv)
	}
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		out = append(out, k+"="+set[k])
	}
	return out
}

// LoadSecrets fills AdminToken and SessionSecret when the environment did not: from
// DataDir/secrets when an earlier run wrote it, else freshly from crypto/rand (and writes the
// file, mode 0600). generated reports whether new secrets were made.
func (c *Config) LoadSecrets() (generated bool, err error) {
	if c.AdminToken != "" && c.SessionSecret != "" {
		return false, nil
	}
	path := filepath.Join(c.DataDir, "secrets")
	saved := map[string]string{}
	if b, err := os.ReadFile(path); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok {
				saved[k] = v
			}
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return false, fmt.Errorf("read %s: %w", path, err)
	}
	if c.AdminToken == "" {
		if c.AdminToken = saved["FLASHEDGE_ADMIN_TOKEN"]; c.AdminToken == "" {
			b := make([]byte, 24)
			_, _ = rand.Read(b)
			c.AdminToken, generated = hex.EncodeToString(b), true
		}
	}
	if c.SessionSecret == "" {
		if c.SessionSecret = saved["FLASHEDGE_SESSION_SECRET"]; c.SessionSecret == "" {
			b := make([]byte, 48)
			_, _ = rand.Read(b)
			c.SessionSecret, generated = base64.RawURLEncoding.EncodeToString(b), true
		}
	}
	if generated {
		if err := os.MkdirAll(c.DataDir, 0o755); err != nil {
			return false, err
		}
		text := "# Generated by the launcher; delete this file for new secrets.\n" +
			"FLASHEDGE_ADMIN_TOKEN=" + c.AdminToken + "\nFLASHEDGE_SESSION_SECRET=" + c.SessionSecret + "\n"
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			return false, fmt.Errorf("write %s: %w", path, err)
		}
	}
	return generated, nil
}
