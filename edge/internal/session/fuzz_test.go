package session

import (
	"strings"
	"testing"
	"time"

	"flashedge/shared/httpapi"
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
