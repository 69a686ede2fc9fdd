// Package netfault is a plain TCP proxy for tests that puts network faults between a client and
// a server on loopback: added latency, connection resets and a black hole. It knows nothing of
// the protocol, so it serves HTTP, the store protocol or anything else over TCP.
//
//	px := netfault.Start(t, srv.Addr) // point the client at px.Addr() instead of srv.Addr
//	px.SetLatency(200 * time.Millisecond)
//	px.ResetConnections()
//	px.Block(true)
//
// A Proxy is safe for concurrent use. Its goroutines are owned by the Proxy and stopped by
// Close, which Start registers with tb.Cleanup.
package netfault

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Proxy forwards every connection it accepts on Addr to the target, one new target connection
// per accepted connection.
type Proxy struct {
	ln      net.Listener
	target  string
	latency atomic.Int64 // time.Duration
	wg      sync.WaitGroup

	mu     sync.Mutex
	links  map[*link]struct{}
	gate   chan struct{} // non-nil while blocked; closed when unblocked
	closed bool

	accepted atomic.Int64
	once     sync.Once
}

type link struct {
	client net.Conn
	server net.Conn // nil until dialled; guarded by Proxy.mu
	done   chan struct{}
	once   sync.Once
}

// Start listens on a free 127.0.0.1 port and forwards to target (host:port). It fails tb when
// it cannot listen, and closes the Proxy when the test ends.
func Start(tb testing.TB, target string) *Proxy {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("netfault: listen on 127.0.0.1: %v", err)
	}
	p := &Proxy{ln: ln, target: target, links: make(map[*link]struct{})}
	p.wg.Add(1)
	go p.accept()
	tb.Cleanup(p.Close)
	return p
}

// Addr is the host:port clients should use instead of the target's.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Target is the address the Proxy forwards to.
func (p *Proxy) Target() string { return p.target }

// SetLatency delays every chunk of bytes by d in each direction, so a request and its answer
// take at least 2*d more. Zero removes the delay. It applies to open connections at once.
func (p *Proxy) SetLatency(d time.Duration) { p.latency.Store(int64(d)) }

// ResetConnections aborts every open connection with a TCP reset on both sides (the client
// sees "connection reset by peer" or an early EOF) and returns how many there were. New
// connections are accepted as usual.
func (p *Proxy) ResetConnections() int {
	p.mu.Lock()
	links := make([]*link, 0, len(p.links))
	for l := range p.links {
		links = append(links, l)
	}
	p.mu.Unlock()
	for _, l := range links {
		p.drop(l, true)
	}
	return len(links)
}

// Block turns the Proxy into a black hole (on) or back into a pipe (off). While blocked, new
// connections are accepted but not forwarded and bytes already in flight are held: clients see
// timeouts, not errors. Unblocking delivers what was held.
func (p *Proxy) Block(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case on && p.gate == nil:
		p.gate = make(chan struct{})
	case !on && p.gate != nil:
		close(p.gate)
		p.gate = nil
	}
}

// Accepted is the number of connections accepted since Start.
func (p *Proxy) Accepted() int64 { return p.accepted.Load() }

// Open is the number of connections open now.
func (p *Proxy) Open() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.links)
}

// Close stops listening, closes every connection and waits for the Proxy's goroutines.
// Calling it again does nothing.
func (p *Proxy) Close() {
	p.once.Do(func() {
		p.mu.Lock()
		p.closed = true
		if p.gate != nil {
			close(p.gate)
			p.gate = nil
		}
		p.mu.Unlock()
		_ = p.ln.Close()
		p.ResetConnections()
		p.wg.Wait()
	})
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // listener closed
		}
		p.accepted.Add(1)
		l := &link{client: c, done: make(chan struct{})}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			_ = c.Close()
			return
		}
		p.links[l] = struct{}{}
		p.mu.Unlock()
		p.wg.Add(1)
		go p.serve(l)
	}
}

func (p *Proxy) serve(l *link) {
	defer p.wg.Done()
	if !p.hold(l, false) {
		return
	}
	s, err := net.DialTimeout("tcp", p.target, 2*time.Second)
	if err != nil {
		p.drop(l, true) // the target is down: the client sees a reset, as it would directly
		return
	}
	p.mu.Lock()
	select {
	case <-l.done:
		p.mu.Unlock()
		_ = s.Close()
		return
	default:
		l.server = s
	}
	p.mu.Unlock()

	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.pipe(l, s, l.client)
	}()
	p.pipe(l, l.client, s)
}

// pipe copies src to dst, holding each chunk for the gate and the latency, until either side
// fails; then it drops the link so the other direction ends too.
func (p *Proxy) pipe(l *link, dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !p.hold(l, true) {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	p.drop(l, false)
}

// hold waits while the Proxy is blocked and then, when delay is set, for the latency. It
// returns false when the link was dropped meanwhile.
func (p *Proxy) hold(l *link, delay bool) bool {
	for {
		p.mu.Lock()
		gate := p.gate
		p.mu.Unlock()
		if gate == nil {
			break
		}
		select {
		case <-gate:
		case <-l.done:
			return false
		}
	}
	if d := time.Duration(p.latency.Load()); delay && d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-l.done:
			return false
		}
	}
	select {
	case <-l.done:
		return false
	default:
		return true
	}
}

// drop closes both sides of l once; with reset the close sends a TCP RST instead of a FIN.
func (p *Proxy) drop(l *link, reset bool) {
	l.once.Do(func() {
		p.mu.Lock()
		delete(p.links, l)
		s := l.server
		close(l.done)
		p.mu.Unlock()
		for _, c := range []net.Conn{l.client, s} {
			if c == nil {
				continue
			}
			if tc, ok := c.(*net.TCPConn); ok && reset {
				_ = tc.SetLinger(0)
			}
			_ = c.Close()
		}
	})
}
