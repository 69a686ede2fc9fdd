package httpapi

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"flashedge/shared/obs"
)

// The validation rules of the public contract, one function each, used by the edge and by every
// backend so the two sides cannot disagree about what is acceptable.

// TimeLayout is the one time format of the public contract: RFC 3339 in UTC with exactly three
// fractional digits (milliseconds), e.g. 2026-11-11T12:00:00.250Z. Every instant in an answer
// (sale start and end, token and challenge expiry, order creation, session expiry) uses it; the
// store keeps instants in unix milliseconds, so nothing finer exists to show.
const TimeLayout = "2006-01-02T15:04:05.000Z07:00"

// FormatTime renders t in TimeLayout (converted to UTC).
func FormatTime(t time.Time) string { return t.UTC().Format(TimeLayout) }

// AppendTime appends t in TimeLayout (converted to UTC) to dst.
func AppendTime(dst []byte, t time.Time) []byte { return t.UTC().AppendFormat(dst, TimeLayout) }

// MaxUserIDLen is the longest user id.
const MaxUserIDLen = 80

// ValidUserID reports whether b can be a user id: 1 to MaxUserIDLen of a-z 0-9 _ . - (lower case
// only, so one person has one id; no braces or colons, so a user id can never change a store
// key's hash tag or run into the next part of a key).
func ValidUserID(b []byte) bool {
	if len(b) == 0 || len(b) > MaxUserIDLen {
		return false
	}
	for _, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// Base64URL reports whether b is spelled only in the unpadded base64url alphabet (A-Z a-z 0-9 -
// _). Go's base64 decoders skip CR and LF, even in Strict mode, so a signed token or a cursor
// with a line break put into it would decode to the same bytes and be accepted under a second
// spelling: every decoder of client input checks this first.
func Base64URL[T string | []byte](b T) bool {
	for i := range len(b) {
		c := b[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// UserID returns the verified user id the edge put in HeaderUserID, and false when it is missing
// or not a valid user id. Backends call it; only the edge sets the header (SetUser).
func UserID(ctx *fasthttp.RequestCtx) (string, bool) {
	b := ctx.Request.Header.Peek(HeaderUserID)
	if !ValidUserID(b) {
		return "", false
	}
	return string(b), true
}

// SetUser replaces any user header on the request with uid, a user the edge has verified.
func SetUser(ctx *fasthttp.RequestCtx, uid string) { ctx.Request.Header.Set(HeaderUserID, uid) }

// DropUser removes a client-sent user header. The edge calls it once, first thing for every
// request (gateway), so nothing after it (access log, routes, backends) can see a forged id.
func DropUser(ctx *fasthttp.RequestCtx) { ctx.Request.Header.Del(HeaderUserID) }

// MaxIdempotencyKeyLen is the longest Idempotency-Key accepted.
const MaxIdempotencyKeyLen = 128

// IdempotencyKeyRule says in words what ValidIdempotencyKey accepts, for error messages.
const IdempotencyKeyRule = "an Idempotency-Key is 1 to 128 of A-Z a-z 0-9 - _ . :"

// ValidIdempotencyKey reports whether k can be an Idempotency-Key: 1 to MaxIdempotencyKeyLen of
// A-Z a-z 0-9 - _ . : (UUIDs and the like; nothing that could reach into another store key: the
// key is always the last part of its store key, after a user id that has no colon).
func ValidIdempotencyKey(k []byte) bool {
	// The same alphabet and length as a request id: one rule, kept in obs.
	return obs.ValidRequestID(k)
}

// SetRetryAfter sets Retry-After to wait rounded up to whole seconds, at least 1: a client told
// 0 would retry at once, and one told less than the wait would be refused again.
func SetRetryAfter(ctx *fasthttp.RequestCtx, wait time.Duration) {
	s := int64(1)
	if wait > time.Second {
		s = int64((wait + time.Second - 1) / time.Second)
	}
	var buf [20]byte
	ctx.Response.Header.SetBytesV(fasthttp.HeaderRetryAfter, strconv.AppendInt(buf[:0], s, 10))
}

// Admin returns a middleware that lets a request through only with the header
// "Authorization: Bearer <token>" (scheme case-insensitive) and answers anything else 401
// unauthorized with WWW-Authenticate. Hashes are compared in constant time, which reveals
// neither the token's bytes nor its length through timing. token must not be empty.
func Admin(token string) func(fasthttp.RequestHandler) fasthttp.RequestHandler {
	want := sha256.Sum256([]byte(token))
	return func(next fasthttp.RequestHandler) fasthttp.RequestHandler {
		return func(ctx *fasthttp.RequestCtx) {
			tok, ok := bearer(ctx.Request.Header.Peek(fasthttp.HeaderAuthorization))
			got := sha256.Sum256(tok)
			if !ok || token == "" || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
				ctx.Response.Header.Set(fasthttp.HeaderWWWAuthenticate, `Bearer realm="flashedge-admin"`)
				WriteError(ctx, fasthttp.StatusUnauthorized, "unauthorized", "admin routes need Authorization: Bearer <admin token>")
				return
			}
			next(ctx)
		}
	}
}

func bearer(h []byte) ([]byte, bool) {
	const scheme = "bearer "
	if len(h) <= len(scheme) {
		return nil, false
	}
	for i := range len(scheme) {
		c := h[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != scheme[i] {
			return nil, false
		}
	}
	return bytes.TrimSpace(h[len(scheme):]), true
}

// RequireUser calls next with the verified user id of the request (UserID) and answers 401
// unauthorized itself when there is none. Backends wrap their user routes with it.
func RequireUser(next func(ctx *fasthttp.RequestCtx, user string)) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		user, ok := UserID(ctx)
		if !ok {
			WriteError(ctx, fasthttp.StatusUnauthorized, "unauthorized", "no verified user: sign in first")
			return
		}
		next(ctx, user)
	}
}
