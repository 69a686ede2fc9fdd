package challenge_test

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"flashedge/shared/challenge"
)

var (
	secretA = []byte(strings.Repeat("a", 32))
	secretB = []byte(strings.Repeat("b", 32))
)

func keys(t testing.TB, secrets map[string][]byte, current string) *challenge.Keys {
	t.Helper()
	k, err := challenge.NewKeys(secrets, current)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// flip changes the character at i of id to another one of the same class.
func flip(id string, i int) string {
	b := []byte(id)
	switch {
	case b[i] == '0':
		b[i] = '1'
	case b[i] >= '1' && b[i] <= '9':
		b[i] = '0'
	default:
		b[i] = '0'
	}
	return string(b)
}

func TestVerify(t *testing.T) {
	now := time.UnixMilli(1_700_000_000_000)
	k := keys(t, map[string][]byte{"new": secretA, "old": secretB}, "new")
	old := keys(t, map[string][]byte{"old": secretB}, "old")
	foreign := keys(t, map[string][]byte{"new": secretB}, "new")
	ch, err := k.Issue("s1", "alice", 12, now.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if len(ch.ID) > challenge.MaxIDLen || ch.Difficulty != 12 || !ch.ExpiresAt.Equal(now.Add(time.Minute)) {
		t.Fatalf("Issue = %+v", ch)
	}
	fromOld, _ := old.Issue("s1", "alice", 3, now.Add(time.Minute))
	fromForeign, _ := foreign.Issue("s1", "alice", 12, now.Add(time.Minute))
	dots := strings.Split(ch.ID, ".")
	expiryAt := len(dots[0]) + 1
	diffAt := expiryAt + len(dots[1]) + 1
	nonceAt := diffAt + len(dots[2]) + 1
	macAt := nonceAt + len(dots[3]) + 1
	tests := []struct {
		name, id, sale, user string
		now                  time.Time
		want                 error
	}{
		{"good", ch.ID, "s1", "alice", now, nil},
		{"good until the last millisecond", ch.ID, "s1", "alice", now.Add(time.Minute - time.Millisecond), nil},
		{"issued with a key still accepted", fromOld.ID, "s1", "alice", now, nil},
		{"expired", ch.ID, "s1", "alice", now.Add(time.Minute), challenge.ErrExpired},
		{"another user", ch.ID, "s1", "bob", now, challenge.ErrBadMAC},
		{"another sale", ch.ID, "s2", "alice", now, challenge.ErrBadMAC},
		{"sale and user shifted", ch.ID, "s1a", "lice", now, challenge.ErrBadMAC},
		{"longer expiry", flip(ch.ID, expiryAt), "s1", "alice", now, challenge.ErrBadMAC},
		{"lower difficulty", flip(ch.ID, diffAt), "s1", "alice", now, challenge.ErrBadMAC},
		{"other nonce", flip(ch.ID, nonceAt), "s1", "alice", now, challenge.ErrBadMAC},
		{"tampered MAC", flip(ch.ID, macAt), "s1", "alice", now, challenge.ErrBadMAC},
		{"same kid, other secret", fromForeign.ID, "s1", "alice", now, challenge.ErrBadMAC},
		{"unknown kid", "zz" + ch.ID[len(dots[0]):], "s1", "alice", now, challenge.ErrUnknownKey},
		{"empty", "", "s1", "alice", now, challenge.ErrMalformed},
		{"old hex id", "0123456789abcdef0123456789abcdef", "s1", "alice", now, challenge.ErrMalformed},
		{"upper-case MAC", ch.ID[:macAt] + strings.ToUpper(ch.ID[macAt:]), "s1", "alice", now, challenge.ErrMalformed},
		{"short MAC", ch.ID[:len(ch.ID)-2], "s1", "alice", now, challenge.ErrMalformed},
		{"extra part", ch.ID + ".00", "s1", "alice", now, challenge.ErrMalformed},
		{"signed expiry", ch.ID[:expiryAt] + "-" + ch.ID[expiryAt+1:], "s1", "alice", now, challenge.ErrMalformed},
		{"too long", ch.ID + strings.Repeat("0", challenge.MaxIDLen), "s1", "alice", now, challenge.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := k.Verify(tt.id, tt.sale, tt.user, tt.now)
			if !errors.Is(err, tt.want) || (err != nil) != (tt.want != nil) {
				t.Fatalf("Verify(%q, %q, %q) err = %v, want %v", tt.id, tt.sale, tt.user, err, tt.want)
			}
			if err == nil && got.ID != tt.id {
				t.Errorf("Verify(%q) = %+v", tt.id, got)
			}
		})
	}
	if _, err := k.Issue("s1", "alice", challenge.MaxDifficulty+1, now); err == nil {
		t.Error("Issue with a difficulty over MaxDifficulty succeeded")
	}
	if _, err := challenge.NewKeys(map[string][]byte{"a": secretA}, "b"); err == nil {
		t.Error("NewKeys with a current kid that is not among the keys succeeded")
	}
	if _, err := challenge.NewKeys(map[string][]byte{"a": []byte("short")}, "a"); err == nil {
		t.Error("NewKeys with a short secret succeeded")
	}
}

func TestVerifyAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under -race")
	}
	now := time.UnixMilli(1_700_000_000_000)
	k := keys(t, map[string][]byte{"k1": secretA}, "k1")
	ch, _ := k.Issue("sale-1", "alice", 8, now.Add(time.Minute))
	if n := testing.AllocsPerRun(100, func() {
		if _, err := k.Verify(ch.ID, "sale-1", "alice", now); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("Verify allocates %.1f times per call, want 0", n)
	}
	if n := testing.AllocsPerRun(100, func() { challenge.LeadingZeroBits(ch.ID, "12345678901234567890") }); n != 0 {
		t.Errorf("LeadingZeroBits allocates %.1f times per call, want 0", n)
	}
}

func TestSolve(t *testing.T) {
	for _, d := range []int{0, 1, 8, 12} {
		n := challenge.Solve("abc123", d)
		if got := challenge.LeadingZeroBits("abc123", n); got < d {
			t.Errorf("Solve(abc123, %d) = %q with %d zero bits", d, n, got)
		}
		if a, hashes := challenge.SolveCount("abc123", d); a != n || strconv.Itoa(hashes-1) != n {
			t.Errorf("SolveCount(abc123, %d) = %q after %d hashes, want %q after its value + 1", d, a, hashes, n)
		}
	}
}

// TestAppendJSON is the round trip: what AppendJSON renders decodes into Body with the same
// values, and the expiry is written in the API's millisecond UTC form.
func TestAppendJSON(t *testing.T) {
	k := keys(t, map[string][]byte{"k1": secretA}, "k1")
	ch, _ := k.Issue("s1", "alice", 4, time.UnixMilli(1_700_000_000_123))
	body := challenge.AppendJSON(nil, ch)
	var got challenge.Body
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("AppendJSON = %s: %v", body, err)
	}
	want := challenge.Body{ChallengeID: ch.ID, Kind: challenge.Kind,
		Payload: challenge.Payload{Prefix: ch.ID, Difficulty: 4}, ExpiresAt: ch.ExpiresAt}
	if got.ChallengeID != want.ChallengeID || got.Kind != want.Kind || got.Payload != want.Payload ||
		!got.ExpiresAt.Equal(want.ExpiresAt) {
		t.Errorf("AppendJSON = %s, decoded %+v, want %+v", body, got, want)
	}
	if !strings.Contains(string(body), `"expires_at":"2023-11-14T22:13:20.123Z"`) || !strings.HasSuffix(string(body), "}\n") {
		t.Errorf("AppendJSON = %q", body)
	}
}

func TestZeroBits(t *testing.T) {
	for _, c := range []struct {
		sum  [32]byte
		want int
	}{
		{[32]byte{0x80}, 0}, {[32]byte{0x40}, 1}, {[32]byte{0x01}, 7}, {[32]byte{0, 0x80}, 8},
		{[32]byte{0, 0, 0x10}, 19}, {[32]byte{}, 256},
	} {
		if got := challenge.ZeroBits(c.sum); got != c.want {
			t.Errorf("zeroBits(%x...) = %d, want %d", c.sum[:3], got, c.want)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	now := time.UnixMilli(1_700_000_000_000)
	k := keys(b, map[string][]byte{"k1": secretA}, "k1")
	ch, _ := k.Issue("sale-1", "alice", 8, now.Add(time.Minute))
	b.ReportAllocs()
	for b.Loop() {
		_, _ = k.Verify(ch.ID, "sale-1", "alice", now)
	}
}
