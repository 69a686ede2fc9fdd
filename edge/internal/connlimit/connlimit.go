// Package connlimit caps the connections one client address may hold open at once, so a single
// client (a slowloris, a leaky pool) cannot take the server's connection budget from everyone
// else. Addresses are keyed by clientaddr's rule (IPv4 whole, IPv6 by /64); wrap it around the
// PROXY protocol listener so that the key is the real client's. The state is one counter per
// address with a connection open, so it is bounded by the open connections.
package connlimit

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"flashedge/edge/internal/clientaddr"
	"flashedge/shared/httpapi"
)

// Listener wraps a net.Listener: a connection beyond Max from one address is closed as soon as
// it is accepted. Safe for concurrent use.
type Listener struct {
	net.Listener
	max     int
	mu      sync.Mutex
	open    map[string]int
	refused atomic.Uint64
}

// New wraps inner with a cap of max connections per client address (max >= 1).
func New(inner net.Listener, max int) *Listener {
	return &Listener{Listener: inner, max: max, open: make(map[string]int)}
}

// Refused returns how many connections were closed for being over the cap.
func (l *Listener) Refused() uint64 { return l.refused.Load() }

// Accept returns the next connection whose address is under the cap.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		var a netip.Addr
		if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
			a = clientaddr.FromIP(ta.IP)
		}
		key := string(clientaddr.AppendKey(nil, a))
		l.mu.Lock()
		if l.open[key] >= l.max {
			l.mu.Unlock()
			l.refused.Add(1)
			c.Close()
			continue
		}
		l.open[key]++
		l.mu.Unlock()
		return &conn{Conn: c, l: l, key: key}, nil
	}
}

type conn struct {
	net.Conn
	l    *Listener
	key  string
	once sync.Once
}

// CloseWrite passes the half close on, so the server's lingering close works through the wrapper.
func (c *conn) CloseWrite() error { return httpapi.CloseWrite(c.Conn) }

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.mu.Lock()
		if c.l.open[c.key]--; c.l.open[c.key] <= 0 {
			delete(c.l.open, c.key)
		}
		c.l.mu.Unlock()
	})
	return err
}

// Tracked returns how many addresses hold a connection now.
func (l *Listener) Tracked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.open)
}
