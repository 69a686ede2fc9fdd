package load

import (
	"encoding/binary"
	"fmt"
	"net"
	"sync/atomic"
	"syscall"
	"time"
)

// Loopback source address ranges: shoppers from 127.1.0.1 up, bots from 127.200.0.1 up, so the
// two never share an address and neither shares 127.0.0.1 with the tool's own admin calls.
const (
	shopperBase = 127<<24 | 1<<16 | 1
	botBase     = 127<<24 | 200<<16 | 1
)

// SourceAddr returns the i-th loopback address from base (127.0.0.0/8 holds 16 million).
func SourceAddr(base uint32, i int) net.IP {
	ip := make(net.IP, 4)
	binary.BigEndian.PutUint32(ip, base+uint32(i))
	return ip
}

// Sources hands out one client per simulated client address, created on first use, each bound
// to its own loopback source address.
type Sources struct {
	target  Target
	opts    ClientOptions
	base    uint32
	clients []atomic.Pointer[Client]
	// From address coldFrom on, clients close connections idle for coldIdle (SetCold).
	coldFrom int
	coldIdle time.Duration
}

// SetCold makes the clients of addresses from on (created from now on) close connections idle
// for idle instead of opts.IdleTimeout: the descriptors of a process do not always stretch to
// one kept connection per address.
func (s *Sources) SetCold(from int, idle time.Duration) { s.coldFrom, s.coldIdle = from, idle }

// NewSources returns n clients' worth of addresses from base; opts apply to each client (its
// LocalAddr is set here).
func NewSources(t Target, base uint32, n int, opts ClientOptions) *Sources {
	return &Sources{target: t, opts: opts, base: base, clients: make([]atomic.Pointer[Client], n), coldFrom: n}
}

// Client returns the client bound to address i.
func (s *Sources) Client(i int) *Client {
	if c := s.clients[i].Load(); c != nil {
		return c
	}
	o := s.opts
	o.LocalAddr = SourceAddr(s.base, i)
	if i >= s.coldFrom {
		o.IdleTimeout = s.coldIdle
	}
	c := NewClient(s.target, o)
	if s.clients[i].CompareAndSwap(nil, c) {
		return c
	}
	return s.clients[i].Load()
}

// Close closes every client's idle connections.
func (s *Sources) Close() {
	for i := range s.clients {
		if c := s.clients[i].Load(); c != nil {
			c.Close()
		}
	}
}

// WantFiles is the open-file limit RaiseFileLimit is asked for by the load tool: room for the
// rush's 20,000 shoppers' connections (and as many on the edge's side, which inherits it) plus
// the tool's and the servers' own.
const WantFiles = 65536

// RaiseFileLimit raises this process's open-file limit (RLIMIT_NOFILE) towards want: the soft
// limit up to the hard one, and the hard one too where the process may (CAP_SYS_RESOURCE).
// Processes started afterwards inherit it. It returns the soft limit now in force.
func RaiseFileLimit(want uint64) (uint64, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, err
	}
	if rl.Cur >= want {
		return rl.Cur, nil
	}
	if rl.Max < want {
		up := syscall.Rlimit{Cur: want, Max: want}
		if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &up) == nil {
			return want, nil
		}
	}
	up := syscall.Rlimit{Cur: min(want, rl.Max), Max: rl.Max}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &up); err != nil {
		return rl.Cur, err
	}
	if up.Cur < want {
		return up.Cur, fmt.Errorf("the hard limit is %d, below the %d wanted", rl.Max, want)
	}
	return up.Cur, nil
}

// fileLimit is the soft open-file limit, 0 when unknown.
func fileLimit() uint64 {
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) != nil {
		return 0
	}
	return rl.Cur
}
