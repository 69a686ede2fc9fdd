package waitroom_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"flashedge/shared/waitroom"
)

func i64(n int64) *int64 { return &n }

func TestValidate(t *testing.T) {
	start := time.Date(2026, 11, 11, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		in   waitroom.Input
		want string // substring of the error; "" for valid
	}{
		{"valid with defaults", waitroom.Input{OpensAt: "2026-11-11T11:00:00Z", AdmitPerSecond: i64(100)}, ""},
		{"valid with all", waitroom.Input{OpensAt: "2026-11-11T11:00:00Z", AdmitPerSecond: i64(1), PassSeconds: i64(30), HoldSeconds: i64(20)}, ""},
		{"opens at start", waitroom.Input{OpensAt: "2026-11-11T12:00:00Z", AdmitPerSecond: i64(1)}, "before starts_at"},
		{"opens after start", waitroom.Input{OpensAt: "2026-11-11T13:00:00Z", AdmitPerSecond: i64(1)}, "before starts_at"},
		{"opens too early", waitroom.Input{OpensAt: "2026-10-01T13:00:00Z", AdmitPerSecond: i64(1)}, "at most"},
		{"no opens_at", waitroom.Input{AdmitPerSecond: i64(1)}, "opens_at is required"},
		{"no rate", waitroom.Input{OpensAt: "2026-11-11T11:00:00Z"}, "admit_per_second is required"},
		{"zero rate", waitroom.Input{OpensAt: "2026-11-11T11:00:00Z", AdmitPerSecond: i64(0)}, "admit_per_second is required"},
		{"short pass", waitroom.Input{OpensAt: "2026-11-11T11:00:00Z", AdmitPerSecond: i64(1), PassSeconds: i64(1)}, "pass_seconds"},
		{"short hold", waitroom.Input{OpensAt: "2026-11-11T11:00:00Z", AdmitPerSecond: i64(1), HoldSeconds: i64(1)}, "hold_seconds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tt.in.Validate(start)
			if tt.want == "" {
				if err != nil || !c.Enabled() {
					t.Fatalf("Validate(%+v) = %+v, %v; want valid", tt.in, c, err)
				}
				if got := waitroom.FromHash(hashOf(c.HashFields())); got != c {
					t.Fatalf("hash round trip: %+v, want %+v", got, c)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate(%+v) error %v, want one saying %q", tt.in, err, tt.want)
			}
		})
	}
	if waitroom.FromHash(map[string]string{"id": "x"}).Enabled() {
		t.Fatal("a sale hash without waiting-room fields has a waiting room")
	}
}

func hashOf(kv []string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

// TestOrderIsTheDocumentedFunction recomputes the order the way a shopper would from the
// fairness answer: HMAC-SHA256(seed, user) ascending.
func TestOrderIsTheDocumentedFunction(t *testing.T) {
	seed, _ := hex.DecodeString("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff")
	var users []string
	for i := range 500 {
		users = append(users, fmt.Sprintf("user%03d", i))
	}
	got := waitroom.Order(seed, users)
	want := append([]string(nil), users...)
	sort.Slice(want, func(i, j int) bool {
		mi, mj := hmac.New(sha256.New, seed), hmac.New(sha256.New, seed)
		mi.Write([]byte(want[i]))
		mj.Write([]byte(want[j]))
		return hex.EncodeToString(mi.Sum(nil)) < hex.EncodeToString(mj.Sum(nil))
	})
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatal("Order differs from ascending HMAC-SHA256(seed, user)")
	}
	if users[0] != "user000" {
		t.Fatal("Order changed its input")
	}
	// Join order does not matter: the same users in reverse give the same order.
	rev := append([]string(nil), users...)
	for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
		rev[i], rev[j] = rev[j], rev[i]
	}
	if strings.Join(waitroom.Order(seed, rev), ",") != strings.Join(got, ",") {
		t.Fatal("Order depends on the input order")
	}
	if c := waitroom.Commitment(seed); c != hex.EncodeToString(sha256Sum(seed)) {
		t.Fatalf("Commitment %s is not the hex SHA-256 of the seed", c)
	}
}

func sha256Sum(b []byte) []byte { h := sha256.Sum256(b); return h[:] }

func TestTokens(t *testing.T) {
	s, err := waitroom.NewSealer(map[string][]byte{"k1": []byte("0123456789abcdef0123"), "k0": []byte("fedcba9876543210fedc")}, "k1")
	if err != nil {
		t.Fatal(err)
	}
	old, _ := waitroom.NewSealer(map[string][]byte{"k0": []byte("fedcba9876543210fedc")}, "k0")
	other, _ := waitroom.NewSealer(map[string][]byte{"k1": []byte("another secret of 20b")}, "k1")
	now := time.UnixMilli(1_800_000_000_000)
	tk := waitroom.Ticket{Sale: "s1", User: "u.1", Position: 42, LastPoll: now, PassExpires: now.Add(time.Minute)}
	got, err := s.OpenTicket(s.SealTicket(tk))
	if err != nil || got != tk {
		t.Fatalf("ticket round trip: %+v, %v; want %+v", got, err, tk)
	}
	if _, err := s.OpenTicket(old.SealTicket(tk)); err != nil {
		t.Fatalf("a ticket of the previous key: %v", err)
	}
	p := waitroom.Pass{Sale: "s1", User: "u.1", Position: 42, Expires: now.Add(time.Minute)}
	pass := s.SealPass(p)
	tests := []struct {
		name      string
		tok       string
		sale, usr string
		at        time.Time
		want      error
	}{
		{"valid", pass, "s1", "u.1", now, nil},
		{"other user", pass, "s1", "u.2", now, waitroom.ErrForged},
		{"other sale", pass, "s2", "u.1", now, waitroom.ErrForged},
		{"expired", pass, "s1", "u.1", now.Add(time.Minute), waitroom.ErrExpired},
		{"other key", other.SealPass(p), "s1", "u.1", now, waitroom.ErrForged},
		{"ticket as pass", s.SealTicket(tk), "s1", "u.1", now, waitroom.ErrMalformed},
		{"garbage", "not a token", "s1", "u.1", now, waitroom.ErrMalformed},
		{"tampered signature", tamper(pass, strings.IndexByte(pass, '.')+1), "s1", "u.1", now, waitroom.ErrForged},
		{"tampered position", swapPayload(s.SealPass(waitroom.Pass{Sale: "s1", User: "u.1", Position: 1, Expires: p.Expires}), pass), "s1", "u.1", now, waitroom.ErrForged},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.OpenPass(tt.tok, tt.sale, tt.usr, tt.at)
			if !errors.Is(err, tt.want) {
				t.Fatalf("OpenPass: %v, want %v", err, tt.want)
			}
		})
	}
}

// tamper changes the character at i to another base64url character.
func tamper(tok string, i int) string {
	c := byte('A')
	if tok[i] == 'A' {
		c = 'B'
	}
	return tok[:i] + string(c) + tok[i+1:]
}

// swapPayload is a's payload with b's signature.
func swapPayload(a, b string) string {
	pa, _, _ := strings.Cut(a, ".")
	_, sb, _ := strings.Cut(b, ".")
	return pa + "." + sb
}

func TestPace(t *testing.T) {
	hold := 60 * time.Second
	tests := []struct {
		name               string
		pos, serving, r    int64
		wantAhead          int64
		wantWait, wantPoll time.Duration
	}{
		{"admitted", 5, 10, 10, 0, 0, time.Second},
		{"next batch", 11, 10, 10, 0, time.Second, time.Second},
		{"far back", 10_010, 10, 10, 9_999, 1000 * time.Second, 20 * time.Second},
		{"middle", 510, 10, 10, 499, 50 * time.Second, 10 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if a := waitroom.Ahead(tt.pos, tt.serving); a != tt.wantAhead {
				t.Errorf("Ahead = %d, want %d", a, tt.wantAhead)
			}
			w := waitroom.Wait(tt.pos, tt.serving, tt.r)
			if w != tt.wantWait {
				t.Errorf("Wait = %v, want %v", w, tt.wantWait)
			}
			if p := waitroom.PollAfter(w, hold); p != tt.wantPoll {
				t.Errorf("PollAfter = %v, want %v", p, tt.wantPoll)
			}
		})
	}
}

func TestSpread(t *testing.T) {
	for _, tt := range []struct {
		name   string
		d      time.Duration
		h      uint32
		lo, hi time.Duration
	}{
		{"no spread at the minimum", waitroom.MinPollAfter, 1023, waitroom.MinPollAfter, waitroom.MinPollAfter},
		{"hash 0 keeps the interval", 30 * time.Second, 0, 30 * time.Second, 30 * time.Second},
		{"the largest hash takes nearly a fifth off", 30 * time.Second, 1023, 24 * time.Second, 24100 * time.Millisecond},
		{"never below the minimum", 1100 * time.Millisecond, 1023, waitroom.MinPollAfter, 1100 * time.Millisecond},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := waitroom.Spread(tt.d, tt.h); got < tt.lo || got > tt.hi {
				t.Errorf("waitroom.Spread(%v, %d) = %v, want within [%v, %v]", tt.d, tt.h, got, tt.lo, tt.hi)
			}
		})
	}
	// Over many shoppers the intervals cover the fifth evenly.
	var buckets [5]int
	for u := range uint32(10_000) {
		d := waitroom.Spread(30*time.Second, u*2654435761)
		buckets[min(4, int((30*time.Second-d)/(1200*time.Millisecond)))]++
	}
	for i, n := range buckets {
		if n < 1500 || n > 2500 {
			t.Errorf("bucket %d of the spread holds %d of 10000, want about 2000: %v", i, n, buckets)
		}
	}
}
