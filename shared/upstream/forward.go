package upstream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"

	"github.com/valyala/fasthttp"

	"flashedge/shared/httpapi"
	"flashedge/shared/obs"
)

// MaintenanceMessage is the message of the 503 Forward answers when the service cannot be
// reached, in English and Vietnamese.
const MaintenanceMessage = "This part of the shop is under maintenance. Please come back in a few minutes." +
	" / Dịch vụ đang bảo trì, vui lòng quay lại sau ít phút."

func maintenanceBody() []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(httpapi.ErrorBody{Error: httpapi.ErrorDetail{Code: "service_unavailable", Message: MaintenanceMessage}})
	return bytes.TrimSpace(b.Bytes())
}

// Forward proxies the request in rctx to a replica through Do and writes the answer into rctx:
// method, path and query (as received), body and headers go out; status, body and headers come
// back. Hop-by-hop headers (Connection and the headers it names, Keep-Alive, Proxy-*, TE,
// Trailer, Transfer-Encoding, Upgrade) are dropped both ways; Host becomes the replica's.
// X-Request-ID and every other end-to-end header pass through. Response headers already set on
// rctx stay unless the replica sends the same header.
//
// Any answer from the replica, 4xx and 5xx included, is passed through untouched. When Do
// fails (no replica available, or the last attempt's transport error or timeout), Forward
// answers at once 503 {"error":{"code":"service_unavailable","message":MaintenanceMessage}}
// with Retry-After (the breaker's open timeout in seconds).
//
// Each attempt is bounded by Options.Timeout and the attempts by Options.Retries. rctx is
// deliberately not used as the context: fasthttp cancels it as soon as a graceful shutdown
// begins, which would turn the requests being drained into 503s. Nothing from rctx is kept
// after Forward returns.
func (p *Pool) Forward(rctx *fasthttp.RequestCtx) {
	p.ForwardContext(context.Background(), rctx)
}

// ForwardFirst is Forward for a request that waits for a slot ahead of the others when the
// pool's in-flight limit is reached (a checkout: the last step of a purchase, not to be refused
// behind a crowd of new attempts; see First).
func (p *Pool) ForwardFirst(rctx *fasthttp.RequestCtx) {
	p.ForwardContext(firstCtx, rctx)
}

// First marks ctx's calls (Do, ForwardContext) to wait for a slot ahead of the others, behind
// earlier first calls only, when the pool's in-flight limit is reached. A first call is refused
// at arrival only when the queue is full: keep it for the requests that finish what a shopper
// started (checkouts).
func First(ctx context.Context) context.Context { return context.WithValue(ctx, firstKey{}, true) }

type firstKey struct{}

var firstCtx = First(context.Background())

// ForwardContext is Forward with the caller's context, e.g. one carrying a deadline for the
// whole call (every attempt then ends by it).
func (p *Pool) ForwardContext(ctx context.Context, rctx *fasthttp.RequestCtx) {
	// The slot is taken before anything else: a call refused at the limit (most calls in a
	// surge) costs no copy of the request, no pooled request or response and no allocation.
	if err := p.admit(ctx); err != nil {
		p.writeRefusal(ctx, rctx, err)
		return
	}
	p.forwardAdmitted(ctx, rctx)
}

// forwardAdmitted is ForwardContext after admit took a slot; it gives the slot back.
func (p *Pool) forwardAdmitted(ctx context.Context, rctx *fasthttp.RequestCtx) {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	copyRequest(req, &rctx.Request)
	err := p.doAdmitted(ctx, req, resp)
	if err == nil {
		copyResponse(&rctx.Response, resp)
	}
	fasthttp.ReleaseRequest(req)
	fasthttp.ReleaseResponse(resp)
	if err != nil {
		p.writeRefusal(ctx, rctx, err)
	}
}

// writeRefusal answers a call that failed with err: 503 overloaded for ErrOverloaded, else 503
// under maintenance.
func (p *Pool) writeRefusal(ctx context.Context, rctx *fasthttp.RequestCtx, err error) {
	if errors.Is(err, ErrOverloaded) {
		p.writeOverloaded(rctx)
		return
	}
	if p.log.Enabled(ctx, slog.LevelDebug) {
		p.log.Debug("forward failed; answering 503", "error", err.Error(),
			"method", string(rctx.Method()), "path", string(rctx.Path()),
			"request_id", string(rctx.Request.Header.Peek(obs.HeaderRequestID)))
	}
	p.writeUnavailable(rctx)
}

func (p *Pool) writeUnavailable(rctx *fasthttp.RequestCtx) {
	rctx.Response.Header.Set(fasthttp.HeaderRetryAfter, p.retryAfter)
	rctx.Response.Header.Set(fasthttp.HeaderCacheControl, "no-store")
	httpapi.WriteRawJSON(rctx, fasthttp.StatusServiceUnavailable, p.maintenance)
}

// overloadedBody answers a call shed by MaxInFlight.
var overloadedBody = []byte(`{"error":{"code":"overloaded","message":"too many requests right now; retry after Retry-After seconds"}}`)

// The headers of a refusal, in the canonical form fasthttp keeps (SetCanonical skips
// normalising them on every refusal).
var (
	headerRetryAfter   = []byte(fasthttp.HeaderRetryAfter)
	headerCacheControl = []byte(fasthttp.HeaderCacheControl)
	retryAfterOverload = []byte("1")
	noStore            = []byte("no-store")
)

func (p *Pool) writeOverloaded(rctx *fasthttp.RequestCtx) {
	rctx.Response.Header.SetCanonical(headerRetryAfter, retryAfterOverload)
	rctx.Response.Header.SetCanonical(headerCacheControl, noStore)
	// The time the refusal took inside this process, for the load tool's overload figures.
	httpapi.SetServiceTime(rctx)
	httpapi.WriteRawJSON(rctx, fasthttp.StatusServiceUnavailable, overloadedBody)
}

// copyRequest fills dst with what goes to the replica: method, the path and query the server
// parsed and routed (normalised and re-quoted, never the raw request line, so "//x/api/v1/cart"
// cannot be routed here as one path and there as another), end-to-end headers and body. Host is
// left to Do.
func copyRequest(dst, src *fasthttp.Request) {
	dst.Header.SetMethodBytes(src.Header.Method())
	dst.Header.SetRequestURIBytes(src.URI().RequestURI())
	named := src.Header.Peek(fasthttp.HeaderConnection)
	for k, v := range src.Header.All() {
		if hopByHop(k, named) || equalFold(k, fasthttp.HeaderHost) {
			continue
		}
		dst.Header.AddBytesKV(k, v)
	}
	dst.SetBody(src.Body())
}

// copyResponse writes the replica's answer into dst, keeping dst's own headers unless the
// replica sends the same ones.
func copyResponse(dst *fasthttp.Response, src *fasthttp.Response) {
	named := src.Header.Peek(fasthttp.HeaderConnection)
	for k := range src.Header.All() {
		if !hopByHop(k, named) {
			dst.Header.DelBytes(k)
		}
	}
	for k, v := range src.Header.All() {
		if !hopByHop(k, named) {
			dst.Header.AddBytesKV(k, v)
		}
	}
	dst.SetStatusCode(src.StatusCode())
	dst.SetBody(src.Body())
}

// hopByHop reports whether header k belongs to one connection only and must not be forwarded:
// the fixed list of RFC 9110 section 7.6.1 plus Proxy-* and the names listed in the Connection
// header's value (named). Content-Length is also left out: fasthttp sets it from the body.
func hopByHop(k, named []byte) bool {
	switch {
	case equalFold(k, fasthttp.HeaderConnection), equalFold(k, "Keep-Alive"), equalFold(k, fasthttp.HeaderTE),
		equalFold(k, fasthttp.HeaderTrailer), equalFold(k, fasthttp.HeaderTransferEncoding),
		equalFold(k, fasthttp.HeaderUpgrade), equalFold(k, fasthttp.HeaderContentLength):
		return true
	case len(k) >= 6 && equalFold(k[:6], "Proxy-"):
		return true
	}
	for len(named) > 0 {
		var tok []byte
		if i := bytes.IndexByte(named, ','); i >= 0 {
			tok, named = named[:i], named[i+1:]
		} else {
			tok, named = named, nil
		}
		if tok = bytes.TrimSpace(tok); len(tok) > 0 && bytes.EqualFold(tok, k) {
			return true
		}
	}
	return false
}

func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c, d := b[i], s[i]
		if c|0x20 != d|0x20 || (c|0x20 < 'a' || c|0x20 > 'z') && c != d {
			return false
		}
	}
	return true
}
