package httpapi

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// Request batching between the edge and a backend (ServerOptions.Batch on the backend; the edge's
// upstream.Pool sends them, see upstream.Options.BatchPath). A batch is one POST to BatchPath
// whose body is a sequence of frames, each a whole HTTP/1.1 request as it would have been written
// on a connection; the answer (200, BatchContentType) holds one frame per request, in the same
// order, each a whole HTTP/1.1 response. The server runs every request of a batch at once, each
// through its own Server.ServeConn over an in-memory connection: the same handler, limits, panic
// recovery, request ids, metrics and parse errors as a request on a socket, without a read and a
// write system call (and a scheduler wake-up) per request on either side. What a batch saves is
// the per-request cost of the hop, which on a paravirtualised VM is most of a forward's CPU.
//
// A frame is a 4-byte big-endian length followed by that many bytes. A batch holds at most
// MaxBatchFrames frames; its body is bounded by the server's MaxRequestBodySize like any request.
const (
	BatchPath        = "/internal/v1/batch"
	BatchContentType = "application/x-flashedge-batch"
	MaxBatchFrames   = 256
)

// AppendFrame appends msg to b as one frame.
func AppendFrame(b, msg []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(msg)))
	return append(b, msg...)
}

// NextFrame splits the first frame off b: its message and the rest. ok is false when b does not
// start with a whole frame. msg and rest alias b.
func NextFrame(b []byte) (msg, rest []byte, ok bool) {
	if len(b) < 4 {
		return nil, b, false
	}
	n := binary.BigEndian.Uint32(b)
	if uint64(n) > uint64(len(b)-4) {
		return nil, b, false
	}
	return b[4 : 4+n], b[4+n:], true
}

// batchHandler answers BatchPath on srv and hands every other request to next.
func batchHandler(srv *fasthttp.Server, next fasthttp.RequestHandler) fasthttp.RequestHandler {
	path := []byte(BatchPath)
	return func(ctx *fasthttp.RequestCtx) {
		if !bytes.Equal(ctx.Path(), path) {
			next(ctx)
			return
		}
		serveBatch(srv, ctx)
	}
}

var batchConns = sync.Pool{New: func() any { return new(batchConn) }}

func serveBatch(srv *fasthttp.Server, ctx *fasthttp.RequestCtx) {
	switch {
	case !ctx.IsPost():
		ctx.Response.Header.Set(fasthttp.HeaderAllow, fasthttp.MethodPost)
		WriteError(ctx, fasthttp.StatusMethodNotAllowed, "method_not_allowed", "a batch is a POST")
		return
	case isBatchConn(ctx.Conn()):
		WriteError(ctx, fasthttp.StatusBadRequest, "bad_batch", "a batch cannot carry a batch")
		return
	}
	var stack [64]*batchConn
	conns := stack[:0]
	release := func() {
		for _, c := range conns {
			c.reset()
			batchConns.Put(c)
		}
	}
	defer release()
	for b := ctx.PostBody(); len(b) > 0; {
		msg, rest, ok := NextFrame(b)
		if !ok || len(conns) == MaxBatchFrames {
			WriteError(ctx, fasthttp.StatusBadRequest, "bad_batch", "the body is not a sequence of at most 256 length-prefixed requests")
			return
		}
		c := batchConns.Get().(*batchConn)
		c.in, c.local, c.remote = msg, ctx.LocalAddr(), ctx.RemoteAddr()
		conns = append(conns, c)
		b = rest
	}
	// Every request but the first runs on its own goroutine, so that their store calls share
	// round trips (the store clients pipeline concurrent calls); the first runs on this one.
	var wg sync.WaitGroup
	for _, c := range conns[min(1, len(conns)):] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = srv.ServeConn(c)
		}()
	}
	if len(conns) > 0 {
		_ = srv.ServeConn(conns[0])
	}
	wg.Wait()
	size := 0
	for _, c := range conns {
		size += 4 + len(c.out)
	}
	out := make([]byte, 0, size)
	for _, c := range conns {
		if len(c.out) == 0 {
			// ServeConn wrote nothing: the frame held no whole request (empty, or cut short),
			// which a server on a socket takes for a client gone. In a batch it still gets an
			// answer of its own.
			c.out = append(c.out, incompleteAnswer...)
		}
		out = AppendFrame(out, c.out)
	}
	ctx.SetContentType(BatchContentType)
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetBody(out)
}

// incompleteAnswer is the answer of a frame that held no whole request.
var incompleteAnswer = func() []byte {
	var r fasthttp.Response
	r.SetStatusCode(fasthttp.StatusBadRequest)
	r.Header.SetContentType("application/json")
	r.SetBodyString(`{"error":{"code":"bad_request","message":"the request is empty or incomplete"}}`)
	return []byte(r.String())
}()

func isBatchConn(c net.Conn) bool {
	_, ok := c.(*batchConn)
	return ok
}

// batchConn is the in-memory connection one request of a batch is served over: reads return the
// request's bytes, then io.EOF (so the server ends the connection after its answer); writes
// collect the answer. Deadlines are meaningless in memory and ignored.
type batchConn struct {
	in, out       []byte
	local, remote net.Addr
}

func (c *batchConn) reset() {
	c.in, c.local, c.remote = nil, nil, nil
	c.out = c.out[:0]
}

func (c *batchConn) Read(p []byte) (int, error) {
	if len(c.in) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.in)
	c.in = c.in[n:]
	return n, nil
}

func (c *batchConn) Write(p []byte) (int, error) {
	c.out = append(c.out, p...)
	return len(p), nil
}

func (c *batchConn) Close() error                     { return nil }
func (c *batchConn) LocalAddr() net.Addr              { return c.local }
func (c *batchConn) RemoteAddr() net.Addr             { return c.remote }
func (c *batchConn) SetDeadline(time.Time) error      { return nil }
func (c *batchConn) SetReadDeadline(time.Time) error  { return nil }
func (c *batchConn) SetWriteDeadline(time.Time) error { return nil }
