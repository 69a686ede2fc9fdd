package waitroom

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"slices"
)

// SeedLen is the length of a shuffle seed in bytes.
const SeedLen = 32

// Commitment is the hex SHA-256 of seed: published when the pre-queue opens, so that the seed
// revealed at the start can be checked to be the one fixed before anyone joined.
func Commitment(seed []byte) string {
	h := sha256.Sum256(seed)
	return hex.EncodeToString(h[:])
}

// Rank is a user's shuffle key: HMAC-SHA256 with the seed as key and the user id as message.
// Without the seed nobody can tell ranks apart; with it anybody can recompute them.
func Rank(seed []byte, user string) [sha256.Size]byte {
	m := hmac.New(sha256.New, seed)
	m.Write([]byte(user))
	var out [sha256.Size]byte
	m.Sum(out[:0])
	return out
}

// Order returns the pre-queue in admission order: users sorted by ascending Rank (bytes compared
// as unsigned big-endian numbers), equal ranks by user id. Position i (1-based) is out[i-1].
// users is not changed.
func Order(seed []byte, users []string) []string {
	type ranked struct {
		r [sha256.Size]byte
		u string
	}
	rs := make([]ranked, len(users))
	m := hmac.New(sha256.New, seed)
	for i, u := range users {
		m.Reset()
		m.Write([]byte(u))
		m.Sum(rs[i].r[:0])
		rs[i].u = u
	}
	slices.SortFunc(rs, func(a, b ranked) int {
		if c := bytes.Compare(a.r[:], b.r[:]); c != 0 {
			return c
		}
		switch {
		case a.u < b.u:
			return -1
		case a.u > b.u:
			return 1
		}
		return 0
	})
	out := make([]string, len(rs))
	for i := range rs {
		out[i] = rs[i].u
	}
	return out
}
