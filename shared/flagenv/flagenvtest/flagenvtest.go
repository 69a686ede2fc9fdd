// Package flagenvtest checks that a service binary reads the settings every service shares
// (flagenv.Service) under the shared flag and variable names, so the names cannot drift apart
// between binaries.
package flagenvtest

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"flashedge/shared/flagenv"
)

// Config is a binary's config: it embeds flagenv.Service.
type Config interface{ Shared() flagenv.Service }

// CheckService runs a service binary's loadConfig as the binary called service would: -h must
// stop with flag.ErrHelp and list every shared flag with its variable and no hidden alias, and
// run -h must exit 0; every shared variable must reach the config; a flag must win
// over its variable; -grace must still set -shutdown-grace. base is the environment the binary
// needs to start at all (secrets).
func CheckService[C Config](t *testing.T, service string, base map[string]string,
	loadConfig func([]string, func(string) string, io.Writer) (C, error), run flagenv.RunFunc) {
	t.Helper()
	load := func(args []string, getenv func(string) string, out io.Writer) (flagenv.Service, error) {
		c, err := loadConfig(args, getenv, out)
		s := c.Shared()
		s.Store.DisableCache = false // a binary's own choice (the worker caches nothing), not a shared setting
		return s, err
	}
	getenv := func(extra map[string]string) func(string) string {
		return func(k string) string {
			if v, ok := extra[k]; ok {
				return v
			}
			return base[k]
		}
	}
	flags := flagenv.ServiceFlags(service)

	t.Run("help", func(t *testing.T) {
		var out bytes.Buffer
		if _, err := load([]string{"-h"}, getenv(nil), &out); !errors.Is(err, flag.ErrHelp) {
			t.Fatalf("%s -h: err %v, want flag.ErrHelp (exit 0)", service, err)
		}
		help := out.String()
		for name, env := range flags {
			if !strings.Contains(help, "  -"+name+" ") && !strings.Contains(help, "  -"+name+"\n") {
				t.Errorf("%s -h does not list -%s:\n%s", service, name, help)
			}
			if !strings.Contains(help, "(env "+env+")") {
				t.Errorf("%s -h does not name %s for -%s", service, env, name)
			}
		}
		if !strings.Contains(help, "FLASHEDGE_STORE_PASSWORD") {
			t.Errorf("%s -h does not list FLASHEDGE_STORE_PASSWORD among the environment-only settings", service)
		}
		if strings.Contains(help, "  -grace") {
			t.Errorf("%s -h lists the deprecated -grace", service)
		}
		if err := run(context.Background(), []string{"-h"}, getenv(nil), io.Discard); flagenv.ExitCode(service, err, io.Discard) != 0 {
			t.Errorf("%s: run -h = %v, want an exit code 0", service, err)
		}
	})

	want := flagenv.Service{AccessLogSample: 7, Grace: 3 * time.Second, DrainDelay: 2 * time.Second}
	want.Addr = "127.0.0.1:0"
	want.Store.Addrs = []string{"127.0.0.1:7001", "127.0.0.1:7002"}
	want.Store.Cluster = true
	want.Store.Username, want.Store.Password = "u", "p"
	want.Store.CacheSizeEachConn = 3 << 20
	want.Store.ClientName = "flashedge-" + service
	want.Log.Format, want.Log.Level, want.Log.File, want.Log.Service = "json", "debug", "", service
	env := map[string]string{
		flags["addr"]:                 want.Addr,
		"FLASHEDGE_STORE_ADDR":        "127.0.0.1:7001, 127.0.0.1:7002",
		"FLASHEDGE_STORE_CLUSTER":     "true",
		"FLASHEDGE_STORE_USERNAME":    "u",
		"FLASHEDGE_STORE_PASSWORD":    "p",
		"FLASHEDGE_STORE_CACHE_MB":    "3",
		"FLASHEDGE_LOG_FORMAT":        "json",
		"FLASHEDGE_LOG_LEVEL":         "debug",
		"FLASHEDGE_ACCESS_LOG_SAMPLE": "7",
		"FLASHEDGE_SHUTDOWN_GRACE":    "3s",
		"FLASHEDGE_DRAIN_DELAY":       "2s",
	}
	t.Run("environment", func(t *testing.T) {
		got, err := load(nil, getenv(env), io.Discard)
		if err != nil {
			t.Fatalf("%s with %v: %v", service, env, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s with %v:\n got %+v\nwant %+v", service, env, got, want)
		}
	})
	t.Run("flags win", func(t *testing.T) {
		args := []string{"-addr", "127.0.0.1:1", "-store-addr", "127.0.0.1:7009", "-log-level", "warn", "-access-log-sample", "9", "-grace", "4s", "-drain-delay", "1s"}
		got, err := load(args, getenv(env), io.Discard)
		if err != nil {
			t.Fatalf("%s %v: %v", service, args, err)
		}
		w := want
		w.Addr, w.Store.Addrs, w.Log.Level, w.AccessLogSample, w.Grace, w.DrainDelay = "127.0.0.1:1", []string{"127.0.0.1:7009"}, "warn", 9, 4*time.Second, time.Second
		if !reflect.DeepEqual(got, w) {
			t.Errorf("%s %v over %v:\n got %+v\nwant %+v", service, args, env, got, w)
		}
	})
	t.Run("bad values", func(t *testing.T) {
		for k, v := range map[string]string{"FLASHEDGE_SHUTDOWN_GRACE": "soon", "FLASHEDGE_ACCESS_LOG_SAMPLE": "0", "FLASHEDGE_STORE_CLUSTER": "maybe", "FLASHEDGE_DRAIN_DELAY": "-1s"} {
			if _, err := load(nil, getenv(map[string]string{k: v}), io.Discard); err == nil {
				t.Errorf("%s with %s=%q: no error", service, k, v)
			}
		}
	})
}

// CheckHelp checks a tool's run (bench, deploy) for -h: nil (exit 0), and every flag listed with
// the variable that also sets it.
func CheckHelp(t *testing.T, name string, run flagenv.RunFunc) {
	t.Helper()
	var out bytes.Buffer
	if err := run(context.Background(), []string{"-h"}, func(string) string { return "" }, &out); flagenv.ExitCode(name, err, io.Discard) != 0 {
		t.Fatalf("%s -h = %v, want an exit code 0", name, err)
	}
	flags, _, _ := strings.Cut(out.String(), "Environment only:")
	for _, line := range strings.Split(flags, "\n") {
		if strings.HasPrefix(line, "  -") {
			continue // the usage text is on the next line
		}
		if strings.HasPrefix(line, "    \t") && !strings.Contains(line, "(env ") {
			t.Errorf("%s -h: a flag without its variable: %q", name, line)
		}
	}
}
