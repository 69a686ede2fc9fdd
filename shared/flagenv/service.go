package flagenv

import (
	"fmt"
	"strings"
	"time"

	"flashedge/shared/kv"
	"flashedge/shared/obs"
)

// Service holds the settings every flashedge service binary (edge, catalog, cart, order, worker)
// reads, under the same flag and variable names in each:
//
//	-addr               FLASHEDGE_<SERVICE>_LISTEN   listen address
//	-store-addr         FLASHEDGE_STORE_ADDR         store seeds, host:port[,host:port...]; default 127.0.0.1:6379
//	-store-cluster      FLASHEDGE_STORE_CLUSTER      require a Redis Cluster; default false
//	-store-username     FLASHEDGE_STORE_USERNAME     AUTH user; default none
//	                    FLASHEDGE_STORE_PASSWORD     AUTH password (environment only)
//	-store-cache-mb     FLASHEDGE_STORE_CACHE_MB     client-side cache per connection; 0: kv's default
//	-log-format         FLASHEDGE_LOG_FORMAT         text or json; default text
//	-log-level          FLASHEDGE_LOG_LEVEL          debug, info, warn, error; default info
//	-log-file           FLASHEDGE_LOG_FILE           append logs to a file instead of stdout
//	-access-log-sample  FLASHEDGE_ACCESS_LOG_SAMPLE  log one request in N (5xx errors up to 100 lines a second)
//	-shutdown-grace     FLASHEDGE_SHUTDOWN_GRACE     how long in-flight requests may finish at shutdown
//	-drain-delay        FLASHEDGE_DRAIN_DELAY        how long /ready says draining before the listener closes
//
// -grace is kept as a hidden spelling of -shutdown-grace.
type Service struct {
	Addr            string
	Store           kv.Options // ClientName is flashedge-<service>
	Log             obs.LogOptions
	AccessLogSample uint64
	Grace           time.Duration
	DrainDelay      time.Duration
}

// Shared returns the shared settings; a binary's config that embeds Service gets it too, which
// lets flagenvtest check every binary's loadConfig alike.
func (c Service) Shared() Service { return c }

// ServiceDefaults are the defaults that differ between services.
type ServiceDefaults struct {
	// Addr is the default listen address; empty means the service listens only when told to.
	Addr string
	// AccessLogSample defaults to 1 when zero.
	AccessLogSample uint64
	// Grace defaults to 10s when zero.
	Grace time.Duration
}

// ServiceFlags lists the flags Service defines with their variables, service standing for the
// binary's name: the names every service shares.
func ServiceFlags(service string) map[string]string {
	return map[string]string{
		"addr":              "FLASHEDGE_" + strings.ToUpper(service) + "_LISTEN",
		"store-addr":        "FLASHEDGE_STORE_ADDR",
		"store-cluster":     "FLASHEDGE_STORE_CLUSTER",
		"store-username":    "FLASHEDGE_STORE_USERNAME",
		"store-cache-mb":    "FLASHEDGE_STORE_CACHE_MB",
		"log-format":        "FLASHEDGE_LOG_FORMAT",
		"log-level":         "FLASHEDGE_LOG_LEVEL",
		"log-file":          "FLASHEDGE_LOG_FILE",
		"access-log-sample": "FLASHEDGE_ACCESS_LOG_SAMPLE",
		"shutdown-grace":    "FLASHEDGE_SHUTDOWN_GRACE",
		"drain-delay":       "FLASHEDGE_DRAIN_DELAY",
	}
}

// Service defines the shared service flags on s (whose prefix must be "FLASHEDGE_") and returns
// the struct Parse fills. The service's name is s's name.
func (s *Set) Service(d ServiceDefaults) *Service {
	name := s.Name()
	if d.AccessLogSample == 0 {
		d.AccessLogSample = 1
	}
	if d.Grace == 0 {
		d.Grace = 10 * time.Second
	}
	c := &Service{}
	listen := "listen address"
	if d.Addr == "" {
		listen = "listen address for /health, /ready and /metrics; empty for none"
	}
	s.String(&c.Addr, "addr", d.Addr, listen).Env("FLASHEDGE_" + strings.ToUpper(name) + "_LISTEN")
	s.Addrs(&c.Store.Addrs, "store-addr", "127.0.0.1:6379", "store address, host:port; several (or -store-cluster) open a cluster client")
	s.Bool(&c.Store.Cluster, "store-cluster", false, "require the store to answer as a Redis Cluster")
	s.String(&c.Store.Username, "store-username", "", "store AUTH user name; empty: none")
	s.Secret(&c.Store.Password, "FLASHEDGE_STORE_PASSWORD", "store AUTH password; empty: none")
	cacheMB := 0
	s.Int(&cacheMB, "store-cache-mb", 0, fmt.Sprintf("client-side cache per store connection in MiB; 0: %d", kv.DefaultCacheSizeEachConn>>20))
	s.String(&c.Log.Format, "log-format", "text", "log format: text or json")
	s.String(&c.Log.Level, "log-level", "info", "log level: debug, info, warn or error")
	s.String(&c.Log.File, "log-file", "", "append logs to this file instead of stdout")
	s.Uint64(&c.AccessLogSample, "access-log-sample", d.AccessLogSample, "log one request in N; 5xx errors up to 100 lines a second, then a count of those left out")
	s.Duration(&c.Grace, "shutdown-grace", d.Grace, "how long in-flight requests may finish at shutdown")
	s.Alias("grace", "shutdown-grace")
	s.Duration(&c.DrainDelay, "drain-delay", 0, "how long /ready answers draining before the listener closes at shutdown (give balancers a probe interval)")
	s.After(func() error {
		switch {
		case cacheMB < 0:
			return fmt.Errorf("%s %d: want 0 or more MiB", s.Label("store-cache-mb"), cacheMB)
		case c.AccessLogSample == 0:
			return fmt.Errorf("%s 0: want 1 or more", s.Label("access-log-sample"))
		case c.Grace <= 0:
			return fmt.Errorf("%s %s: want a positive duration", s.Label("shutdown-grace"), c.Grace)
		case c.DrainDelay < 0:
			return fmt.Errorf("%s %s: want 0 or more", s.Label("drain-delay"), c.DrainDelay)
		}
		c.Store.CacheSizeEachConn = cacheMB << 20
		c.Store.ClientName = "flashedge-" + name
		c.Log.Service = name
		return nil
	})
	return c
}
