// Package proxyproto accepts connections that a load balancer opens with a PROXY protocol
// header (version 1, text, or version 2, binary; HAProxy's send-proxy and send-proxy-v2) and
// reports the client address the header names as the connection's remote address, so that
// everything above (fasthttp's RemoteIP, the edge's limits and bans) sees the shopper instead
// of the balancer.
//
// Only peers inside Options.Trusted may send a header. A connection from any other peer is
// handed over untouched: a PROXY header it sends is then just bytes of a malformed HTTP request
// (answered 400), so nobody outside the trusted networks can claim another address. From a
// trusted peer the header is optional: a connection without one keeps the peer's address. A
// malformed header from a trusted peer closes the connection.
//
// Headers are read off the accept path: Accept never waits on a slow peer (each trusted
// connection's header is read by its own goroutine, bounded by Options.HeaderTimeout).
package proxyproto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"flashedge/shared/httpapi"
)

// Options configure a Listener. Zero values take the defaults named on each field.
type Options struct {
	// Trusted lists the networks whose PROXY headers are believed (the balancers). Empty means
	// none: the Listener then only passes connections through.
	Trusted []netip.Prefix
	// HeaderTimeout bounds reading a trusted peer's header. Zero means 3s.
	HeaderTimeout time.Duration
	// Log receives one line per refused header. Nil discards.
	Log *slog.Logger
}

// Listener wraps a net.Listener. Safe for concurrent use; Close it like any listener.
type Listener struct {
	inner   net.Listener
	o       Options
	ready   chan net.Conn
	done    chan struct{}
	errOnce sync.Once
	err     error
	wg      sync.WaitGroup
}

// NewListener starts accepting on inner; call Close to stop (it closes inner).
func NewListener(inner net.Listener, o Options) *Listener {
	if o.HeaderTimeout == 0 {
		o.HeaderTimeout = 3 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	l := &Listener{inner: inner, o: o, ready: make(chan net.Conn), done: make(chan struct{})}
	l.wg.Add(1)
	go l.loop()
	return l
}

func (l *Listener) trusted(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return false
	}
	ip, _ := netip.AddrFromSlice(ta.IP)
	ip = ip.Unmap()
	for _, p := range l.o.Trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

func (l *Listener) loop() {
	defer l.wg.Done()
	var delay time.Duration
	for {
		c, err := l.inner.Accept()
		if err != nil {
			if httpapi.TemporaryAcceptError(err) { // out of descriptors, say: not the end
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				select {
				case <-time.After(delay):
					continue
				case <-l.done:
					return
				}
			}
			l.fail(err)
			return
		}
		delay = 0
		if len(l.o.Trusted) == 0 || !l.trusted(c.RemoteAddr()) {
			l.hand(c)
			continue
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			pc, err := readHeader(c, l.o.HeaderTimeout)
			if err != nil {
				l.o.Log.Warn("PROXY header refused; connection closed", "peer", c.RemoteAddr().String(), "err", err)
				c.Close()
				return
			}
			l.hand(pc)
		}()
	}
}

func (l *Listener) hand(c net.Conn) {
	select {
	case l.ready <- c:
	case <-l.done:
		c.Close()
	}
}

func (l *Listener) fail(err error) {
	l.errOnce.Do(func() { l.err = err; close(l.done) })
}

// Accept returns the next connection, its remote address the client's when a trusted peer said
// so in a PROXY header.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ready:
		return c, nil
	case <-l.done:
		return nil, l.err
	}
}

// Close stops accepting, closes the inner listener and waits for the header readers.
func (l *Listener) Close() error {
	err := l.inner.Close()
	l.fail(net.ErrClosed)
	l.wg.Wait()
	return err
}

// Addr is the inner listener's address.
func (l *Listener) Addr() net.Addr { return l.inner.Addr() }

// conn is a connection whose remote address came from a PROXY header; rest holds the bytes read
// past the header, handed out before the connection's own.
type conn struct {
	net.Conn
	remote net.Addr
	rest   []byte
}

func (c *conn) RemoteAddr() net.Addr { return c.remote }

// CloseWrite passes the half close on, so the server's lingering close works through the wrapper.
func (c *conn) CloseWrite() error { return httpapi.CloseWrite(c.Conn) }

func (c *conn) Read(p []byte) (int, error) {
	if len(c.rest) > 0 {
		n := copy(p, c.rest)
		c.rest = c.rest[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// maxHeader bounds what is read for a header: v1 is at most 107 bytes, v2 16 plus its length,
// which carries optional TLVs.
const maxHeader = 16 + 2048

// readHeader reads c's PROXY header, if any, within timeout.
func readHeader(c net.Conn, timeout time.Duration) (net.Conn, error) {
	if err := c.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return nil, err
	}
	buf := make([]byte, 0, 256)
	for {
		h, n, err := Parse(buf)
		switch {
		case err == nil:
			if err := c.SetReadDeadline(time.Time{}); err != nil {
				return nil, err
			}
			remote := c.RemoteAddr()
			if h.Src.IsValid() {
				remote = net.TCPAddrFromAddrPort(h.Src)
			}
			return &conn{Conn: c, remote: remote, rest: buf[n:]}, nil
		case errors.Is(err, ErrNotProxy):
			if err := c.SetReadDeadline(time.Time{}); err != nil {
				return nil, err
			}
			return &conn{Conn: c, remote: c.RemoteAddr(), rest: buf}, nil
		case !errors.Is(err, errShort):
			return nil, err
		}
		if len(buf) == cap(buf) {
			if cap(buf) >= maxHeader {
				return nil, errors.New("proxyproto: header too long")
			}
			buf = append(make([]byte, 0, min(2*cap(buf), maxHeader)), buf...)
		}
		m, err := c.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+m]
		if err != nil && m == 0 {
			if errors.Is(err, io.EOF) && len(buf) > 0 {
				if _, _, perr := Parse(buf); errors.Is(perr, ErrNotProxy) {
					return &conn{Conn: c, remote: c.RemoteAddr(), rest: buf}, nil
				}
			}
			return nil, err
		}
	}
}

// Header is what a PROXY header says. Src is the zero AddrPort for a LOCAL command (v2, the
// balancer's own health check) or an UNKNOWN family: the peer's address stands.
type Header struct {
	Version int
	Src     netip.AddrPort
	Dst     netip.AddrPort
}

// Errors of Parse.
var (
	// ErrNotProxy: the bytes do not start with a PROXY signature (plain HTTP).
	ErrNotProxy = errors.New("proxyproto: no PROXY header")
	// ErrMalformed: a signature followed by a header that breaks the specification.
	ErrMalformed = errors.New("proxyproto: malformed PROXY header")
	errShort     = errors.New("proxyproto: need more bytes")
)

var (
	sigV1 = []byte("PROXY ")
	sigV2 = []byte("\r\n\r\n\x00\r\nQUIT\n")
)

// Parse reads a PROXY header at the start of b and returns it with its length in bytes. It
// returns ErrNotProxy when b cannot start with one, ErrMalformed for a broken header, and an
// internal "need more bytes" error while b is a prefix of a header (callers outside the
// package see it only through ParseComplete).
func Parse(b []byte) (Header, int, error) {
	switch {
	case hasPrefixOrIsPrefix(b, sigV2):
		if len(b) < 16 {
			return Header{}, 0, errShort
		}
		return parseV2(b)
	case hasPrefixOrIsPrefix(b, sigV1):
		if len(b) < len(sigV1) {
			return Header{}, 0, errShort
		}
		return parseV1(b)
	}
	return Header{}, 0, ErrNotProxy
}

// ParseComplete is Parse for a buffer that holds everything there is: a header cut short is
// malformed.
func ParseComplete(b []byte) (Header, int, error) {
	h, n, err := Parse(b)
	if errors.Is(err, errShort) {
		return h, n, ErrMalformed
	}
	return h, n, err
}

// hasPrefixOrIsPrefix reports whether b starts with sig or is a (possibly empty) prefix of it.
func hasPrefixOrIsPrefix(b, sig []byte) bool {
	if len(b) >= len(sig) {
		return bytes.HasPrefix(b, sig)
	}
	return bytes.HasPrefix(sig, b)
}

// parseV1 parses "PROXY TCP4|TCP6|UNKNOWN src dst sport dport\r\n" (at most 107 bytes).
func parseV1(b []byte) (Header, int, error) {
	const maxV1 = 107
	end := bytes.Index(b[:min(len(b), maxV1)], []byte("\r\n"))
	if end < 0 {
		if len(b) >= maxV1 {
			return Header{}, 0, ErrMalformed
		}
		return Header{}, 0, errShort
	}
	f := bytes.Split(b[len(sigV1):end], []byte(" "))
	h := Header{Version: 1}
	if string(f[0]) == "UNKNOWN" {
		return h, end + 2, nil
	}
	if len(f) != 5 || (string(f[0]) != "TCP4" && string(f[0]) != "TCP6") {
		return Header{}, 0, ErrMalformed
	}
	src, err1 := netip.ParseAddr(string(f[1]))
	dst, err2 := netip.ParseAddr(string(f[2]))
	sport, err3 := port(f[3])
	dport, err4 := port(f[4])
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil || src.Zone() != "" || dst.Zone() != "" ||
		(string(f[0]) == "TCP4") != (src.Is4() && dst.Is4()) {
		return Header{}, 0, ErrMalformed
	}
	h.Src, h.Dst = netip.AddrPortFrom(src, sport), netip.AddrPortFrom(dst, dport)
	return h, end + 2, nil
}

func port(b []byte) (uint16, error) {
	if len(b) == 0 || len(b) > 5 || (len(b) > 1 && b[0] == '0') {
		return 0, ErrMalformed
	}
	n, err := strconv.ParseUint(string(b), 10, 16)
	return uint16(n), err
}

// parseV2 parses the binary header: signature, version/command, family/protocol, length,
// addresses, then TLVs (skipped).
func parseV2(b []byte) (Header, int, error) {
	verCmd, fam := b[12], b[13]
	n := 16 + int(binary.BigEndian.Uint16(b[14:16]))
	if verCmd>>4 != 2 || verCmd&0xf > 1 {
		return Header{}, 0, ErrMalformed
	}
	if n > maxHeader {
		return Header{}, 0, ErrMalformed
	}
	if len(b) < n {
		return Header{}, 0, errShort
	}
	h := Header{Version: 2}
	body := b[16:n]
	if verCmd&0xf == 0 { // LOCAL: the balancer speaking for itself
		return h, n, nil
	}
	switch fam >> 4 {
	case 1: // AF_INET
		if len(body) < 12 {
			return Header{}, 0, ErrMalformed
		}
		h.Src = netip.AddrPortFrom(netip.AddrFrom4([4]byte(body[0:4])), binary.BigEndian.Uint16(body[8:10]))
		h.Dst = netip.AddrPortFrom(netip.AddrFrom4([4]byte(body[4:8])), binary.BigEndian.Uint16(body[10:12]))
	case 2: // AF_INET6
		if len(body) < 36 {
			return Header{}, 0, ErrMalformed
		}
		h.Src = netip.AddrPortFrom(netip.AddrFrom16([16]byte(body[0:16])).Unmap(), binary.BigEndian.Uint16(body[32:34]))
		h.Dst = netip.AddrPortFrom(netip.AddrFrom16([16]byte(body[16:32])).Unmap(), binary.BigEndian.Uint16(body[34:36]))
	case 0, 3: // UNSPEC, AF_UNIX: no address to use
	default:
		return Header{}, 0, ErrMalformed
	}
	return h, n, nil
}

// AppendV1 appends a version 1 header naming src and dst (both IPv4 or both IPv6).
func AppendV1(b []byte, src, dst netip.AddrPort) []byte {
	fam := "TCP4"
	if src.Addr().Is6() {
		fam = "TCP6"
	}
	b = append(b, "PROXY "+fam+" "+src.Addr().String()+" "+dst.Addr().String()+" "...)
	b = strconv.AppendUint(b, uint64(src.Port()), 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(dst.Port()), 10)
	return append(b, "\r\n"...)
}

// AppendV2 appends a version 2 PROXY (TCP) header naming src and dst (both IPv4 or both IPv6).
func AppendV2(b []byte, src, dst netip.AddrPort) []byte {
	b = append(b, sigV2...)
	b = append(b, 0x21)
	if src.Addr().Is4() {
		b = append(b, 0x11, 0, 12)
		s, d := src.Addr().As4(), dst.Addr().As4()
		b = append(append(b, s[:]...), d[:]...)
	} else {
		b = append(b, 0x21, 0, 36)
		s, d := src.Addr().As16(), dst.Addr().As16()
		b = append(append(b, s[:]...), d[:]...)
	}
	b = binary.BigEndian.AppendUint16(b, src.Port())
	return binary.BigEndian.AppendUint16(b, dst.Port())
}
