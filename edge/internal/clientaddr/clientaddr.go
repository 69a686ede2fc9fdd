// Package clientaddr says who a request comes from: the peer's address, or, when the peer is a
// configured trusted proxy, the client address that proxy reports in X-Forwarded-For or
// Forwarded. It also owns the one rule for keying limits and bans by address: an IPv4 address
// whole, an IPv6 address by its /64 (the smallest block one subscriber usually gets, so a client
// cannot dodge a limit by walking its own /64).
//
// The PROXY protocol is handled below HTTP (see package proxyproto): a connection accepted
// through it reports the client's address as its remote address, which is the peer seen here.
package clientaddr

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/valyala/fasthttp"
)

// KeyLen is the longest key AppendKey appends (an IPv6 /64).
const KeyLen = 8

// AppendKey appends the limit key of a to dst: 4 bytes for IPv4 (IPv4-mapped IPv6 included),
// the first 8 bytes for IPv6. An invalid address appends nothing.
func AppendKey(dst []byte, a netip.Addr) []byte {
	a = a.Unmap()
	switch {
	case a.Is4():
		b := a.As4()
		return append(dst, b[:]...)
	case a.Is6():
		b := a.As16()
		return append(dst, b[:8]...)
	}
	return dst
}

// FromIP converts a net.IP (as fasthttp hands it out) to a netip.Addr, unmapped.
func FromIP(ip net.IP) netip.Addr {
	a, _ := netip.AddrFromSlice(ip)
	return a.Unmap()
}

// Resolver finds a request's client address. The zero value and nil trust nobody: the peer is
// the client. Safe for concurrent use; it keeps no state per request.
type Resolver struct {
	trusted []netip.Prefix
}

// New returns a Resolver that believes X-Forwarded-For and Forwarded only from peers inside
// trusted (none: the headers are ignored).
func New(trusted []netip.Prefix) *Resolver {
	return &Resolver{trusted: append([]netip.Prefix(nil), trusted...)}
}

// ParseCIDRs parses a comma-separated list of CIDRs or single addresses ("10.0.0.0/8,
// 192.168.1.7, fd00::/8"); empty means none.
func ParseCIDRs(spec string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(spec, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if strings.Contains(f, "/") {
			p, err := netip.ParsePrefix(f)
			if err != nil {
				return nil, fmt.Errorf("%q is not a CIDR like 10.0.0.0/8: %w", f, err)
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("%q is not an address or CIDR: %w", f, err)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// Trusted reports whether a is inside one of the trusted prefixes.
func (r *Resolver) Trusted(a netip.Addr) bool {
	if r == nil {
		return false
	}
	a = a.Unmap()
	for _, p := range r.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Addr returns the client address of ctx: the peer's address unless the peer is trusted and
// sent X-Forwarded-For (or, without it, Forwarded); then the rightmost address in the header
// that is not itself trusted (each proxy appends the address it saw, so everything left of the
// first untrusted hop could have been written by the client). A header that cannot be parsed at
// the position that matters leaves the peer's address.
func (r *Resolver) Addr(ctx *fasthttp.RequestCtx) netip.Addr {
	peer := FromIP(ctx.RemoteIP())
	if r == nil || len(r.trusted) == 0 || !r.Trusted(peer) {
		return peer
	}
	h := &ctx.Request.Header
	if vs := h.PeekAll(fasthttp.HeaderXForwardedFor); len(vs) > 0 {
		return r.rightmost(vs, parseXFFElem, peer)
	}
	if vs := h.PeekAll("Forwarded"); len(vs) > 0 {
		return r.rightmost(vs, parseForwardedElem, peer)
	}
	return peer
}

// AppendKey appends the limit key of ctx's client address to dst (see the package comment).
func (r *Resolver) AppendKey(dst []byte, ctx *fasthttp.RequestCtx) []byte {
	return AppendKey(dst, r.Addr(ctx))
}

// rightmost walks the comma-separated elements of the header values vs from the right.
func (r *Resolver) rightmost(vs [][]byte, parse func([]byte) (netip.Addr, bool), peer netip.Addr) netip.Addr {
	last := peer
	for i := len(vs) - 1; i >= 0; i-- {
		v := vs[i]
		for len(v) > 0 {
			var elem []byte
			if j := bytes.LastIndexByte(v, ','); j >= 0 {
				elem, v = v[j+1:], v[:j]
			} else {
				elem, v = v, nil
			}
			elem = bytes.TrimSpace(elem)
			if len(elem) == 0 {
				continue
			}
			a, ok := parse(elem)
			if !ok {
				return last // written by whoever sits left of the last trusted hop: not believed
			}
			if !r.Trusted(a) {
				return a
			}
			last = a
		}
	}
	return last
}

// ErrNoAddr is returned by ParseForwardedFor for an element without a usable address.
var ErrNoAddr = errors.New("clientaddr: no address")

// parseXFFElem parses one X-Forwarded-For element: an address, possibly with a port
// ("1.2.3.4:5678", "[2001:db8::1]:443").
func parseXFFElem(b []byte) (netip.Addr, bool) {
	return parseNode(b)
}

// parseForwardedElem finds the for= parameter of one Forwarded element
// (for=192.0.2.60;proto=http, for="[2001:db8:cafe::17]:4711").
func parseForwardedElem(b []byte) (netip.Addr, bool) {
	for len(b) > 0 {
		var pair []byte
		if j := bytes.IndexByte(b, ';'); j >= 0 {
			pair, b = b[:j], b[j+1:]
		} else {
			pair, b = b, nil
		}
		pair = bytes.TrimSpace(pair)
		if len(pair) < 4 || !bytes.EqualFold(pair[:4], []byte("for=")) {
			continue
		}
		v := pair[4:]
		if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
			v = v[1 : len(v)-1]
		}
		return parseNode(v)
	}
	return netip.Addr{}, false
}

// parseNode parses an address with an optional port; IPv6 with a port is bracketed.
func parseNode(b []byte) (netip.Addr, bool) {
	if len(b) == 0 || len(b) > 64 {
		return netip.Addr{}, false
	}
	if b[0] == '[' {
		j := bytes.IndexByte(b, ']')
		if j < 0 || (j+1 < len(b) && b[j+1] != ':') {
			return netip.Addr{}, false
		}
		b = b[1:j]
	} else if bytes.Count(b, []byte{':'}) == 1 {
		b = b[:bytes.IndexByte(b, ':')]
	}
	a, err := netip.ParseAddr(string(b))
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// ParseForwardedFor returns the client address a single X-Forwarded-For or Forwarded element
// names (for tests and fuzzing of the element grammar).
func ParseForwardedFor(elem []byte, forwarded bool) (netip.Addr, error) {
	parse := parseXFFElem
	if forwarded {
		parse = parseForwardedElem
	}
	a, ok := parse(bytes.TrimSpace(elem))
	if !ok {
		return netip.Addr{}, ErrNoAddr
	}
	return a, nil
}
