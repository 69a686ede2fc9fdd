package httpapi

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

func TestTemporaryAcceptError(t *testing.T) {
	wrap := func(e syscall.Errno) error {
		return &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", e)}
	}
	for _, c := range []struct {
		name string
		err  error
		want bool
	}{
		{"out of descriptors", wrap(syscall.EMFILE), true},
		{"system out of descriptors", wrap(syscall.ENFILE), true},
		{"no buffers", wrap(syscall.ENOBUFS), true},
		{"aborted before accept", wrap(syscall.ECONNABORTED), true},
		{"closed listener", fmt.Errorf("accept: %w", net.ErrClosed), false},
		{"bad descriptor", wrap(syscall.EBADF), false},
		{"other", errors.New("boom"), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := TemporaryAcceptError(c.err); got != c.want {
				t.Fatalf("TemporaryAcceptError(%v) = %v, want %v", c.err, got, c.want)
			}
		})
	}
	if AcceptBackoff(1) != 5*time.Millisecond || AcceptBackoff(2) != 10*time.Millisecond || AcceptBackoff(50) != time.Second {
		t.Fatalf("backoff 5ms doubling to 1s: got %v %v %v", AcceptBackoff(1), AcceptBackoff(2), AcceptBackoff(50))
	}
}
