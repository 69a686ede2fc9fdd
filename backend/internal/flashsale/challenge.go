package flashsale

import (
	"context"
	"crypto/sha256"
	"fmt"
	"math/bits"
	"strconv"
	"time"

	"flashedge/shared/httpapi"
	"flashedge/shared/keyspace"
	"flashedge/shared/product"
)

// ChallengeKind is the only challenge kind: find a nonce such that SHA-256(prefix + nonce) starts
// with Difficulty zero bits.
const ChallengeKind = "pow-sha256"

// MaxAnswerLen bounds a challenge answer (the nonce) in bytes.
const MaxAnswerLen = 64

// Challenge is a one-time proof of work bound to one user and one sale. Its prefix is its id
// (128 random bits, so nothing can be computed ahead of time), which lets the order service check
// an answer's hash before its single store call.
type Challenge struct {
	ID         string
	Prefix     string
	Difficulty int
	ExpiresAt  time.Time
}

// IssueChallenge stores a new challenge for user and sale with the ChallengeTTL and returns it.
// Unknown sales are ErrNotFound, ended ones ErrEnded.
func (s *Service) IssueChallenge(ctx context.Context, user, saleID string) (Challenge, error) {
	if !product.ValidID([]byte(saleID)) {
		return Challenge{}, ErrNotFound
	}
	if !httpapi.ValidUserID([]byte(user)) {
		return Challenge{}, invalid("user id is not acceptable")
	}
	sl, err := s.loadSale(ctx, saleID)
	if err != nil {
		return Challenge{}, err
	}
	now := s.now()
	if !now.Before(sl.EndsAt) {
		return Challenge{}, ErrEnded
	}
	ch := Challenge{ID: newID(), Difficulty: sl.Difficulty, ExpiresAt: now.Add(s.o.ChallengeTTL).UTC()}
	ch.Prefix = ch.ID
	err = s.c.Do(ctx, s.c.B().Set().Key(keyspace.SaleChallenge(saleID, ch.ID)).
		Value(user+"\n"+strconv.Itoa(ch.Difficulty)).Px(s.o.ChallengeTTL).Build()).Error()
	if err != nil {
		return Challenge{}, fmt.Errorf("flashsale: store challenge: %w", err)
	}
	return ch, nil
}

// LeadingZeroBits returns the number of leading zero bits of SHA-256(prefix + nonce).
func LeadingZeroBits(prefix, nonce string) int {
	var buf [160]byte
	b := append(append(buf[:0], prefix...), nonce...)
	return zeroBits(sha256.Sum256(b))
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

// Solve finds a nonce (a decimal number) such that SHA-256(prefix + nonce) starts with difficulty
// zero bits, by counting up from zero: the honest client's work, for bench tools and tests. It
// takes about 2^difficulty hashes.
func Solve(prefix string, difficulty int) string {
	buf := make([]byte, 0, len(prefix)+20)
	buf = append(buf, prefix...)
	for n := uint64(0); ; n++ {
		b := strconv.AppendUint(buf, n, 10)
		if zeroBits(sha256.Sum256(b)) >= difficulty {
			return string(b[len(prefix):])
		}
	}
}
