package load

import (
	"errors"
	"net"
	"os"
	"time"

	"github.com/valyala/fasthttp"

	"flashedge/shared/httpapi"
)

// Client sends requests to one loopback target over keep-alive connections (a fasthttp
// HostClient: no per-request allocation of its own, no retries, so every failure is counted).
// Safe for concurrent use.
type Client struct {
	hc      *fasthttp.HostClient
	target  Target
	timeout time.Duration
}

// ClientOptions configure NewClient.
type ClientOptions struct {
	// MaxConns caps open connections. Zero means 1024. Give at least the number of requests
	// in flight, or requests wait for a connection (the wait counts in their latency).
	MaxConns int
	// Timeout bounds each request, connection wait included. Zero means 10s.
	Timeout time.Duration
	// LocalAddr, when set, is the loopback source address every connection is bound to: the
	// edge keys its limits on the client address, so each simulated shopper gets its own.
	LocalAddr net.IP
	// IdleTimeout closes keep-alive connections idle this long. Zero means 30s.
	IdleTimeout time.Duration
}

// NewClient returns a client for t.
func NewClient(t Target, o ClientOptions) *Client {
	if o.MaxConns == 0 {
		o.MaxConns = 1024
	}
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Second
	}
	if o.IdleTimeout == 0 {
		o.IdleTimeout = 30 * time.Second
	}
	hc := &fasthttp.HostClient{
		Addr:                      t.Addr,
		Name:                      "flashedge-load",
		MaxConns:                  o.MaxConns,
		MaxConnWaitTimeout:        o.Timeout,
		MaxIdleConnDuration:       o.IdleTimeout,
		ReadTimeout:               o.Timeout,
		WriteTimeout:              o.Timeout,
		MaxIdemponentCallAttempts: 1,
		RetryIf:                   func(*fasthttp.Request) bool { return false },
		MaxResponseBodySize:       8 << 20,
	}
	if o.LocalAddr != nil {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: o.LocalAddr}, Timeout: o.Timeout}
		hc.Dial = func(addr string) (net.Conn, error) { return d.Dial("tcp4", addr) }
	}
	return &Client{hc: hc, target: t, timeout: o.Timeout}
}

// Close closes idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// Call is one request.
type Call struct {
	Method string
	// Path with query, such as "/api/v1/products/00000001".
	Path string
	// Bearer, when set, is sent as "Authorization: Bearer <Bearer>".
	Bearer string
	// IdempotencyKey, when set, is sent as the Idempotency-Key header.
	IdempotencyKey string
	// Body is sent as application/json when not nil.
	Body []byte
	// Header, when its name is set, is sent as one more header (name, value).
	Header [2]string
	// Start is when the request was due (open loop); its latency counts from there, so time
	// spent waiting behind a slow server is not hidden. Zero means now.
	Start time.Time
}

// Result is what Do returns: the status (0 without an answer) and the error kind when the
// request got no answer.
type Result struct {
	Status  int
	ErrKind string
	Err     error
	Latency time.Duration
	// ServiceTime is the server's own time on the request, from its X-Service-Time-Us header
	// (set by the edge on its 503 overloaded answers); 0 when absent. Latency minus it is
	// the time spent in sockets, in run queues and in this tool.
	ServiceTime time.Duration
}

// Do sends call, records it in row (when not nil) and, when read is not nil and an answer came,
// calls read with the status and body. The body is only valid during read.
func (c *Client) Do(row *Row, call Call, read func(status int, body []byte)) Result {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(call.Method)
	req.SetRequestURI(call.Path)
	req.Header.SetHost(c.target.Host)
	if call.Bearer != "" {
		req.Header.Set("Authorization", "Bearer "+call.Bearer)
	}
	if call.IdempotencyKey != "" {
		req.Header.Set("Idempotency-Key", call.IdempotencyKey)
	}
	if call.Header[0] != "" {
		req.Header.Set(call.Header[0], call.Header[1])
	}
	if call.Body != nil {
		req.Header.SetContentType("application/json")
		req.SetBodyRaw(call.Body)
	}
	start := call.Start
	if start.IsZero() {
		start = time.Now()
	}
	req.SetTimeout(c.timeout)
	err := c.hc.Do(req, resp)
	d := time.Since(start)
	if err != nil {
		kind := classify(err)
		if row != nil {
			row.Fail(kind, start, d)
		}
		return Result{ErrKind: kind, Err: err, Latency: d}
	}
	status := resp.StatusCode()
	if row != nil {
		row.Answer(status, start, d)
		if !row.Expected(status) {
			row.Unexpected(status, errCode(resp.Body()))
		}
	}
	if read != nil {
		read(status, resp.Body())
	}
	st, _ := httpapi.ServiceTime(resp)
	return Result{Status: status, Latency: d, ServiceTime: st}
}

func classify(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, fasthttp.ErrDialTimeout),
		errors.Is(err, fasthttp.ErrNoFreeConns), errors.Is(err, os.ErrDeadlineExceeded):
		return ErrKindTimeout
	case errors.As(err, &ne) && ne.Timeout():
		return ErrKindTimeout
	case errors.Is(err, fasthttp.ErrConnectionClosed):
		return ErrKindConn
	case errors.As(err, new(*net.OpError)):
		return ErrKindConn
	}
	return ErrKindOther
}
