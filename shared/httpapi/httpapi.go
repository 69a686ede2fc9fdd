// Package httpapi holds the HTTP plumbing every flashedge service shares: a fasthttp server with
// safe limits, the JSON error shape of the public contract, request ids, panic recovery, access
// logs and graceful serving.
package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"flashedge/shared/metrics"
	"flashedge/shared/obs"
)

// ServerOptions are the limits of a server. Zero values take the defaults named on each field;
// fasthttp's own defaults (no timeouts, 4 MiB bodies) are unsafe for a public edge.
type ServerOptions struct {
	// Name appears in logs only; no Server header is sent.
	Name string
	// ReadTimeout bounds reading one request including its body. Zero means 5s.
	ReadTimeout time.Duration
	// WriteTimeout bounds writing one response. Zero means 10s.
	WriteTimeout time.Duration
	// IdleTimeout bounds a keep-alive connection waiting for its next request. Zero means 60s.
	IdleTimeout time.Duration
	// MaxRequestBodySize in bytes; larger bodies get 413 (see NewServer). Zero means 64 KiB.
	MaxRequestBodySize int
	// Concurrency caps connections served at once. Zero means fasthttp's 256 * 1024.
	Concurrency int
	// Batch serves BatchPath: many requests in one, each run through this server's handler as
	// if it had come on a connection of its own (see BatchPath). Only for servers behind the
	// edge: a public server must not take requests that skip its per-connection checks.
	Batch bool
}

// NewServer returns a fasthttp server running h with the limits in o, panics recovered into a
// JSON 500 and parse failures answered as JSON 400/413/431 instead of fasthttp's plain text, a
// request that stops arriving part way through as JSON 408. A connection on which no request
// byte arrived is closed without an answer when it is served by Serve or ServeDrain, whose
// connections note what arrives (see arrivals); served otherwise, it is answered 408 or 400.
func NewServer(h fasthttp.RequestHandler, o ServerOptions, log *slog.Logger) *fasthttp.Server {
	if o.ReadTimeout == 0 {
		o.ReadTimeout = 5 * time.Second
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.IdleTimeout == 0 {
		o.IdleTimeout = 60 * time.Second
	}
	if o.MaxRequestBodySize == 0 {
		o.MaxRequestBodySize = 64 << 10
	}
	// Answers to requests that could not be parsed never reach RequestIDs: they get a fresh id
	// here, so every answer carries X-Request-ID as the contract says.
	ids := obs.NewIDs()
	srv := &fasthttp.Server{
		Handler:      Recover(h, log),
		ReadTimeout:  o.ReadTimeout,
		WriteTimeout: o.WriteTimeout,
		IdleTimeout:  o.IdleTimeout,
		// fasthttp refuses a body over the limit from its Content-Length, before reading it, and
		// closes the connection; Serve's listener closes connections lingering (see linger.go) so
		// the client still reads the 413 instead of a reset.
		MaxRequestBodySize:    o.MaxRequestBodySize,
		Concurrency:           o.Concurrency,
		NoDefaultServerHeader: true,
		CloseOnShutdown:       true,
		Logger:                fasthttpLogger{log},
		ErrorHandler: func(ctx *fasthttp.RequestCtx, err error) {
			if nothingArrived(ctx.Conn()) {
				// No request, so no answer (see arrivals): the connection was left unused
				// past ReadTimeout, reset, or closed by shutdown. Closing it first makes
				// the answer fasthttp writes after this fail instead of reaching the client.
				_ = ctx.Conn().Close()
				return
			}
			var buf [48]byte
			ctx.Response.Header.SetBytesV(obs.HeaderRequestID, ids.AppendNext(buf[:0]))
			switch {
			case errors.Is(err, os.ErrDeadlineExceeded):
				// Part of a request came, the rest not within ReadTimeout: 408, as RFC 9110
				// section 15.5.9 has it (fasthttp's own error handler agrees), with
				// Connection: close, which fasthttp adds to every error answer.
				WriteError(ctx, fasthttp.StatusRequestTimeout, "request_timeout",
					fmt.Sprintf("the request did not arrive in full within %s", o.ReadTimeout))
			case errors.Is(err, fasthttp.ErrBodyTooLarge):
				WriteError(ctx, fasthttp.StatusRequestEntityTooLarge, "body_too_large",
					fmt.Sprintf("request body is larger than %d bytes", o.MaxRequestBodySize))
			case errors.As(err, new(*fasthttp.ErrSmallBuffer)):
				WriteError(ctx, fasthttp.StatusRequestHeaderFieldsTooLarge, "headers_too_large", "request headers are too large")
			default:
				WriteError(ctx, fasthttp.StatusBadRequest, "bad_request", "the request could not be parsed")
			}
		},
	}
	if o.Batch {
		srv.Handler = batchHandler(srv, srv.Handler)
	}
	return srv
}

type fasthttpLogger struct{ log *slog.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	l.log.Debug("fasthttp", "msg", fmt.Sprintf(format, args...))
}

// Recover turns a handler panic into a JSON 500 and one error log line with the stack.
func Recover(next fasthttp.RequestHandler, log *slog.Logger) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		defer func() {
			if p := recover(); p != nil {
				log.Error("handler panic", "panic", fmt.Sprint(p), "method", string(ctx.Method()),
					"path", string(ctx.Path()), "request_id", string(ctx.Response.Header.Peek(obs.HeaderRequestID)),
					"stack", string(debug.Stack()))
				ctx.Response.ResetBody()
				WriteError(ctx, fasthttp.StatusInternalServerError, "internal", "internal error; it has been logged")
			}
		}()
		next(ctx)
	}
}

// ErrorBody is the JSON shape of every error: {"error":{"code":"...","message":"..."}}.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the inner object of ErrorBody.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// WriteError answers status with the contract's JSON error.
func WriteError(ctx *fasthttp.RequestCtx, status int, code, message string) {
	WriteJSON(ctx, status, ErrorBody{ErrorDetail{Code: code, Message: message}})
}

// WriteJSON answers status with v encoded as JSON.
func WriteJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.Response.ResetBody()
	enc := json.NewEncoder(ctx.Response.BodyWriter())
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		ctx.Response.ResetBody()
		ctx.SetStatusCode(fasthttp.StatusInternalServerError)
		ctx.SetBodyString(`{"error":{"code":"internal","message":"response could not be encoded"}}`)
	}
}

// WriteRawJSON answers status with body, which must already be JSON. body is copied.
func WriteRawJSON(ctx *fasthttp.RequestCtx, status int, body []byte) {
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(body)
}

// DecodeJSON decodes the request body into v, refusing unknown fields and trailing data.
// It answers 400 itself and returns false when the body is not acceptable.
func DecodeJSON(ctx *fasthttp.RequestCtx, v any) bool {
	body := ctx.PostBody()
	if len(body) == 0 {
		WriteError(ctx, fasthttp.StatusBadRequest, "empty_body", "a JSON body is required")
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		WriteError(ctx, fasthttp.StatusBadRequest, "malformed_json", "the body is not valid JSON for this route: "+err.Error())
		return false
	}
	// Only white space may follow the value: dec.More alone would let `{...}]` through.
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		WriteError(ctx, fasthttp.StatusBadRequest, "malformed_json", "the body has data after the JSON value")
		return false
	}
	return true
}

// requestIDKey is X-Request-ID in the form fasthttp stores parsed header names (X-Request-Id),
// so that SetCanonical replaces a client's copy instead of adding a second one.
var requestIDKey = fasthttp.AppendNormalizedHeaderKey(nil, obs.HeaderRequestID)

// lowerRequestID is the header name as HasRawHeader wants it.
var lowerRequestID = strings.ToLower(obs.HeaderRequestID)

// RequestIDs makes sure every request and response carry X-Request-ID: a valid client-sent id
// is kept, anything else replaced by a fresh one. Handlers read it from the request header.
// A request without the header (almost all) costs a scan of its raw headers, an id and two
// header sets under a canonical key: no key normalisation, no allocation.
func RequestIDs(next fasthttp.RequestHandler, ids *obs.IDs) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		var id []byte
		if HasRawHeader(&ctx.Request.Header, lowerRequestID) {
			id = ctx.Request.Header.Peek(obs.HeaderRequestID)
		}
		var buf [48]byte
		if !obs.ValidRequestID(id) {
			id = ids.AppendNext(buf[:0])
			ctx.Request.Header.SetCanonical(requestIDKey, id)
		}
		ctx.Response.Header.SetCanonical(requestIDKey, id)
		next(ctx)
	}
}

// AccessLog logs one line per request at info: method, route pattern (metrics.Route), path,
// status, duration, request id and user id (from the header named userHeader, when set). Every
// sample-th request is logged; sample <= 1 logs all; errors (status >= 500) are logged up to
// ErrorLinesPerSecond a second, and past that one line a second counts the error lines left out
// (an overloaded edge answering thousands of 503s a second would otherwise spend its CPU on the
// log); successful /health and /ready probes are never logged.
func AccessLog(next fasthttp.RequestHandler, log *slog.Logger, sample uint64, userHeader string) fasthttp.RequestHandler {
	a := NewAccessLogger(log, sample, userHeader)
	return func(ctx *fasthttp.RequestCtx) {
		next(ctx)
		SetServiceTime(ctx)
		a.Done(ctx, "")
	}
}

// HeaderServiceTime carries, on every answer of a service, the microseconds from the request's
// arrival to its answer inside that service: a caller's in-flight limit (shared/upstream) reads
// the service's own queueing from it, which the caller's round trip mixes with the caller's own
// scheduling delays.
const HeaderServiceTime = "X-Service-Time-Us"

// SetServiceTime sets HeaderServiceTime on ctx's answer from ctx.Time (when the server began
// reading the request). It makes no allocation.
func SetServiceTime(ctx *fasthttp.RequestCtx) {
	var buf [20]byte
	us := time.Since(ctx.Time()).Microseconds()
	ctx.Response.Header.SetBytesV(HeaderServiceTime, strconv.AppendInt(buf[:0], us, 10))
}

// ServiceTime reads HeaderServiceTime from a service's answer; false when absent or malformed.
func ServiceTime(resp *fasthttp.Response) (time.Duration, bool) {
	v := resp.Header.Peek(HeaderServiceTime)
	if len(v) == 0 || len(v) > 12 {
		return 0, false
	}
	var us int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		us = us*10 + int64(c-'0')
	}
	return time.Duration(us) * time.Microsecond, true
}

// AccessLogger is AccessLog's sampling and line, for handlers that log a request without
// wrapping it. Safe for concurrent use.
type AccessLogger struct {
	log        *slog.Logger
	sample     uint64
	userHeader string
	n          atomic.Uint64

	// The error lines' budget: the second it counts (unix), lines logged and left out in it.
	errSecond  atomic.Int64
	errLogged  atomic.Int64
	errSkipped atomic.Int64
}

// ErrorLinesPerSecond is how many error (5xx) lines an AccessLogger writes in one second.
const ErrorLinesPerSecond = 100

// NewAccessLogger returns an AccessLogger with AccessLog's arguments.
func NewAccessLogger(log *slog.Logger, sample uint64, userHeader string) *AccessLogger {
	return &AccessLogger{log: log, sample: sample, userHeader: userHeader}
}

// Done logs the request ctx just answered when it is sampled or failed (see AccessLog). route is
// its route pattern; "" means metrics.Route(ctx). An unlogged request costs an atomic add and
// makes no allocation.
func (a *AccessLogger) Done(ctx *fasthttp.RequestCtx, route string) {
	status := ctx.Response.StatusCode()
	if status < 500 {
		if a.sample > 1 && a.n.Add(1)%a.sample != 0 {
			return
		}
		if isProbe(ctx.Path()) {
			return // health checks arrive every second from every balancer: not worth a line
		}
	} else if !a.errorBudget(time.Now().Unix()) {
		return
	}
	if route == "" {
		route = metrics.Route(ctx)
	}
	attrs := []any{
		"method", string(ctx.Method()), "route", route, "path", string(ctx.Path()), "status", status,
		// The server noted when the request arrived (ctx.Time): no clock read is spent on
		// requests that are not logged.
		"duration_ms", float64(time.Since(ctx.Time()).Microseconds()) / 1000,
		"request_id", string(ctx.Response.Header.Peek(obs.HeaderRequestID)),
	}
	if a.userHeader != "" {
		if u := ctx.Request.Header.Peek(a.userHeader); len(u) > 0 {
			attrs = append(attrs, "user_id", string(u))
		}
	}
	a.log.Info("request", attrs...)
}

// errorBudget reports whether an error line may be written in second now; the first error of a
// new second first reports how many lines the previous seconds left out.
func (a *AccessLogger) errorBudget(now int64) bool {
	if prev := a.errSecond.Load(); prev != now && a.errSecond.CompareAndSwap(prev, now) {
		a.errLogged.Store(0)
		if n := a.errSkipped.Swap(0); n > 0 {
			a.log.Warn("request log: error lines left out", "count", n, "limit_per_second", ErrorLinesPerSecond)
		}
	}
	if a.errLogged.Add(1) > ErrorLinesPerSecond {
		a.errSkipped.Add(1)
		return false
	}
	return true
}

func isProbe(path []byte) bool {
	return string(path) == "/health" || string(path) == "/ready"
}

// Serve runs srv on ln until ctx is cancelled, then shuts it down gracefully: listeners close,
// in-flight requests get up to grace to finish. It returns the serve error, if any.
func Serve(ctx context.Context, srv *fasthttp.Server, ln net.Listener, grace time.Duration) error {
	return ServeDrain(ctx, srv, ln, 0, grace)
}

// ServeDrain is Serve with a drain delay: once ctx is cancelled the server keeps serving for
// drain while its Probe answers 503 draining (Probe.Draining), so balancers and the edge's
// health probes take it out of rotation before its listener closes; then it shuts down as
// Serve does. Give it at least the balancers' probe interval (the edge probes every second).
func ServeDrain(ctx context.Context, srv *fasthttp.Server, ln net.Listener, drain, grace time.Duration) error {
	lln := &lingerListener{Listener: ln}
	if srv.Logger != nil {
		lln.logf = srv.Logger.Printf
	}
	defer lln.wait()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	if drain > 0 {
		select {
		case err := <-errc:
			return err
		case <-time.After(drain):
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	err := srv.ShutdownWithContext(sctx)
	<-errc
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("httpapi: shutdown: %w", err)
	}
	return nil
}
