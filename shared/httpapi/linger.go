package httpapi

import (
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

// lingerListener hands out connections that close lingering. wait blocks until every lingering
// close has finished (each is bounded by lingerTimeout).
type lingerListener struct {
	net.Listener
	mu      sync.Mutex
	waiting bool // set by wait: later closes are plain closes, so wg.Add never races wg.Wait
	wg      sync.WaitGroup
}

func (l *lingerListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		return &lingerConn{TCPConn: tc, l: l}, nil
	}
	return c, nil
}

func (l *lingerListener) wait() {
	l.mu.Lock()
	l.waiting = true
	l.mu.Unlock()
	l.wg.Wait()
}

type lingerConn struct {
	*net.TCPConn
	l    *lingerListener
	once sync.Once
}

func (c *lingerConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		waiting := c.l.waiting
		if !waiting {
			c.l.wg.Add(1)
		}
		c.l.mu.Unlock()
		if waiting || c.TCPConn.CloseWrite() != nil {
			if !waiting {
				c.l.wg.Done()
			}
			_ = c.TCPConn.Close()
			return
		}
		go func() {
			defer c.l.wg.Done()
			_ = c.TCPConn.SetReadDeadline(time.Now().Add(lingerTimeout))
			_, _ = io.CopyN(io.Discard, c.TCPConn, lingerMax)
			_ = c.TCPConn.Close()
		}()
	})
	return nil
}
