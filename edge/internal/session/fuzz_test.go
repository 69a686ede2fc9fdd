package session

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"flashedge/shared/httpapi"

	"github.com/valyala/fasthttp"
)

// FuzzVerify: no token a client sends crashes verification or yields an invalid user id; a
// forged token (any change to one this signer issued) is refused; issued tokens verify.
func FuzzVerify(f *testing.F) {
	s, err := NewSigner(map[string][]byte{"k1": []byte(strings.Repeat("s", 32))}, "k1", time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	good, _ := s.Issue("u-alice", now)
	f.Add(good, "u-alice")
	f.Add(good+"x", "u-bob")
	f.Add("k1.1.u-a", "u.a-b_c")
	f.Add("", "")
	f.Fuzz(func(t *testing.T, token, user string) {
		if uid, err := s.Verify([]byte(token), now); err == nil {
			if !httpapi.ValidUserID([]byte(uid)) {
				t.Fatalf("Verify(%q) accepted user id %q", token, uid)
			}
			if reissued, _ := s.Issue(uid, now); token != good && token != reissued && !strings.HasSuffix(token, "."+uid) {
				t.Fatalf("Verify accepted %q for %q", token, uid)
			}
		}
		if !httpapi.ValidUserID([]byte(user)) {
			return
		}
		tok, _ := s.Issue(user, now)
		if uid, err := s.Verify([]byte(tok), now); err != nil || uid != user {
			t.Fatalf("issued token for %q verifies as %q, %v", user, uid, err)
		}
		if len(tok) > 1 {
			forged := []byte(tok)
			forged[len(forged)/2] ^= 1
			if uid, err := s.Verify(forged, now); err == nil && uid == user && string(forged) != tok {
				t.Fatalf("a forged token %q verified for %q", forged, uid)
			}
		}
	})
}

// FuzzLoginBody: whatever body a client posts to the login route, the answer is 200 with a
// token that verifies as the user the body names (UserIDForName), or a 4xx with the JSON error
// shape and no cookie; never a 5xx or a panic.
func FuzzLoginBody(f *testing.F) {
	s, err := NewSigner(map[string][]byte{"k1": []byte(strings.Repeat("s", 32))}, "k1", time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	h := NewHandler(s, HandlerOptions{Now: func() time.Time { return now }})
	for _, b := range []string{`{"user":"alice"}`, `{"user":"Alice.B-1_x"}`, `{"user":""}`, `{"user":"a}b"}`,
		`{"user":"alice","user_id":"u-admin"}`, `{"user":"a"} x`, `[]`, `{"user":1}`, `{"user":"\u0061"}`, ``, `user=alice`} {
		f.Add([]byte(b))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetMethod("POST")
		ctx.Request.SetRequestURI("/api/v1/session")
		ctx.Request.SetBody(body)
		h(&ctx)
		code := ctx.Response.StatusCode()
		if code == 200 {
			var out struct {
				Token  string `json:"token"`
				UserID string `json:"user_id"`
			}
			var in struct {
				User string `json:"user"`
			}
			if err := json.Unmarshal(ctx.Response.Body(), &out); err != nil {
				t.Fatalf("login %q: 200 with body %s", body, ctx.Response.Body())
			}
			_ = json.Unmarshal(body, &in)
			want, ok := UserIDForName(in.User)
			if uid, err := s.Verify([]byte(out.Token), now); err != nil || !ok || uid != want || out.UserID != want {
				t.Fatalf("login %q: token for %q (%v), user_id %q; want %q", body, uid, err, out.UserID, want)
			}
			return
		}
		if code < 400 || code > 499 {
			t.Fatalf("login %q: status %d, want 200 or a 4xx", body, code)
		}
		var e httpapi.ErrorBody
		if err := json.Unmarshal(ctx.Response.Body(), &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
			t.Fatalf("login %q: %d with body %s, want the JSON error shape", body, code, ctx.Response.Body())
		}
		if len(ctx.Response.Header.PeekCookie(CookieName)) != 0 {
			t.Fatalf("login %q: a refused login set the cookie", body)
		}
	})
}
