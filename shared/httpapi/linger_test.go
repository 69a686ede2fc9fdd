package httpapi_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"flashedge/shared/httpapi"
	"flashedge/shared/obs"
)

// wrapped stands for a listener wrapper (the edge's PROXY protocol and per-address cap): its
// connections are not *net.TCPConn but pass CloseWrite on.
type wrapped struct{ net.Listener }

type wrappedConn struct{ net.Conn }

func (c wrappedConn) CloseWrite() error { return httpapi.CloseWrite(c.Conn) }

func (l wrapped) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return wrappedConn{c}, nil
}

// An oversized body is answered 413 and the client reads that answer, not a connection reset,
// through a listener wrapper too: the server closes lingering (write side first, the rest of the
// body read and dropped).
func TestOversizedBodyAnsweredThroughWrappedListener(t *testing.T) {
	for _, tc := range []struct {
		name string
		wrap func(net.Listener) net.Listener
	}{
		{"tcp", func(ln net.Listener) net.Listener { return ln }},
		{"wrapped", func(ln net.Listener) net.Listener { return wrapped{ln} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			log := slog.New(slog.NewTextHandler(io.Discard, nil))
			srv := httpapi.NewServer(httpapi.RequestIDs(func(ctx *fasthttp.RequestCtx) {
				ctx.SetStatusCode(200)
			}, obs.NewIDs()), httpapi.ServerOptions{MaxRequestBodySize: 1024}, log)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- httpapi.Serve(ctx, srv, tc.wrap(ln), time.Second) }()
			t.Cleanup(func() { cancel(); <-done })

			body := strings.Repeat("x", 900<<10) // under lingerMax
			for i := range 10 {
				c, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				// The whole body is written before the answer is read, as a client that
				// checks its write does: without lingering the server's close resets the
				// connection under the write.
				fmt.Fprintf(c, "POST /x HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", len(body))
				if _, err := io.WriteString(c, body); err != nil {
					c.Close()
					t.Fatalf("request %d: writing the body: %v (the server reset the connection)", i, err)
				}
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err != nil {
					c.Close()
					t.Fatalf("request %d: reading the answer: %v (want the 413)", i, err)
				}
				resp.Body.Close()
				c.Close()
				if resp.StatusCode != 413 {
					t.Fatalf("request %d: status %d, want 413", i, resp.StatusCode)
				}
			}
		})
	}
}
