package load

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	"flashedge/shared/challenge"
)

// zeroBitsByText counts leading zero bits through the hash's binary text: a second, independent
// way to read SHA-256's leading bits.
func zeroBitsByText(s string) int {
	sum := sha256.Sum256([]byte(s))
	var b strings.Builder
	for _, c := range sum {
		fmt.Fprintf(&b, "%08b", c)
	}
	bitsText := b.String()
	return len(bitsText) - len(strings.TrimLeft(bitsText, "0"))
}

func TestSolvePoW(t *testing.T) {
	prefixes := []string{"", "a", "9f86d081884c7d659a2feaa0c55ad015", "challenge-with-a-longer-prefix-0123456789abcdef0123456789abcdef"}
	for _, prefix := range prefixes {
		for _, d := range []int{0, 1, 4, 8, 12, 16} {
			t.Run(fmt.Sprintf("%q/%d", prefix, d), func(t *testing.T) {
				nonce, hashes := SolvePoW(prefix, d)
				if got := zeroBitsByText(prefix + nonce); got < d {
					t.Fatalf("SHA-256(%q + %q) has %d leading zero bits, want >= %d", prefix, nonce, got, d)
				}
				if got := challenge.LeadingZeroBits(prefix, nonce); got != zeroBitsByText(prefix+nonce) {
					t.Fatalf("LeadingZeroBits = %d, the binary text says %d", got, zeroBitsByText(prefix+nonce))
				}
				// Honest search counts up from 0: every smaller nonce fails.
				if hashes < 1 || fmt.Sprint(hashes-1) != nonce {
					t.Fatalf("nonce %q after %d hashes: want the count minus one", nonce, hashes)
				}
				for n := range hashes - 1 {
					if zeroBitsByText(prefix+fmt.Sprint(n)) >= d {
						t.Fatalf("nonce %d already has %d bits; the solver skipped it", n, d)
					}
				}
			})
		}
	}
}

func TestLeadingZeroBitsKnownHash(t *testing.T) {
	// SHA-256("abc") = ba7816bf...: first byte 0xba = 1011 1010, no leading zero bit.
	sum := sha256.Sum256([]byte("abc"))
	if hex.EncodeToString(sum[:4]) != "ba7816bf" || challenge.LeadingZeroBits("ab", "c") != 0 {
		t.Fatalf("SHA-256(abc) starts %x, LeadingZeroBits %d; want ba7816bf and 0", sum[:4], challenge.LeadingZeroBits("ab", "c"))
	}
}
