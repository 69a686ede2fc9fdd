package httpapi_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"flashedge/shared/httpapi"
	"flashedge/shared/obs"
)

// noHalfClose stands for a listener wrapper that does not pass CloseWrite on: its connections
// close outright instead of lingering.
type noHalfClose struct{ net.Listener }

type noHalfCloseConn struct{ net.Conn } // hides *net.TCPConn's CloseWrite

func (l noHalfClose) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return noHalfCloseConn{c}, nil
}

// serveTCP serves NewServer(h, o) with Serve on a loopback port through wrap and returns its
// address and the function that shuts it down (also run at cleanup).
func serveTCP(t *testing.T, o httpapi.ServerOptions, wrap func(net.Listener) net.Listener) (string, func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := httpapi.NewServer(httpapi.RequestIDs(func(ctx *fasthttp.RequestCtx) {
		ctx.SetStatusCode(fasthttp.StatusOK)
		ctx.SetBodyString("ok")
	}, obs.NewIDs()), o, log)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- httpapi.Serve(ctx, srv, wrap(ln), 2*time.Second) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Serve: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return ln.Addr().String(), stop
}

const okRequest = "GET /ok HTTP/1.1\r\nHost: t\r\n\r\n"

// readOK reads one 200 answer from br.
func readOK(t *testing.T, br *bufio.Reader) {
	t.Helper()
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the answer to a whole request: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("answer to a whole request: status %d, want 200", resp.StatusCode)
	}
}

// The server answers what a client sent and nothing else: a connection on which no request
// byte arrived (never used, or idle after its answers) ends with a plain close, however it
// ends; one on which a request stopped part way gets 408; malformed and oversized requests
// keep their 400, 431 and 413. Each row's connection is read until the server closes it.
func TestAnswersOnlyWhatArrived(t *testing.T) {
	const timeout = 100 * time.Millisecond
	o := httpapi.ServerOptions{ReadTimeout: timeout, IdleTimeout: timeout, MaxRequestBodySize: 1024}
	rows := []struct {
		name      string
		whole     int    // whole requests sent first, each answered 200 before send goes out
		send      string // then this, and nothing more
		wantCode  string // the JSON error code of the one answer expected; "" means none
		wantState int    // its status
		// leavesUnread: the server answers before reading all of send, so closing outright
		// resets the connection under the answer (the reason Serve closes lingering).
		leavesUnread bool
	}{
		{name: "unused past ReadTimeout", send: ""},
		{name: "idle past IdleTimeout after a request", whole: 1, send: ""},
		{name: "idle past IdleTimeout after two requests", whole: 2, send: ""},
		{name: "request line cut short", send: "GET /ok HT", wantCode: "request_timeout", wantState: 408},
		{name: "headers cut short", send: "GET /ok HTTP/1.1\r\nHost: t\r\n", wantCode: "request_timeout", wantState: 408},
		{name: "body cut short", send: "POST /ok HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc", wantCode: "request_timeout", wantState: 408},
		{name: "headers cut short after a request", whole: 1, send: "GET /ok", wantCode: "request_timeout", wantState: 408},
		{name: "malformed", send: "NOT A REQUEST\r\n\r\n", wantCode: "bad_request", wantState: 400},
		{name: "malformed after a request", whole: 1, send: "GET /ok HTTP/1.1\r\n\r\n", wantCode: "bad_request", wantState: 400},
		{name: "headers too large", send: "GET /ok HTTP/1.1\r\nHost: t\r\nX-Big: " + strings.Repeat("x", 8<<10) + "\r\n\r\n", wantCode: "headers_too_large", wantState: 431, leavesUnread: true},
		{name: "body too large", send: "POST /ok HTTP/1.1\r\nHost: t\r\nContent-Length: 2048\r\n\r\n", wantCode: "body_too_large", wantState: 413},
	}
	for _, l := range []struct {
		name string
		wrap func(net.Listener) net.Listener
	}{
		{"lingering", func(ln net.Listener) net.Listener { return ln }},
		{"closing outright", func(ln net.Listener) net.Listener { return noHalfClose{ln} }},
	} {
		t.Run(l.name, func(t *testing.T) {
			addr, _ := serveTCP(t, o, l.wrap)
			for _, r := range rows {
				t.Run(r.name, func(t *testing.T) {
					if r.leavesUnread && l.name != "lingering" {
						t.Skip("closing outright resets a connection with unread bytes")
					}
					t.Parallel()
					c, err := net.Dial("tcp", addr)
					if err != nil {
						t.Fatal(err)
					}
					defer c.Close()
					// The server gives up after timeout; this deadline only keeps a broken
					// server from hanging the test.
					_ = c.SetDeadline(time.Now().Add(10 * time.Second))
					br := bufio.NewReader(c)
					for range r.whole {
						if _, err := io.WriteString(c, okRequest); err != nil {
							t.Fatal(err)
						}
						readOK(t, br)
					}
					if _, err := io.WriteString(c, r.send); err != nil {
						t.Fatal(err)
					}
					rest, err := io.ReadAll(br)
					if err != nil {
						// A reset is no plain close: it loses an answer written before it.
						t.Fatalf("reading until the server closed: %v (read %q), want EOF", err, rest)
					}
					if r.wantCode == "" {
						if len(rest) > 0 {
							t.Fatalf("the server wrote %q on a connection with no request, want a close without an answer", rest)
						}
						return
					}
					checkErrorAnswer(t, rest, r.wantState, r.wantCode)
				})
			}
		})
	}
}

// checkErrorAnswer checks that rest is exactly one JSON error answer with status and code that
// closes the connection.
func checkErrorAnswer(t *testing.T, rest []byte, status int, code string) {
	t.Helper()
	br := bufio.NewReader(bytes.NewReader(rest))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("%v in %q, want a %d answer", err, rest, status)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var e httpapi.ErrorBody
	if resp.StatusCode != status || json.Unmarshal(body, &e) != nil || e.Error.Code != code {
		t.Fatalf("answer %d %s, want %d with error code %s", resp.StatusCode, body, status, code)
	}
	if !resp.Close {
		t.Errorf("the %d answer does not say Connection: close", status)
	}
	if resp.Header.Get(obs.HeaderRequestID) == "" {
		t.Errorf("the %d answer has no %s", status, obs.HeaderRequestID)
	}
	if extra, _ := io.ReadAll(br); len(extra) > 0 {
		t.Errorf("%q written after the %d answer", extra, status)
	}
}

// Shutting down closes a connection idle between requests without an answer on it, and well
// before its IdleTimeout.
func TestShutdownClosesIdleConnectionsQuietly(t *testing.T) {
	addr, stop := serveTCP(t, httpapi.ServerOptions{ReadTimeout: time.Minute, IdleTimeout: time.Minute}, func(ln net.Listener) net.Listener { return ln })
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	if _, err := io.WriteString(c, okRequest); err != nil {
		t.Fatal(err)
	}
	readOK(t, br)
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	// Read while Serve stops: it waits for the lingering close, which ends when we close.
	rest, err := io.ReadAll(br)
	c.Close()
	<-stopped
	if err != nil || len(rest) > 0 {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("the idle connection was still open 10s after shutdown")
		}
		t.Fatalf("after shutdown: read %q, %v; want EOF and nothing written", rest, err)
	}
}
