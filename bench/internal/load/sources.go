package load

import (
	"encoding/binary"
	"net"
	"sync/atomic"
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
}

// NewSources returns n clients' worth of addresses from base; opts apply to each client (its
// LocalAddr is set here).
func NewSources(t Target, base uint32, n int, opts ClientOptions) *Sources {
	return &Sources{target: t, opts: opts, base: base, clients: make([]atomic.Pointer[Client], n)}
}

// Client returns the client bound to address i.
func (s *Sources) Client(i int) *Client {
	if c := s.clients[i].Load(); c != nil {
		return c
	}
	o := s.opts
	o.LocalAddr = SourceAddr(s.base, i)
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
