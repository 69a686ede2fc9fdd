package load

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// serve runs h on a loopback listener until the test ends.
func serve(t *testing.T, h fasthttp.RequestHandler) Target {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: h}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.ShutdownWithContext(ctx)
		<-done
	})
	tg, err := ParseTarget("http://" + ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return tg
}

func TestClientDo(t *testing.T) {
	tg := serve(t, func(ctx *fasthttp.RequestCtx) {
		switch string(ctx.Path()) {
		case "/ok":
			if string(ctx.Request.Header.Peek("Authorization")) != "Bearer tok" || string(ctx.Request.Header.Peek("Idempotency-Key")) != "k1" ||
				string(ctx.Request.Body()) != `{"a":1}` || string(ctx.Request.Header.ContentType()) != "application/json" {
				ctx.SetStatusCode(400)
				return
			}
			ctx.SetStatusCode(202)
			ctx.SetBodyString(`{"ticket":"t"}`)
		case "/busy":
			ctx.SetStatusCode(503)
			ctx.SetBodyString(`{"error":{"code":"service_unavailable","message":"x"}}`)
		case "/slow":
			time.Sleep(300 * time.Millisecond)
		}
	})
	c := NewClient(tg, ClientOptions{MaxConns: 4, Timeout: 100 * time.Millisecond})
	defer c.Close()
	row := NewRow("test", "test/row", 202)

	var body string
	res := c.Do(row, Call{Method: "POST", Path: "/ok", Bearer: "tok", IdempotencyKey: "k1", Body: []byte(`{"a":1}`)},
		func(_ int, b []byte) { body = string(b) })
	if res.Status != 202 || body != `{"ticket":"t"}` || res.Err != nil {
		t.Fatalf("ok call: %+v body %q", res, body)
	}
	if res := c.Do(row, Call{Method: "GET", Path: "/busy"}, nil); res.Status != 503 {
		t.Fatalf("busy call: %+v", res)
	}
	if res := c.Do(row, Call{Method: "GET", Path: "/slow"}, nil); res.ErrKind != ErrKindTimeout {
		t.Fatalf("slow call: %+v, want a timeout", res)
	}
	// Open loop: latency counts from the due time.
	if res := c.Do(nil, Call{Method: "POST", Path: "/ok", Bearer: "tok", IdempotencyKey: "k1", Body: []byte(`{"a":1}`),
		Start: time.Now().Add(-time.Second)}, nil); res.Latency < time.Second {
		t.Fatalf("latency %v from a due time 1s ago, want >= 1s", res.Latency)
	}

	// A port nobody listens on.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	dead, _ := ParseTarget("http://" + addr)
	dc := NewClient(dead, ClientOptions{Timeout: time.Second})
	if res := dc.Do(row, Call{Method: "GET", Path: "/"}, nil); res.ErrKind != ErrKindConn {
		t.Fatalf("refused connection: %+v, want kind %q", res, ErrKindConn)
	}

	rep := row.Snapshot(time.Second)
	if rep.Requests != 4 || rep.OK != 1 || rep.Errors["503 service_unavailable"] != 1 || rep.Errors[ErrKindTimeout] != 1 || rep.Errors[ErrKindConn] != 1 {
		t.Fatalf("row: %+v", rep)
	}
}
