package httpapi

import (
	"errors"
	"net"
	"syscall"
	"time"
)

// TemporaryAcceptError reports whether an error from a listener's Accept passes by itself: the
// process or the system is out of file descriptors or buffers (EMFILE, ENFILE, ENOBUFS, ENOMEM),
// a connection was aborted before it was accepted, or a timeout. The accept loop must wait a
// little and accept again: fasthttp's returns on anything but a timeout, which stopped a server
// for good the first time a burst of clients ran it out of descriptors.
func TemporaryAcceptError(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	for _, e := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM,
		syscall.ECONNABORTED, syscall.EAGAIN, syscall.EINTR} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// AcceptBackoff is the wait before accepting again after the n-th temporary error in a row
// (n from 1): 5ms doubling up to one second, as net/http waits.
func AcceptBackoff(n int) time.Duration {
	d := 5 * time.Millisecond
	for i := 1; i < n && d < time.Second; i++ {
		d *= 2
	}
	return min(d, time.Second)
}
