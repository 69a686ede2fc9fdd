package httpapi_test

import (
	"bufio"
	"bytes"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"flashedge/shared/httpapi"
)

// batchServer serves h with batches on, on a free loopback port, and returns a client for it.
func batchServer(t *testing.T, h fasthttp.RequestHandler) (addr string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httpapi.NewServer(h, httpapi.ServerOptions{Name: "batch", Batch: true}, slog.New(slog.DiscardHandler))
	done := make(chan struct{})
	go func() { _ = srv.Serve(ln); close(done) }()
	t.Cleanup(func() { _ = srv.Shutdown(); <-done })
	return ln.Addr().String()
}

func post(t *testing.T, addr, path string, body []byte) *fasthttp.Response {
	t.Helper()
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	req.Header.SetMethod(fasthttp.MethodPost)
	req.SetRequestURI("http://" + addr + path)
	req.SetBody(body)
	resp := new(fasthttp.Response)
	if err := fasthttp.DoTimeout(req, resp, 5*time.Second); err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	return resp
}

// answers splits a batch's answer into its responses.
func answers(t *testing.T, resp *fasthttp.Response) []*fasthttp.Response {
	t.Helper()
	if resp.StatusCode() != 200 || string(resp.Header.ContentType()) != httpapi.BatchContentType {
		t.Fatalf("batch answered %d %q: %s", resp.StatusCode(), resp.Header.ContentType(), resp.Body())
	}
	var out []*fasthttp.Response
	for b := resp.Body(); len(b) > 0; {
		msg, rest, ok := httpapi.NextFrame(b)
		if !ok {
			t.Fatalf("the batch's answer is not a sequence of frames: %q", b)
		}
		r := new(fasthttp.Response)
		if err := r.Read(bufio.NewReader(bytes.NewReader(msg))); err != nil {
			t.Fatalf("answer %d: %v in %q", len(out), err, msg)
		}
		out = append(out, r)
		b = rest
	}
	return out
}

func frames(msgs ...string) []byte {
	var b []byte
	for _, m := range msgs {
		b = httpapi.AppendFrame(b, []byte(m))
	}
	return b
}

func TestBatchServesEachRequestThroughTheHandler(t *testing.T) {
	addr := batchServer(t, func(ctx *fasthttp.RequestCtx) {
		if string(ctx.Path()) == "/panic" {
			panic("boom")
		}
		ctx.Response.Header.Set("X-Path", string(ctx.Path()))
		ctx.SetStatusCode(201)
		ctx.SetBodyString(string(ctx.Method()) + " " + string(ctx.PostBody()) + " from " + ctx.RemoteIP().String())
	})
	resp := post(t, addr, httpapi.BatchPath, frames(
		"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\none",
		"this is not a request\r\n\r\n",
		"GET /b HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /panic HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST "+httpapi.BatchPath+" HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
		"",
		"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\ncut",
	))
	got := answers(t, resp)
	want := []struct {
		status int
		body   string
	}{
		{201, "POST one from 127.0.0.1"},
		{400, `"bad_request"`},
		{201, "GET  from 127.0.0.1"},
		{500, `"internal"`},
		{400, `"bad_batch"`},
		{400, `"bad_request"`},
		{400, `"bad_request"`},
	}
	if len(got) != len(want) {
		t.Fatalf("%d answers for %d requests", len(got), len(want))
	}
	for i, w := range want {
		if got[i].StatusCode() != w.status || !strings.Contains(string(got[i].Body()), w.body) {
			t.Errorf("answer %d: %d %s; want %d containing %s", i, got[i].StatusCode(), got[i].Body(), w.status, w.body)
		}
	}
	if p := string(got[0].Header.Peek("X-Path")); p != "/a" {
		t.Errorf("answer 0 lost its header: X-Path %q", p)
	}
}

func TestBatchRefusesWhatIsNotABatch(t *testing.T) {
	addr := batchServer(t, func(ctx *fasthttp.RequestCtx) { ctx.SetStatusCode(204) })
	for name, body := range map[string][]byte{
		"truncated frame":  frames("GET / HTTP/1.1\r\nHost: x\r\n\r\n")[:10],
		"short length":     {0, 0},
		"too many frames":  bytes.Repeat(frames("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), httpapi.MaxBatchFrames+1),
		"length past body": {0, 0, 1, 0, 'G'},
	} {
		resp := post(t, addr, httpapi.BatchPath, body)
		if resp.StatusCode() != 400 || !strings.Contains(string(resp.Body()), `"bad_batch"`) {
			t.Errorf("%s: %d %s; want 400 bad_batch", name, resp.StatusCode(), resp.Body())
		}
	}
	if resp := post(t, addr, httpapi.BatchPath, nil); len(answers(t, resp)) != 0 {
		t.Errorf("an empty batch: want an empty answer")
	}
	// Without Batch, the path is the handler's like any other.
	if resp := post(t, addr, "/other", nil); resp.StatusCode() != 204 {
		t.Errorf("a request beside the batch route: %d; want the handler's 204", resp.StatusCode())
	}
}

// FuzzBatchBody: whatever a batch's body holds, the server answers it 200 with one answer per
// request frame, or 400 bad_batch; never a 5xx, never a crash, and each answer is a whole HTTP
// response (a request that cannot be parsed gets its own 400).
func FuzzBatchBody(f *testing.F) {
	f.Add(frames("GET /a HTTP/1.1\r\nHost: x\r\n\r\n", "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi"))
	f.Add(frames("garbage", ""))
	f.Add(frames("POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\nhi"))
	f.Add(frames("POST " + httpapi.BatchPath + " HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"))
	f.Add([]byte{0, 0, 0, 200, 'G'})
	srv := httpapi.NewServer(func(ctx *fasthttp.RequestCtx) {
		ctx.SetStatusCode(200)
		ctx.SetBody(ctx.PostBody())
	}, httpapi.ServerOptions{Name: "fuzz", Batch: true, ReadTimeout: time.Second}, slog.New(slog.DiscardHandler))
	f.Fuzz(func(t *testing.T, body []byte) {
		var ctx fasthttp.RequestCtx
		var req fasthttp.Request
		req.Header.SetMethod(fasthttp.MethodPost)
		req.SetRequestURI(httpapi.BatchPath)
		req.SetBody(body)
		ctx.Init(&req, nil, nil)
		srv.Handler(&ctx)
		status := ctx.Response.StatusCode()
		if status == 400 {
			if !strings.Contains(string(ctx.Response.Body()), `"bad_batch"`) {
				t.Fatalf("400 without bad_batch: %s", ctx.Response.Body())
			}
			return
		}
		want := 0
		for b := body; len(b) > 0; want++ {
			_, rest, ok := httpapi.NextFrame(b)
			if !ok {
				t.Fatalf("answered %d to a body that is not whole frames", status)
			}
			b = rest
		}
		got := answers(t, &ctx.Response)
		if len(got) != want {
			t.Fatalf("%d answers to %d requests", len(got), want)
		}
		for i, r := range got {
			if r.StatusCode() >= 500 {
				t.Fatalf("answer %d: %d %s", i, r.StatusCode(), r.Body())
			}
		}
	})
}
