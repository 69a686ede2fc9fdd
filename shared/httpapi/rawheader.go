package httpapi

import (
	"bytes"

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
