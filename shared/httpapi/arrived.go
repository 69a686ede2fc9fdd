package httpapi

import (
	"net"
	"sync/atomic"
)

// A connection on which no request byte ever arrived gets no answer. fasthttp reads the first
// request of a connection without first waiting for a byte (keep-alive requests get that wait,
// and fasthttp closes them quietly when it ends), so when that read fails with nothing read it
// unwraps ErrNothingRead and hands the bare read error to ErrorHandler as if a request had been
// malformed (server.go, serveConn: `err = nr.error` when connRequestNum == 1, then
// writeErrorResponse). That happens to every connection a client opens and leaves unused past
// ReadTimeout (net/http's Transport parks a connection it dialled for a request another one
// served), and to connections reset or closed by shutdown before their first request. An
// answer there is unsolicited: the client never asked, and a pooled client logs it or takes
// it for the answer to its next request. So the connections Serve hands fasthttp note whether
// a byte has arrived, and NewServer's ErrorHandler closes the connection instead of answering
// when none has.

// arrivals is embedded in the connections Serve hands fasthttp.
type arrivals struct{ arrived atomic.Bool }

// note records a read of n bytes.
func (a *arrivals) note(n int) {
	if n > 0 && !a.arrived.Load() {
		a.arrived.Store(true)
	}
}

// nothingArrived reports whether no byte has been read from the connection.
func (a *arrivals) nothingArrived() bool { return !a.arrived.Load() }

// arrivalNoter is a connection that knows whether a byte has arrived on it.
type arrivalNoter interface {
	net.Conn
	nothingArrived() bool
}

// nothingArrived reports whether c knows that no byte has arrived on it; false for a connection
// Serve did not hand out, which cannot tell.
func nothingArrived(c net.Conn) bool {
	a, ok := c.(arrivalNoter)
	return ok && a.nothingArrived()
}

// noterConn is a connection that cannot close lingering (see lingerListener), noting arrivals.
type noterConn struct {
	net.Conn
	arrivals
}

func (c *noterConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.note(n)
	return n, err
}
