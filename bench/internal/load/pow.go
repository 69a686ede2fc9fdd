package load

import (
	"crypto/sha256"
	"math/bits"
	"strconv"
)

// LeadingZeroBits returns how many leading zero bits SHA-256(prefix + nonce) has.
func LeadingZeroBits(prefix, nonce string) int {
	return zeroBits(sha256.Sum256([]byte(prefix + nonce)))
}

func zeroBits(sum [32]byte) int {
	n := 0
	for _, c := range sum {
		if c != 0 {
			return n + bits.LeadingZeros8(c)
		}
		n += 8
	}
	return n
}

// SolvePoW answers a pow-sha256 challenge the honest way: it counts up from zero until
// SHA-256(prefix + decimal nonce) starts with difficulty zero bits, about 2^difficulty hashes.
// It returns the nonce and how many hashes it took. Difficulty 0 accepts "0" at once.
func SolvePoW(prefix string, difficulty int) (nonce string, hashes int) {
	buf := make([]byte, 0, len(prefix)+20)
	buf = append(buf, prefix...)
	for n := uint64(0); ; n++ {
		b := strconv.AppendUint(buf, n, 10)
		if zeroBits(sha256.Sum256(b)) >= difficulty {
			return string(b[len(prefix):]), int(n) + 1
		}
	}
}
