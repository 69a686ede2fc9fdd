package session

import (
	"bytes"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"flashedge/shared/httpapi"
)

// CookieName is the cookie that carries the token for the web page.
const CookieName = "fe_session"

// MaxNameLen is the longest login name.
const MaxNameLen = 64

// UserIDForName maps a login name to its user id: "u-" + the name in lower case, so "Alice" and
// "alice" are one user. ok is false when name is not 1 to MaxNameLen of A-Z a-z 0-9 _ . -.
//
// There is no password: the contract's login is a demo login, and anyone may act as any name.
// The token proves only that this edge issued it.
func UserIDForName(name string) (userID string, ok bool) {
	if len(name) == 0 || len(name) > MaxNameLen {
		return "", false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return "", false
		}
	}
	return "u-" + strings.ToLower(name), true
}

// Token returns the token a request carries: from "Authorization: Bearer <token>" when that header
// is a bearer header (scheme case-insensitive), else from the cookie CookieName, else nil.
// The returned bytes belong to the request and are valid only until the handler returns.
func Token(ctx *fasthttp.RequestCtx) []byte {
	return TokenFrom(ctx, ctx.Request.Header.Peek(fasthttp.HeaderAuthorization))
}

// TokenFrom is Token for a caller that has already read the request's Authorization value
// (nil when absent).
func TokenFrom(ctx *fasthttp.RequestCtx, auth []byte) []byte {
	if len(auth) > 7 && bytes.EqualFold(auth[:7], []byte("Bearer ")) {
		return bytes.TrimSpace(auth[7:])
	}
	if c := ctx.Request.Header.Cookie(CookieName); len(c) > 0 {
		return c
	}
	return nil
}

// FromRequest verifies the token the request carries (see Token) at the current time and returns
// its user id; ErrNoToken when there is none, else Verify's errors.
func (s *Signer) FromRequest(ctx *fasthttp.RequestCtx) (string, error) {
	tok := Token(ctx)
	if tok == nil {
		return "", ErrNoToken
	}
	return s.Verify(tok, time.Now())
}

// HandlerOptions configure NewHandler.
type HandlerOptions struct {
	// SecureCookie adds the Secure attribute to the cookie. Set it when shoppers reach the edge
	// over HTTPS; false (the default) suits plain HTTP on loopback.
	SecureCookie bool
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
}

type loginRequest struct {
	User string `json:"user"`
}

type loginResponse struct {
	Token     string `json:"token"`
	UserID    string `json:"user_id"`
	ExpiresAt string `json:"expires_at"`
}

// NewHandler returns the handler of POST /api/v1/session: body {"user":"alice"}, answer 200
// {"token","user_id","expires_at"} (RFC 3339, UTC) plus the cookie CookieName carrying the same
// token (HttpOnly, SameSite=Lax, Path=/, expiring with the token). Unknown fields or bad JSON get
// 400; an invalid name gets 422 invalid_user.
func NewHandler(s *Signer, o HandlerOptions) fasthttp.RequestHandler {
	now := o.Now
	if now == nil {
		now = time.Now
	}
	return func(ctx *fasthttp.RequestCtx) {
		var in loginRequest
		if !httpapi.DecodeJSON(ctx, &in) {
			return
		}
		uid, ok := UserIDForName(in.User)
		if !ok {
			httpapi.WriteError(ctx, fasthttp.StatusUnprocessableEntity, "invalid_user",
				"user must be 1 to 64 characters of letters, digits, '_', '.' or '-'")
			return
		}
		tok, exp := s.Issue(uid, now())

		c := fasthttp.AcquireCookie()
		defer fasthttp.ReleaseCookie(c)
		c.SetKey(CookieName)
		c.SetValue(tok)
		c.SetPath("/")
		c.SetHTTPOnly(true)
		c.SetSameSite(fasthttp.CookieSameSiteLaxMode)
		c.SetSecure(o.SecureCookie)
		c.SetExpire(exp)
		c.SetMaxAge(int(s.ttl / time.Second))
		ctx.Response.Header.SetCookie(c)
		ctx.Response.Header.Set(fasthttp.HeaderCacheControl, "no-store")

		httpapi.WriteJSON(ctx, fasthttp.StatusOK, loginResponse{
			Token: tok, UserID: uid, ExpiresAt: httpapi.FormatTime(exp),
		})
	}
}
