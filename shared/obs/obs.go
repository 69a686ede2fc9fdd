// Package obs sets up structured logging (log/slog) and request ids for every flashedge binary.
package obs

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
)

// LogOptions configures NewLogger. The zero value logs text at info to the given writer.
type LogOptions struct {
	// Format is "text" (default) or "json".
	Format string
	// Level is "debug", "info" (default), "warn" or "error".
	Level string
	// File, when set, receives the log lines instead of the writer given to NewLogger
	// (appending; the file is created when missing).
	File string
	// Service is added to every line as service=<name>.
	Service string
	// ProblemLinesPerSecond bounds the warn and error lines written in one second (the rest are
	// counted and the count logged later). Zero means ProblemLinesPerSecond; negative: no bound.
	ProblemLinesPerSecond int
}

// NewLogger builds the logger a binary hands to everything it wires. The returned closer closes
// the log file, if any; call it last.
func NewLogger(w io.Writer, o LogOptions) (*slog.Logger, io.Closer, error) {
	var closer io.Closer = io.NopCloser(nil)
	if o.File != "" {
		f, err := os.OpenFile(o.File, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, nil, fmt.Errorf("obs: open log file: %w", err)
		}
		w, closer = f, f
	}
	var lvl slog.Level
	switch strings.ToLower(o.Level) {
	case "", "info":
		lvl = slog.LevelInfo
	case "debug":
		lvl = slog.LevelDebug
	case "warn":
		lvl = slog.LevelWarn
	case "error":
		lvl = slog.LevelError
	default:
		return nil, nil, fmt.Errorf("obs: log level %q: want debug, info, warn or error", o.Level)
	}
	hopts := &slog.HandlerOptions{Level: lvl}
	var h slog.Handler
	switch strings.ToLower(o.Format) {
	case "", "text":
		h = slog.NewTextHandler(w, hopts)
	case "json":
		h = slog.NewJSONHandler(w, hopts)
	default:
		return nil, nil, fmt.Errorf("obs: log format %q: want text or json", o.Format)
	}
	if o.ProblemLinesPerSecond == 0 {
		o.ProblemLinesPerSecond = ProblemLinesPerSecond
	}
	l := slog.New(withLineBudget(h, o.ProblemLinesPerSecond))
	if o.Service != "" {
		l = l.With("service", o.Service)
	}
	return l, closer, nil
}

// HeaderRequestID is the header that carries a request id from the edge through every backend.
const HeaderRequestID = "X-Request-ID"

// IDs hands out request ids: a random per-process prefix and a counter, so ids are unique
// across processes and cheap to make. Safe for concurrent use.
type IDs struct {
	prefix string
	n      atomic.Uint64
}

// NewIDs returns a generator with a fresh random prefix.
func NewIDs() *IDs {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return &IDs{prefix: hex.EncodeToString(b[:]) + "-"}
}

// AppendNext appends the next id to dst and returns it (no allocation when dst has room). The
// counter is written in base 32 (digits and a-v) with shifts, not divisions: the edge makes an id
// for almost every request.
func (g *IDs) AppendNext(dst []byte) []byte {
	dst = append(dst, g.prefix...)
	n := g.n.Add(1)
	var b [13]byte // 64 bits in 5-bit digits
	i := len(b)
	for {
		i--
		b[i] = idDigits[n&31]
		n >>= 5
		if n == 0 {
			break
		}
	}
	return append(dst, b[i:]...)
}

const idDigits = "0123456789abcdefghijklmnopqrstuv"

// Next returns the next id as a string.
func (g *IDs) Next() string { return string(g.AppendNext(nil)) }

// ValidRequestID reports whether a client-sent request id may be echoed: 1..128 bytes of
// letters, digits, '-', '_', '.', ':'. Anything else is replaced by a fresh id.
func ValidRequestID(b []byte) bool {
	if len(b) == 0 || len(b) > 128 {
		return false
	}
	for _, c := range b {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9',
			c == '-', c == '_', c == '.', c == ':':
		default:
			return false
		}
	}
	return true
}
