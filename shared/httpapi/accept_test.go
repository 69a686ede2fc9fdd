package httpapi

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
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

func TestServiceTime(t *testing.T) {
	for _, c := range []struct {
		name, v string
		want    time.Duration
		ok      bool
	}{
		{"absent", "", 0, false},
		{"microseconds", "1500", 1500 * time.Microsecond, true},
		{"zero", "0", 0, true},
		{"negative", "-1", 0, false},
		{"not a number", "12ms", 0, false},
		{"too long", "1234567890123", 0, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			var r fasthttp.Response
			if c.v != "" {
				r.Header.Set(HeaderServiceTime, c.v)
			}
			got, ok := ServiceTime(&r)
			if got != c.want || ok != c.ok {
				t.Fatalf("ServiceTime(%q) = %v, %v; want %v, %v", c.v, got, ok, c.want, c.ok)
			}
		})
	}
}
