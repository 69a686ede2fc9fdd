package challenge_test

import (
	"strings"
	"testing"
	"time"

	"flashedge/shared/challenge"
)

// FuzzVerify feeds Verify arbitrary ids (a client's input), and a real id with one byte changed:
// nothing panics, an id that verifies does so for its own sale and user only, and a real id with
// any byte changed does not verify. (Each fuzzing process issues its own id: the nonce is random.)
func FuzzVerify(f *testing.F) {
	now := time.UnixMilli(1_700_000_000_000)
	k, err := challenge.NewKeys(map[string][]byte{"k1": []byte(strings.Repeat("a", 32))}, "k1")
	if err != nil {
		f.Fatal(err)
	}
	issued, _ := k.Issue("s1", "alice", 8, now.Add(time.Minute))
	f.Add(issued.ID, 0, byte('x'))
	f.Add("k1.1700000060000.8.00112233445566778899aabb.00112233445566778899aabbccddeeff", 3, byte('.'))
	f.Add("", 0, byte(0))
	f.Add("....", 1, byte('9'))
	f.Fuzz(func(t *testing.T, id string, at int, b byte) {
		if _, err := k.Verify(id, "s1", "alice", now); err == nil {
			if _, err := k.Verify(id, "s1", "bob", now); err == nil {
				t.Fatalf("Verify(%q) succeeds for alice and for bob", id)
			}
			if _, err := k.Verify(id, "s2", "alice", now); err == nil {
				t.Fatalf("Verify(%q) succeeds for sale s1 and for s2", id)
			}
		}
		if at < 0 {
			at = -at
		}
		m := []byte(issued.ID)
		m[at%len(m)] = b
		if _, err := k.Verify(string(m), "s1", "alice", now); err == nil && string(m) != issued.ID {
			t.Fatalf("Verify(%q), %q with byte %d changed, succeeded", m, issued.ID, at%len(m))
		}
	})
}
