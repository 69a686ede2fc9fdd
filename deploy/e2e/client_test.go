// Package e2e runs the real binaries (deploy/stack) against a real redis-server and talks to
// them over real HTTP, as a shopper, an admin and a benchmarker would.
package e2e

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"flashedge/deploy/stack"
)

func TestMain(m *testing.M) { stack.Main(m) }

// client speaks to one base URL with an optional bearer token.
type client struct {
	t     testing.TB
	base  string
	token string
	user  string // the user id of the session, for login's clients
	http  *http.Client
}

func newClient(t testing.TB, base, token string) *client {
	return &client{t: t, base: base, token: token, http: &http.Client{Timeout: 10 * time.Second}}
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) json(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("body %q is not the JSON wanted: %v", r.body, err)
	}
}

// errCode returns the contract's error code of a reply, or "" when it has none.
func (r reply) errCode() string {
	var e struct {
		Error struct{ Code, Message string }
	}
	if json.Unmarshal(r.body, &e) != nil || e.Error.Message == "" {
		return ""
	}
	return e.Error.Code
}

func (c *client) do(method, path string, body any, headers ...string) reply {
	c.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	checkContract(c.t, req, resp.StatusCode, resp.Header, b)
	return reply{status: resp.StatusCode, header: resp.Header, body: b}
}

// want fails the test unless the reply has the status (and, when code is set, that error code).
func (r reply) want(t testing.TB, what string, status int, code string) reply {
	t.Helper()
	if r.status != status {
		t.Fatalf("%s: status %d %s, want %d", what, r.status, r.body, status)
	}
	if code != "" && r.errCode() != code {
		t.Fatalf("%s: body %s, want error code %q", what, r.body, code)
	}
	return r
}

// login opens a session at the edge and returns a client carrying its token.
func login(t testing.TB, edge, user string) *client {
	t.Helper()
	var s struct {
		Token  string `json:"token"`
		UserID string `json:"user_id"`
	}
	newClient(t, edge, "").do("POST", "/api/v1/session", map[string]string{"user": user}).
		want(t, "login "+user, 200, "").json(t, &s)
	if s.Token == "" || s.UserID == "" {
		t.Fatalf("login %s: no token or user id", user)
	}
	c := newClient(t, edge, s.Token)
	c.user = s.UserID
	return c
}

// mintToken signs a session token the way the edge does (format documented in
// edge/internal/session), for tests that need an expired or foreign token.
func mintToken(secret, kid, user string, expires time.Time) string {
	payload := fmt.Sprintf("1.%s.%d.%s", kid, expires.Unix(), user)
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(payload))
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(payload)) + "." + enc.EncodeToString(m.Sum(nil))
}

// poll calls check until it returns nil or the deadline passes.
func poll(t testing.TB, what string, within time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, within, err)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func decodeB64(s string) string {
	b, _ := base64.RawURLEncoding.DecodeString(s)
	return string(b)
}

func mintPayloadOnly(payload string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(payload))
}
