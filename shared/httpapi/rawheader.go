package httpapi

import (
	"bytes"
	"math/bits"
	"strings"

	"github.com/valyala/fasthttp"
)

// HasRawHeader reports whether the request as received carries a header named lowerName
// (compared without regard to ASCII case; lowerName must be lower case). It scans the raw header
// bytes fasthttp keeps, which costs far less than Peek or Del: those normalise their key on
// every call, about 400 instructions for a 16-byte name, and the edge's hot paths would pay that
// for headers that are almost never there. When the raw bytes are not available (a request built
// in memory rather than read from a connection) it answers true, so the caller falls back to
// Peek or Del. It makes no allocation.
func HasRawHeader(h *fasthttp.RequestHeader, lowerName string) bool {
	raw := h.RawHeaders()
	if len(raw) == 0 {
		return true
	}
	return rawHasHeader(raw, lowerName)
}

func rawHasHeader(raw []byte, lowerName string) bool {
	for len(raw) > 0 {
		if len(raw) > len(lowerName) && EqualFoldLower(raw[:len(lowerName)], lowerName) && colonFollows(raw[len(lowerName):]) {
			return true
		}
		i := bytes.IndexByte(raw, '\n')
		if i < 0 {
			return false
		}
		raw = raw[i+1:]
	}
	return false
}

// EqualFoldLower reports whether b equals the lower-case ASCII s without regard to case (the
// one case-insensitive comparison of header names and tokens, with no allocation).
func EqualFoldLower(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(s) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// colonFollows reports whether b starts with optional blanks and then ':' (a header name ends
// there; blanks before the colon are invalid HTTP, but treating them as a match errs on the
// side of the caller's slow path).
func colonFollows(b []byte) bool {
	for _, c := range b {
		switch c {
		case ':':
			return true
		case ' ', '\t':
		default:
			return false
		}
	}
	return false
}

// RawHeaderValue returns the value of the first header named lowerName (lower case) as received,
// without the blanks around it, or nil when there is none. Like HasRawHeader it reads the raw
// header bytes and normalises no key; for a request built in memory it falls back to Peek. The
// value is valid until the handler returns. It makes no allocation.
func RawHeaderValue(h *fasthttp.RequestHeader, lowerName string) []byte {
	raw := h.RawHeaders()
	if len(raw) == 0 {
		return h.Peek(lowerName)
	}
	for len(raw) > 0 {
		end := bytes.IndexByte(raw, '\n')
		line := raw
		if end >= 0 {
			line = raw[:end]
		}
		if len(line) > len(lowerName) && EqualFoldLower(line[:len(lowerName)], lowerName) && colonFollows(line[len(lowerName):]) {
			v := line[len(lowerName):]
			v = v[bytes.IndexByte(v, ':')+1:]
			return bytes.Trim(v, " \t\r")
		}
		if end < 0 {
			break
		}
		raw = raw[end+1:]
	}
	return nil
}

// HeaderSet is a set of header names read together in one pass over the raw request headers,
// for hot paths that need several of them. Make it once at start-up; it is safe for concurrent
// use.
type HeaderSet struct {
	names   []string
	byFirst [26]uint16 // per first letter of a name: a bit for each name that starts with it
}

// NewHeaderSet returns the set of names (lower case, starting with a letter, at most 16).
func NewHeaderSet(names ...string) *HeaderSet {
	if len(names) > 16 {
		panic("httpapi: a HeaderSet holds at most 16 names")
	}
	s := &HeaderSet{names: names}
	for i, n := range names {
		if n == "" || n[0] < 'a' || n[0] > 'z' || strings.ToLower(n) != n {
			panic("httpapi: HeaderSet names are lower case and start with a letter: " + n)
		}
		s.byFirst[n[0]-'a'] |= 1 << i
	}
	return s
}

// Len is the number of names in the set.
func (s *HeaderSet) Len() int { return len(s.names) }

// Scan sets vals[i] to the value of the first header named names[i], without the blanks around
// it, or nil when the request has none; a header sent with an empty value gets an empty, non-nil
// slice. len(vals) must be s.Len(). It returns a mask with bit i set when names[i] was sent more
// than once, for the caller to refuse a header that must be single (two Authorization values:
// a proxy in front may act on the other one). It reads the raw header bytes (one look at each
// line's first letter, no key normalisation); for a request built in memory it falls back to
// Peek and reports no repeats. The values are valid until the handler returns. It makes no
// allocation.
func (s *HeaderSet) Scan(h *fasthttp.RequestHeader, vals [][]byte) (repeated uint16) {
	clear(vals)
	raw := h.RawHeaders()
	if len(raw) == 0 {
		for i, n := range s.names {
			vals[i] = h.Peek(n)
		}
		return 0
	}
	for len(raw) > 0 {
		end := bytes.IndexByte(raw, '\n')
		line := raw
		if end >= 0 {
			line, raw = raw[:end], raw[end+1:]
		} else {
			raw = nil
		}
		if len(line) == 0 {
			continue
		}
		c := line[0] | 0x20
		if c < 'a' || c > 'z' {
			continue
		}
		for m := s.byFirst[c-'a']; m != 0; m &= m - 1 {
			i := bits.TrailingZeros16(m)
			n := s.names[i]
			if len(line) > len(n) && EqualFoldLower(line[:len(n)], n) && colonFollows(line[len(n):]) {
				if vals[i] != nil {
					repeated |= 1 << i
					break
				}
				v := line[len(n):]
				vals[i] = trimBlanks(v[bytes.IndexByte(v, ':')+1:])
				break
			}
		}
	}
	return repeated
}

// trimBlanks drops spaces, tabs and a trailing CR around v, keeping an empty result non-nil.
func trimBlanks(v []byte) []byte {
	for len(v) > 0 && (v[0] == ' ' || v[0] == '\t') {
		v = v[1:]
	}
	for len(v) > 0 && (v[len(v)-1] == ' ' || v[len(v)-1] == '\t' || v[len(v)-1] == '\r') {
		v = v[:len(v)-1]
	}
	return v
}
