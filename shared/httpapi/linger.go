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
	wg sync.WaitGroup
}

func (l *lingerListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		return &lingerConn{TCPConn: tc, wg: &l.wg}, nil
	}
	return c, nil
}

func (l *lingerListener) wait() { l.wg.Wait() }

type lingerConn struct {
	*net.TCPConn
	wg   *sync.WaitGroup
	once sync.Once
}

func (c *lingerConn) Close() error {
	c.once.Do(func() {
		if c.TCPConn.CloseWrite() != nil {
			_ = c.TCPConn.Close()
			return
		}
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			_ = c.TCPConn.SetReadDeadline(time.Now().Add(lingerTimeout))
			_, _ = io.CopyN(io.Discard, c.TCPConn, lingerMax)
			_ = c.TCPConn.Close()
		}()
	})
	return nil
}
