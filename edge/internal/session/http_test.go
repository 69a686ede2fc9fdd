package session_test

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"flashedge/edge/internal/session"
	"flashedge/shared/httpapi"
)

// serve runs h on an in-memory listener until the test ends and returns a client for it.
func serve(t *testing.T, h fasthttp.RequestHandler) *fasthttp.Client {
	t.Helper()
	ln := fasthttputil.NewInmemoryListener()
	srv := httpapi.NewServer(h, httpapi.ServerOptions{Name: "session-test"}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown(); <-done })
	return &fasthttp.Client{Dial: func(string) (net.Conn, error) { return ln.Dial() }}
}

func post(t *testing.T, c *fasthttp.Client, body string) (*fasthttp.Response, func()) {
	t.Helper()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	req.SetRequestURI("http://edge/api/v1/session")
	req.Header.SetMethod(fasthttp.MethodPost)
	req.SetBodyString(body)
	if err := c.DoTimeout(req, resp, 5*time.Second); err != nil {
		t.Fatalf("POST %s: %v", body, err)
	}
	return resp, func() { fasthttp.ReleaseResponse(resp) }
}

func TestLoginHandler(t *testing.T) {
	s := newSigner(t, map[string][]byte{"k1": secretA}, "k1")
	c := serve(t, session.NewHandler(s, session.HandlerOptions{Now: func() time.Time { return t0 }}))

	tests := []struct {
		name     string
		body     string
		status   int
		wantUser string
		wantCode string
	}{
		{"lower case", `{"user":"alice"}`, 200, "u-alice", ""},
		{"mixed case is one user", `{"user":"Alice.B-1_x"}`, 200, "u-alice.b-1_x", ""},
		{"64 characters", `{"user":"` + strings.Repeat("a", 64) + `"}`, 200, "u-" + strings.Repeat("a", 64), ""},
		{"65 characters", `{"user":"` + strings.Repeat("a", 65) + `"}`, 422, "", "invalid_user"},
		{"empty name", `{"user":""}`, 422, "", "invalid_user"},
		{"space", `{"user":"a b"}`, 422, "", "invalid_user"},
		{"brace", `{"user":"a}b"}`, 422, "", "invalid_user"},
		{"non-ascii", `{"user":"anh\u00e9"}`, 422, "", "invalid_user"},
		{"user id sent by the client", `{"user":"alice","user_id":"u-admin"}`, 400, "", "malformed_json"},
		{"no body", ``, 400, "", "empty_body"},
		{"not json", `user=alice`, 400, "", "malformed_json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, release := post(t, c, tt.body)
			defer release()
			if resp.StatusCode() != tt.status {
				t.Fatalf("POST %s: status %d (%s), want %d", tt.body, resp.StatusCode(), resp.Body(), tt.status)
			}
			if tt.status != 200 {
				var e httpapi.ErrorBody
				if err := json.Unmarshal(resp.Body(), &e); err != nil || e.Error.Code != tt.wantCode {
					t.Fatalf("POST %s: body %s, want error code %s", tt.body, resp.Body(), tt.wantCode)
				}
				if len(resp.Header.PeekCookie(session.CookieName)) != 0 {
					t.Fatalf("POST %s: a failed login set the cookie", tt.body)
				}
				return
			}
			var got struct {
				Token     string `json:"token"`
				UserID    string `json:"user_id"`
				ExpiresAt string `json:"expires_at"`
			}
			if err := json.Unmarshal(resp.Body(), &got); err != nil {
				t.Fatalf("body %s: %v", resp.Body(), err)
			}
			if got.UserID != tt.wantUser {
				t.Errorf("user_id %q, want %q", got.UserID, tt.wantUser)
			}
			if want := t0.Add(time.Hour).UTC().Format("2006-01-02T15:04:05.000Z"); got.ExpiresAt != want {
				t.Errorf("expires_at %q, want %q", got.ExpiresAt, want)
			}
			if uid, err := s.Verify([]byte(got.Token), t0); err != nil || uid != tt.wantUser {
				t.Errorf("token verifies as %q, %v; want %q", uid, err, tt.wantUser)
			}
			var ck fasthttp.Cookie
			ck.SetKey(session.CookieName)
			if !resp.Header.Cookie(&ck) {
				t.Fatalf("no %s cookie in %s", session.CookieName, resp.Header.String())
			}
			if string(ck.Value()) != got.Token || !ck.HTTPOnly() || ck.SameSite() != fasthttp.CookieSameSiteLaxMode ||
				string(ck.Path()) != "/" || ck.Secure() || ck.MaxAge() != 3600 {
				t.Errorf("cookie %s: want the token, HttpOnly, SameSite=Lax, Path=/, Max-Age=3600, not Secure", ck.String())
			}
			if cc := string(resp.Header.Peek("Cache-Control")); cc != "no-store" {
				t.Errorf("Cache-Control %q, want no-store", cc)
			}
		})
	}
}

func TestFromRequest(t *testing.T) {
	s := newSigner(t, map[string][]byte{"k1": secretA}, "k1")
	now := time.Now()
	good, _ := s.Issue("u-alice", now)
	other, _ := s.Issue("u-bob", now)
	expired, _ := s.Issue("u-alice", now.Add(-2*time.Hour))

	tests := []struct {
		name   string
		auth   string
		cookie string
		want   string
		err    error
	}{
		{"bearer", "Bearer " + good, "", "u-alice", nil},
		{"lower-case scheme", "bearer " + good, "", "u-alice", nil},
		{"cookie", "", good, "u-alice", nil},
		{"bearer wins over cookie", "Bearer " + other, good, "u-bob", nil},
		{"non-bearer header falls back to cookie", "Basic dXNlcjpwdw==", good, "u-alice", nil},
		{"none", "", "", "", session.ErrNoToken},
		{"empty bearer", "Bearer ", "", "", session.ErrNoToken},
		{"garbage bearer", "Bearer xyz", "", "", session.ErrMalformed},
		{"expired cookie", "", expired, "", session.ErrExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ctx fasthttp.RequestCtx
			if tt.auth != "" {
				ctx.Request.Header.Set("Authorization", tt.auth)
			}
			if tt.cookie != "" {
				ctx.Request.Header.SetCookie(session.CookieName, tt.cookie)
			}
			uid, err := s.FromRequest(&ctx)
			if !errors.Is(err, tt.err) || uid != tt.want {
				t.Fatalf("FromRequest(auth %q, cookie %q) = %q, %v; want %q, %v", tt.auth, tt.cookie, uid, err, tt.want, tt.err)
			}
		})
	}
}
