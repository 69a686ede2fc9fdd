package session_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"flashedge/edge/internal/session"
)

var (
	secretA = []byte("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa") // 40 bytes
	secretB = []byte("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb")
	t0      = time.Unix(1_700_000_000, 0)
)

func newSigner(t testing.TB, keys map[string][]byte, current string) *session.Signer {
	t.Helper()
	s, err := session.NewSigner(keys, current, time.Hour)
	if err != nil {
		t.Fatalf("NewSigner: %v", err)
	}
	return s
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// split returns the decoded payload and mac of a token.
func split(t *testing.T, tok string) (payload, mac []byte) {
	t.Helper()
	p, m, ok := strings.Cut(tok, ".")
	if !ok {
		t.Fatalf("token %q has no dot", tok)
	}
	var err error
	if payload, err = base64.RawURLEncoding.DecodeString(p); err != nil {
		t.Fatalf("payload of %q: %v", tok, err)
	}
	if mac, err = base64.RawURLEncoding.DecodeString(m); err != nil {
		t.Fatalf("mac of %q: %v", tok, err)
	}
	return payload, mac
}

// TestFormat pins the documented token format, computing the MAC independently with crypto/hmac.
func TestFormat(t *testing.T) {
	s := newSigner(t, map[string][]byte{"k1": secretA}, "k1")
	tok, exp := s.Issue("u-alice", t0)
	if !exp.Equal(t0.Add(time.Hour)) {
		t.Errorf("expiry %v, want %v", exp, t0.Add(time.Hour))
	}
	payload, mac := split(t, tok)
	want := "1.k1." + strconv.FormatInt(t0.Add(time.Hour).Unix(), 10) + ".u-alice"
	if string(payload) != want {
		t.Errorf("payload %q, want %q", payload, want)
	}
	h := hmac.New(sha256.New, secretA)
	h.Write(payload)
	if !hmac.Equal(mac, h.Sum(nil)) {
		t.Errorf("mac is not HMAC-SHA256(secret, payload)")
	}
}

func TestVerify(t *testing.T) {
	signer := newSigner(t, map[string][]byte{"k1": secretA}, "k1")
	good, _ := signer.Issue("u-alice", t0)
	payload, mac := split(t, good)
	p64, m64, _ := strings.Cut(good, ".")

	// A token signed with the right format but another secret under the same kid.
	forger := newSigner(t, map[string][]byte{"k1": secretB}, "k1")
	forged, _ := forger.Issue("u-alice", t0)
	// A token from a key this signer does not hold.
	foreign := newSigner(t, map[string][]byte{"zz": secretA}, "zz")
	wrongKid, _ := foreign.Issue("u-alice", t0)
	// A payload changed after signing, the MAC kept.
	tamperedUser := b64(bytes.Replace(payload, []byte("u-alice"), []byte("u-admin"), 1)) + "." + m64
	laterExp := strconv.FormatInt(t0.Add(100*time.Hour).Unix(), 10)
	tamperedExp := b64([]byte("1.k1."+laterExp+".u-alice")) + "." + m64
	// A correctly signed payload that does not parse (no user id part).
	sign := func(p string) string {
		h := hmac.New(sha256.New, secretA)
		h.Write([]byte(p))
		return b64([]byte(p)) + "." + b64(h.Sum(nil))
	}

	tests := []struct {
		name  string
		token string
		now   time.Time
		want  error
	}{
		{"good", good, t0, nil},
		{"good just before expiry", good, t0.Add(time.Hour - time.Second), nil},
		{"expired at expiry", good, t0.Add(time.Hour), session.ErrExpired},
		{"expired long ago", good, t0.Add(48 * time.Hour), session.ErrExpired},
		{"forged with another secret", forged, t0, session.ErrBadSignature},
		{"wrong kid", wrongKid, t0, session.ErrUnknownKey},
		{"tampered user id", tamperedUser, t0, session.ErrBadSignature},
		{"tampered expiry", tamperedExp, t0, session.ErrBadSignature},
		{"mac of another token", p64 + "." + strings.SplitN(forged, ".", 2)[1], t0, session.ErrBadSignature},
		{"mac flipped", p64 + "." + b64(append([]byte{mac[0] ^ 1}, mac[1:]...)), t0, session.ErrBadSignature},
		{"truncated mac", good[:len(good)-1], t0, session.ErrMalformed},
		{"truncated to payload", p64, t0, session.ErrMalformed},
		{"truncated to payload and dot", p64 + ".", t0, session.ErrMalformed},
		{"truncated payload text", p64[:len(p64)-4] + "." + m64, t0, session.ErrMalformed},
		{"truncated payload bytes", b64(payload[:len(payload)-3]) + "." + m64, t0, session.ErrBadSignature},
		{"empty", "", t0, session.ErrMalformed},
		{"only a dot", ".", t0, session.ErrMalformed},
		{"not base64", "!!!!." + m64, t0, session.ErrMalformed},
		{"padded base64 mac", p64 + "." + m64 + "=", t0, session.ErrMalformed},
		{"too long", strings.Repeat("A", session.MaxTokenLen+1), t0, session.ErrMalformed},
		{"other version", sign("2.k1." + laterExp + ".u-alice"), t0, session.ErrMalformed},
		{"signed but no user id", sign("1.k1." + laterExp), t0, session.ErrMalformed},
		{"signed but bad expiry", sign("1.k1.12x.u-alice"), t0, session.ErrMalformed},
		{"signed but bad user id", sign("1.k1." + laterExp + ".u-{alice}"), t0, session.ErrMalformed},
		{"signed but empty user id", sign("1.k1." + laterExp + "."), t0, session.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			uid, err := signer.Verify([]byte(tt.token), tt.now)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Verify(%q) err = %v, want %v", tt.token, err, tt.want)
			}
			if err == nil && uid != "u-alice" {
				t.Fatalf("Verify(%q) user = %q, want u-alice", tt.token, uid)
			}
			if err != nil && uid != "" {
				t.Fatalf("Verify(%q) returned user %q with error %v", tt.token, uid, err)
			}
		})
	}
}

// TestRotation: a token signed with the old key keeps verifying after the new key becomes
// current, new tokens are signed with the new key, and dropping the old key retires its tokens.
func TestRotation(t *testing.T) {
	before := newSigner(t, map[string][]byte{"old": secretA}, "old")
	oldTok, _ := before.Issue("u-bob", t0)

	during := newSigner(t, map[string][]byte{"new": secretB, "old": secretA}, "new")
	if uid, err := during.Verify([]byte(oldTok), t0); err != nil || uid != "u-bob" {
		t.Fatalf("old token during rotation: %q, %v; want u-bob", uid, err)
	}
	newTok, _ := during.Issue("u-bob", t0)
	if payload, _ := split(t, newTok); !bytes.HasPrefix(payload, []byte("1.new.")) {
		t.Fatalf("new token payload %q is not signed with kid new", payload)
	}

	after := newSigner(t, map[string][]byte{"new": secretB}, "new")
	if _, err := after.Verify([]byte(newTok), t0); err != nil {
		t.Fatalf("new token after rotation: %v", err)
	}
	if _, err := after.Verify([]byte(oldTok), t0); !errors.Is(err, session.ErrUnknownKey) {
		t.Fatalf("old token after its key was dropped: %v, want ErrUnknownKey", err)
	}
}

func TestNewSignerRefuses(t *testing.T) {
	tests := []struct {
		name    string
		keys    map[string][]byte
		current string
		ttl     time.Duration
	}{
		{"no keys", nil, "k1", time.Hour},
		{"short secret", map[string][]byte{"k1": []byte("short")}, "k1", time.Hour},
		{"31 bytes", map[string][]byte{"k1": bytes.Repeat([]byte("x"), 31)}, "k1", time.Hour},
		{"current missing", map[string][]byte{"k1": secretA}, "k2", time.Hour},
		{"bad kid", map[string][]byte{"k.1": secretA}, "k.1", time.Hour},
		{"long kid", map[string][]byte{strings.Repeat("k", 17): secretA}, strings.Repeat("k", 17), time.Hour},
		{"zero ttl", map[string][]byte{"k1": secretA}, "k1", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := session.NewSigner(tt.keys, tt.current, tt.ttl); err == nil {
				t.Fatalf("NewSigner(%v, %q, %v) succeeded, want an error", tt.keys, tt.current, tt.ttl)
			}
		})
	}
}

func TestParseKeys(t *testing.T) {
	long := strings.Repeat("s", 32)
	tests := []struct {
		name      string
		spec      string
		wantKeys  map[string]string
		wantKid   string
		wantError string
	}{
		{"single secret", long, map[string]string{"k1": long}, "k1", ""},
		{"single secret trimmed", "  " + long + "\n", map[string]string{"k1": long}, "k1", ""},
		{"one kid", "a:" + long, map[string]string{"a": long}, "a", ""},
		{"two kids, first current", "new:" + long + "N, old:" + long + "O", map[string]string{"new": long + "N", "old": long + "O"}, "new", ""},
		{"empty", "", nil, "", "no signing secret"},
		{"short single", "tooshort", nil, "", "at least 32"},
		{"short in list", "a:" + long + ",b:short", nil, "", `key "b"`},
		{"duplicate kid", "a:" + long + ",a:" + long, nil, "", "twice"},
		{"missing kid", ":" + long, nil, "", "entry 1"},
		{"bad kid", "a b:" + long, nil, "", "entry 1"},
		{"empty entry", "a:" + long + ",", nil, "", "entry 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys, kid, err := session.ParseKeys(tt.spec)
			if tt.wantError != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantError) {
					t.Fatalf("ParseKeys(%q) err = %v, want one mentioning %q", tt.spec, err, tt.wantError)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseKeys(%q): %v", tt.spec, err)
			}
			if kid != tt.wantKid || len(keys) != len(tt.wantKeys) {
				t.Fatalf("ParseKeys(%q) = %d keys, current %q; want %d, %q", tt.spec, len(keys), kid, len(tt.wantKeys), tt.wantKid)
			}
			for k, v := range tt.wantKeys {
				if string(keys[k]) != v {
					t.Errorf("ParseKeys(%q)[%q] = %q, want %q", tt.spec, k, keys[k], v)
				}
			}
			if _, err := session.NewSigner(keys, kid, time.Hour); err != nil {
				t.Errorf("NewSigner with parsed keys: %v", err)
			}
		})
	}
}

func TestIssuePanicsOnInvalidUser(t *testing.T) {
	s := newSigner(t, map[string][]byte{"k1": secretA}, "k1")
	for _, uid := range []string{"", "U-Alice", "u-{x}", "a b", strings.Repeat("a", session.MaxUserIDLen+1)} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Issue(%q) did not panic", uid)
				}
			}()
			s.Issue(uid, t0)
		}()
	}
}

// TestVerifyAllocs: verification is on every request at the edge; AppendVerify allocates
// nothing and Verify only the returned string.
func TestVerifyAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under -race")
	}
	s := newSigner(t, map[string][]byte{"k2": secretB, "k1": secretA}, "k1")
	tok, _ := s.Issue("u-alice", t0)
	token := []byte(tok)
	dst := make([]byte, 0, session.MaxUserIDLen)
	if n := testing.AllocsPerRun(1000, func() {
		if _, err := s.AppendVerify(dst[:0], token, t0); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("AppendVerify allocates %.1f times per call, want 0", n)
	}
	if n := testing.AllocsPerRun(1000, func() {
		if _, err := s.Verify(token, t0); err != nil {
			t.Fatal(err)
		}
	}); n > 1 {
		t.Errorf("Verify allocates %.1f times per call, want at most 1 (the user id)", n)
	}
	bad := bytes.Clone(token)
	bad[len(bad)-2] ^= 1
	if n := testing.AllocsPerRun(1000, func() { _, _ = s.Verify(bad, t0) }); n != 0 {
		t.Errorf("Verify of a bad token allocates %.1f times per call, want 0", n)
	}
}

func BenchmarkVerify(b *testing.B) {
	s := newSigner(b, map[string][]byte{"k1": secretA}, "k1")
	tok, _ := s.Issue("u-alice", t0)
	token := []byte(tok)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		dst := make([]byte, 0, session.MaxUserIDLen)
		for pb.Next() {
			if _, err := s.AppendVerify(dst[:0], token, t0); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkIssue(b *testing.B) {
	s := newSigner(b, map[string][]byte{"k1": secretA}, "k1")
	b.ReportAllocs()
	for b.Loop() {
		s.Issue("u-alice", t0)
	}
}
