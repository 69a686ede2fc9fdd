package launch

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string
		check   func(t *testing.T, c Config)
	}{
		{name: "defaults", check: func(t *testing.T, c Config) {
			if !slices.Equal(c.Services, Services()) || c.StorePort != 6379 || c.StoreKind != "auto" || c.Seed != 1200 {
				t.Errorf("defaults: %+v", c)
			}
			for _, s := range Services() {
				if c.Replicas[s] != 1 {
					t.Errorf("replicas of %s = %d, want 1", s, c.Replicas[s])
				}
			}
			if !filepath.IsAbs(c.BinDir) || filepath.Base(c.BinDir) != "bin" || filepath.Base(c.DataDir) != ".data" {
				t.Errorf("dirs %s %s: want absolute bin and .data", c.BinDir, c.DataDir)
			}
			if c.ExternalStore != "" || !c.Color {
				t.Errorf("external %q color %v", c.ExternalStore, c.Color)
			}
		}},
		{name: "replicas and ports", args: []string{"-replicas", "cart=2, order=3", "-ports", "edge=8080"}, check: func(t *testing.T, c Config) {
			if c.Replicas["cart"] != 2 || c.Replicas["order"] != 3 || c.Replicas["catalog"] != 1 || c.Ports["edge"] != 8080 || c.Ports["cart"] != 5002 {
				t.Errorf("replicas %v ports %v", c.Replicas, c.Ports)
			}
		}},
		{name: "services sorted into start order", args: []string{"-services", "edge,catalog"}, check: func(t *testing.T, c Config) {
			if !slices.Equal(c.Services, []string{"catalog", "edge"}) {
				t.Errorf("services %v", c.Services)
			}
		}},
		{name: "external store and secrets from env", env: map[string]string{
			"FLASHEDGE_STORE_ADDR": "10.0.0.5:6379", "FLASHEDGE_ADMIN_TOKEN": "tok-4217", "FLASHEDGE_SESSION_SECRET": "sec-9931", "NO_COLOR": "1",
		}, check: func(t *testing.T, c Config) {
			if c.ExternalStore != "10.0.0.5:6379" || c.AdminToken != "tok-4217" || c.SessionSecret != "sec-9931" || c.Color {
				t.Errorf("config %+v", c)
			}
			if s := c.String(); strings.Contains(s, "tok-4217") || strings.Contains(s, "sec-9931") {
				t.Errorf("String() shows a secret: %s", s)
			}
		}},
		{name: "unknown service", args: []string{"-services", "catalog,payments"}, wantErr: `unknown service "payments"`},
		{name: "replicas of a service not started", args: []string{"-services", "catalog", "-replicas", "cart=2"}, wantErr: "not among the services"},
		{name: "too many replicas", args: []string{"-replicas", "cart=21"}, wantErr: "want 1 to 20"},
		{name: "zero replicas", args: []string{"-replicas", "cart=0"}, wantErr: "want 1 to 20"},
		{name: "replicas not name=number", args: []string{"-replicas", "cart"}, wantErr: "not name=number"},
		{name: "replicas not a number", args: []string{"-replicas", "cart=two"}, wantErr: "not a whole number"},
		{name: "bad port", args: []string{"-ports", "edge=70000"}, wantErr: "want a port"},
		{name: "bad store port", args: []string{"-store-port", "0"}, wantErr: "want 1-65529"},
		{name: "ops port collides with an edge replica", args: []string{"-replicas", "edge=11"}, wantErr: "would both listen on 127.0.0.1:8101"},
		{name: "bad store kind", args: []string{"-store", "memcached"}, wantErr: "want auto, dragonfly, redis or cluster"},
		{name: "bad log format", args: []string{"-log-format", "xml"}, wantErr: "want text or json"},
		{name: "bad external store", env: map[string]string{"FLASHEDGE_STORE_ADDR": "localhost"}, wantErr: "want host:port"},
		{name: "stray argument", args: []string{"run"}, wantErr: "flags only"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConfig(tc.args, envOf(tc.env), io.Discard)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("args %q env %v: error %v, want one containing %q", tc.args, tc.env, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("args %q: %v", tc.args, err)
			}
			tc.check(t, c)
		})
	}
}

func TestPlanPortsAndEnv(t *testing.T) {
	c, err := ParseConfig([]string{"-replicas", "cart=2,order=3"}, envOf(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	c.AdminToken, c.SessionSecret = "tok", "sec"
	var got []string
	for _, in := range c.Plan() {
		got = append(got, in.Name+"@"+in.Addr)
	}
	want := []string{
		"catalog-1@127.0.0.1:5001",
		"cart-1@127.0.0.1:5002", "cart-2@127.0.0.1:5012",
		"order-1@127.0.0.1:5003", "order-2@127.0.0.1:5013", "order-3@127.0.0.1:5023",
		"worker-1@127.0.0.1:5004",
		"edge-1@127.0.0.1:8000",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("plan\n%v\nwant\n%v", got, want)
	}

	plan := c.Plan()
	tests := []struct {
		name string
		in   Instance
		want map[string]string // "" means must be absent
	}{
		{"edge gets every backend list", plan[7], map[string]string{
			"FLASHEDGE_EDGE_LISTEN":     "127.0.0.1:8000",
			"FLASHEDGE_EDGE_OPS_LISTEN": "127.0.0.1:8100",
			"FLASHEDGE_CATALOG_ADDRS":   "127.0.0.1:5001",
			"FLASHEDGE_CART_ADDRS":      "127.0.0.1:5002,127.0.0.1:5012",
			"FLASHEDGE_ORDER_ADDRS":     "127.0.0.1:5003,127.0.0.1:5013,127.0.0.1:5023",
			"FLASHEDGE_STORE_ADDR":      "127.0.0.1:6379",
			"FLASHEDGE_ADMIN_TOKEN":     "tok",
			"FLASHEDGE_SESSION_SECRET":  "sec",
			"FLASHEDGE_SEED_DEMO":       "",
		}},
		{"first catalog seeds", plan[0], map[string]string{"FLASHEDGE_CATALOG_LISTEN": "127.0.0.1:5001", "FLASHEDGE_SEED_DEMO": "1200"}},
		{"second order replica listens on base+10", plan[4], map[string]string{
			"FLASHEDGE_ORDER_LISTEN": "127.0.0.1:5013", "FLASHEDGE_CART_ADDRS": "127.0.0.1:5002,127.0.0.1:5012",
		}},
		{"worker listens on 5004", plan[6], map[string]string{"FLASHEDGE_WORKER_LISTEN": "127.0.0.1:5004", "FLASHEDGE_LOG_FORMAT": "text", "FLASHEDGE_EDGE_OPS_LISTEN": ""}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := c.Env(tc.in, "127.0.0.1:6379")
			for k, v := range tc.want {
				if got, ok := env[k]; v == "" && ok || v != "" && got != v {
					t.Errorf("%s: %s=%q, want %q", tc.in.Name, k, got, v)
				}
			}
		})
	}
}

func TestMergeEnv(t *testing.T) {
	base := []string{"PATH=/usr/bin", "FLASHEDGE_CART_LISTEN=127.0.0.1:9999", "FLASHEDGE_ORDER_ADDRS=stale:1",
		"FLASHEDGE_LOG_LEVEL=debug", "FLASHEDGE_STORE_ADDR=old:1"}
	got := MergeEnv(base, map[string]string{"FLASHEDGE_STORE_ADDR": "127.0.0.1:6379", "FLASHEDGE_EDGE_LISTEN": "127.0.0.1:8000"})
	want := []string{"PATH=/usr/bin", "FLASHEDGE_LOG_LEVEL=debug", "FLASHEDGE_EDGE_LISTEN=127.0.0.1:8000", "FLASHEDGE_STORE_ADDR=127.0.0.1:6379"}
	if !slices.Equal(got, want) {
		t.Errorf("MergeEnv\n%q\nwant\n%q", got, want)
	}
}

func TestLoadSecrets(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	c := Config{DataDir: dir}
	gen, err := c.LoadSecrets()
	if err != nil || !gen {
		t.Fatalf("first LoadSecrets: generated=%v err=%v", gen, err)
	}
	if len(c.AdminToken) < 32 || len(c.SessionSecret) < 32 || strings.ContainsAny(c.SessionSecret, ":,") {
		t.Errorf("admin token %q / session secret %q: want >= 32 chars, no ':' or ','", c.AdminToken, c.SessionSecret)
	}
	fi, err := os.Stat(filepath.Join(dir, "secrets"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secrets file: %v mode %v, want 0600", err, fi.Mode())
	}

	again := Config{DataDir: dir}
	if gen, err := again.LoadSecrets(); err != nil || gen || again.AdminToken != c.AdminToken || again.SessionSecret != c.SessionSecret {
		t.Errorf("second LoadSecrets: generated=%v err=%v, want the saved secrets back", gen, err)
	}

	fromEnv := Config{DataDir: dir, AdminToken: "from-env"}
	if _, err := fromEnv.LoadSecrets(); err != nil || fromEnv.AdminToken != "from-env" || fromEnv.SessionSecret != c.SessionSecret {
		t.Errorf("env token: %+v %v, want the env token kept and the saved secret", fromEnv, err)
	}
}

func TestStoreCommand(t *testing.T) {
	have := func(names ...string) func(string) (string, error) {
		return func(f string) (string, error) {
			if slices.Contains(names, f) {
				return "/usr/bin/" + f, nil
			}
			return "", errors.New("not found")
		}
	}
	c := Config{Host: "127.0.0.1", StorePort: 6390, DataDir: "/d"}
	tests := []struct {
		name     string
		kind     string
		lookPath func(string) (string, error)
		wantKind string
		wantArgs string
		wantErr  string
	}{
		{"auto prefers dragonfly", "auto", have("dragonfly", "redis-server"), "dragonfly", "--port 6390 --bind 127.0.0.1 --dir /d/store", ""},
		{"auto falls back to redis", "auto", have("redis-server"), "redis", "--dir /d/redis --daemonize no --protected-mode no --appendonly yes --appendfsync everysec", ""},
		{"redis asked for", "redis", have("dragonfly", "redis-server"), "redis", "--port 6390", ""},
		{"dragonfly missing", "dragonfly", have("redis-server"), "", "", "no dragonfly binary"},
		{"nothing at all", "auto", have(), "", "", "no redis-server on PATH"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c.StoreKind = tc.kind
			kind, _, args, _, err := c.StoreCommand(tc.lookPath)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || kind != tc.wantKind || !strings.Contains(strings.Join(args, " "), tc.wantArgs) {
				t.Errorf("kind %s args %q err %v; want %s with %q", kind, args, err, tc.wantKind, tc.wantArgs)
			}
		})
	}
}
