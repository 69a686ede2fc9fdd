// Package kv opens the store client (DragonflyDB in production, Redis 7 locally and in tests)
// from explicit options. Every service goes through Open so that timeouts, client-side caching
// and cluster detection are configured the same way everywhere.
package kv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/redis/rueidis"
)

// Options says how to reach the store. The zero value is not usable: Addrs is required.
type Options struct {
	// Addrs are host:port seeds. One address of a single node opens a single-node client;
	// several addresses, or Cluster set, open a cluster client.
	Addrs []string
	// Cluster requires the store to answer as a Redis Cluster. Open fails when it does not,
	// instead of silently falling back to a single-node client (rueidis' behaviour).
	Cluster bool
	// Username and Password for AUTH; empty means no AUTH.
	Username string
	Password string
	// ClientName is sent with CLIENT SETNAME; empty leaves it unset.
	ClientName string
	// CacheSizeEachConn is the client-side cache size per connection in bytes.
	// Zero means 16 MiB (rueidis' own default of 128 MiB per connection is too large for
	// a process that holds several connections).
	CacheSizeEachConn int
	// DialTimeout bounds connecting. Zero means 2s.
	DialTimeout time.Duration
	// ConnWriteTimeout bounds waiting for replies on a connection and detects a dead store.
	// Zero means 3s.
	ConnWriteTimeout time.Duration
	// MaxFlushDelay lets the pipelined connection wait up to this long after a write for more
	// commands to send with the next one, so that under load one write and one read carry many
	// commands (fewer system calls on both sides: rueidis measured about a quarter less CPU; the
	// write path of issue 13 spends most of its CPU in system calls). Idle, a command still goes
	// out at once. Zero means DefaultMaxFlushDelay; negative means no delay.
	MaxFlushDelay time.Duration
	// DisableCache turns DoCache into Do (for tools that only write).
	DisableCache bool
	// OnInvalidations is called by rueidis for every invalidation push the store sends for a
	// key this client cached, and with nil when a connection is lost and its local cache dropped.
	// It runs on the connection's reader: it must be fast and must not call the store.
	OnInvalidations func([]rueidis.RedisMessage)
}

// Defaults for the zero values in Options.
const (
	DefaultCacheSizeEachConn = 16 << 20
	DefaultDialTimeout       = 2 * time.Second
	DefaultConnWriteTimeout  = 3 * time.Second
	DefaultMaxFlushDelay     = 20 * time.Microsecond
)

// Open connects to the store and checks it answers PING.
// The caller owns the returned client and must Close it. It is safe for concurrent use.
func Open(ctx context.Context, o Options) (rueidis.Client, error) {
	if len(o.Addrs) == 0 {
		return nil, errors.New("kv: no store address: set Options.Addrs (the binaries read -store-addr, FLASHEDGE_STORE_ADDR)")
	}
	for _, a := range o.Addrs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return nil, fmt.Errorf("kv: store address %q is not host:port: %w", a, err)
		}
	}
	if o.CacheSizeEachConn == 0 {
		o.CacheSizeEachConn = DefaultCacheSizeEachConn
	}
	if o.DialTimeout == 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	if o.ConnWriteTimeout == 0 {
		o.ConnWriteTimeout = DefaultConnWriteTimeout
	}
	switch {
	case o.MaxFlushDelay == 0:
		o.MaxFlushDelay = DefaultMaxFlushDelay
	case o.MaxFlushDelay < 0:
		o.MaxFlushDelay = 0
	}
	opt := rueidis.ClientOption{
		InitAddress:       o.Addrs,
		Username:          o.Username,
		Password:          o.Password,
		ClientName:        o.ClientName,
		CacheSizeEachConn: o.CacheSizeEachConn,
		Dialer:            net.Dialer{Timeout: o.DialTimeout, KeepAlive: time.Second},
		ConnWriteTimeout:  o.ConnWriteTimeout,
		MaxFlushDelay:     o.MaxFlushDelay,
		DisableCache:      o.DisableCache,
		OnInvalidations:   o.OnInvalidations,
		// Default tracking is OPTIN; never BCAST or NOLOOP (Dragonfly sends no invalidations then).
	}
	if len(o.Addrs) == 1 && !o.Cluster {
		opt.ForceSingleClient = true
	}
	c, err := rueidis.NewClient(opt)
	if err != nil {
		return nil, fmt.Errorf("kv: connect to %s: %w", strings.Join(o.Addrs, ","), err)
	}
	if o.Cluster && c.Mode() != rueidis.ClientModeCluster {
		c.Close()
		return nil, fmt.Errorf("kv: %s did not answer as a cluster (mode %v): check cluster-enabled on the store", strings.Join(o.Addrs, ","), c.Mode())
	}
	pctx, cancel := context.WithTimeout(ctx, o.DialTimeout)
	defer cancel()
	if err := c.Do(pctx, c.B().Ping().Build()).Error(); err != nil {
		c.Close()
		return nil, fmt.Errorf("kv: ping %s: %w", strings.Join(o.Addrs, ","), err)
	}
	return c, nil
}

// IsNil reports whether err is the store's nil reply (a missing key), which is not a failure.
func IsNil(err error) bool { return rueidis.IsRedisNil(err) }

// String describes the options with the password masked, for start-up logs.
func (o Options) String() string {
	pw := ""
	if o.Password != "" {
		pw = " password=***"
	}
	return fmt.Sprintf("addrs=%s cluster=%v%s", strings.Join(o.Addrs, ","), o.Cluster, pw)
}
