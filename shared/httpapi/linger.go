package httpapi

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// Lingering close, as nginx does it: when the server closes a connection whose client may still
// be sending (fasthttp refuses an oversized body from its Content-Length and closes at once),
// closing outright would make the kernel answer the unread bytes with a reset, and the client
// would see "connection reset" instead of the 413 already written. So the write side is shut
// first, what the client still sends is read and dropped for a bounded time, then the socket is
// closed.
const (
	lingerTimeout = time.Second
	lingerMax     = 1 << 20
)

// lingerListener hands out connections that close lingering and note whether a request byte has
// arrived (see arrivals). wait blocks until every lingering close has finished (each is bounded
// by lingerTimeout).
type lingerListener struct {
	net.Listener
	logf    func(format string, args ...any) // nil: no log
	mu      sync.Mutex
	waiting bool // set by wait: later closes are plain closes, so wg.Add never races wg.Wait
	wg      sync.WaitGroup
}

func (l *lingerListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	for n := 1; err != nil && TemporaryAcceptError(err); n++ {
		// Out of descriptors (or a similar passing error): the connections waiting in the
		// backlog are accepted once some close, instead of the server stopping for good.
		if n == 1 && l.logf != nil {
			l.logf("accept failed, retrying with backoff: %v", err)
		}
		time.Sleep(AcceptBackoff(n))
		c, err = l.Listener.Accept()
	}
	if err != nil {
		return nil, err
	}
	if cw, ok := c.(halfCloser); ok {
		return &lingerConn{halfCloser: cw, l: l}, nil
	}
	return &noterConn{Conn: c}, nil
}

// halfCloser is a connection whose write side can be shut alone: *net.TCPConn, and the
// wrappers of it that pass CloseWrite on (the edge's PROXY protocol and per-address cap).
type halfCloser interface {
	net.Conn
	CloseWrite() error
}

// errNoHalfClose is CloseWrite's answer for a connection that cannot shut its write side alone.
var errNoHalfClose = errors.New("httpapi: connection cannot close its write side alone")

// CloseWrite shuts c's write side when c (a *net.TCPConn or a wrapper that passes CloseWrite
// on) can, and answers an error otherwise. Listener wrappers call it from their own CloseWrite
// so that lingering close still works through them.
func CloseWrite(c net.Conn) error {
	if cw, ok := c.(halfCloser); ok {
		return cw.CloseWrite()
	}
	return errNoHalfClose
}

func (l *lingerListener) wait() {
	l.mu.Lock()
	l.waiting = true
	l.mu.Unlock()
	l.wg.Wait()
}

type lingerConn struct {
	halfCloser
	arrivals
	l    *lingerListener
	once sync.Once
}

func (c *lingerConn) Read(p []byte) (int, error) {
	n, err := c.halfCloser.Read(p)
	c.note(n)
	return n, err
}

func (c *lingerConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		waiting := c.l.waiting
		if !waiting {
			c.l.wg.Add(1)
		}
		c.l.mu.Unlock()
		if waiting || c.halfCloser.CloseWrite() != nil {
			if !waiting {
				c.l.wg.Done()
			}
			_ = c.halfCloser.Close()
			return
		}
		go func() {
			defer c.l.wg.Done()
			_ = c.halfCloser.SetReadDeadline(time.Now().Add(lingerTimeout))
			_, _ = io.CopyN(io.Discard, c.halfCloser, lingerMax)
			_ = c.halfCloser.Close()
		}()
	})
	return nil
}
