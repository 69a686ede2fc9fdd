// Package challenge is the flash sale's one-time proof of work: minted by the edge without any
// store call, checked by the order service from the id alone, and spent once by the admission
// script (which marks the id used until it expires).
//
// An id is self-authenticating:
//
//	id  = kid "." expiry "." difficulty "." nonce "." mac
//	mac = first 16 bytes of HMAC-SHA256(key[kid], sale 0x00 user 0x00 kid "." expiry "." difficulty "." nonce)
//
// kid names the secret (signkey rules), expiry is the end of validity in unix milliseconds,
// difficulty the leading zero bits wanted, nonce 12 random bytes and mac 16 bytes, both in
// lower-case hex. key[kid] is derived from the FLASHEDGE_SESSION_SECRET entry of that kid, so the
// edge and every order service replica verify each other's challenges without sharing state. A
// challenge is bound to its sale and user through the MAC: used by anyone else, or for another
// sale, it does not verify.
//
// The proof of work: find an answer such that SHA-256(prefix + answer) starts with difficulty
// zero bits, where the prefix is the id itself (so nothing can be computed before it is issued).
package challenge

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"math/bits"
	"strconv"
	"sync"
	"time"

	"flashedge/shared/httpapi"
	"flashedge/shared/signkey"
)

// Kind is the only challenge kind (the "kind" of the public answer).
const Kind = "pow-sha256"

// MaxAnswerLen bounds an answer (the nonce a client found) in bytes.
const MaxAnswerLen = 64

// DefaultTTL is how long a challenge can be answered unless configured otherwise.
const DefaultTTL = 60 * time.Second

// MaxDifficulty is the hardest challenge an id may carry.
const MaxDifficulty = 64

const (
	nonceLen = 12
	macLen   = 16
	// MaxIDLen bounds an id: kid, 13-digit expiry (until year 2286), 2-digit difficulty, nonce
	// and MAC in hex, four dots.
	MaxIDLen = signkey.MaxKidLen + 1 + 13 + 1 + 2 + 1 + 2*nonceLen + 1 + 2*macLen
	// maxMACInput: sale and user ids are far shorter than this in practice; longer ones are
	// refused by Issue and Verify rather than hashed in pieces.
	maxMACInput = 512
)

// Errors of Verify. The order service answers all of them as a bad challenge; they differ for
// tests and logs.
var (
	ErrMalformed  = errors.New("challenge: malformed id")
	ErrUnknownKey = errors.New("challenge: id signed with an unknown key")
	ErrBadMAC     = errors.New("challenge: id not issued for this sale and user (bad MAC)")
	ErrExpired    = errors.New("challenge: expired")
)

// Challenge is one issued challenge. Its prefix (of the proof of work) is its ID.
type Challenge struct {
	ID         string
	Difficulty int
	ExpiresAt  time.Time
}

// Keys mint and verify challenge ids. Safe for concurrent use; immutable after NewKeys.
type Keys struct {
	keys    map[string]*key
	current *key
}

type key struct {
	kid  string
	mac  []byte // derived from the secret: HMAC(secret, "flashedge challenge v1")
	pool sync.Pool
}

type macState struct {
	h   hash.Hash
	in  [maxMACInput]byte
	sum [sha256.Size]byte
}

func (k *key) sum(sale, user, body string, out *[macLen]byte) bool {
	if len(sale)+len(user)+len(body)+2 > maxMACInput {
		return false
	}
	m, ok := k.pool.Get().(*macState)
	if !ok {
		m = &macState{h: hmac.New(sha256.New, k.mac)}
	}
	b := append(m.in[:0], sale...)
	b = append(b, 0)
	b = append(b, user...)
	b = append(b, 0)
	b = append(b, body...)
	m.h.Reset()
	m.h.Write(b)
	copy(out[:], m.h.Sum(m.sum[:0]))
	k.pool.Put(m)
	return true
}

// NewKeys derives the challenge keys from secrets (kid -> secret, as signkey.Parse returns them);
// current signs new challenges, every key verifies.
func NewKeys(secrets map[string][]byte, current string) (*Keys, error) {
	if _, ok := secrets[current]; !ok {
		return nil, fmt.Errorf("challenge: current key id %q is not among the keys", current)
	}
	k := &Keys{keys: make(map[string]*key, len(secrets))}
	for kid, secret := range secrets {
		if !signkey.ValidKid(kid) || len(secret) < signkey.MinSecretLen {
			return nil, fmt.Errorf("challenge: key %q: want a kid of 1 to %d of A-Z a-z 0-9 _ - and a secret of at least %d bytes",
				kid, signkey.MaxKidLen, signkey.MinSecretLen)
		}
		m := hmac.New(sha256.New, secret)
		m.Write([]byte("flashedge challenge v1"))
		k.keys[kid] = &key{kid: kid, mac: m.Sum(nil)}
	}
	k.current = k.keys[current]
	return k, nil
}

// RandomKeys returns Keys with a fresh random secret: only this process can verify what it
// mints (tests, and a service that is not given the shared secret).
func RandomKeys() *Keys {
	var b [32]byte
	_, _ = rand.Read(b[:])
	k, err := NewKeys(map[string][]byte{signkey.DefaultKid: []byte(hex.EncodeToString(b[:]))}, signkey.DefaultKid)
	if err != nil {
		panic(err) // the secret above satisfies NewKeys
	}
	return k
}

// Issue mints a challenge for user and sale of difficulty (0 to MaxDifficulty) valid until
// expires (truncated to the millisecond).
func (k *Keys) Issue(sale, user string, difficulty int, expires time.Time) (Challenge, error) {
	if difficulty < 0 || difficulty > MaxDifficulty {
		return Challenge{}, fmt.Errorf("challenge: difficulty %d out of 0..%d", difficulty, MaxDifficulty)
	}
	var nonce [nonceLen]byte
	_, _ = rand.Read(nonce[:])
	var buf [MaxIDLen]byte
	b := append(buf[:0], k.current.kid...)
	b = append(b, '.')
	b = strconv.AppendInt(b, expires.UnixMilli(), 10)
	b = append(b, '.')
	b = strconv.AppendInt(b, int64(difficulty), 10)
	b = append(b, '.')
	b = hex.AppendEncode(b, nonce[:])
	var mac [macLen]byte
	if !k.current.sum(sale, user, string(b), &mac) {
		return Challenge{}, errors.New("challenge: sale and user ids too long")
	}
	b = append(b, '.')
	b = hex.AppendEncode(b, mac[:])
	return Challenge{ID: string(b), Difficulty: difficulty, ExpiresAt: time.UnixMilli(expires.UnixMilli()).UTC()}, nil
}

// Verify checks that id was issued by these keys for sale and user and has not expired at now,
// and returns the challenge. It allocates nothing. Errors: ErrMalformed, ErrUnknownKey, ErrBadMAC,
// ErrExpired (checked in that order: the expiry of a forged id is never looked at).
func (k *Keys) Verify(id, sale, user string, now time.Time) (Challenge, error) {
	if len(id) > MaxIDLen {
		return Challenge{}, ErrMalformed
	}
	var parts [5]string
	rest := id
	for i := range 4 {
		j := indexDot(rest)
		if j < 0 {
			return Challenge{}, ErrMalformed
		}
		parts[i], rest = rest[:j], rest[j+1:]
	}
	parts[4] = rest
	kid, expiry, diff, nonce, mac := parts[0], parts[1], parts[2], parts[3], parts[4]
	exp, okE := digits(expiry, 13)
	d, okD := digits(diff, 2)
	if !okE || !okD || len(nonce) != 2*nonceLen || !lowerHex(nonce) || len(mac) != 2*macLen || !lowerHex(mac) {
		return Challenge{}, ErrMalformed
	}
	kk := k.keys[kid]
	if kk == nil {
		return Challenge{}, ErrUnknownKey
	}
	var want, got [macLen]byte
	if !kk.sum(sale, user, id[:len(id)-len(mac)-1], &want) {
		return Challenge{}, ErrBadMAC
	}
	for i := range got {
		got[i] = unhex(mac[2*i])<<4 | unhex(mac[2*i+1])
	}
	if !hmac.Equal(want[:], got[:]) {
		return Challenge{}, ErrBadMAC
	}
	if d > MaxDifficulty {
		return Challenge{}, ErrMalformed
	}
	ch := Challenge{ID: id, Difficulty: int(d), ExpiresAt: time.UnixMilli(int64(exp)).UTC()}
	if now.UnixMilli() >= int64(exp) {
		return Challenge{}, ErrExpired
	}
	return ch, nil
}

func indexDot(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			return i
		}
	}
	return -1
}

// digits parses 1 to max decimal digits.
func digits(s string, max int) (uint64, bool) {
	if len(s) == 0 || len(s) > max {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func unhex(c byte) byte {
	if c <= '9' {
		return c - '0'
	}
	return c - 'a' + 10
}

// AppendJSON appends the public answer to a challenge request,
// {"challenge_id","kind","payload":{"prefix","difficulty"},"expires_at"} and a newline, without
// reflection. Ids are made of A-Z a-z 0-9 _ - . only, so nothing needs escaping.
func AppendJSON(b []byte, ch Challenge) []byte {
	b = append(b, `{"challenge_id":"`...)
	b = append(b, ch.ID...)
	b = append(b, `","kind":"`+Kind+`","payload":{"prefix":"`...)
	b = append(b, ch.ID...)
	b = append(b, `","difficulty":`...)
	b = strconv.AppendInt(b, int64(ch.Difficulty), 10)
	b = append(b, `},"expires_at":"`...)
	b = httpapi.AppendTime(b, ch.ExpiresAt)
	return append(b, "\"}\n"...)
}

// Body is the public answer to a challenge request as a client decodes it: the JSON AppendJSON
// renders. ExpiresAt decodes from its RFC 3339 text.
type Body struct {
	ChallengeID string    `json:"challenge_id"`
	Kind        string    `json:"kind"`
	Payload     Payload   `json:"payload"`
	ExpiresAt   time.Time `json:"expires_at"`
}

// Payload is the puzzle in a Body: an answer such that SHA-256(Prefix + answer) starts with
// Difficulty zero bits.
type Payload struct {
	Prefix     string `json:"prefix"`
	Difficulty int    `json:"difficulty"`
}

// LeadingZeroBits returns the number of leading zero bits of SHA-256(prefix + answer).
func LeadingZeroBits(prefix, answer string) int {
	var buf [MaxIDLen + MaxAnswerLen]byte
	b := append(append(buf[:0], prefix...), answer...)
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

// Solve finds an answer (a decimal number) such that SHA-256(prefix + answer) starts with
// difficulty zero bits, by counting up from zero: the honest client's work, for tools and tests.
// It takes about 2^difficulty hashes.
func Solve(prefix string, difficulty int) string {
	answer, _ := SolveCount(prefix, difficulty)
	return answer
}

// SolveCount is Solve that also returns how many hashes it took: the answer's value + 1.
// Difficulty 0 accepts "0" at once.
func SolveCount(prefix string, difficulty int) (answer string, hashes int) {
	buf := make([]byte, 0, len(prefix)+20)
	buf = append(buf, prefix...)
	for n := uint64(0); ; n++ {
		b := strconv.AppendUint(buf, n, 10)
		if zeroBits(sha256.Sum256(b)) >= difficulty {
			return string(b[len(prefix):]), int(n) + 1
		}
	}
}
